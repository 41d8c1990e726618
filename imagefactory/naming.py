"""Physical names and tags, cut to each Azure resource's rules.

Every name the program gives Azure comes from here, so the rules live in one place and
are testable without Pulumi. Sources: "Naming rules and restrictions for Azure resources"
(learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

# Length limits per resource type (min, max).
RESOURCE_GROUP_MAX = 90
VNET_MAX = 64
SUBNET_MAX = 80
NSG_MAX = 80
NIC_MAX = 80
LINUX_VM_MAX = 64
# Windows VM resource names and computer names are NetBIOS names: 15 characters.
WINDOWS_VM_MAX = 15
MANAGED_IMAGE_MAX = 80
GALLERY_MAX = 80
DEFINITION_MAX = 80
RUN_COMMAND_MAX = 80
LINUX_SCALE_SET_MAX = 64
WINDOWS_SCALE_SET_MAX = 15
# A scale set appends 6 characters to the prefix for each instance's computer name.
LINUX_COMPUTER_PREFIX_MAX = 58
WINDOWS_COMPUTER_PREFIX_MAX = 9
IDENTIFIER_PUBLISHER_MAX = 128
IDENTIFIER_OFFER_MAX = 64
IDENTIFIER_SKU_MAX = 64
INT32_MAX = 2_147_483_647

GALLERY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*[A-Za-z0-9]$|^[A-Za-z0-9]$")
DEFINITION_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
IDENTIFIER_PART = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
# Names we derive resource names from (prefix, image, consumer): lower-case words and hyphens.
SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Consumer names (scale sets, VM groups) become VM, NIC and scale set names, which Azure
# allows in upper case too; two names that differ only in case are the same resource.
CONSUMER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")

# Built-in role "Reader" (the same GUID in every tenant).
READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
_NAMESPACE = uuid.UUID("5c3f0e2a-6a39-4f43-9a43-2f3a5a6f1c11")


def short_hash(*parts: str, length: int = 8) -> str:
    """A stable lower-case hex digest of the parts, for names that must be short."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def _fit(name: str, limit: int, *salt: str) -> str:
    """Cut a name to the limit; a cut name keeps a hash of the whole so it stays unique."""
    if len(name) <= limit:
        return name
    digest = short_hash(name, *salt, length=6)
    return f"{name[: limit - 7].rstrip('-.')}-{digest}"


def version_slug(version: str) -> str:
    """'1.2.0' -> '1-2-0': dots are not allowed in VM and NIC names on Windows."""
    return version.replace(".", "-")


@dataclass(frozen=True)
class Names:
    """The physical names of one stack's resources, derived from its name prefix."""

    prefix: str

    # Resource groups -----------------------------------------------------------------
    @property
    def images_group(self) -> str:
        return _fit(f"{self.prefix}-images-rg", RESOURCE_GROUP_MAX)

    @property
    def build_group(self) -> str:
        return _fit(f"{self.prefix}-build-rg", RESOURCE_GROUP_MAX)

    def consumers_group(self, region: str) -> str:
        return _fit(f"{self.prefix}-consumers-{region}-rg", RESOURCE_GROUP_MAX)

    # Networks ------------------------------------------------------------------------
    @property
    def build_vnet(self) -> str:
        return _fit(f"{self.prefix}-build-vnet", VNET_MAX)

    @property
    def build_subnet(self) -> str:
        return "builders"

    @property
    def build_nsg(self) -> str:
        return _fit(f"{self.prefix}-build-nsg", NSG_MAX)

    def consumer_vnet(self, region: str) -> str:
        return _fit(f"{self.prefix}-{region}-vnet", VNET_MAX)

    def consumer_nsg(self, region: str) -> str:
        return _fit(f"{self.prefix}-{region}-nsg", NSG_MAX)

    # Builders ------------------------------------------------------------------------
    def builder_vm(self, image: str, version: str, os: str) -> str:
        if os == "windows":
            # 15 characters, no periods: "bld" + a digest of what the builder is for.
            return f"bld{short_hash(self.prefix, image, version, length=10)}"
        # VM names take no '_' or '.', which image names may contain.
        slug = re.sub(r"[_.]+", "-", image)
        return _fit(f"{self.prefix}-bld-{slug}-{version_slug(version)}", LINUX_VM_MAX)

    def builder_nic(self, image: str, version: str) -> str:
        return _fit(f"{self.prefix}-bld-{image}-{version_slug(version)}-nic", NIC_MAX)

    def test_vm(self, image: str, version: str, os: str) -> str:
        """The validation test VM: its computer name too, which the checks compare."""
        if os == "windows":
            return f"tst{short_hash(self.prefix, image, version, 'test', length=10)}"
        slug = re.sub(r"[_.]+", "-", image)
        return _fit(f"{self.prefix}-tst-{slug}-{version_slug(version)}", LINUX_VM_MAX)

    def test_vm_nic(self, image: str, version: str) -> str:
        return _fit(f"{self.prefix}-tst-{image}-{version_slug(version)}-nic", NIC_MAX)

    def staging_gallery(self) -> str:
        """The build group's gallery where Trusted Launch builds wait for validation: gallery
        names take letters, digits, '.' and '_' only."""
        return _fit(f"{self.prefix.replace('-', '_')}_staging", GALLERY_MAX).replace("-", "_")

    def managed_image(self, image: str, version: str) -> str:
        return _fit(f"{self.prefix}-{image}-{version}", MANAGED_IMAGE_MAX)

    # Consumers -----------------------------------------------------------------------
    def scale_set(self, consumer: str, os: str) -> str:
        limit = WINDOWS_SCALE_SET_MAX if os == "windows" else LINUX_SCALE_SET_MAX
        if os == "windows" and len(consumer) > limit:
            return f"ss{short_hash(self.prefix, consumer, length=12)}"
        return _fit(consumer, limit, self.prefix)

    def computer_name_prefix(self, consumer: str, os: str) -> str:
        limit = WINDOWS_COMPUTER_PREFIX_MAX if os == "windows" else LINUX_COMPUTER_PREFIX_MAX
        cleaned = consumer.replace("_", "-")
        if len(cleaned) <= limit:
            return cleaned
        return cleaned[: limit - 4].rstrip("-") + short_hash(cleaned, length=4)

    def group_vm(self, group: str, index: int, os: str) -> str:
        if os == "windows":
            # 10 + "-NNN" fits 15. A longer group name is cut with a digest of the whole,
            # or "iis-frontend-east" and "iis-frontend-west" would both give "iis-fronte-001".
            base = (
                group if len(group) <= 10 else group[:6].rstrip("-") + short_hash(group, length=4)
            )
            return f"{base}-{index:03d}"
        return _fit(f"{group}-{index:03d}", LINUX_VM_MAX, self.prefix)

    def group_nic(self, group: str, index: int) -> str:
        return _fit(f"{group}-{index:03d}-nic", NIC_MAX, self.prefix)


