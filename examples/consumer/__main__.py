"""A scale set in another project, deployed from an image an imagefactory stack published.

It reads the factory's outputs through a StackReference, picks the configured image
version for its region (examples/consumer/selection.py) and refuses, with an error that
names the config key and the allowed values, anything the factory does not offer.

Per-environment settings reach the instances at first boot: examples/consumer/userdata/
holds one template per OS (cloud-init for Linux, a PowerShell script the Custom Script
Extension runs for Windows), rendered with this stack's `environment`, `apiUrl` and, when
set, the secret `apiToken`, with the factory's own renderer (imagefactory.userdata). The
custom data is a Pulumi secret whenever the token is set: Pulumi keeps secrets through
`apply`.
"""

import sys
from pathlib import Path

# The output keys are shared with the factory through imagefactory/contract.py, so this
# example imports that module from the repository root instead of copying the keys.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pulumi
import pulumi_random as random
import pulumi_tls as tls
from pulumi_azure_native import compute, network, resources

from examples.consumer.selection import (
    IMAGE_KEY,
    LATEST,
    REGION_KEY,
    STACK_KEY,
    VERSION_KEY,
    Selection,
    SelectionError,
    select,
)
from imagefactory import userdata

config = pulumi.Config()
factory_stack = config.require(STACK_KEY)
image_name = config.require(IMAGE_KEY)
version = config.get(VERSION_KEY) or LATEST
region = config.require(REGION_KEY)
name = config.get("name") or "app"
sku = config.get("sku") or "Standard_B2s"
capacity = config.get_int("capacity")
capacity = 2 if capacity is None else capacity
environment = config.require("environment")
api_url = config.get("apiUrl") or ""
# Secret when set (pulumi config set --secret apiToken ...); the custom data inherits it.
api_token = config.get_secret("apiToken") or ""
admin = "azureuser"
HERE = Path(__file__).resolve().parent
TEMPLATES = {"linux": HERE / "userdata" / "app.yaml", "windows": HERE / "userdata" / "app.ps1"}
LOADER = userdata.SCRIPTS_DIR / userdata.WINDOWS_FIRST_BOOT_LOADER


def _choose(outputs: dict) -> Selection:
    try:
        return select(
            outputs, stack=factory_stack, image=image_name, version=version, region=region
        )
    except SelectionError as err:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(err)) from None


factory = pulumi.StackReference(factory_stack)
chosen = factory.outputs.apply(_choose)

group = resources.ResourceGroup("group", resource_group_name=f"{name}-rg", location=region)
vnet = network.VirtualNetwork(
    "vnet",
    virtual_network_name=f"{name}-vnet",
    resource_group_name=group.name,
    location=region,
    address_space=network.AddressSpaceArgs(address_prefixes=["10.42.0.0/16"]),
)
subnet = network.Subnet(
    "subnet",
    subnet_name="instances",
    virtual_network_name=vnet.name,
    resource_group_name=group.name,
    address_prefix="10.42.1.0/24",
)
# Both credentials exist so the OS (known only from the factory's outputs) can pick one
# without creating resources inside an apply; neither is exported.
ssh_key = tls.PrivateKey("admin-ssh", algorithm="RSA", rsa_bits=4096)
password = random.RandomPassword("admin-password", length=28, special=True, min_special=2)


def _os_profile(args: list) -> compute.VirtualMachineScaleSetOSProfileArgs:
    selection, key, secret, token = args
    # Custom data, not Azure "user data": custom data never comes back through the API or
    # IMDS, user data does ("User data for Azure Virtual Machine": "You should not store
    # confidential information in user data").
    custom_data = _custom_data([selection, token])
    if selection.os == "linux":
        return compute.VirtualMachineScaleSetOSProfileArgs(
            computer_name_prefix=name[:9],
            admin_username=admin,
            custom_data=custom_data,
            linux_configuration=compute.LinuxConfigurationArgs(
                disable_password_authentication=True,
                ssh=compute.SshConfigurationArgs(
                    public_keys=[
                        compute.SshPublicKeyArgs(
                            path=f"/home/{admin}/.ssh/authorized_keys", key_data=key
                        )
                    ]
                ),
            ),
        )
    return compute.VirtualMachineScaleSetOSProfileArgs(
        computer_name_prefix=name[:9],
        admin_username=admin,
        admin_password=secret,
        custom_data=custom_data,
        windows_configuration=compute.WindowsConfigurationArgs(provision_vm_agent=True),
    )


def _security(selection: Selection) -> compute.SecurityProfileArgs | None:
    # What the factory's definition allows, from its output contract: a TrustedLaunch
    # definition makes only Trusted Launch VMs, a Standard one only standard VMs.
    if not selection.trusted_launch:
        return None
    return compute.SecurityProfileArgs(
        security_type=compute.SecurityTypes.TRUSTED_LAUNCH,
        uefi_settings=compute.UefiSettingsArgs(secure_boot_enabled=True, v_tpm_enabled=True),
    )


def _custom_data(args: list) -> str:
    """This stack's values in the template of the image's OS, base64 for customData."""
    selection, token = args
    path = TEMPLATES[selection.os]
    template = userdata.Template(str(path.relative_to(HERE)), path.read_text())
    values = {"environment": environment, "apiUrl": api_url, "apiToken": token}
    return userdata.render(template, values, {}).custom_data


def _extensions(selection: Selection) -> compute.VirtualMachineScaleSetExtensionProfileArgs | None:
    # Windows keeps custom data without running it: the Custom Script Extension does.
    if selection.os != "windows":
        return None
    return compute.VirtualMachineScaleSetExtensionProfileArgs(
        extensions=[
            compute.VirtualMachineScaleSetExtensionArgs(
                name=userdata.FIRST_BOOT_EXTENSION,
                publisher=userdata.CSE_PUBLISHER,
                type=userdata.CSE_TYPE,
                type_handler_version=userdata.CSE_VERSION,
                auto_upgrade_minor_version=True,
                settings=userdata.first_boot_extension_settings(LOADER.read_text()),
            )
        ]
    )


scale_set = compute.VirtualMachineScaleSet(
    "scale-set",
    vm_scale_set_name=name,
    resource_group_name=group.name,
    location=region,
    sku=compute.SkuArgs(name=sku, tier="Standard", capacity=capacity),
    orchestration_mode="Uniform",
    upgrade_policy=compute.UpgradePolicyArgs(mode=compute.UpgradeMode.MANUAL),
    virtual_machine_profile=compute.VirtualMachineScaleSetVMProfileArgs(
        os_profile=pulumi.Output.all(
            chosen, ssh_key.public_key_openssh, password.result, api_token
        ).apply(_os_profile),
        storage_profile=compute.VirtualMachineScaleSetStorageProfileArgs(
            image_reference=compute.ImageReferenceArgs(id=chosen.apply(lambda s: s.image_id)),
            os_disk=compute.VirtualMachineScaleSetOSDiskArgs(
                create_option="FromImage",
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
                            subnet=compute.ApiEntityReferenceArgs(id=subnet.id),
                        )
                    ],
                )
            ]
        ),
        security_profile=chosen.apply(_security),
        extension_profile=chosen.apply(_extensions),
    ),
    tags={"imagefactory-stack": factory_stack, "imagefactory-image": image_name},
)

pulumi.export("imageVersion", chosen.apply(lambda s: s.version))
pulumi.export("imageId", chosen.apply(lambda s: s.image_id))
pulumi.export("scaleSetId", scale_set.id)
