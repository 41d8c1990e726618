"""Consumers of the images: scale sets and groups of identical VMs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import compute, network

from components.credentials import marketplace_plan, os_profile_parts, trusted_launch_profile
from imagefactory.naming import Names
from imagefactory.settings import Image, ScaleSet, VmGroup


@dataclass(frozen=True)
class ImageChoice:
    """The image a consumer runs.

    A pinned consumer, and a VM group that follows latest, get the version's own id: a VM
    group is rebuilt when latest moves, since Azure resolves `latest` only when a VM is
    created. A scale set that follows latest gets the definition's id and automatic OS
    image upgrades, so Azure itself rolls its instances to each new version.
    """

    image: Image
    image_id: pulumi.Input[str]
    version_label: str
    """What the consumer's tag says it runs: '1.2.0', 'latest (1.2.0)', or 'latest'."""
    waits_for: pulumi.Resource
    """The version that must exist first; for latest the newest one."""
    follows_latest: bool = False
    """The scale set tracks the definition's latest version by automatic OS upgrade."""


@dataclass(frozen=True)
class ConsumerPlacement:
    """Where a consumer goes and how it is named; one per consumer region."""

    names: Names
    admin_username: str
    resource_group_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    tags: Mapping[str, str]


def _access(
    owner: pulumi.Resource, name: str, image: Image, placement: ConsumerPlacement
) -> tuple[dict[str, Any], compute.SecurityProfileArgs | None]:
    """Admin credentials (OS profile parts) and the security profile a consumer's VMs get."""
    creds = os_profile_parts(
        owner, name, os=image.os, admin=placement.admin_username, automatic_updates=True
    )
    return creds, trusted_launch_profile() if _trusted_launch(image) else None


def _trusted_launch(image: Image) -> bool:
    return image.generation == "V2" and image.security_type in (
        "TrustedLaunch",
        "TrustedLaunchSupported",
        "TrustedLaunchAndConfidentialVmSupported",
    )