def run_command_name(step: int, script_name: str) -> str:
    """Run Command resource names: ordered, readable, unique per VM."""
    stem = re.sub(r"[^A-Za-z0-9-]+", "-", script_name.rsplit(".", 1)[0]).strip("-")
    return _fit(f"{step:02d}-{stem}", RUN_COMMAND_MAX)


def role_assignment_name(scope_key: str, principal_id: str, role_id: str) -> str:
    """Role assignment names must be GUIDs; derive one so re-runs keep the same name."""
    return str(uuid.uuid5(_NAMESPACE, f"{scope_key}|{principal_id}|{role_id}"))


def arm_id(subscription_id: str, resource_group: str, provider_path: str) -> str:
    """A resource's ARM id, for references that must not depend on another resource's output."""
    group = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    return f"{group}/providers/{provider_path}"


def managed_image_id(subscription_id: str, resource_group: str, name: str) -> str:
    return arm_id(subscription_id, resource_group, f"Microsoft.Compute/images/{name}")


def virtual_machine_id(subscription_id: str, resource_group: str, name: str) -> str:
    return arm_id(subscription_id, resource_group, f"Microsoft.Compute/virtualMachines/{name}")


def staging_version_id(subscription_id: str, *, names: Names, image: str, version: str) -> str:
    return arm_id(
        subscription_id,
        names.build_group,
        f"Microsoft.Compute/galleries/{names.staging_gallery()}/images/{image}/versions/{version}",
    )


def version_source_id(
    subscription_id: str, *, names: Names, image: str, version: str, staged: bool
) -> str:
    """What a gallery version is published from: the staging version of a Trusted Launch
    build (`staged`), or the managed image. Computed from names only, so retiring the
    builder changes nothing."""
    if staged:
        return staging_version_id(subscription_id, names=names, image=image, version=version)
    return managed_image_id(
        subscription_id, names.images_group, names.managed_image(image, version)
    )


ROLE_TAG = "imagefactory-role"
TEST_VM_ROLE = "test-vm"
"""The role tag of a validation test VM and its NIC (builders have none)."""

# What a version's validation read, as tags on the version (imagefactory/validation.py), in
# the order they are written and given up when the stack's own tags leave no room.
VALIDATION_TAGS = (
    "imagefactory-validation",
    "imagefactory-os",
    "imagefactory-built",
    "imagefactory-base",
    "imagefactory-packages",
    "imagefactory-key-packages",
)


def tags(
    base: Mapping[str, str],
    *,
    stack: str,
    image: str | None = None,
    version: str | None = None,
    temporary: bool = False,
) -> dict[str, str]:
    """Tags for one resource: the stack's own, plus what a leaked builder needs to be found."""
    out = {**base, "managed-by": "pulumi", "imagefactory-stack": stack}
    if image is not None:
        out["imagefactory-image"] = image
    if version is not None:
        out["imagefactory-version"] = version
    if temporary:
        out["imagefactory-lifecycle"] = "temporary"
    return out


def own_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Only the tags this program sets itself (`managed-by`, `imagefactory-*`), none of the
    stack's `tags` config: for resources whose tags must never change after creation."""
    return {k: v for k, v in tags.items() if k == "managed-by" or k.startswith("imagefactory-")}
