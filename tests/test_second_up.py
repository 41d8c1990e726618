"""The second `pulumi up`: real edits of the dev and prod stack files, before and after.

Each scenario runs the real program twice under the mock engine (the committed stack file,
then the file with one edit a user makes) and asserts what the engine would do to every
resource (`offline.changes`) and what Azure would refuse or what would be dangerous
(`offline.refusals`). The base run stands for the state the previous `pulumi up` left.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import pulumi
import pytest
from pulumi.runtime.proto import resource_pb2

from imagefactory import scripts
from offline import changes, engine, refusals
from offline.engine import Registered

Config = dict[str, Any]
Edit = Callable[[Config], None]


@cache
def _base(stack: str) -> tuple[Registered, ...]:
    return tuple(engine.run(stack).resources)


def _run(stack: str, edit: Edit) -> list[Registered]:
    config = copy.deepcopy(engine.stack_config(stack))
    edit(config)
    return engine.run(stack, config=config).resources


def outcome(stack: str, edit: Edit, base: Edit | None = None) -> tuple[list[str], list[str]]:
    """(changed resources' action lines, finding lines) from the stack file (or the stack
    file with `base` applied) to the stack file with `edit` applied."""
    before = list(_base(stack)) if base is None else _run(stack, base)

    def both(c: Config) -> None:
        if base is not None:
            base(c)
        edit(c)

    d = changes.diff(before, _run(stack, both))
    return [a.line() for a in d.changed()], [f.line() for f in refusals.check(d)]


def image(c: Config, name: str) -> dict[str, Any]:
    return next(i for i in c["imagefactory:images"] if i["name"] == name)


def version(c: Config, name: str, number: str) -> dict[str, Any]:
    return next(v for v in image(c, name)["versions"] if v["version"] == number)


def refused(resource: str, change: str, rule: str) -> str:
    return refusals.Finding(refusals.REFUSED, resource, change, rule).line()


# --- everyday edits: nothing refused ---------------------------------------------------


def test_a_new_tag_reaches_everything_but_the_builders() -> None:
    # Nor the test VMs, their NICs and checks, nor the staging versions: they keep their
    # creation tags like the builders. The staging gallery and its definition take it.
    actions, findings = outcome("prod", lambda c: c["imagefactory:tags"].update(team="web"))
    assert actions == [
        f"update {name}: tags.team"
        for name in [
            "build-network-nsg",
            "build-network-vnet",
            "staging-gallery",
            "staging-iis",
            "consumers-eastus-nsg",
            "consumers-westeurope-nsg",
            "consumers-eastus-vnet",
            "consumers-westeurope-vnet",
            "scaleset-web-eu-vmss",
            "scaleset-web-us-vmss",
            "scaleset-web-us-autoscale",
            "vmgroup-iis-us-000",
            "vmgroup-iis-us-001",
            "vmgroup-iis-us-000-firstboot",
            "vmgroup-iis-us-001-firstboot",
            "vmgroup-iis-us-000-nic",
            "vmgroup-iis-us-001-nic",
            "groups-build",
            "groups-consumers-eastus",
            "groups-consumers-westeurope",
            "groups-images",
            "gallery-gallery",
            "gallery-hardened",
            "gallery-iis",
            "gallery-webapp",
            "gallery-webserver",
            "version-hardened-1.0.0-version",
            "version-iis-1.0.0-version",
            "version-webapp-1.0.0-version",
            "version-webserver-1.0.0-version",
            "version-webserver-1.1.0-version",
        ]
    ]
    assert findings == []


def test_a_changed_tag_value_on_dev() -> None:
    actions, findings = outcome("dev", lambda c: c["imagefactory:tags"].update(owner="web-team"))
    assert actions == [
        f"update {name}: tags.owner"
        for name in [
            "build-network-nsg",
            "build-network-vnet",
            "consumers-eastus-nsg",
            "consumers-eastus-vnet",
            "scaleset-web-dev-vmss",
            "groups-build",
            "groups-consumers-eastus",
            "groups-images",
            "gallery-gallery",
            "gallery-webserver",
            "version-webserver-0.1.0-version",
        ]
    ]
    assert findings == []


WEB_STEPS = ["10-base", "20-webserver", "90-manifest", "audit"]
IIS_STEPS = ["10-iis", "90-manifest", "audit"]
HARDENED_STEPS = ["10-base", "90-manifest", "audit"]
WEBAPP_STEPS = ["20-webserver", "90-manifest", "audit"]

# The Run Commands on each image's test VM: the common check, the namesakes of its provision
# scripts in scripts/<os>/validate/, then its own validation.scripts (Pulumi.prod.yaml).
CHECKS = {
    "webserver": ["validate", "check-10-base", "check-20-webserver"],
    "iis": ["validate", "check-10-iis"],
    "hardened": ["validate", "check-10-base", "check-listening-ports"],
    "webapp": ["validate", "check-20-webserver"],
}
TRUSTED_LAUNCH = ("iis",)
"""prod's Trusted Launch image: no managed image; its build waits in the staging gallery."""


def _retested(image_: str, number: str, why: str) -> list[str]:
    """A build's test VM replaced (`why`), and its checks and results with it."""
    build = f"build-{image_}-{number}"
    test_vm = f"{build}-validate-vm"
    return [
        f"replace {test_vm} ({why})",
        *(f"replace {build}-validate-{c} (replace_with {test_vm})" for c in CHECKS[image_]),
        # A new test VM instance (its vmId): its results are collected again.
        f"replace {build}-validate-results (triggers changed)",
    ]


