"""Version lifecycle: run the program twice (before/after a config change) and compare.

A published version must never change: retiring its builder, rebuilding with another
VM size or base image, or editing scripts changes temporary resources only.
"""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest

from imagefactory import naming
from offline import changes, engine
from offline.engine import Registered, Run

VERSION = "azure-native:compute:GalleryImageVersion"


def prod_config() -> dict[str, Any]:
    return copy.deepcopy(engine.stack_config("prod"))


def staged(res: Registered) -> bool:
    """A Trusted Launch build's staging version: temporary, in the build group."""
    return res.inputs["tags"].get("imagefactory-lifecycle") == "temporary"


def versions(run: Run) -> dict[str, Registered]:
    """The published versions (not the staging versions, which go with their builds)."""
    return {r.urn: r for r in run.of_type(VERSION) if not staged(r)}


def builds_of(run: Run, image: str, version: str) -> set[str]:
    """URNs of every resource that exists only to build this version."""
    prefix = f"build-{image}-{version}"
    return {r.urn for r in run.resources if r.name.startswith(prefix)}


def assert_versions_untouched(before: Run, after: Run) -> None:
    old, new = versions(before), versions(after)
    assert set(old) == set(new), "a version was added, removed or moved to another URN"
    for urn, res in old.items():
        # As the engine compares them: ignored paths (the source, the validation tags a
        # retired build no longer supplies) keep their old values.
        kept = changes.apply_ignore_changes(res.inputs, new[urn].inputs, new[urn].ignore_changes)
        assert kept == res.inputs, f"inputs of {res.name} changed"
        assert new[urn].protect == res.protect
        assert new[urn].custom_timeouts == res.custom_timeouts
        assert new[urn].parent == res.parent


def test_retiring_a_builder_removes_it_and_leaves_the_version_alone() -> None:
    before = engine.run("prod")
    config = prod_config()
    config["imagefactory:images"][0]["versions"][1]["builder"] = "retired"
    after = engine.run("prod", config=config)

    build = builds_of(before, "webserver", "1.1.0")
    types = {before.by_urn(u).type for u in build}
    assert {
        "azure-native:compute:VirtualMachine",
        "azure-native:network:NetworkInterface",
        "azure-native:compute:VirtualMachineRunCommandByVirtualMachine",
        "command:local:Command",
        "azure-native:compute:Image",
        "tls:index/privateKey:PrivateKey",
    } <= types
    assert builds_of(after, "webserver", "1.1.0") == set()
    # Everything else stays exactly as it was: only the build went away.
    assert {r.urn for r in after.resources} == {r.urn for r in before.resources} - build
    assert_versions_untouched(before, after)
    # The output contract keeps the version; the managed image id is gone with the image.
    entry = after.outputs["images"]["webserver"]["versions"]["1.1.0"]
    assert entry["managedImageId"] is None
    assert entry["id"] == before.outputs["images"]["webserver"]["versions"]["1.1.0"]["id"]


