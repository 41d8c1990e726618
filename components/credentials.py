"""Generated admin credentials and the OS profile parts that use them, and the other parts
the builder VM and the validation test VM share (NIC, plan, security profile).

Linux VMs log in by SSH key only (a `pulumi-tls` key), Windows VMs by a `pulumi-random`
password. Both live in the stack's state as secrets and are never exported.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_random as random
import pulumi_tls as tls
from pulumi_azure_native import compute, network

from imagefactory.settings import BaseImage, OsType


def os_profile_parts(
    owner: pulumi.Resource, name: str, *, os: OsType, admin: str, automatic_updates: bool
) -> dict[str, Any]:
    """Keyword arguments for an OS profile: Linux SSH configuration or Windows password.

    The credential resources are created as children of `owner`, named after `name`.
    """
    child = pulumi.ResourceOptions(parent=owner)
    if os == "linux":
        key = tls.PrivateKey(f"{name}-ssh", algorithm="RSA", rsa_bits=4096, opts=child)
        return {
            "linux_configuration": compute.LinuxConfigurationArgs(
                disable_password_authentication=True,
                provision_vm_agent=True,
                ssh=compute.SshConfigurationArgs(
                    public_keys=[
                        compute.SshPublicKeyArgs(
                            path=f"/home/{admin}/.ssh/authorized_keys",
                            key_data=key.public_key_openssh,
                        )
                    ]
                ),
            )
        }
    password = random.RandomPassword(
        f"{name}-password",
        length=28,
        special=True,
        override_special="!#%*-_+=?",
        min_lower=2,
        min_upper=2,
        min_numeric=2,
        min_special=2,
        opts=child,
    )
    return {
        # Secret already; said again so no code path can ever show it in clear.
        "admin_password": pulumi.Output.secret(password.result),
        "windows_configuration": compute.WindowsConfigurationArgs(
            provision_vm_agent=True, enable_automatic_updates=automatic_updates
        ),
    }


def marketplace_plan(base: BaseImage) -> compute.PlanArgs | None:
    """The purchase plan a VM or scale set from a plan image must name (Azure refuses the
    deployment without it, also for VMs from a gallery version of such an image:
    https://learn.microsoft.com/azure/virtual-machines/marketplace-images)."""
    if base.plan is None:
        return None
    return compute.PlanArgs(
        name=base.plan.name, product=base.plan.product, publisher=base.plan.publisher
    )


def trusted_launch_profile() -> compute.SecurityProfileArgs:
    """Trusted Launch with Secure Boot and vTPM."""
    return compute.SecurityProfileArgs(
        security_type=compute.SecurityTypes.TRUSTED_LAUNCH,
        uefi_settings=compute.UefiSettingsArgs(secure_boot_enabled=True, v_tpm_enabled=True),
    )


def private_nic(
    name: str,
    *,
    nic_name: str,
    resource_group_name: pulumi.Input[str],
    location: str,
    subnet_id: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    public_ip_id: pulumi.Input[str] | None = None,
) -> network.NetworkInterface:
    """A NIC in the build subnet (whose NSG allows no inbound traffic), dynamic private IP,
    a public IP only when given one."""
    return network.NetworkInterface(
        name,
        network_interface_name=nic_name,
        resource_group_name=resource_group_name,
        location=location,
        ip_configurations=[
            network.NetworkInterfaceIPConfigurationArgs(
                name="primary",
                primary=True,
                private_ip_allocation_method="Dynamic",
                subnet=network.SubnetArgs(id=subnet_id),
                public_ip_address=(
                    network.PublicIPAddressArgs(id=public_ip_id) if public_ip_id else None
                ),
            )
        ],
        tags=tags,
        opts=opts,
    )


def owned_nic(nic: network.NetworkInterface) -> compute.NetworkProfileArgs:
    """The VM's network profile: its one NIC, which Pulumi owns. With "Delete" Azure would
    remove it with the VM, and a rebuilt VM would point at a NIC Pulumi thinks exists."""
    return compute.NetworkProfileArgs(
        network_interfaces=[
            compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True, delete_option="Detach")
        ]
    )