def _rebuilt(
    image_: str,
    number: str,
    steps: list[str],
    *,
    managed_image: bool,
) -> list[str]:
    """A rebuilt build: its builder, what was captured from it (the managed image, or a
    Trusted Launch build's staging version) and its test VM, whose trigger holds the
    builder's fingerprint: a new build is validated anew."""
    build = f"build-{image_}-{number}"
    vm = f"{build}-builder-vm"
    lines = [
        f"replace {vm} (replacement_trigger changed)",
        f"replace {build}-generalize-generalize (replace_with {vm})",
        f"replace {build}-generalize-capture (triggers changed)",
    ]
    captured = f"{build}-capture-image" if managed_image else f"{build}-staging"
    lines.append(f"replace {captured} (replace_with {vm})")
    why = "replacement_trigger changed"
    return (
        lines
        + [f"replace {build}-provision-{s} (replace_with {vm})" for s in steps]
        + _retested(image_, number, why)
    )


def _chain_rebuilt() -> list[str]:
    """The hardened base and the application image built on it: both active in prod."""
    return _rebuilt("hardened", "1.0.0", HARDENED_STEPS, managed_image=True) + _rebuilt(
        "webapp", "1.0.0", WEBAPP_STEPS, managed_image=True
    )


def _by_name(lines: list[str]) -> list[str]:
    return sorted(lines, key=lambda line: line.split(" ")[1])


def test_a_longer_run_command_timeout_rebuilds_the_active_builders() -> None:
    # A Run Command cannot be updated on a generalized VM: the new limit reaches a build
    # through a new builder, never as an update of the old one's run commands.
    actions, findings = outcome(
        "prod", lambda c: c["imagefactory:builder"].update(runCommandTimeoutMinutes=120)
    )
    # The timeout is in each test VM's trigger too: its checks are Run Commands as well.
    assert _by_name(actions) == _by_name(
        _rebuilt("iis", "1.0.0", IIS_STEPS, managed_image=False)
        + _rebuilt("webserver", "1.1.0", WEB_STEPS, managed_image=True)
        + _chain_rebuilt()
    )
    assert findings == []


def test_capture_limits_update_only_the_local_capture_command() -> None:
    actions, findings = outcome(
        "prod", lambda c: c["imagefactory:capture"].update(stopTimeoutSeconds=3600)
    )
    assert actions == [
        f"update build-{build}-generalize-capture: environment.CAPTURE_STOP_TIMEOUT_SECONDS"
        for build in ("hardened-1.0.0", "iis-1.0.0", "webapp-1.0.0", "webserver-1.1.0")
    ]
    assert findings == []


def test_a_new_base_image_rebuilds_that_builder_and_leaves_the_version() -> None:
    def edit(c: Config) -> None:
        image(c, "webserver")["baseImage"] = {
            "publisher": "Canonical",
            "offer": "ubuntu-24_04-lts",
            "sku": "server",
            "version": "24.04.202610010",
        }

    actions, findings = outcome("prod", edit)
    assert _by_name(actions) == _by_name(
        _rebuilt("webserver", "1.1.0", WEB_STEPS, managed_image=True)
    )
    assert findings == []


def _untested(image_: str, number: str) -> list[str]:
    """What a build's validation deletes when it goes: the test VM, its NIC and password or
    key; checks and results go with the VM."""
    build = f"build-{image_}-{number}"
    test_vm = f"{build}-validate-vm"
    return [
        f"delete {test_vm}",
        f"delete {build}-validate-nic",
        f"delete {build}-validate-{'password' if image_ == 'iis' else 'ssh'}",
        *(f"delete-skipped {build}-validate-{c} (deleted with {test_vm})" for c in CHECKS[image_]),
        f"delete-skipped {build}-validate-results (deleted with {test_vm})",
    ]


def _retired_build(image_: str, number: str, steps: Sequence[str]) -> list[str]:
    """What retiring one build deletes: a Windows build has passwords and a Linux one keys;
    a Trusted Launch build has a staging version instead of a managed image. Run commands
    and the results command go with their VM."""
    build = f"build-{image_}-{number}"
    vm = f"{build}-builder-vm"
    return [
        f"delete {vm}",
        f"delete {build}-builder-nic",
        f"delete {build}-builder-{'password' if image_ == 'iis' else 'ssh'}",
        f"delete-skipped {build}-generalize-generalize (deleted with {vm})",
        f"delete-skipped {build}-generalize-capture (deleted with {vm})",
        f"delete {build}-staging" if image_ in TRUSTED_LAUNCH else f"delete {build}-capture-image",
        *(f"delete-skipped {build}-provision-{s} (deleted with {vm})" for s in steps),
        *_untested(image_, number),
    ]


def _new_build(image_: str, number: str, steps: Sequence[str]) -> list[str]:
    build = f"build-{image_}-{number}"
    secret = "password" if image_ == "iis" else "ssh"
    captured = "staging" if image_ in TRUSTED_LAUNCH else "capture-image"
    return [
        f"create {build}-builder-vm",
        f"create {build}-builder-nic",
        f"create {build}-builder-{secret}",
        f"create {build}-generalize-generalize",
        f"create {build}-generalize-capture",
        f"create {build}-{captured}",
        *(f"create {build}-provision-{s}" for s in steps),
        f"create {build}-validate-vm",
        f"create {build}-validate-nic",
        f"create {build}-validate-{secret}",
        *(f"create {build}-validate-{c}" for c in CHECKS[image_]),
        f"create {build}-validate-results",
    ]


