"""The builder VM: a marketplace image on a private NIC, with generated credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import compute, network

from components.credentials import (
    marketplace_plan,
    os_profile_parts,
    owned_nic,
    private_nic,
    trusted_launch_profile,
)
from components.options import KEPT_FROM_CREATION
from imagefactory.settings import BaseImage, Builder, Generation, OsType

_REFERENCE_FIELD = {
    "id": "id",
    "sharedGalleryImageId": "shared_gallery_image_id",
    "communityGalleryImageId": "community_gallery_image_id",
}


@dataclass(frozen=True)
class BuilderArgs:
    """What one builder VM is made of (all required; defaults live in settings)."""

    os: OsType
    generation: Generation
    base_image: BaseImage
    builder: Builder
    vm_name: str
    nic_name: str
    admin_username: str
    resource_group_name: pulumi.Input[str]
    location: str
    subnet_id: pulumi.Input[str]
    public_ip: bool
    fingerprint: str
    """Digest of everything that shapes the built image; a new one builds a new VM."""
    tags: Mapping[str, str]
    base_image_id: pulumi.Input[str] | None = None
    """A gallery image version to start from instead of a Marketplace image; default none."""
    base_id_field: Literal["id", "sharedGalleryImageId", "communityGalleryImageId"] = "id"
    """The ImageReference field that takes `base_image_id` (chain.id_kind); default id."""


class BuilderVm(pulumi.ComponentResource):
    """A VM to configure once and capture; temporary, tagged so a leaked one is easy to find."""

    vm: compute.VirtualMachine
    nic: network.NetworkInterface

    def __init__(
        self, name: str, args: BuilderArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("imagefactory:build:BuilderVm", name, None, opts)
        # Tags are taken once, at creation: a stack-wide tag edit must never reach a
        # builder that may already be generalized.
        child = pulumi.ResourceOptions(parent=self, ignore_changes=KEPT_FROM_CREATION)
        tags = dict(args.tags)

        public_ip = None
        if args.public_ip:
            public_ip = network.PublicIPAddress(
                f"{name}-pip",
                resource_group_name=args.resource_group_name,
                location=args.location,
                sku=network.PublicIPAddressSkuArgs(name="Standard"),
                public_ip_allocation_method="Static",
                tags=tags,
                opts=child,
            )
        self.nic = private_nic(
            f"{name}-nic",
            nic_name=args.nic_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            subnet_id=args.subnet_id,
            public_ip_id=public_ip.id if public_ip else None,
            tags=tags,
            opts=child,
        )

        os_profile = compute.OSProfileArgs(
            computer_name=args.vm_name,
            admin_username=args.admin_username,
            **os_profile_parts(
                self, name, os=args.os, admin=args.admin_username, automatic_updates=False
            ),
        )

        security = (
            trusted_launch_profile() if args.builder.security_type == "TrustedLaunch" else None
        )

        base = args.base_image
        if args.base_image_id is not None:
            # A gallery version (of this stack, or another gallery's): its id, never a
            # definition's, so what a rebuild starts from is named in the fingerprint.
            reference = compute.ImageReferenceArgs(
                **{_REFERENCE_FIELD[args.base_id_field]: args.base_image_id}
            )
        else:
            reference = compute.ImageReferenceArgs(
                publisher=base.publisher,
                offer=base.offer,
                sku=base.sku,
                version=base.version or "latest",
            )
        self.vm = compute.VirtualMachine(
            f"{name}-vm",
            vm_name=args.vm_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            hardware_profile=compute.HardwareProfileArgs(vm_size=args.builder.vm_size),
            network_profile=owned_nic(self.nic),
            os_profile=os_profile,
            storage_profile=compute.StorageProfileArgs(
                image_reference=reference,
                os_disk=compute.OSDiskArgs(
                    create_option="FromImage",
                    delete_option="Delete",
                    caching=compute.CachingTypes.READ_WRITE,
                    disk_size_gb=args.builder.os_disk_size_gb,
                    managed_disk=compute.ManagedDiskParametersArgs(
                        storage_account_type=args.builder.os_disk_type
                    ),
                ),
            ),
            security_profile=security,
            plan=marketplace_plan(base),
            # Managed boot diagnostics keep the serial log when in-guest generalization fails.
            diagnostics_profile=compute.DiagnosticsProfileArgs(
                boot_diagnostics=compute.BootDiagnosticsArgs(enabled=True)
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # A changed build (base image, scripts, size) needs a fresh VM: the old
                # one is generalized and cannot run anything again. Same name, so the old
                # one must go first.
                replacement_trigger=args.fingerprint,
                delete_before_replace=True,
                ignore_changes=KEPT_FROM_CREATION,
            ),
        )
        self.register_outputs({"vmId": self.vm.vm_id, "id": self.vm.id})