def test_retiring_every_builder_removes_the_build_group_and_network() -> None:
    config = prod_config()
    for image in config["imagefactory:images"]:
        for version in image["versions"]:
            version["builder"] = "retired"
    before = engine.run("prod")
    after = engine.run("prod", config=config)
    names = {r.name for r in after.resources}
    assert "groups-build" not in names
    assert not {n for n in names if n.startswith(("build-", "build-network"))}
    # The staging gallery goes with the last Trusted Launch build.
    staging = {"staging-gallery", "staging-iis", "build-iis-1.0.0-staging"}
    assert staging <= {r.name for r in before.resources}
    assert not {n for n in names if n.startswith("staging-")}
    assert_versions_untouched(before, after)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda c: c["imagefactory:builder"].update(vmSize="Standard_D8s_v5"), id="size"
        ),
        pytest.param(
            lambda c: c["imagefactory:images"][0].update(
                baseImage={
                    "publisher": "Canonical",
                    "offer": "ubuntu-24_04-lts",
                    "sku": "server",
                    "version": "24.04.202610010",
                }
            ),
            id="base-image",
        ),
        pytest.param(
            lambda c: c["imagefactory:images"][0].update(
                scripts=["linux/provision/10-base.sh", "linux/provision/90-manifest.sh"]
            ),
            id="scripts",
        ),
    ],
)
def test_a_rebuild_replaces_the_builder_never_a_published_version(change: Any) -> None:
    before = engine.run("prod")
    config = prod_config()
    change(config)
    after = engine.run("prod", config=config)
    assert_versions_untouched(before, after)
    old_vm = before.named("build-webserver-1.1.0-builder-vm")
    new_vm = after.named("build-webserver-1.1.0-builder-vm")
    # A new fingerprint is a replacement trigger: the VM, and with it every run command
    # and the managed image (replace_with), is rebuilt; the version is not.
    assert old_vm.replacement_trigger != new_vm.replacement_trigger
    assert new_vm.delete_before_replace is True
    # The other image's builder is not touched by a change to this one (the stack-wide
    # vmSize is the Linux builders' size; Windows builders take windowsVmSize).
    assert (
        before.named("build-iis-1.0.0-builder-vm").replacement_trigger
        == after.named("build-iis-1.0.0-builder-vm").replacement_trigger
    )


def test_unrelated_config_leaves_the_builder_fingerprint_alone() -> None:
    before = engine.run("prod")
    config = prod_config()
    config["imagefactory:scaleSets"][1]["capacity"] = 5
    after = engine.run("prod", config=config)
    assert (
        before.named("build-webserver-1.1.0-builder-vm").replacement_trigger
        == after.named("build-webserver-1.1.0-builder-vm").replacement_trigger
    )


def test_the_capture_command_reruns_for_a_new_vm_instance() -> None:
    run = engine.run("prod")
    vm = run.named("build-webserver-1.1.0-builder-vm")
    capture = run.named("build-webserver-1.1.0-generalize-capture")
    # vmId is unique per VM instance; the ARM id would survive a rebuild under the same name.
    assert capture.inputs["triggers"][0] == vm.outputs["vmId"]
    assert capture.inputs["triggers"][0] != vm.id


def test_removing_a_version_a_consumer_pins_is_refused() -> None:
    config = prod_config()
    versions_ = config["imagefactory:images"][0]["versions"]
    config["imagefactory:images"][0]["versions"] = [v for v in versions_ if v["version"] != "1.0.0"]
    with pytest.raises(pulumi.RunError) as err:
        engine.run("prod", config=config)
    assert str(err.value) == (
        "1 problem in stack config:\n"
        "  - imagefactory:scaleSets[1].version: '1.0.0' is not a version of image "
        "'webserver' (known: 1.1.0); 'web-eu' still pins it, so keep that version in "
        "config until no consumer uses it"
    )


def test_excluding_the_last_version_from_latest_is_refused_while_latest_is_used() -> None:
    config = prod_config()
    for version in config["imagefactory:images"][0]["versions"]:
        version["excludeFromLatest"] = True
    with pytest.raises(pulumi.RunError) as err:
        engine.run("prod", config=config)
    assert str(err.value) == (
        "1 problem in stack config:\n"
        "  - imagefactory:scaleSets[0].version: 'latest' of image 'webserver' resolves to "
        "no version: every version is excluded from latest; 'web-us' still uses it, so "
        "keep at least one version in latest"
    )