def _retired_web_build(number: str) -> list[str]:
    return _retired_build("webserver", number, WEB_STEPS)


def _new_web_build(number: str) -> list[str]:
    return _new_build("webserver", number, WEB_STEPS)


def test_retiring_a_builder_deletes_it_and_its_run_commands_go_with_the_vm() -> None:
    actions, findings = outcome(
        "prod", lambda c: version(c, "webserver", "1.1.0").update(builder="retired")
    )
    assert _by_name(actions) == _by_name(_retired_web_build("1.1.0"))
    assert findings == []


def test_publishing_a_new_version_and_retiring_the_last_builder() -> None:
    # What `python -m offline.bump prod webserver` writes. web-us follows latest by
    # automatic OS image upgrade, so its model does not change at all.
    def bump(c: Config) -> None:
        new = copy.deepcopy(version(c, "webserver", "1.1.0"))
        new["version"] = "1.2.0"
        version(c, "webserver", "1.1.0")["builder"] = "retired"
        image(c, "webserver")["versions"].append(new)

    actions, findings = outcome("prod", bump)
    assert _by_name(actions) == _by_name(
        [
            *_retired_web_build("1.1.0"),
            *_new_web_build("1.2.0"),
            "create version-webserver-1.2.0-version",
        ]
    )
    assert findings == []


def test_retiring_every_builder_removes_the_build_network_and_group() -> None:
    def retire(c: Config) -> None:
        for img in c["imagefactory:images"]:
            for v in img["versions"]:
                v["builder"] = "retired"

    actions, findings = outcome("prod", retire)
    assert _by_name(actions) == _by_name(
        [
            *_retired_web_build("1.1.0"),
            *_retired_build("hardened", "1.0.0", HARDENED_STEPS),
            *_retired_build("webapp", "1.0.0", WEBAPP_STEPS),
            *_retired_build("iis", "1.0.0", IIS_STEPS),
            "delete build-network-nsg",
            "delete build-network-subnet",
            "delete build-network-vnet",
            "delete groups-build",
            # Temporary like the builders: nothing published goes with them.
            "delete staging-gallery",
            "delete staging-iis",
        ]
    )
    assert findings == []


def _add_northeurope(c: Config, number: str) -> None:
    version(c, "webserver", number)["regions"].append(
        {"name": "northeurope", "replicas": 1, "storage": "Standard_ZRS"}
    )


def test_a_region_for_a_version_whose_builder_is_active() -> None:
    actions, findings = outcome("prod", lambda c: _add_northeurope(c, "1.1.0"))
    assert actions == ["update version-webserver-1.1.0-version: publishingProfile.targetRegions"]
    assert findings == []


def test_more_replicas_and_a_later_end_of_life() -> None:
    def edit(c: Config) -> None:
        version(c, "iis", "1.0.0")["regions"][0]["replicas"] = 3
        version(c, "iis", "1.0.0")["endOfLifeDate"] = "2028-06-30"

    actions, findings = outcome("prod", edit)
    assert actions == [
        "update version-iis-1.0.0-version: publishingProfile.endOfLifeDate, "
        "publishingProfile.targetRegions"
    ]
    assert findings == []


def test_removing_a_region_after_allowing_it_in_an_earlier_up() -> None:
    def allow(c: Config) -> None:
        version(c, "iis", "1.0.0")["allowDeletionOfReplicatedLocations"] = True

    actions, findings = outcome(
        "prod", lambda c: version(c, "iis", "1.0.0")["regions"].pop(), allow
    )
    assert actions == ["update version-iis-1.0.0-version: publishingProfile.targetRegions"]
    assert findings == []
    # The first step on its own: only the safety profile changes.
    actions, findings = outcome("prod", allow)
    assert actions == [
        "update version-iis-1.0.0-version: safetyProfile.allowDeletionOfReplicatedLocations"
    ]
    assert findings == []


def test_a_scale_set_moves_from_a_pinned_version_to_latest() -> None:
    actions, findings = outcome(
        "prod", lambda c: c["imagefactory:scaleSets"][1].update(version="latest")
    )
    assert actions == [
        "update scaleset-web-eu-vmss: tags.imagefactory-version, "
        "upgradePolicy.automaticOSUpgradePolicy, "
        "virtualMachineProfile.storageProfile.imageReference"
    ]
    assert findings == []


def test_scale_set_capacity() -> None:
    actions, findings = outcome("prod", lambda c: c["imagefactory:scaleSets"][1].update(capacity=5))
    assert actions == ["update scaleset-web-eu-vmss: sku.capacity"]
    assert findings == []


def test_sharing_with_one_more_principal() -> None:
    def share(c: Config) -> None:
        c["imagefactory:gallery"]["sharing"].append(
            {"principalId": "0b6e3d2a-1c4f-4a8b-9e7d-5f2c1a0b3d4e", "principalType": "User"}
        )

    actions, findings = outcome("prod", share)
    assert actions == ["create gallery-reader-0b6e3d2a"]
    assert findings == []


def _iis_on_latest(c: Config) -> None:
    c["imagefactory:vmGroups"][0]["version"] = "latest"


