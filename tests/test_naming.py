"""naming: every physical name against Azure's rules, without Pulumi.

Limits from "Naming rules and restrictions for Azure resources": Windows VM and scale set
names 1-15 (NetBIOS, no periods), Linux 1-64; resource groups 90; vnets 64; NICs, NSGs,
managed images, gallery definitions 80; role assignment names are GUIDs.
"""

from __future__ import annotations

import re
import uuid

import pytest

from imagefactory import naming
from imagefactory.naming import Names

PROD = Names("imgf-prod")
LONG = Names("a" * 20)  # the longest prefix settings allow
LONGEST_VERSION = "2147483647.2147483647.2147483647"
WINDOWS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,13}[A-Za-z0-9]$")


def test_prod_names() -> None:
    assert PROD.images_group == "imgf-prod-images-rg"
    assert PROD.build_group == "imgf-prod-build-rg"
    assert PROD.consumers_group("westeurope") == "imgf-prod-consumers-westeurope-rg"
    assert PROD.build_vnet == "imgf-prod-build-vnet"
    assert PROD.build_subnet == "builders"
    assert PROD.build_nsg == "imgf-prod-build-nsg"
    assert PROD.consumer_vnet("eastus") == "imgf-prod-eastus-vnet"
    assert PROD.consumer_nsg("eastus") == "imgf-prod-eastus-nsg"
    assert PROD.builder_vm("webserver", "1.1.0", "linux") == "imgf-prod-bld-webserver-1-1-0"
    assert PROD.builder_nic("webserver", "1.1.0") == "imgf-prod-bld-webserver-1-1-0-nic"
    assert PROD.managed_image("webserver", "1.1.0") == "imgf-prod-webserver-1.1.0"
    assert PROD.scale_set("web-us", "linux") == "web-us"
    assert PROD.computer_name_prefix("web-us", "linux") == "web-us"
    assert PROD.group_vm("iis-us", 0, "windows") == "iis-us-000"
    assert PROD.group_vm("web", 3, "linux") == "web-003"
    assert PROD.group_nic("web", 3) == "web-003-nic"


def test_version_slug_drops_dots() -> None:
    assert naming.version_slug("1.10.0") == "1-10-0"


@pytest.mark.parametrize(
    ("image", "version"),
    [("iis", "1.0.0"), ("iis", "1.0.1"), ("x" * 80, LONGEST_VERSION)],
)
def test_windows_builder_vm_fits_netbios(image: str, version: str) -> None:
    for names in (PROD, LONG):
        name = names.builder_vm(image, version, "windows")
        assert len(name) <= naming.WINDOWS_VM_MAX == 15
        assert "." not in name
        assert WINDOWS_NAME.match(name), name


def test_windows_builder_vm_is_stable_and_distinct_per_version_and_stack() -> None:
    a = PROD.builder_vm("iis", "1.0.0", "windows")
    assert a == PROD.builder_vm("iis", "1.0.0", "windows")
    assert a == "bld" + naming.short_hash("imgf-prod", "iis", "1.0.0", length=10)
    assert a != PROD.builder_vm("iis", "1.0.1", "windows")
    assert a != Names("imgf-dev").builder_vm("iis", "1.0.0", "windows")


def test_linux_builder_vm_cut_to_64_with_a_digest_and_still_unique() -> None:
    a = LONG.builder_vm("x" * 80, LONGEST_VERSION, "linux")
    b = LONG.builder_vm("x" * 80, "2147483647.2147483647.2147483646", "linux")
    assert len(a) == len(b) == naming.LINUX_VM_MAX == 64
    assert a.startswith("aaaaaaaaaaaaaaaaaaaa-bld-xxxx")
    assert re.search(r"-[0-9a-f]{6}$", a)
    assert a != b
    assert not a.endswith(("-", "."))


def test_cut_names_do_not_leave_a_hyphen_before_the_digest() -> None:
    # The cut falls on a hyphen: it is dropped, so no "--" appears.
    name = naming._fit("abcd-efgh-ijkl", 12)
    assert name == "abcd-" + naming.short_hash("abcd-efgh-ijkl", length=6)
    assert "--" not in name


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        (LONG.images_group, naming.RESOURCE_GROUP_MAX),
        (LONG.consumers_group("australiasoutheast"), naming.RESOURCE_GROUP_MAX),
        (LONG.build_vnet, naming.VNET_MAX),
        (LONG.consumer_vnet("australiasoutheast"), naming.VNET_MAX),
        (LONG.consumer_nsg("australiasoutheast"), naming.NSG_MAX),
        (LONG.builder_nic("x" * 80, LONGEST_VERSION), naming.NIC_MAX),
        (LONG.managed_image("x" * 80, LONGEST_VERSION), naming.MANAGED_IMAGE_MAX),
        (LONG.group_nic("g" * 40, 99), naming.NIC_MAX),
        (LONG.group_vm("g" * 40, 99, "linux"), naming.LINUX_VM_MAX),
        (LONG.scale_set("s" * 64, "linux"), naming.LINUX_SCALE_SET_MAX),
        (naming.run_command_name(99, "x" * 100 + ".sh"), naming.RUN_COMMAND_MAX),
    ],
)
def test_every_name_within_its_limit(name: str, limit: int) -> None:
    assert 1 <= len(name) <= limit


def test_managed_image_cut_keeps_versions_apart() -> None:
    a = LONG.managed_image("x" * 80, "1.0.0")
    b = LONG.managed_image("x" * 80, "1.0.1")
    assert len(a) == len(b) == 80
    assert a != b