def test_canary_version_excluded_from_latest_keeps_latest_on_the_older_one() -> None:
    config = prod_config()
    config["imagefactory:images"][0]["versions"][1]["excludeFromLatest"] = True
    run = engine.run("prod", config=config)
    assert run.outputs["images"]["webserver"]["latestVersion"] == "1.0.0"
    vmss = run.named("scaleset-web-us-vmss")
    older = next(r for r in run.of_type(VERSION) if r.inputs["galleryImageVersionName"] == "1.0.0")
    assert older.urn in vmss.dependencies
    canary = next(r for r in run.of_type(VERSION) if r.inputs["galleryImageVersionName"] == "1.1.0")
    assert canary.inputs["publishingProfile"]["excludeFromLatest"] is True
    assert canary.urn not in vmss.dependencies


def test_safety_profile_and_end_of_life_come_from_config() -> None:
    config = prod_config()
    version = config["imagefactory:images"][0]["versions"][1]
    version["allowDeletionOfReplicatedLocations"] = True
    version["endOfLifeDate"] = "2028-06-30"
    run = engine.run("prod", config=config)
    res = next(
        r
        for r in run.of_type(VERSION)
        if r.inputs["galleryImageName"] == "webserver"
        and r.inputs["galleryImageVersionName"] == "1.1.0"
    )
    assert res.inputs["safetyProfile"] == {"allowDeletionOfReplicatedLocations": True}
    assert res.inputs["publishingProfile"]["endOfLifeDate"] == "2028-06-30"


def test_versions_are_never_children_of_their_build() -> None:
    run = engine.run("prod")
    published = versions(run).values()
    assert len(published) == 5
    for res in published:
        chain = [a.type for a in run.ancestors(res)]
        assert chain == ["imagefactory:publish:ImageVersion"], chain
    # Only a staging version is, which retiring the build deletes.
    staging = [r for r in run.of_type(VERSION) if staged(r)]
    assert [(r.name, [a.name for a in run.ancestors(r)]) for r in staging] == [
        ("build-iis-1.0.0-staging", ["build-iis-1.0.0"])
    ]


ROLE = "azure-native:authorization:RoleAssignment"


def test_role_assignment_names_follow_the_gallery_id_not_just_its_name() -> None:
    """Role assignment names are unique in the whole tenant: the same gallery name in
    another resource group (another stack's prefix) must give other names."""
    prod = {r.name: r.inputs["roleAssignmentName"] for r in engine.run("prod").of_type(ROLE)}
    config = prod_config()
    config["imagefactory:namePrefix"] = "imgf-prod2"
    other = {
        r.name: r.inputs["roleAssignmentName"] for r in engine.run("prod", config).of_type(ROLE)
    }
    assert sorted(prod) == sorted(other) == ["gallery-reader-3f2a4c1e", "gallery-reader-9c1d7e52"]
    assert set(prod.values()).isdisjoint(other.values())
    gallery_id = (
        f"/subscriptions/{engine.MOCK_SUBSCRIPTION}/resourcegroups/imgf-prod-images-rg/"
        "providers/microsoft.compute/galleries/imgf_prod_gallery"
    )
    assert prod["gallery-reader-3f2a4c1e"] == naming.role_assignment_name(
        gallery_id, "3f2a4c1e-8b7d-4e29-9a51-6c0d2e7f9b13", naming.READER_ROLE_ID
    )
    # The same stack twice gives the same names: no replacement on the next pulumi up.
    assert prod == {
        r.name: r.inputs["roleAssignmentName"] for r in engine.run("prod").of_type(ROLE)
    }


def test_role_assignments_are_replaced_delete_first() -> None:
    for res in engine.run("prod").of_type(ROLE):
        assert res.delete_before_replace is True, res.name


def test_the_images_group_takes_the_gallery_protection() -> None:
    for protection, protect, retain in (
        ("protect", True, False),
        ("retainOnDelete", False, True),
        ("none", False, False),
    ):
        config = prod_config()
        config["imagefactory:protection"] = protection
        group = engine.run("prod", config).named("groups-images")
        assert (group.protect, group.retain_on_delete) == (protect, retain), protection