def test_a_vm_group_on_latest_is_rebuilt_when_a_new_version_is_published() -> None:
    # Azure resolves latest only when a VM is created: the group is rebuilt from the new
    # version, so its tag never claims a version its VMs do not run.
    def publish(c: Config) -> None:
        new = copy.deepcopy(version(c, "iis", "1.0.0"))
        new["version"] = "1.1.0"
        version(c, "iis", "1.0.0")["builder"] = "retired"
        image(c, "iis")["versions"].append(new)

    actions, findings = outcome("prod", publish, _iis_on_latest)
    assert _by_name(actions) == _by_name(
        [
            *_retired_build("iis", "1.0.0", IIS_STEPS),
            *_new_build("iis", "1.1.0", IIS_STEPS),
            "create version-iis-1.1.0-version",
            "replace vmgroup-iis-us-000 (replace_on_changes storageProfile.imageReference)",
            "replace vmgroup-iis-us-001 (replace_on_changes storageProfile.imageReference)",
            # Their first-boot scripts run again on the new VMs.
            "replace vmgroup-iis-us-000-firstboot (replace_with vmgroup-iis-us-000)",
            "replace vmgroup-iis-us-001-firstboot (replace_with vmgroup-iis-us-001)",
        ]
    )
    assert findings == []


# --- validation: test VMs and staging go with their builds ------------------------------


def _edited_script(monkeypatch: pytest.MonkeyPatch, stack: str, path: str) -> None:
    """scripts/<path> read as if a line were appended to the file, in the runs after this
    one: the stack's base run is recorded first, as the state before the edit."""
    _base(stack)
    original = scripts.load

    def load(wanted: str) -> scripts.Script:
        script = original(wanted)
        if wanted != path:
            return script
        content = script.content + "# edited\n"
        return scripts.Script(wanted, content, hashlib.sha256(content.encode()).hexdigest())

    monkeypatch.setattr(scripts, "load", load)


def test_an_edited_build_script_rebuilds_and_validates_again_and_leaves_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The new builder is published again to staging, and the test VM boots the new staging
    # version (replace_with); the published version iis 1.0.0 shows no change.
    _edited_script(monkeypatch, "prod", "windows/provision/10-iis.ps1")
    actions, findings = outcome("prod", lambda c: None)
    assert _by_name(actions) == _by_name(_rebuilt("iis", "1.0.0", IIS_STEPS, managed_image=False))
    assert findings == []


def test_an_edited_check_replaces_only_the_test_vms_that_run_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # validate/20-webserver.sh checks both images provisioned by provision/20-webserver.sh.
    # A test VM is deallocated once validated, and Azure changes no Run Command on a stopped
    # VM: the check reaches it as a new test VM (its trigger), never its builder.
    _edited_script(monkeypatch, "prod", "linux/validate/20-webserver.sh")
    actions, findings = outcome("prod", lambda c: None)
    assert _by_name(actions) == _by_name(
        _retested("webapp", "1.0.0", "replacement_trigger changed")
        + _retested("webserver", "1.1.0", "replacement_trigger changed")
    )
    assert findings == []


def test_retiring_the_last_trusted_launch_builder_deletes_the_staging_gallery() -> None:
    actions, findings = outcome(
        "prod", lambda c: version(c, "iis", "1.0.0").update(builder="retired")
    )
    assert _by_name(actions) == _by_name(
        [*_retired_build("iis", "1.0.0", IIS_STEPS), "delete staging-gallery", "delete staging-iis"]
    )
    # Temporary, in the build group: no published image goes with them.
    assert findings == []


def test_turning_validation_off_deletes_the_test_vms_and_leaves_staging_and_the_versions() -> None:
    def off(c: Config) -> None:
        c["imagefactory:validation"] = {"enabled": False}

    actions, findings = outcome("prod", off)
    # The versions now wait for the managed image or staging version instead of the
    # results: an ordering change only, nothing Azure sees.
    assert _by_name(actions) == _by_name(
        [
            *_untested("hardened", "1.0.0"),
            *_untested("iis", "1.0.0"),
            *_untested("webapp", "1.0.0"),
            *_untested("webserver", "1.1.0"),
        ]
    )
    assert findings == []
    # A Trusted Launch build is still copied from its staging version, which stays: what a
    # version is published from never depends on the switch.
    after = {r.name: r for r in _run("prod", off)}
    staging_id = (
        f"/subscriptions/{engine.MOCK_SUBSCRIPTION}/resourceGroups/imgf-prod-build-rg/providers/"
        "Microsoft.Compute/galleries/imgf_prod_staging/images/iis/versions/1.0.0"
    )
    for side in (dict((r.name, r) for r in _base("prod")), after):
        assert side["version-iis-1.0.0-version"].inputs["storageProfile"]["source"] == {
            "id": staging_id
        }
        assert side["build-iis-1.0.0-staging"].id == staging_id


VALIDATED = {
    "imagefactory-validation": "passed: 3 of 3 checks on imgf-prod-tst-webserver-1-1-0",
    "imagefactory-os": "Ubuntu 24.04.1 LTS",
    "imagefactory-built": "2026-12-06T10:00:00Z",
    "imagefactory-base": "Canonical:ubuntu-24_04-lts:server:24.04.202611010",
    "imagefactory-packages": "612 sha256:0f3a9c1e2b4d6f80",
    "imagefactory-key-packages": "nginx=1.24.0-2ubuntu7 openssh-server=1:9.6p1-3ubuntu13",
}
"""What `capture.sh collect` leaves on a version in a real `pulumi up` (the mocks' commands
print nothing, so their versions carry none)."""