class ScaleSetConsumer(pulumi.ComponentResource):
    """A scale set from a gallery image, with a health extension so rolling upgrades work."""

    scale_set: compute.VirtualMachineScaleSet

    def __init__(
        self,
        name: str,
        *,
        spec: ScaleSet,
        choice: ImageChoice,
        placement: ConsumerPlacement,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:consume:ScaleSet", name, None, opts)
        image = choice.image
        creds, security = _access(self, name, image, placement)
        health = compute.VirtualMachineScaleSetExtensionArgs(
            name="health",
            publisher="Microsoft.ManagedServices",
            type="ApplicationHealthLinux" if image.os == "linux" else "ApplicationHealthWindows",
            type_handler_version="1.0",
            auto_upgrade_minor_version=True,
            settings={
                "protocol": "http",
                "port": spec.health_port,
                "requestPath": spec.health_path,
            },
        )
        rolling = None
        if spec.upgrade_policy == "Rolling":
            rolling = compute.RollingUpgradePolicyArgs(
                max_batch_instance_percent=20,
                max_unhealthy_instance_percent=20,
                max_unhealthy_upgraded_instance_percent=20,
                pause_time_between_batches="PT0S",
            )
        self.scale_set = compute.VirtualMachineScaleSet(
            f"{name}-vmss",
            vm_scale_set_name=placement.names.scale_set(spec.name, image.os),
            resource_group_name=placement.resource_group_name,
            location=spec.region,
            sku=compute.SkuArgs(name=spec.sku, tier="Standard", capacity=spec.capacity),
            orchestration_mode="Uniform",
            plan=marketplace_plan(image.base),
            overprovision=False,
            upgrade_policy=compute.UpgradePolicyArgs(
                mode=compute.UpgradeMode(spec.upgrade_policy),
                rolling_upgrade_policy=rolling,
                # Azure resolves "latest" only when an instance is created; automatic OS
                # image upgrades roll the instances to each new gallery version, in batches
                # and checked by the health extension ("Automatic OS image upgrades",
                # learn.microsoft.com/azure/virtual-machine-scale-sets/
                # virtual-machine-scale-sets-automatic-upgrade).
                automatic_os_upgrade_policy=(
                    compute.AutomaticOSUpgradePolicyArgs(
                        enable_automatic_os_upgrade=True, disable_automatic_rollback=False
                    )
                    if choice.follows_latest
                    else None
                ),
            ),
            virtual_machine_profile=compute.VirtualMachineScaleSetVMProfileArgs(
                os_profile=compute.VirtualMachineScaleSetOSProfileArgs(
                    computer_name_prefix=placement.names.computer_name_prefix(spec.name, image.os),
                    admin_username=placement.admin_username,
                    **creds,
                ),
                storage_profile=compute.VirtualMachineScaleSetStorageProfileArgs(
                    image_reference=compute.ImageReferenceArgs(id=choice.image_id),
                    os_disk=compute.VirtualMachineScaleSetOSDiskArgs(
                        create_option="FromImage",
                        caching=compute.CachingTypes.READ_WRITE,
                        managed_disk=compute.VirtualMachineScaleSetManagedDiskParametersArgs(
                            storage_account_type="StandardSSD_LRS"
                        ),
                    ),
                ),
                network_profile=compute.VirtualMachineScaleSetNetworkProfileArgs(
                    network_interface_configurations=[
                        compute.VirtualMachineScaleSetNetworkConfigurationArgs(
                            name="primary",
                            primary=True,
                            ip_configurations=[
                                compute.VirtualMachineScaleSetIPConfigurationArgs(
                                    name="primary",
                                    primary=True,
                                    subnet=compute.ApiEntityReferenceArgs(id=placement.subnet_id),
                                )
                            ],
                        )
                    ]
                ),
                extension_profile=compute.VirtualMachineScaleSetExtensionProfileArgs(
                    extensions=[health]
                ),
                security_profile=security,
            ),
            tags={
                **placement.tags,
                "imagefactory-image": image.name,
                "imagefactory-version": choice.version_label,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[choice.waits_for]),
        )
        self.register_outputs({"id": self.scale_set.id})


class VmGroupConsumer(pulumi.ComponentResource):
    """`count` identical VMs with unique names, like `az vm create --count`."""

    vms: list[compute.VirtualMachine]

    def __init__(
        self,
        name: str,
        *,
        spec: VmGroup,
        choice: ImageChoice,
        placement: ConsumerPlacement,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:consume:VmGroup", name, None, opts)
        image = choice.image
        creds, security = _access(self, name, image, placement)
        child = pulumi.ResourceOptions(parent=self)
        self.vms = []
        for index in range(spec.count):
            vm_name = placement.names.group_vm(spec.name, index, image.os)
            nic = network.NetworkInterface(
                f"{name}-{index:03d}-nic",
                network_interface_name=placement.names.group_nic(spec.name, index),
                resource_group_name=placement.resource_group_name,
                location=spec.region,
                ip_configurations=[
                    network.NetworkInterfaceIPConfigurationArgs(
                        name="primary",
                        primary=True,
                        private_ip_allocation_method="Dynamic",
                        subnet=network.SubnetArgs(id=placement.subnet_id),
                    )
                ],
                tags=dict(placement.tags),
                opts=child,
            )
            self.vms.append(
                compute.VirtualMachine(
                    f"{name}-{index:03d}",
                    vm_name=vm_name,
                    resource_group_name=placement.resource_group_name,
                    location=spec.region,
                    hardware_profile=compute.HardwareProfileArgs(vm_size=spec.size),
                    network_profile=compute.NetworkProfileArgs(
                        network_interfaces=[
                            compute.NetworkInterfaceReferenceArgs(
                                # Pulumi owns the NIC (see the builder).
                                id=nic.id,
                                primary=True,
                                delete_option="Detach",
                            )
                        ]
                    ),
                    os_profile=compute.OSProfileArgs(
                        computer_name=vm_name,
                        admin_username=placement.admin_username,
                        **creds,
                    ),
                    storage_profile=compute.StorageProfileArgs(
                        image_reference=compute.ImageReferenceArgs(id=choice.image_id),
                        os_disk=compute.OSDiskArgs(
                            create_option="FromImage",
                            delete_option="Delete",
                            caching=compute.CachingTypes.READ_WRITE,
                            managed_disk=compute.ManagedDiskParametersArgs(
                                storage_account_type="StandardSSD_LRS"
                            ),
                        ),
                    ),
                    security_profile=security,
                    plan=marketplace_plan(image.base),
                    tags={
                        **placement.tags,
                        "imagefactory-image": image.name,
                        "imagefactory-version": choice.version_label,
                    },
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=[choice.waits_for],
                        # Azure cannot change a VM's image or admin name in place: moving
                        # the group to another version (or renaming its admin) rebuilds its
                        # VMs, under the same names.
                        replace_on_changes=[
                            "storageProfile.imageReference",
                            "osProfile.adminUsername",
                        ],
                        delete_before_replace=True,
                    ),
                )
            )
        self.register_outputs({"vmIds": [vm.id for vm in self.vms]})
