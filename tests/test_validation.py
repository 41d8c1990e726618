"""The validation stage: its checks as data, what their results become, and its switch."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from imagefactory import naming, scripts, validation
from imagefactory.settings import ConfigError, load
from offline import changes, engine, refusals
from offline.engine import Run

VM = "azure-native:compute:VirtualMachine"
VERSION = "azure-native:compute:GalleryImageVersion"
GALLERY = "azure-native:compute:Gallery"
COMMAND = "command:local:Command"

SUMMARY = {
    "checks": [
        {
            "check": "provisioning.cloud-init",
            "detail": "status: done",
            "ok": True,
            "runCommand": "01-validate",
        },
        {
            "check": "provisioning.agent",
            "detail": "walinuxagent.service active",
            "ok": True,
            "runCommand": "01-validate",
        },
        {
            "check": "identity.hostname",
            "detail": "imgf-dev-tst-webserver-0-1-0",
            "ok": True,
            "runCommand": "01-validate",
        },
        {
            "check": "webserver.page",
            "detail": "skipped here",
            "ok": None,
            "runCommand": "03-check-20-webserver",
        },
    ],
    "manifest": {
        "image_name": "webserver",
        "image_version": "0.1.0",
        "os": "Ubuntu 24.04.1 LTS",
        "build_time": "2026-12-06T10:00:00Z",
        "base_image": "Canonical:ubuntu-24_04-lts:server:latest",
        "packages": 612,
        "packagesSha256": "0f3a9c" + "0" * 58,
        "keyPackages": {"openssh-server": "1:9.6p1-3ubuntu13.5", "nginx": "1.24.0-2ubuntu7.1"},
    },
    "result": "passed",
    "testVm": "imgf-dev-tst-webserver-0-1-0",
}
STDOUT = json.dumps(SUMMARY, sort_keys=True, separators=(",", ":"))
TAGS = {
    "imagefactory-validation": "passed: 3 of 4 checks on imgf-dev-tst-webserver-0-1-0",
    "imagefactory-os": "Ubuntu 24.04.1 LTS",
    "imagefactory-built": "2026-12-06T10:00:00Z",
    "imagefactory-base": "Canonical:ubuntu-24_04-lts:server:latest",
    "imagefactory-packages": "612 sha256:0f3a9c0000000000",
    "imagefactory-key-packages": "nginx=1.24.0-2ubuntu7.1 openssh-server=1:9.6p1-3ubuntu13.5",
}


def test_the_summary_becomes_six_short_tags() -> None:
    summary = validation.parse(f"capture.sh: reading 01-validate\n{STDOUT}\n")
    assert summary is not None
    assert summary.result == "passed"
    assert summary.passed == 3
    assert [c.run_command for c in summary.checks] == [
        "01-validate",
        "01-validate",
        "01-validate",
        "03-check-20-webserver",
    ]
    assert validation.tags(summary, room=50) == TAGS


def test_tags_give_way_to_the_stacks_own_and_never_exceed_256_characters() -> None:
    summary = validation.parse(STDOUT)
    # 47 tags of the stack's own leave room for 3 of Azure's 50.
    assert validation.room_for({f"t{i}": "v" for i in range(47)}) == 3
    assert list(validation.tags(summary, room=3)) == [
        "imagefactory-validation",
        "imagefactory-os",
        "imagefactory-built",
    ]
    assert validation.tags(summary, room=0) == {}
    many = {
        **SUMMARY,
        "manifest": {"keyPackages": {f"package-{i:03d}": "1.0-1" for i in range(40)}},
    }
    long = validation.tags(validation.parse(json.dumps(many)), room=50)
    value = long["imagefactory-key-packages"]
    assert len(value) <= validation.MAX_TAG_VALUE
    # Whole pairs only, and it says there were more.
    assert value.endswith(" …")
    assert value.split()[-2] == "package-013=1.0-1"


def test_no_summary_no_tags() -> None:
    assert validation.parse("") is None
    assert validation.parse("not json\n{broken") is None
    assert validation.parse('{"result": "maybe"}') is None
    assert validation.tags(None, room=50) == {}


def test_the_stack_output_reads_the_tags_back() -> None:
    assert validation.from_tags({"environment": "prod", **TAGS}) == {
        "result": "passed: 3 of 4 checks on imgf-dev-tst-webserver-0-1-0",
        "os": "Ubuntu 24.04.1 LTS",
        "built": "2026-12-06T10:00:00Z",
        "base": "Canonical:ubuntu-24_04-lts:server:latest",
        "packages": "612 sha256:0f3a9c0000000000",
        "keyPackages": {"nginx": "1.24.0-2ubuntu7.1", "openssh-server": "1:9.6p1-3ubuntu13.5"},
    }
    assert validation.from_tags({"environment": "prod"}) is None


def test_an_image_runs_the_namesakes_of_its_provision_scripts_then_its_extra_checks(
    prod_raw: dict[str, Any],
) -> None:
    settings = load(prod_raw)
    own = {i.name: i.validation_paths for i in settings.images}
    assert own == {
        "webserver": ("linux/validate/10-base.sh", "linux/validate/20-webserver.sh"),
        "iis": ("windows/validate/10-iis.ps1",),
        "hardened": ("linux/validate/10-base.sh", "linux/validate/listening-ports.sh"),
        "webapp": ("linux/validate/20-webserver.sh",),
    }
    webserver = settings.image("webserver")
    steps = validation.checks(
        image=webserver,
        version="1.1.0",
        hostname="imgf-prod-tst-webserver-1-1-0",
        admin_username="azureuser",
    )
    assert [s.name for s in steps] == ["validate", "check-10-base", "check-20-webserver"]
    common = scripts.load("linux/validate.sh")
    assert steps[0].source == scripts.render(
        common,
        "linux",
        {
            "IMAGE_NAME": "webserver",
            "IMAGE_VERSION": "1.1.0",
            "EXPECTED_HOSTNAME": "imgf-prod-tst-webserver-1-1-0",
            "ADMIN_USERNAME": "azureuser",
        },
    )
    check = scripts.load("linux/validate/20-webserver.sh")
    assert steps[2].source == scripts.render(
        check, "linux", {"IMAGE_NAME": "webserver", "IMAGE_VERSION": "1.1.0"}
    )


def test_test_vm_names_fit_azures_limits() -> None:
    names = naming.Names("imgf-prod")
    assert names.test_vm("webserver", "1.1.0", "linux") == "imgf-prod-tst-webserver-1-1-0"
    windows = names.test_vm("iis", "1.0.0", "windows")
    # A Windows computer name: 15 characters at most, and not the builder's.
    assert len(windows) <= naming.WINDOWS_VM_MAX and windows.startswith("tst")
    assert windows != names.builder_vm("iis", "1.0.0", "windows")
    assert names.staging_gallery() == "imgf_prod_staging"
    assert naming.GALLERY_NAME.match(names.staging_gallery())


@pytest.fixture(scope="module")
def dev_off() -> Run:
    config = engine.stack_config("dev")
    config["imagefactory:validation"] = {"enabled": False}
    return engine.run("dev", config=config)


@pytest.fixture(scope="module")
def prod_off() -> Run:
    config = engine.stack_config("prod")
    config["imagefactory:validation"] = {"enabled": False}
    return engine.run("prod", config=config)


def test_validation_off_publishes_straight_after_capture(dev_off: Run) -> None:
    assert [v.name for v in dev_off.of_type(VM)] == ["build-webserver-0.1.0-builder-vm"]
    assert [c.name for c in dev_off.of_type(COMMAND)] == [
        "build-webserver-0.1.0-generalize-capture"
    ]
    (version,) = dev_off.of_type(VERSION)
    image = dev_off.named("build-webserver-0.1.0-capture-image")
    assert image.urn in version.dependencies
    assert (
        "tags" not in version.property_dependencies or version.property_dependencies["tags"] == []
    )


def test_validation_off_still_copies_trusted_launch_builds_from_staging(prod_off: Run) -> None:
    assert sorted(g.name for g in prod_off.of_type(GALLERY)) == [
        "gallery-gallery",
        "staging-gallery",
    ]
    staging = prod_off.named("build-iis-1.0.0-staging")
    (version,) = [
        v
        for v in prod_off.of_type(VERSION)
        if v.inputs["galleryImageName"] == "iis" and v.name.startswith("version-")
    ]
    # What a version is published from never depends on the switch.
    assert version.inputs["storageProfile"]["source"] == {"id": staging.id}
    assert staging.urn in version.dependencies


def _reaches(run: Run, start: str, goal: str) -> bool:
    """`start` depends on `goal`, directly or through other resources."""
    by_urn = {r.urn: r for r in run.resources}
    seen, stack = set(), [start]
    while stack:
        urn = stack.pop()
        if urn == goal:
            return True
        if urn in seen or urn not in by_urn:
            continue
        seen.add(urn)
        stack.extend(by_urn[urn].dependencies)
    return False


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_capture_then_test_vm_then_checks_then_version_then_consumers(stack: str) -> None:
    run = engine.run(stack)
    builds = [r for r in run.resources if r.type == "imagefactory:build:ImageBuild"]
    assert builds
    for build in builds:
        name = build.name
        capture = run.named(f"{name}-generalize-capture")
        test_vm = run.named(f"{name}-validate-vm")
        checks = [
            r
            for r in run.of_type("azure-native:compute:VirtualMachineRunCommandByVirtualMachine")
            if r.inputs["vmName"] == test_vm.inputs["vmName"]
        ]
        results = run.named(f"{name}-validate-results")
        image, number = name.removeprefix("build-").rsplit("-", 1)
        (version,) = [
            v
            for v in run.of_type(VERSION)
            if v.inputs["galleryImageName"] == image
            and v.inputs["galleryImageVersionName"] == number
            and v.inputs["tags"].get("imagefactory-lifecycle") != "temporary"
        ]
        assert _reaches(run, test_vm.urn, capture.urn), name
        assert checks[0].property_dependencies["vmName"] == [test_vm.urn], name
        assert _reaches(run, results.urn, checks[-1].urn), name
        assert results.urn in version.dependencies, name
        # Whatever uses the version waits for its validation.
        users = [r for r in run.resources if r.custom and version.urn in r.dependencies]
        for user in users:
            assert _reaches(run, user.urn, results.urn), (name, user.name)
    consumers = [
        r
        for r in run.resources
        if r.type in (VM, "azure-native:compute:VirtualMachineScaleSet")
        and r.inputs.get("tags", {}).get("imagefactory-lifecycle") != "temporary"
    ]
    assert consumers
    checked: list[str] = []
    for consumer in consumers:
        validated = [
            b.name
            for b in builds
            if _reaches(run, consumer.urn, run.named(f"{b.name}-validate-results").urn)
        ]
        published = [v for v in run.of_type(VERSION) if v.urn in consumer.dependencies]
        # A consumer of a version with an active build waits for that build's validation.
        for version in published:
            inputs = version.inputs
            own = f"build-{inputs['galleryImageName']}-{inputs['galleryImageVersionName']}"
            if any(b.name == own for b in builds):
                assert own in validated, consumer.name
                checked.append(consumer.name)
    assert checked, "no consumer of a version with an active build"


def test_capture_retry_limits_never_rerun_collect_on_a_deallocated_test_vm() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:capture"] = {**config["imagefactory:capture"], "maxTries": 9}
    d = changes.diff(engine.run("dev").resources, engine.run("dev", config=config).resources)
    # The capture command takes the new limit; the results command, whose test VM is
    # deallocated once validated, keeps the one it ran with (ignore_changes).
    assert [a.line() for a in d.changed()] == [
        "update build-webserver-0.1.0-generalize-capture: environment.CAPTURE_MAX_TRIES"
    ]
    assert refusals.check(d) == []
    results = engine.run("dev").named("build-webserver-0.1.0-validate-results")
    assert results.ignore_changes == ["environment"]
    assert results.inputs["environment"] == {
        "CAPTURE_MAX_TRIES": "6",
        "CAPTURE_BACKOFF_SECONDS": "10",
    }


def test_the_versions_validation_tags_have_known_keys_even_before_the_results() -> None:
    version = engine.run("dev").named("version-webserver-0.1.0-version")
    # Under the mock engine the results are empty: the keys are there, their values say so.
    assert {k: v for k, v in version.inputs["tags"].items() if k in validation.VALIDATION_TAGS} == {
        k: "unknown" for k in validation.VALIDATION_TAGS
    }
    assert validation.tag_value(STDOUT, key="imagefactory-os") == "Ubuntu 24.04.1 LTS"
    assert validation.tag_value("", key="imagefactory-os") == "unknown"


def test_forty_stack_tags_leave_room_for_every_validation_tag() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:tags"] = {f"t{n:02d}": "v" for n in range(40)}
    version = engine.run("dev", config=config).named("version-webserver-0.1.0-version")
    tags = version.inputs["tags"]
    # 40 of the stack's, 4 of the program's and the 6 validation tags: Azure's 50, so a
    # version keeps all of them whatever tags are added later (the config allows no more).
    assert len(tags) == 50
    assert sorted(k for k in tags if k in validation.VALIDATION_TAGS) == sorted(
        validation.VALIDATION_TAGS
    )
    config["imagefactory:tags"] = {f"t{n:02d}": "v" for n in range(41)}
    with pytest.raises(pulumi.RunError, match=r"41 tags; .* so at most 40 here"):
        engine.run("dev", config=config)


def test_a_windows_summary_names_its_programs_and_features() -> None:
    windows = {
        **SUMMARY,
        "testVm": "tst876efb69f4",
        "manifest": {
            "os": "Microsoft Windows Server 2022 Datacenter",
            "build_time": "2026-12-06T11:00:00Z",
            "base_image": "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest",
            "packages": 41,
            "features": 23,
            "packagesSha256": "ab" * 32,
            "keyPackages": {},
        },
    }
    tags = validation.tags(validation.parse(json.dumps(windows)), room=50)
    assert tags["imagefactory-packages"] == "41 sha256:abababababababab, 23 features"
    assert tags["imagefactory-key-packages"] == "unknown"


def test_an_unquoted_off_is_text_as_pulumi_reads_it_and_is_refused(tmp_path: Any) -> None:
    # Pulumi reads stack files with YAML 1.2's core schema (gopkg.in/yaml.v3): `off` is the
    # text 'off', which the gate refuses; the offline engine must read it the same way.
    stack_file = tmp_path / "Pulumi.t.yaml"
    stack_file.write_text("config:\n  imagefactory:validation:\n    enabled: off\n    x: yes\n")
    data = engine.read_stack_file(stack_file)
    assert data["config"]["imagefactory:validation"] == {"enabled": "off", "x": "yes"}
    raw = engine.stack_config("dev")
    raw = {k.removeprefix("imagefactory:"): v for k, v in raw.items()}
    raw["validation"] = {"enabled": data["config"]["imagefactory:validation"]["enabled"]}
    with pytest.raises(ConfigError) as err:
        load(raw)
    assert err.value.problems == [
        "imagefactory:validation.enabled: 'off' is not true or false; allowed: true or false"
    ]