def test_a_tag_edit_keeps_what_validation_wrote_on_the_versions() -> None:
    published = {
        r.name
        for r in _base("prod")
        if r.type == refusals.VERSION_T and r.inputs["tags"].get("imagefactory-lifecycle") is None
    }
    before = [
        dataclasses.replace(r, inputs={**r.inputs, "tags": {**r.inputs["tags"], **VALIDATED}})
        if r.name in published
        else r
        for r in _base("prod")
    ]
    after = _run("prod", lambda c: c["imagefactory:tags"].update(team="web"))
    d = changes.diff(before, after)
    assert [a.line() for a in d.changed() if a.type == refusals.VERSION_T] == [
        f"update version-{key}-version: tags.team"
        for key in (
            "hardened-1.0.0",
            "iis-1.0.0",
            "webapp-1.0.0",
            "webserver-1.0.0",
            "webserver-1.1.0",
        )
    ]
    version_ = next(r for r in after if r.name == "version-webserver-1.1.0-version")
    assert version_.ignore_changes == [
        "storageProfile.source",
        *(f'tags["{tag}"]' for tag in VALIDATED),
    ]
    # Without those paths the program's tags, which hold no results here, would remove them.
    unfrozen = [
        dataclasses.replace(r, ignore_changes=["storageProfile.source"])
        if r.name in published
        else r
        for r in after
    ]
    assert [
        a.line()
        for a in changes.diff(before, unfrozen).changed()
        if a.name == "version-webserver-1.1.0-version"
    ] == [
        "update version-webserver-1.1.0-version: tags.imagefactory-base, "
        "tags.imagefactory-built, tags.imagefactory-key-packages, tags.imagefactory-os, "
        "tags.imagefactory-packages, tags.imagefactory-validation, tags.team"
    ]


# --- edits Azure refuses: stopped in the preview ----------------------------------------


def test_a_region_for_a_version_whose_source_is_retired_is_refused() -> None:
    actions, findings = outcome("prod", lambda c: _add_northeurope(c, "1.0.0"))
    assert actions == ["update version-webserver-1.0.0-version: publishingProfile.targetRegions"]
    assert findings == [
        refused(
            "version-webserver-1.0.0-version",
            "region northeurope added",
            "version-region-added-without-source",
        )
    ]


def test_removing_a_region_without_the_safety_profile_is_refused() -> None:
    actions, findings = outcome("prod", lambda c: version(c, "iis", "1.0.0")["regions"].pop())
    assert actions == ["update version-iis-1.0.0-version: publishingProfile.targetRegions"]
    assert findings == [
        refused(
            "version-iis-1.0.0-version",
            "region westeurope removed",
            "version-region-removed-without-safety",
        )
    ]


def test_allowing_and_removing_in_the_same_up_is_still_refused() -> None:
    # Azure checks the safety profile the version has, not the one in the same request.
    def both(c: Config) -> None:
        version(c, "iis", "1.0.0")["regions"].pop()
        version(c, "iis", "1.0.0")["allowDeletionOfReplicatedLocations"] = True

    actions, findings = outcome("prod", both)
    assert actions == [
        "update version-iis-1.0.0-version: publishingProfile.targetRegions, "
        "safetyProfile.allowDeletionOfReplicatedLocations"
    ]
    assert findings == [
        refused(
            "version-iis-1.0.0-version",
            "region westeurope removed",
            "version-region-removed-without-safety",
        )
    ]


def test_a_regions_storage_type_cannot_change() -> None:
    actions, findings = outcome(
        "prod", lambda c: version(c, "iis", "1.0.0")["regions"][1].update(storage="Standard_ZRS")
    )
    assert actions == ["update version-iis-1.0.0-version: publishingProfile.targetRegions"]
    assert findings == [
        refused(
            "version-iis-1.0.0-version",
            "westeurope storage Standard_LRS -> Standard_ZRS",
            "version-storage-type",
        )
    ]


def test_the_replication_mode_cannot_change() -> None:
    actions, findings = outcome(
        "dev", lambda c: version(c, "webserver", "0.1.0").update(replicationMode="Full")
    )
    assert actions == ["update version-webserver-0.1.0-version: publishingProfile.replicationMode"]
    assert findings == [
        refused(
            "version-webserver-0.1.0-version",
            "replicationMode Shallow -> Full",
            "version-replication-mode",
        )
    ]


def test_a_definitions_identifier_cannot_change() -> None:
    # The staging definition of an image in a Trusted Launch build has the same shape, and
    # Azure refuses it the same: a new image name gives both a new definition.
    actions, findings = outcome(
        "prod", lambda c: image(c, "iis")["identifier"].update(sku="windows-2025")
    )
    assert actions == ["update staging-iis: identifier.sku", "update gallery-iis: identifier.sku"]
    assert findings == [
        refused("gallery-iis", "update of identifier", "definition-immutable"),
        refused("staging-iis", "update of identifier", "definition-immutable"),
    ]


def test_the_builder_subnet_cannot_change_under_its_builders() -> None:
    def move(c: Config) -> None:
        c.setdefault("imagefactory:network", {})["builderSubnet"] = "10.42.2.0/24"

    actions, findings = outcome("prod", move)
    assert actions == ["update build-network-subnet: addressPrefix"]
    assert findings == [
        refusals.Finding(
            refusals.REFUSED,
            "build-network-subnet",
            "addressPrefix 10.42.1.0/24 -> 10.42.2.0/24",
            "subnet-in-use",
            # The test VMs' NICs are in the builder subnet too.
            note="build-hardened-1.0.0-builder-nic, build-hardened-1.0.0-validate-nic, "
            "build-iis-1.0.0-builder-nic, build-iis-1.0.0-validate-nic, "
            "build-webapp-1.0.0-builder-nic, build-webapp-1.0.0-validate-nic, "
            "build-webserver-1.1.0-builder-nic, build-webserver-1.1.0-validate-nic",
        ).line()
    ]


