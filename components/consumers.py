"""Consumers of the images: scale sets and groups of identical VMs.

What Azure does with a change to each, which the offline plan diff reports
(`offline/refusals.py`):

- custom data (user data): a VM takes it only when it is created (OSProfile.customData "cannot
  be updated after the VM is created"), so a VM group is rebuilt; a scale set updates its model,
  and only new or reimaged instances get it ("Custom data", FAQ,
  https://learn.microsoft.com/azure/virtual-machines/custom-data);
- zones: a VM cannot move to another zone, so a VM is rebuilt; a scale set may add zones but
  never remove or replace them ("Update scale set to add availability zones",
  https://learn.microsoft.com/azure/virtual-machine-scale-sets/
  virtual-machine-scale-sets-use-availability-zones);
- autoscale: its own resource, updated in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import compute, monitor, network

from components.credentials import marketplace_plan, os_profile_parts, trusted_launch_profile
from imagefactory import autoscale, userdata
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


@dataclass(frozen=True)
class FirstBoot:
    """A consumer's user data, rendered, and the loader Windows runs it with."""

    rendered: userdata.Rendered
    loader: str
    """scripts/windows/run-first-boot.ps1, read by the caller (Windows consumers only)."""

    @property
    def custom_data(self) -> pulumi.Input[str]:
        """osProfile.customData: a Pulumi secret when any value in it is one, so the state
        holds it encrypted and no preview, plan or output shows it."""
        data = self.rendered.custom_data
        return pulumi.Output.secret(data) if self.rendered.secrets else data


def _access(
    owner: pulumi.Resource,
    name: str,
    image: Image,
    placement: ConsumerPlacement,
    *,
    automatic_updates: bool = True,
) -> tuple[dict[str, Any], compute.SecurityProfileArgs | None]:
    """Admin credentials (OS profile parts) and the security profile a consumer's VMs get."""
    creds = os_profile_parts(
        owner,
        name,
        os=image.os,
        admin=placement.admin_username,
        automatic_updates=automatic_updates,
    )
    return creds, trusted_launch_profile() if _trusted_launch(image) else None


def _trusted_launch(image: Image) -> bool:
    return image.generation == "V2" and image.security_type in (
        "TrustedLaunch",
        "TrustedLaunchSupported",
        "TrustedLaunchAndConfidentialVmSupported",
    )


def _first_boot_extension(boot: FirstBoot) -> dict[str, Any]:
    """The Custom Script Extension that runs a Windows consumer's custom data at first boot."""
    return {
        "publisher": userdata.CSE_PUBLISHER,
        "type": userdata.CSE_TYPE,
        "type_handler_version": userdata.CSE_VERSION,
        "auto_upgrade_minor_version": True,
        "settings": userdata.first_boot_extension_settings(boot.loader),
    }


