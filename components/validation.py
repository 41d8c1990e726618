"""Validation: a private test VM from the new image, checked before the version is published.

The test VM is created from the captured image (the managed image, or a Trusted Launch
build's staging version), so Azure's own provisioning runs on it: an image that was badly
generalized fails here, not on the first scale-set instance (`OSProvisioningTimedOut`).
Run Commands then run the checks (imagefactory.validation.checks), each failing `pulumi
up` when one fails; `capture.sh collect` reads their JSON results back and deallocates the
test VM. The gallery version waits for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
from pulumi_azure_native import compute, network

from components.credentials import (
    marketplace_plan,
    os_profile_parts,
    owned_nic,
    private_nic,
    trusted_launch_profile,
)
from components.options import KEPT_FROM_CREATION
from components.provisioning import run_steps
from imagefactory import naming
from imagefactory.scripts import CaptureCommand, Step, with_subscription
from imagefactory.settings import BaseImage, OsType


@dataclass(frozen=True)
class TestVmArgs:
    """What one test VM is made of (all required)."""

    os: OsType
    base_image: BaseImage
    """The chain's base: a VM from an image with a purchase plan must name the plan."""
    image_id: pulumi.Input[str]
    """The managed image's or the staging version's id."""
    trusted_launch: bool
    vm_size: str
    os_disk_type: str
    vm_name: str
    nic_name: str
    admin_username: str
    resource_group_name: pulumi.Input[str]
    location: str
    subnet_id: pulumi.Input[str]
    tags: Mapping[str, str]
    build: str
    """The builder's fingerprint (build.fingerprint): a new build is validated anew."""


def trigger(args: TestVmArgs, checks: Sequence[Step], timeout_seconds: int) -> str:
    """The test VM's replacement trigger, 16 hex characters: the build it tests, its size
    and disk, the checks and their time limit. The VM is deallocated once validated, and
    Azure refuses to update the Run Commands of a VM that is not running: any change to them
    needs a new test VM. The build is in it because what the VM boots from can change kind
    (a managed image, a staging version) without that resource being replaced."""
    shape = {
        "build": args.build,
        "trustedLaunch": args.trusted_launch,
        "vmSize": args.vm_size,
        "osDiskType": args.os_disk_type,
        "checks": [hashlib.sha256(s.source.encode()).hexdigest() for s in checks],
        "timeoutSeconds": timeout_seconds,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


class Validation(pulumi.ComponentResource):
    """Test VM -> checks (Run Commands, in order) -> collected results (local command)."""

    test_vm: compute.VirtualMachine
    nic: network.NetworkInterface
    checks: list[compute.VirtualMachineRunCommandByVirtualMachine]
    results: command.local.Command
    """Its stdout is the summary imagefactory.validation.parse reads."""

    def __init__(
        self,
        name: str,
        *,
        args: TestVmArgs,
        checks: Sequence[Step],
        collect: CaptureCommand,
        subscription_id: pulumi.Input[str],
        image: pulumi.Resource,
        timeout_seconds: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`image`: the resource the test VM boots from; its replacement (a rebuilt
        builder) replaces the test VM, which validates the new build."""
        super().__init__("imagefactory:build:Validation", name, None, opts)
        tags = dict(args.tags)
        kept = pulumi.ResourceOptions(parent=self, ignore_changes=KEPT_FROM_CREATION)
        # Private: no public IP, in the build subnet whose NSG allows no inbound traffic.
        self.nic = private_nic(
            f"{name}-nic",
            nic_name=args.nic_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            subnet_id=args.subnet_id,
            tags=tags,
            opts=kept,
        )
        self.test_vm = compute.VirtualMachine(
            f"{name}-vm",
            vm_name=args.vm_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            hardware_profile=compute.HardwareProfileArgs(vm_size=args.vm_size),
            network_profile=owned_nic(self.nic),
            os_profile=compute.OSProfileArgs(
                computer_name=args.vm_name,
                admin_username=args.admin_username,
                **os_profile_parts(
                    self, name, os=args.os, admin=args.admin_username, automatic_updates=False
                ),
            ),
            storage_profile=compute.StorageProfileArgs(
                image_reference=compute.ImageReferenceArgs(id=args.image_id),
                os_disk=compute.OSDiskArgs(
                    create_option="FromImage",
                    delete_option="Delete",
                    caching=compute.CachingTypes.READ_WRITE,
                    managed_disk=compute.ManagedDiskParametersArgs(
                        storage_account_type=args.os_disk_type
                    ),
                ),
            ),
            # The builder's security type: Azure creates Trusted Launch VMs from gallery
            # images only, never from a managed image ("Create a managed image",
            # learn.microsoft.com/azure/virtual-machines/linux/capture-image).
            security_profile=trusted_launch_profile() if args.trusted_launch else None,
            plan=marketplace_plan(args.base_image),
            # The serial log shows why a badly generalized image never finished provisioning.
            diagnostics_profile=compute.DiagnosticsProfileArgs(
                boot_diagnostics=compute.BootDiagnosticsArgs(enabled=True)
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                replacement_trigger=trigger(args, checks, timeout_seconds),
                replace_with=[image],
                # Same name: the old one must go first.
                delete_before_replace=True,
                ignore_changes=KEPT_FROM_CREATION,
            ),
        )
        self.checks = run_steps(
            self,
            name,
            steps=checks,
            first_index=1,
            vm=self.test_vm,
            resource_group_name=args.resource_group_name,
            location=args.location,
            timeout_seconds=timeout_seconds,
            after=self.test_vm,
            tags=naming.own_tags(tags),
        )
        self.results = command.local.Command(
            f"{name}-results",
            create=pulumi.Output.from_input(subscription_id).apply(
                lambda sub: with_subscription(collect.create, sub)
            ),
            environment=collect.environment,
            # A new test VM (a rebuilt image) is validated and read again.
            triggers=[self.test_vm.vm_id],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.checks[-1]],
                deleted_with=self.test_vm,
                # The retry limits come from `capture.*`; an edit of them must not re-run
                # collect on a test VM that is deallocated by then (pulumi-command re-runs
                # `create` on any update), whose Run Commands report nothing while it is off.
                ignore_changes=["environment"],
            ),
        )
        self.register_outputs({"testVmId": self.test_vm.id, "results": self.results.stdout})