def test_windows_scale_set_names() -> None:
    assert PROD.scale_set("iis-eu", "windows") == "iis-eu"
    long = PROD.scale_set("iis-scale-set-east", "windows")
    assert long == "ss" + naming.short_hash("imgf-prod", "iis-scale-set-east", length=12)
    assert len(long) == 14
    assert PROD.scale_set("iis-scale-set-west", "windows") != long


def test_computer_name_prefixes_leave_room_for_the_instance_suffix() -> None:
    win = PROD.computer_name_prefix("iis-frontend", "windows")
    assert win == "iis-f" + naming.short_hash("iis-frontend", length=4)
    assert len(win) == naming.WINDOWS_COMPUTER_PREFIX_MAX == 9
    assert len(win) + 6 <= naming.WINDOWS_VM_MAX
    assert PROD.computer_name_prefix("iis-frontend-2", "windows") != win
    linux = PROD.computer_name_prefix("w" * 70, "linux")
    assert len(linux) == naming.LINUX_COMPUTER_PREFIX_MAX == 58
    assert len(linux) + 6 <= naming.LINUX_VM_MAX


def test_windows_group_vm_names_fit_and_stay_unique() -> None:
    east = [PROD.group_vm("iis-frontend-east", i, "windows") for i in range(100)]
    west = [PROD.group_vm("iis-frontend-west", i, "windows") for i in range(100)]
    assert len(set(east) | set(west)) == 200
    for name in east + west:
        assert len(name) <= 15
        assert WINDOWS_NAME.match(name), name
    assert east[12] == "iis-fr" + naming.short_hash("iis-frontend-east", length=4) + "-012"
    assert PROD.group_vm("abcdefghij", 99, "windows") == "abcdefghij-099"


def test_run_command_names_are_ordered_and_readable() -> None:
    assert naming.run_command_name(1, "10-base.sh") == "01-10-base"
    assert naming.run_command_name(12, "generalize.ps1") == "12-generalize"
    assert naming.run_command_name(3, "my script (v2).ps1") == "03-my-script-v2"


def test_gallery_and_definition_patterns() -> None:
    for good in ("imgf_prod_gallery", "a", "Gallery.v2", "g" * 80):
        assert naming.GALLERY_NAME.match(good), good
    for bad in ("imgf-prod", "_gallery", "gallery.", "gal lery", ""):
        assert not naming.GALLERY_NAME.match(bad), bad
    for good in ("webserver", "Web_server.v2-x", "a", "1"):
        assert naming.DEFINITION_NAME.match(good), good
    for bad in ("-web", "web-", "web.", "web server", "web/1"):
        assert not naming.DEFINITION_NAME.match(bad), bad


def test_role_assignment_name_is_a_stable_guid() -> None:
    principal = "3f2a4c1e-8b7d-4e29-9a51-6c0d2e7f9b13"
    name = naming.role_assignment_name("gallery", principal, naming.READER_ROLE_ID)
    assert str(uuid.UUID(name)) == name
    assert name == naming.role_assignment_name("gallery", principal, naming.READER_ROLE_ID)
    assert name == str(
        uuid.uuid5(
            uuid.UUID("5c3f0e2a-6a39-4f43-9a43-2f3a5a6f1c11"),
            f"gallery|{principal}|{naming.READER_ROLE_ID}",
        )
    )
    assert name != naming.role_assignment_name("other", principal, naming.READER_ROLE_ID)
    assert naming.READER_ROLE_ID == "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def test_arm_ids() -> None:
    sub = "11111111-2222-3333-4444-555555555555"
    assert naming.managed_image_id(sub, "imgf-prod-images-rg", "imgf-prod-webserver-1.1.0") == (
        f"/subscriptions/{sub}/resourceGroups/imgf-prod-images-rg/providers/"
        "Microsoft.Compute/images/imgf-prod-webserver-1.1.0"
    )
    assert naming.virtual_machine_id(sub, "imgf-prod-build-rg", "bld0123456789") == (
        f"/subscriptions/{sub}/resourceGroups/imgf-prod-build-rg/providers/"
        "Microsoft.Compute/virtualMachines/bld0123456789"
    )


def test_tags() -> None:
    base = {"environment": "prod", "owner": "platform-team"}
    assert naming.tags(base, stack="prod") == {
        "environment": "prod",
        "owner": "platform-team",
        "managed-by": "pulumi",
        "imagefactory-stack": "prod",
    }
    assert naming.tags(base, stack="prod", image="iis", version="1.0.0", temporary=True) == {
        "environment": "prod",
        "owner": "platform-team",
        "managed-by": "pulumi",
        "imagefactory-stack": "prod",
        "imagefactory-image": "iis",
        "imagefactory-version": "1.0.0",
        "imagefactory-lifecycle": "temporary",
    }
    # The stack's own tags cannot pretend a resource is not managed here.
    assert naming.tags({"managed-by": "hand"}, stack="dev")["managed-by"] == "pulumi"
    assert base == {"environment": "prod", "owner": "platform-team"}


def test_short_hash_is_stable_hex() -> None:
    # Pinned: a different digest would rename every cut name and Windows builder.
    assert naming.short_hash("a", "b") == "f04cdced"
    assert naming.short_hash("a", "b") != naming.short_hash("ab")
    assert re.fullmatch(r"[0-9a-f]{8}", naming.short_hash("a"))


def test_linux_builder_vm_names_replace_characters_vm_names_refuse() -> None:
    # Definition names may hold '_' and '.', Azure VM names may not.
    name = Names("imgf-dev").builder_vm("web_server.v2", "1.2.0", "linux")
    assert name == "imgf-dev-bld-web-server-v2-1-2-0"