def test_renaming_the_gallery_replaces_everything_published_in_it() -> None:
    actions, findings = outcome(
        "dev", lambda c: c["imagefactory:gallery"].update(name="imgf_dev_gallery2")
    )
    assert actions == [
        "update scaleset-web-dev-vmss: virtualMachineProfile.storageProfile.imageReference",
        "replace gallery-gallery (galleryName cannot change in place)",
        "replace gallery-webserver (galleryName cannot change in place)",
        "replace version-webserver-0.1.0-version (galleryName cannot change in place)",
    ]
    assert findings == [
        "DANGEROUS: gallery-gallery: published gallery would be replaced "
        "(galleryName cannot change in place); every definition and version in it goes "
        "too; keep its name, group and location",
        "DANGEROUS: gallery-webserver: published image definition would be replaced "
        "(galleryName cannot change in place); every version under it goes too; publish "
        "under a new image name instead",
        "DANGEROUS: version-webserver-0.1.0-version: published image version would be "
        "replaced (galleryName cannot change in place); VMs and scale sets using it lose "
        "their image; publish a new version instead",
    ]


# --- builders after capture: what the design rules out ------------------------------------


def test_without_the_tag_freeze_a_tag_edit_would_be_refused() -> None:
    """The rules see what the design prevents: drop ignore_changes from the builders and a
    tag edit becomes updates of generalized VMs, which Azure refuses."""
    after = _run("prod", lambda c: c["imagefactory:tags"].update(team="web"))
    unfrozen = [
        dataclasses.replace(r, ignore_changes=[]) if r.type == refusals.VM_T else r for r in after
    ]
    d = changes.diff(_base("prod"), unfrozen)
    # The test VMs lose their freeze too, but they are only deallocated: Azure takes the tag.
    assert [f.line() for f in refusals.check(d)] == [
        refused(vm, "update of tags.team", "generalized-vm-update")
        for vm in (
            "build-hardened-1.0.0-builder-vm",
            "build-iis-1.0.0-builder-vm",
            "build-webapp-1.0.0-builder-vm",
            "build-webserver-1.1.0-builder-vm",
        )
    ]


def _against_prod(name: str, **fields: Any) -> tuple[list[str], list[str]]:
    """The prod stack against itself with one resource's registration changed: for
    states the program itself no longer produces."""
    after = [dataclasses.replace(r, **fields) if r.name == name else r for r in _base("prod")]
    d = changes.diff(_base("prod"), after)
    return [a.line() for a in d.changed()], [f.line() for f in refusals.check(d)]


def test_a_run_command_edit_on_a_captured_builder_is_refused() -> None:
    """A run command that changes while its VM stays (no rebuild) is an extension change
    on a deallocated VM."""
    step = "build-webserver-1.1.0-provision-audit"
    inputs = next(r.inputs for r in _base("prod") if r.name == step)
    actions, findings = _against_prod(step, inputs={**inputs, "timeoutInSeconds": 1.0})
    assert actions == ["update build-webserver-1.1.0-provision-audit: timeoutInSeconds"]
    assert findings == [
        refused(
            "build-webserver-1.1.0-provision-audit",
            "update of timeoutInSeconds",
            "extension-on-stopped-vm",
        )
    ]


def test_a_check_edit_on_a_validated_test_vm_is_refused() -> None:
    """`capture.sh collect` deallocates the test VM: a check that changes while the VM stays
    is an extension change on a stopped VM, as on a captured builder."""
    check = "build-webserver-1.1.0-validate-check-20-webserver"
    inputs = next(r.inputs for r in _base("prod") if r.name == check)
    actions, findings = _against_prod(check, inputs={**inputs, "timeoutInSeconds": 1.0})
    assert actions == [f"update {check}: timeoutInSeconds"]
    assert findings == [refused(check, "update of timeoutInSeconds", "extension-on-stopped-vm")]


def test_a_test_vm_is_deallocated_not_generalized() -> None:
    """Azure updates a deallocated VM's model (only extensions need it running): a tag edit
    reaching a test VM would not be refused, unlike one reaching a generalized builder."""
    test_vm = "build-webserver-1.1.0-validate-vm"
    inputs = next(r.inputs for r in _base("prod") if r.name == test_vm)
    actions, findings = _against_prod(
        test_vm, inputs={**inputs, "tags": {**inputs["tags"], "team": "web"}}, ignore_changes=[]
    )
    assert actions == [f"update {test_vm}: tags.team"]
    assert findings == []


def test_a_role_assignment_replaced_create_first_is_refused() -> None:
    share = "gallery-reader-3f2a4c1e"
    inputs = next(r.inputs for r in _base("prod") if r.name == share)
    actions, findings = _against_prod(
        share,
        inputs={**inputs, "roleAssignmentName": "00000000-0000-0000-0000-000000000001"},
        delete_before_replace=False,
    )
    assert actions == [
        "replace gallery-reader-3f2a4c1e (roleAssignmentName cannot change in place)"
    ]
    assert findings == [
        refused(
            "gallery-reader-3f2a4c1e",
            "replaced, the new one created before the old is deleted",
            "role-assignment-exists",
        )
    ]


# --- destroy --------------------------------------------------------------------------------