def test_builder_side_resources_keep_their_creation_tags() -> None:
    run = engine.run("prod")
    for name in (
        "build-webserver-1.1.0-builder-vm",
        "build-webserver-1.1.0-builder-nic",
        "build-webserver-1.1.0-capture-image",
        "build-iis-1.0.0-builder-vm",
    ):
        assert run.named(name).ignore_changes == ["tags"], name
    # Run Commands carry only the program's own tags, which never change for a build.
    step = run.named("build-webserver-1.1.0-provision-10-base")
    assert step.inputs["tags"] == {
        "managed-by": "pulumi",
        "imagefactory-stack": "prod",
        "imagefactory-image": "webserver",
        "imagefactory-version": "1.1.0",
        "imagefactory-lifecycle": "temporary",
        "imagefactory-script": step.inputs["tags"]["imagefactory-script"],
    }
    assert step.ignore_changes == []


def test_a_manual_scale_set_cannot_follow_latest() -> None:
    config = prod_config()
    config["imagefactory:scaleSets"][0]["upgradePolicy"] = "Manual"
    with pytest.raises(pulumi.RunError) as err:
        engine.run("prod", config=config)
    assert str(err.value) == (
        "1 problem in stack config:\n"
        "  - imagefactory:scaleSets[0].upgradePolicy: 'Manual' cannot follow 'latest': "
        "instances would keep the version they were created from; use 'Rolling' or "
        "'Automatic' (automatic OS image upgrades move them to each new version), or pin "
        "'web-us' to a version"
    )


def test_consumers_on_latest_reach_new_versions_by_azures_own_mechanism() -> None:
    config = prod_config()
    config["imagefactory:vmGroups"][0]["version"] = "latest"
    run = engine.run("prod", config=config)
    definition = run.named("gallery-webserver")
    vmss = run.named("scaleset-web-us-vmss")
    assert vmss.inputs["virtualMachineProfile"]["storageProfile"]["imageReference"] == {
        "id": definition.id
    }
    assert vmss.inputs["upgradePolicy"]["automaticOSUpgradePolicy"] == {
        "enableAutomaticOSUpgrade": True,
        "disableAutomaticRollback": False,
    }
    assert vmss.inputs["tags"]["imagefactory-version"] == "latest"
    # A VM group on latest is created from the newest version's own id (the published one,
    # not its build's staging version).
    iis = run.named("version-iis-1.0.0-version")
    vm = run.named("vmgroup-iis-us-000")
    assert vm.inputs["storageProfile"]["imageReference"] == {"id": iis.id}
    assert vm.inputs["tags"]["imagefactory-version"] == "latest (1.0.0)"
    assert vm.replace_on_changes == [
        "storageProfile.imageReference",
        "osProfile.adminUsername",
        "osProfile.customData",
        "zones",
    ]
    # A pinned scale set has no automatic OS upgrade policy.
    pinned = run.named("scaleset-web-eu-vmss")
    assert "automaticOSUpgradePolicy" not in pinned.inputs["upgradePolicy"]


def test_the_program_imports_only_the_library() -> None:
    """__main__.py, components/ and imagefactory/ never import the offline tooling."""
    import ast

    root = engine.PROJECT_DIR
    files = [root / "__main__.py", *(root / "components").glob("*.py")]
    files += list((root / "imagefactory").glob("*.py"))
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("offline", "tests")]
    assert found == []


def test_principals_sharing_their_first_digits_get_their_own_assignments() -> None:
    config = prod_config()
    config["imagefactory:gallery"]["sharing"].append(
        {"principalId": "3f2a4c1e-0000-4000-8000-000000000001", "principalType": "User"}
    )
    names = sorted(r.name for r in engine.run("prod", config=config).of_type(ROLE))
    assert names == [
        "gallery-reader-3f2a4c1e-0000-4000-8000-000000000001",
        "gallery-reader-3f2a4c1e-8b7d-4e29-9a51-6c0d2e7f9b13",
        "gallery-reader-9c1d7e52",
    ]