class ScaleSetConsumer(pulumi.ComponentResource):
    """A scale set from a gallery image, with a health extension so rolling upgrades work,
    zones, first-boot user data and autoscale when its config asks for them."""

    scale_set: compute.VirtualMachineScaleSet
    autoscale: monitor.AutoscaleSetting | None

    def __init__(
        self,
        name: str,
        *,
        spec: ScaleSet,
        choice: ImageChoice,
        placement: ConsumerPlacement,
        first_boot: FirstBoot | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:consume:ScaleSet", name, None, opts)
        image = choice.image
        # Automatic OS image upgrades replace the OS disk; Azure refuses them on Windows scale
        # sets that also patch in place (windowsConfiguration.enableAutomaticUpdates must be
        # false: "Requirements for configuring automatic OS image upgrade",
        # learn.microsoft.com/azure/virtual-machine-scale-sets/
        # virtual-machine-scale-sets-automatic-upgrade).
        creds, security = _access(
            self, name, image, placement, automatic_updates=not choice.follows_latest
        )
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
            # An instance reports healthy only once its first-boot script has run, so a
            # rolling upgrade never counts a half-configured instance as done.
            provision_after_extensions=(
                [userdata.FIRST_BOOT_EXTENSION] if first_boot and image.os == "windows" else None
            ),
        )
        extensions = [health]
        if first_boot and image.os == "windows":
            extensions.insert(
                0,
                compute.VirtualMachineScaleSetExtensionArgs(
                    name=userdata.FIRST_BOOT_EXTENSION, **_first_boot_extension(first_boot)
                ),
            )
        rolling = None
        if spec.upgrade_policy == "Rolling":
            rolling = compute.RollingUpgradePolicyArgs(
                max_batch_instance_percent=20,
                max_unhealthy_instance_percent=20,
                max_unhealthy_upgraded_instance_percent=20,
                pause_time_between_batches="PT0S",
            )
        zones = list(spec.zones)
        vmss_name = placement.names.scale_set(spec.name, image.os)
        self.scale_set = compute.VirtualMachineScaleSet(
            f"{name}-vmss",
            vm_scale_set_name=vmss_name,
            resource_group_name=placement.resource_group_name,
            location=spec.region,
            sku=compute.SkuArgs(name=spec.sku, tier="Standard", capacity=spec.initial_capacity),
            orchestration_mode="Uniform",
            plan=marketplace_plan(image.base),
            overprovision=False,
            # A gallery image's scale set grows past 100 instances only across placement
            # groups; Azure converts true -> false but never back, so it is false from the
            # start ("Working with large scale sets", learn.microsoft.com/azure/
            # virtual-machine-scale-sets/virtual-machine-scale-sets-placement-groups).
            single_placement_group=False,
            zones=zones or None,
            # zoneBalance "can only be set if the zones property ... contains more than one
            # zone" (VirtualMachineScaleSet.zoneBalance).
            zone_balance=spec.zone_balance if len(zones) > 1 else None,
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
                    custom_data=first_boot.custom_data if first_boot else None,
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
                    extensions=extensions
                ),
                security_profile=security,
            ),
            tags={
                **placement.tags,
                "imagefactory-image": image.name,
                "imagefactory-version": choice.version_label,
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[choice.waits_for],
                # With autoscale, Azure owns the instance count: the program sets it when it
                # creates the scale set and never again.
                ignore_changes=["sku.capacity"] if spec.autoscale else None,
            ),
        )
        self.autoscale = None
        if spec.autoscale is not None:
            scaling = spec.autoscale
            self.autoscale = monitor.AutoscaleSetting(
                f"{name}-autoscale",
                autoscale_setting_name=f"{vmss_name}-autoscale",
                resource_group_name=placement.resource_group_name,
                location=spec.region,
                target_resource_uri=self.scale_set.id,
                target_resource_location=spec.region,
                enabled=True,
                profiles=[
                    monitor.AutoscaleProfileArgs(**profile)
                    for profile in autoscale.profiles(
                        scaling.capacity, scaling.cpu_rule, scaling.windows, self.scale_set.id
                    )
                ],
                tags={**placement.tags, "imagefactory-image": image.name},
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"id": self.scale_set.id})


class VmGroupConsumer(pulumi.ComponentResource):
    """`count` identical VMs with unique names, like `az vm create --count`, spread over the
    group's zones in turn (VM 000 in the first zone, 001 in the second, ...)."""

    vms: list[compute.VirtualMachine]
    first_boot: list[compute.VirtualMachineExtension]

    def __init__(
        self,
        name: str,
        *,
        spec: VmGroup,
        choice: ImageChoice,
        placement: ConsumerPlacement,
        first_boot: FirstBoot | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:consume:VmGroup", name, None, opts)
        image = choice.image
        creds, security = _access(self, name, image, placement)
        child = pulumi.ResourceOptions(parent=self)
        self.vms = []
        self.first_boot = []
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
            vm = compute.VirtualMachine(
                f"{name}-{index:03d}",
                vm_name=vm_name,
                resource_group_name=placement.resource_group_name,
                location=spec.region,
                zones=[spec.zones[index % len(spec.zones)]] if spec.zones else None,
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
                    custom_data=first_boot.custom_data if first_boot else None,
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
                    # Azure cannot change a VM's image, admin name, custom data or zone in
                    # place: any of them rebuilds the VM, under the same name.
                    replace_on_changes=[
                        "storageProfile.imageReference",
                        "osProfile.adminUsername",
                        "osProfile.customData",
                        "zones",
                    ],
                    delete_before_replace=True,
                ),
            )
            self.vms.append(vm)
            if first_boot and image.os == "windows":
                self.first_boot.append(
                    compute.VirtualMachineExtension(
                        f"{name}-{index:03d}-firstboot",
                        vm_extension_name=userdata.FIRST_BOOT_EXTENSION,
                        vm_name=vm.name,
                        resource_group_name=placement.resource_group_name,
                        location=spec.region,
                        **_first_boot_extension(first_boot),
                        tags=dict(placement.tags),
                        opts=pulumi.ResourceOptions(
                            parent=self,
                            # It lives inside its VM: a rebuilt VM gets it anew (and runs the
                            # script again); Azure deletes it with the VM.
                            replace_with=[vm],
                            deleted_with=vm,
                        ),
                    )
                )
        self.register_outputs({"vmIds": [vm.id for vm in self.vms]})