def test_destroying_a_retain_on_delete_stack_keeps_the_group_that_holds_the_gallery() -> None:
    before = _run("prod", lambda c: c.update({"imagefactory:protection": "retainOnDelete"}))
    d = changes.diff(before, [])
    kept = [a.line() for a in d.actions if a.op == changes.FORGET]
    assert kept == [
        f"forget {name} (retain_on_delete: Azure keeps it)"
        for name in [
            "groups-images",
            "gallery-gallery",
            "gallery-hardened",
            "gallery-iis",
            "gallery-webapp",
            "gallery-webserver",
            "version-hardened-1.0.0-version",
            "version-iis-1.0.0-version",
            "version-webapp-1.0.0-version",
            "version-webserver-1.0.0-version",
            "version-webserver-1.1.0-version",
        ]
    ]
    assert refusals.check(d) == []


def test_a_group_deleted_under_a_retained_gallery_is_dangerous() -> None:
    """What the images group's own protection prevents: Azure deletes a group's contents."""
    before = [
        dataclasses.replace(r, retain_on_delete=False) if r.name == "groups-images" else r
        for r in _run("prod", lambda c: c.update({"imagefactory:protection": "retainOnDelete"}))
    ]
    d = changes.diff(before, [])
    assert [f.line() for f in refusals.check(d) if "groups-images" in f.line()] == [
        "DANGEROUS: groups-images: resource group imgf-prod-images-rg would be deleted; Azure "
        "deletes what it holds, including gallery-gallery, gallery-hardened, gallery-iis, "
        "gallery-webapp, gallery-webserver, version-hardened-1.0.0-version, "
        "version-iis-1.0.0-version, version-webapp-1.0.0-version, "
        "version-webserver-1.0.0-version, version-webserver-1.1.0-version, which Pulumi keeps "
        "(protect/retainOnDelete)"
    ]


def test_destroying_a_protected_stack_stops_at_the_published_images() -> None:
    d = changes.diff(_base("prod"), [])
    stops = (
        "protected: Pulumi refuses to delete it and the operation fails at that step "
        "(changes before it are already applied)"
    )
    assert [f.line() for f in refusals.check(d)] == [
        f"DANGEROUS: gallery-gallery: published gallery would be deleted; {stops}",
        *(
            f"DANGEROUS: gallery-{name}: published image definition would be deleted; {stops}"
            for name in ("hardened", "iis", "webapp", "webserver")
        ),
        *(
            f"DANGEROUS: version-{key}-version: published image version would be deleted; {stops}"
            for key in (
                "hardened-1.0.0",
                "iis-1.0.0",
                "webapp-1.0.0",
                "webserver-1.0.0",
                "webserver-1.1.0",
            )
        ),
    ]


# --- the engine the program needs -------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "option"),
    [
        (resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACEMENT_TRIGGER, "replacement_trigger"),
        (resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACE_WITH, "replace_with"),
    ],
)
def test_an_engine_that_would_ignore_an_option_stops_the_program(feature: int, option: str) -> None:
    monitor = engine.RecordingMonitor(engine.AzureMocks(), without_features=[feature])
    with pytest.raises(pulumi.RunError) as err:
        engine.run("dev", monitor=monitor)
    assert str(err.value) == (
        f"this Pulumi engine does not support the resource option(s) {option}, which this "
        "program relies on (it would ignore them silently and update generalized builder VMs "
        "in place, which Azure refuses); use Pulumi CLI 3.214.0 or newer (pulumi version; "
        "https://www.pulumi.com/docs/install/)"
    )
    assert monitor.registered == []


# --- the lines reviewers read ----------------------------------------------------------------


def test_a_refused_line_names_the_state_azure_the_source_and_the_way_around() -> None:
    assert refused("v", "region northeurope added", "version-region-added-without-source") == (
        "REFUSED: v: region northeurope added (the version's source, a managed image or "
        "staging version (or, before staging, the builder VM), was retired); Azure answers "
        "replication to a new region reads the version's source, which no longer exists [https://learn.microsoft.com/azure/"
        "virtual-machines/update-image-resources]; instead: publish the region with a new "
        "version (python -m offline.bump); reactivating the builder would build a different "
        "image under the same version number"
    )


def test_every_rule_has_a_source_and_a_way_around() -> None:
    assert len({r.id for r in refusals.RULES}) == len(refusals.RULES)
    for rule in refusals.RULES:
        assert rule.source.startswith("https://"), rule.id
        assert rule.instead and rule.state and rule.azure, rule.id


def test_a_new_admin_name_rebuilds_builders_and_vm_groups_and_is_refused_for_scale_sets() -> None:
    actions, findings = outcome(
        "prod", lambda c: c["imagefactory:builder"].update(adminUsername="opsadmin")
    )
    # The common check looks for the admin account (ADMIN_USERNAME): the checks change, and
    # with them each test VM's trigger.
    assert _by_name(actions) == _by_name(
        _rebuilt("iis", "1.0.0", IIS_STEPS, managed_image=False)
        + _rebuilt("webserver", "1.1.0", WEB_STEPS, managed_image=True)
        + _chain_rebuilt()
        + [
            f"update scaleset-web-{where}-vmss: virtualMachineProfile.osProfile.adminUsername, "
            "virtualMachineProfile.osProfile.linuxConfiguration"
            for where in ("eu", "us")
        ]
        + [
            f"replace vmgroup-iis-us-00{n} (replace_on_changes osProfile.adminUsername)"
            for n in (0, 1)
        ]
        + [
            f"replace vmgroup-iis-us-00{n}-firstboot (replace_with vmgroup-iis-us-00{n})"
            for n in (0, 1)
        ]
    )
    assert findings == [
        refused(
            f"scaleset-web-{where}-vmss",
            "update of virtualMachineProfile.osProfile.adminUsername",
            "os-profile-immutable",
        )
        for where in ("eu", "us")
    ]


def test_a_version_added_as_retired_has_no_source_to_be_created_from() -> None:
    def add(c: Config) -> None:
        image(c, "webserver")["versions"].append(
            {
                "version": "0.2.0",
                "builder": "retired",
                "replicationMode": "Shallow",
                "regions": [{"name": "eastus"}],
            }
        )

    actions, findings = outcome("dev", add)
    assert actions == ["create version-webserver-0.2.0-version"]
    assert findings == [
        refused("version-webserver-0.2.0-version", "created", "version-created-without-source")
    ]


def test_a_consumer_subnet_holding_a_scale_set_cannot_change_its_range() -> None:
    def move(c: Config) -> None:
        c.setdefault("imagefactory:network", {}).update(
            consumerAddressSpace="10.61.0.0/16", consumerSubnet="10.61.1.0/24"
        )

    actions, findings = outcome("dev", move)
    assert actions == [
        "update consumers-eastus-subnet: addressPrefix",
        "update consumers-eastus-vnet: addressSpace.addressPrefixes",
    ]
    assert findings == [
        refusals.Finding(
            refusals.REFUSED,
            "consumers-eastus-subnet",
            "addressPrefix 10.60.1.0/24 -> 10.61.1.0/24",
            "subnet-in-use",
            note="scaleset-web-dev-vmss",
        ).line(),
        refusals.Finding(
            refusals.REFUSED,
            "consumers-eastus-vnet",
            "address range 10.60.0.0/16 removed",
            "vnet-prefix-in-use",
            note="consumers-eastus-subnet",
        ).line(),
    ]


def test_moving_the_factory_to_another_region_replaces_same_named_resources() -> None:
    def move(c: Config) -> None:
        c["imagefactory:location"] = "westus2"
        version(c, "webserver", "0.1.0")["regions"][0]["name"] = "westus2"
        c["imagefactory:scaleSets"][0]["region"] = "westus2"

    actions, findings = outcome("dev", move)
    assert "replace groups-images (location cannot change in place)" in actions
    assert "create groups-consumers-westus2" in actions
    same = [f for f in findings if f.startswith("REFUSED")]
    assert same == [
        refused(name, "replaced under the same name", "same-name-replacement")
        for name in (
            "build-network-nsg",
            "build-network-vnet",
            "build-webserver-0.1.0-builder-nic",
            "build-webserver-0.1.0-validate-nic",
            "gallery-gallery",
            "gallery-webserver",
            "groups-build",
            "groups-images",
            "version-webserver-0.1.0-version",
        )
    ]
    assert len(findings) == len(same) + 3  # and the three published resources: DANGEROUS


def test_a_scale_set_cannot_switch_to_an_image_of_the_other_os() -> None:
    actions, findings = outcome(
        "prod", lambda c: c["imagefactory:scaleSets"][1].update(image="iis", version="1.0.0")
    )
    assert actions[0].startswith("update scaleset-web-eu-vmss: tags.imagefactory-image, ")
    assert findings == [
        refused(
            "scaleset-web-eu-vmss", "update of the OS (linux -> windows)", "os-profile-immutable"
        )
    ]


def test_reactivating_a_builder_to_add_a_region_mixes_two_builds() -> None:
    def reactivate(c: Config) -> None:
        v = version(c, "webserver", "1.0.0")
        v["builder"] = "active"
        _add_northeurope(c, "1.0.0")

    actions, findings = outcome("prod", reactivate)
    assert "update version-webserver-1.0.0-version: publishingProfile.targetRegions" in actions
    assert findings == [
        "DANGEROUS: version-webserver-1.0.0-version: region northeurope added while its "
        "source is built anew; the new region gets the new build, the others keep the "
        "published one, under one version number; publish the region with a new version "
        "instead"
    ]


def test_changing_protection_changes_only_pulumis_state() -> None:
    actions, findings = outcome(
        "prod", lambda c: c.update({"imagefactory:protection": "retainOnDelete"})
    )
    assert actions == [
        f"state {name}: protect True -> False, retain_on_delete False -> True"
        for name in (
            "groups-images",
            "gallery-gallery",
            "gallery-hardened",
            "gallery-iis",
            "gallery-webapp",
            "gallery-webserver",
            "version-hardened-1.0.0-version",
            "version-iis-1.0.0-version",
            "version-webapp-1.0.0-version",
            "version-webserver-1.0.0-version",
            "version-webserver-1.1.0-version",
        )
    ]
    assert findings == []


def test_a_builder_leaving_trusted_launch_gets_a_new_test_vm_never_an_update() -> None:
    def standard(c: Config) -> None:
        image(c, "iis")["builder"] = {"securityType": "Standard"}

    actions, findings = outcome("prod", standard)
    # What the test VM boots from changes kind (staging version -> managed image): the
    # builder's fingerprint in its trigger replaces it, so no in-place image change.
    assert "replace build-iis-1.0.0-validate-vm (replacement_trigger changed)" in actions
    assert not [a for a in actions if a.startswith("update build-iis-1.0.0-validate-vm")]
    assert [f for f in findings if f.startswith("REFUSED")] == []
