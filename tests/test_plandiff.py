"""The plan diff over real before/after pairs: the prod stack's config, one thing changed."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline import changes, engine, plan, plandiff

Config = dict[str, Any]


@cache
def _prod_plan() -> str:
    # Cached as JSON so no test can mutate another's baseline.
    return json.dumps(plan.build_plan(engine.run("prod")))


def _diff(
    change: Callable[[Config], None], base: Callable[[Config], None] | None = None
) -> list[str]:
    config = copy.deepcopy(engine.stack_config("prod"))
    before = json.loads(_prod_plan())
    if base is not None:
        base(config)
        before = plan.build_plan(engine.run("prod", config=copy.deepcopy(config)))
    change(config)
    after = plan.build_plan(engine.run("prod", config=config))
    return [c.line() for c in plandiff.diff_plans(before, after)]


def _image(config: Config, name: str) -> dict[str, Any]:
    return next(i for i in config["imagefactory:images"] if i["name"] == name)


def _version(config: Config, image: str, number: str) -> dict[str, Any]:
    return next(v for v in _image(config, image)["versions"] if v["version"] == number)


def test_unchanged_config_has_no_changes() -> None:
    assert _diff(lambda c: None) == []


def test_adding_a_version_shows_it_and_moves_latest_followers() -> None:
    def add(c: Config) -> None:
        new = copy.deepcopy(_version(c, "webserver", "1.1.0"))
        new["version"] = "1.2.0"
        _image(c, "webserver")["versions"].append(new)

    assert _diff(add) == [
        "version webserver 1.2.0 added: eastus x2 Standard_ZRS, westeurope x1 Standard_ZRS",
        "scale set web-us moves from webserver latest (1.1.0) to webserver latest (1.2.0) "
        "(automatic OS image upgrade)",
    ]


def test_adding_a_region() -> None:
    def add(c: Config) -> None:
        _version(c, "iis", "1.0.0")["regions"].append(
            {"name": "northeurope", "replicas": 1, "storage": "Standard_LRS"}
        )

    assert _diff(add) == ["version iis 1.0.0: region northeurope added (x1 Standard_LRS)"]


def test_changing_replicas() -> None:
    def more(c: Config) -> None:
        _version(c, "webserver", "1.1.0")["regions"][0]["replicas"] = 4

    assert _diff(more) == ["version webserver 1.1.0: eastus replicas 2 -> 4"]


def test_changing_storage_to_zrs() -> None:
    def zrs(c: Config) -> None:
        _version(c, "iis", "1.0.0")["regions"][1]["storage"] = "Standard_ZRS"

    # The summary says what changed; the resource level says Azure refuses it.
    assert _diff(zrs) == ["version iis 1.0.0: westeurope storage Standard_LRS -> Standard_ZRS"]


def test_moving_a_consumer_from_pinned_to_latest() -> None:
    def follow(c: Config) -> None:
        next(s for s in c["imagefactory:scaleSets"] if s["name"] == "web-eu")["version"] = "latest"

    assert _diff(follow) == [
        "scale set web-eu moves from webserver 1.0.0 to webserver latest (1.1.0) "
        "(automatic OS image upgrade)"
    ]


def test_retiring_a_builder() -> None:
    def retire(c: Config) -> None:
        _version(c, "webserver", "1.1.0")["builder"] = "retired"

    assert _diff(retire) == [
        "builder of webserver 1.1.0 retired (VM imgf-prod-bld-webserver-1-1-0 "
        "and its test VM imgf-prod-tst-webserver-1-1-0 deleted)"
    ]


def test_replication_mode_change_of_a_published_version() -> None:
    def less(c: Config) -> None:
        version = _version(c, "webserver", "1.1.0")
        version["regions"] = version["regions"][:1]
        version["regions"][0]["replicas"] = 1

    def shallow(c: Config) -> None:
        less(c)
        _version(c, "webserver", "1.1.0")["replicationMode"] = "Shallow"

    assert _diff(shallow, base=less) == [
        "version webserver 1.1.0: replicationMode Full -> Shallow",
    ]


def test_builder_security_change_replaces_the_definition_but_never_a_version() -> None:
    # A Trusted Launch builder needs a TrustedLaunch definition, so both change together.
    # Published versions pin their source: they keep it and are not replaced.
    def trusted(c: Config) -> None:
        _image(c, "webserver")["builder"] = {"securityType": "TrustedLaunch"}
        _image(c, "webserver")["securityType"] = "TrustedLaunch"

    assert _diff(trusted) == [
        "image webserver definition: securityType TrustedLaunchSupported -> TrustedLaunch",
        "version webserver 1.0.0: keeps its source (published versions never change it)",
        "builder of webserver 1.1.0 rebuilt (VM imgf-prod-bld-webserver-1-1-0)",
        # Now a Trusted Launch build: its test VM boots the staging version instead.
        "validation of webserver 1.1.0 re-run on a new test VM imgf-prod-tst-webserver-1-1-0 "
        "(a new build; from managed image imgf-prod-webserver-1.1.0 -> staging version "
        "imgf_prod_staging/webserver/1.1.0)",
        "version webserver 1.1.0: keeps its source (published versions never change it)",
    ]


def test_a_source_change_without_the_pin_is_shown() -> None:
    """Plans from before versions pinned their source still flag a changed source."""
    before = json.loads(_prod_plan())
    after = copy.deepcopy(before)
    spec = after["images"]["webserver"]["versions"]["1.0.0"]
    spec["ignoreChanges"] = []
    spec["source"] = "/elsewhere"
    assert [c.line() for c in plandiff.diff_plans(before, after)] == [
        "version webserver 1.0.0: source "
        f"{before['images']['webserver']['versions']['1.0.0']['source']} -> /elsewhere"
    ]


def test_removing_an_image() -> None:
    def drop(c: Config) -> None:
        c["imagefactory:images"] = [i for i in c["imagefactory:images"] if i["name"] != "iis"]
        c["imagefactory:vmGroups"] = []

    assert _diff(drop) == [
        "image iis removed with versions 1.0.0 (protected: pulumi up will refuse)",
        "vm iis-us-000 removed (was on iis 1.0.0)",
        "vm iis-us-001 removed (was on iis 1.0.0)",
    ]


def _validation(enabled: bool) -> Callable[[Config], None]:
    def set_it(c: Config) -> None:
        c["imagefactory:validation"] = {"enabled": enabled}

    return set_it


VALIDATION_ADDED = [
    "validation of hardened 1.0.0 added: test VM imgf-prod-tst-hardened-1-0-0 (Standard_D2s_v5) "
    "from managed image imgf-prod-hardened-1.0.0: 01-validate -> 02-check-10-base -> "
    "03-check-listening-ports",
    # A Trusted Launch build has no managed image: its test VM boots from a staging version.
    "validation of iis 1.0.0 added: test VM tst876efb69f4 (Standard_D4s_v5) from staging "
    "version imgf_prod_staging/iis/1.0.0: 01-validate -> 02-check-10-iis",
    "validation of webapp 1.0.0 added: test VM imgf-prod-tst-webapp-1-0-0 (Standard_D2as_v5) "
    "from managed image imgf-prod-webapp-1.0.0: 01-validate -> 02-check-20-webserver",
    "validation of webserver 1.1.0 added: test VM imgf-prod-tst-webserver-1-1-0 "
    "(Standard_D2s_v5) from managed image imgf-prod-webserver-1.1.0: 01-validate -> "
    "02-check-10-base -> 03-check-20-webserver",
]


def test_turning_validation_on_adds_a_test_vm_to_each_build() -> None:
    # The published iis version is copied from its staging version either way: the switch
    # never changes what a version is published from.
    assert _diff(_validation(True), base=_validation(False)) == VALIDATION_ADDED


def test_turning_validation_off_deletes_the_test_vms() -> None:
    untested = "deleted; new builds publish untested)"
    assert _diff(_validation(False)) == [
        f"validation of hardened 1.0.0 turned off (test VM imgf-prod-tst-hardened-1-0-0 {untested}",
        f"validation of iis 1.0.0 turned off (test VM tst876efb69f4 {untested}",
        f"validation of webapp 1.0.0 turned off (test VM imgf-prod-tst-webapp-1-0-0 {untested}",
        "validation of webserver 1.1.0 turned off (test VM imgf-prod-tst-webserver-1-1-0 "
        + untested,
    ]


def test_a_validation_change_re_runs_it_on_a_new_test_vm() -> None:
    def bigger(c: Config) -> None:
        _image(c, "webapp")["validation"]["vmSize"] = "Standard_D2s_v5"

    def more_checks(c: Config) -> None:
        _image(c, "webapp")["validation"]["scripts"] = ["linux/validate/listening-ports.sh"]

    assert _diff(bigger) == [
        "validation of webapp 1.0.0 re-run on a new test VM imgf-prod-tst-webapp-1-0-0 "
        "(size Standard_D2as_v5 -> Standard_D2s_v5)"
    ]
    assert _diff(more_checks) == [
        "validation of webapp 1.0.0 re-run on a new test VM imgf-prod-tst-webapp-1-0-0 "
        "(checks 01-validate, 02-check-20-webserver -> 01-validate, 02-check-20-webserver, "
        "03-check-listening-ports)"
    ]


NEW_USER = "0b6e3d2a-1c4f-4a8b-9e7d-5f2c1a0b3d4e"


def _share_with_a_user_instead_of_the_group(c: Config) -> None:
    sharing = c["imagefactory:gallery"]["sharing"]
    sharing[:] = [s for s in sharing if s["principalType"] != "Group"]
    sharing.append({"principalId": NEW_USER, "principalType": "User", "description": "auditor"})


def _move_iis_to_a_new_sku(c: Config) -> None:
    _image(c, "iis")["identifier"]["sku"] = "windows-2025"


def test_renaming_the_gallery_replaces_it() -> None:
    def rename(c: Config) -> None:
        c["imagefactory:gallery"]["name"] = "imgf_prod_gallery2"

    assert _diff(rename) == [
        "gallery name imgf_prod_gallery -> imgf_prod_gallery2",
        *(
            f"version {v}: created anew in the moved gallery (the old one is deleted)"
            for v in (
                "hardened 1.0.0",
                "iis 1.0.0",
                "webapp 1.0.0",
                "webserver 1.0.0",
                "webserver 1.1.0",
            )
        ),
    ]


def test_sharing_added_and_removed() -> None:
    assert _diff(_share_with_a_user_instead_of_the_group) == [
        f"gallery shared with User {NEW_USER}",
        "gallery no longer shared with Group 9c1d7e52-4a3b-4f8e-b6d2-0e5a7c9f1b24",
    ]


def test_adding_an_image_lists_its_versions_in_version_order() -> None:
    def add(c: Config) -> None:
        new = copy.deepcopy(_image(c, "webserver"))
        new["name"] = "proxy"
        new["identifier"]["offer"] = "proxy"
        new["versions"][0]["version"] = "1.10.0"
        new["versions"][1]["version"] = "1.2.0"
        for version in new["versions"]:
            version["builder"] = "retired"
        c["imagefactory:images"].append(new)

    assert _diff(add) == [
        "image proxy added (Linux, V2, TrustedLaunchSupported) with versions 1.2.0, 1.10.0"
    ]


def test_identifier_change_of_a_definition() -> None:
    assert _diff(_move_iis_to_a_new_sku) == [
        "image iis definition: "
        "identifier contoso-platform/iis/windows-2022 -> contoso-platform/iis/windows-2025"
    ]


def test_removing_a_version_moves_its_latest_followers_back() -> None:
    def drop(c: Config) -> None:
        image = _image(c, "webserver")
        image["versions"] = [v for v in image["versions"] if v["version"] != "1.1.0"]

    assert _diff(drop) == [
        "version webserver 1.1.0 removed (protected: pulumi up will refuse)",
        "scale set web-us moves from webserver latest (1.1.0) to webserver latest (1.0.0) "
        "(running instances keep 1.1.0: automatic OS image upgrades only move forward; new "
        "instances get 1.0.0)",
    ]


def test_removing_a_region() -> None:
    def drop(c: Config) -> None:
        version = _version(c, "iis", "1.0.0")
        version["regions"] = [r for r in version["regions"] if r["name"] != "westeurope"]

    assert _diff(drop) == ["version iis 1.0.0: region westeurope removed"]


def test_excluding_from_latest_moves_latest_followers() -> None:
    def exclude(c: Config) -> None:
        _version(c, "webserver", "1.1.0")["excludeFromLatest"] = True

    assert _diff(exclude) == [
        "version webserver 1.1.0: excludeFromLatest False -> True",
        "scale set web-us moves from webserver latest (1.1.0) to webserver latest (1.0.0) "
        "(running instances keep 1.1.0: automatic OS image upgrades only move forward; new "
        "instances get 1.0.0)",
    ]


def test_changing_the_end_of_life_date() -> None:
    def later(c: Config) -> None:
        _version(c, "iis", "1.0.0")["endOfLifeDate"] = "2028-06-30"

    assert _diff(later) == ["version iis 1.0.0: EOL 2027-12-31 -> 2028-06-30"]


def test_reactivating_a_retired_builder_creates_it() -> None:
    def reactivate(c: Config) -> None:
        del _version(c, "webserver", "1.0.0")["builder"]

    assert _diff(reactivate) == [
        "builder of webserver 1.0.0 created (VM imgf-prod-bld-webserver-1-0-0)"
    ]


def test_adding_a_scale_set() -> None:
    def add(c: Config) -> None:
        c["imagefactory:scaleSets"].append(
            {
                "name": "web-ap",
                "region": "westeurope",
                "image": "webserver",
                "version": "latest",
                "sku": "Standard_D2s_v5",
                "capacity": 1,
                "upgradePolicy": "Rolling",
            }
        )

    assert _diff(add) == ["scale set web-ap added in westeurope on webserver latest (1.1.0)"]


def test_growing_a_vm_group_adds_a_vm() -> None:
    def grow(c: Config) -> None:
        c["imagefactory:vmGroups"][0]["count"] = 3

    assert _diff(grow) == ["vm iis-us-002 added in eastus on iis 1.0.0"]


def test_changing_scale_set_capacity() -> None:
    def grow(c: Config) -> None:
        next(s for s in c["imagefactory:scaleSets"] if s["name"] == "web-eu")["capacity"] = 5

    assert _diff(grow) == ["scale set web-eu capacity 2 -> 5"]


def test_moving_a_scale_set_to_another_region() -> None:
    def move(c: Config) -> None:
        next(s for s in c["imagefactory:scaleSets"] if s["name"] == "web-us")["region"] = (
            "westeurope"
        )

    assert _diff(move) == ["scale set web-us moves from eastus to westeurope"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this tree with three commits: base, more replicas, a prod stack that fails
    validation. The tree as it is: tracked files and new ones not yet added (a module the
    program imports may be one of them), not what .gitignore leaves out."""
    repo = tmp_path_factory.mktemp("plandiff") / "repo"
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=engine.PROJECT_DIR,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = engine.PROJECT_DIR / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            capture_output=True,
            check=True,
        )

    def edit_prod(change: Callable[[Config], None]) -> None:
        stack_file = repo / "Pulumi.prod.yaml"
        doc = yaml.safe_load(stack_file.read_text())
        change(doc["config"])
        stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def more_replicas(c: Config) -> None:
        _version(c, "webserver", "1.1.0")["regions"][1]["replicas"] = 3

    def no_replicas(c: Config) -> None:
        _version(c, "webserver", "1.0.0")["regions"][0]["replicas"] = 0

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    edit_prod(more_replicas)
    git("commit", "-q", "-am", "more replicas in westeurope")
    edit_prod(no_replicas)
    git("commit", "-q", "-am", "no replicas: prod does not validate")
    return repo


def _plan_diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.plan", "diff", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def _short(repo: Path, rev: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_git_mode_end_to_end(repo: Path) -> None:
    """The CLI diffs two commits of a copy of this tree, each side run by this tooling."""
    done = _plan_diff(repo, "HEAD~2", "HEAD~1", "--stack", "all")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"plan diff HEAD~2 ({_short(repo, 'HEAD~2')}) -> HEAD~1 ({_short(repo, 'HEAD~1')})",
        "stack dev: no changes",
        "stack prod: 1 image-level change(s), 1 resource action(s) (1 update); "
        "0 refused, 0 dangerous",
        "  version webserver 1.1.0: westeurope replicas 1 -> 3",
        "  resources:",
        "    update version-webserver-1.1.0-version: publishingProfile.targetRegions",
    ]


def test_git_mode_exits_1_when_a_stack_does_not_plan(repo: Path) -> None:
    done = _plan_diff(repo, "HEAD~1", "HEAD", "--stack", "prod")
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"plan diff HEAD~1 ({_short(repo, 'HEAD~1')}) -> HEAD ({_short(repo, 'HEAD')})",
        "stack prod: does not plan",
        "  HEAD: 1 problem in stack config:",
        "    - imagefactory:images[0].versions[0].regions[0].replicas: 0 is out of range; "
        "allowed: 1 to 100",
    ]


def test_git_mode_exits_2_on_a_bad_revision(capsys: pytest.CaptureFixture[str]) -> None:
    assert plandiff.main(["no-such-rev", "HEAD"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "plan diff: git rev-parse --verify no-such-rev^{commit}: fatal: Needed a single revision\n"
    )


def test_unknown_revision_is_a_clear_error(tmp_path: Path) -> None:
    # git's own message, not just the revision echoed back.
    with pytest.raises(plandiff.PlanError, match=r": fatal: Needed a single revision$"):
        plandiff.export("no-such-rev", tmp_path)


@pytest.fixture
def edited(repo: Path) -> Iterator[Callable[[Callable[[Config], None]], None]]:
    """Edit the copy's Pulumi.prod.yaml in its working tree (uncommitted); restored after."""
    stack_file = repo / "Pulumi.prod.yaml"
    original = stack_file.read_text()
    # Edits start from the first commit's stack file, which plans.
    clean = subprocess.run(
        ["git", "show", "HEAD~2:Pulumi.prod.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def edit(change: Callable[[Config], None]) -> None:
        doc = yaml.safe_load(clean)
        change(doc["config"])
        stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    yield edit
    stack_file.write_text(original)


def test_the_working_tree_is_the_default_head_and_a_refusal_exits_4(
    repo: Path, edited: Any
) -> None:
    def add_region(c: Config) -> None:
        _version(c, "webserver", "1.0.0")["regions"].append(
            {"name": "northeurope", "replicas": 1, "storage": "Standard_ZRS"}
        )

    edited(add_region)
    done = _plan_diff(repo, "HEAD~2", "--stack", "prod")
    assert done.returncode == 4, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [
        f"plan diff HEAD~2 ({_short(repo, 'HEAD~2')}) -> working tree (uncommitted changes "
        "included)",
        "stack prod: 1 image-level change(s), 1 resource action(s) (1 update); "
        "1 refused, 0 dangerous",
    ]
    assert lines[2].startswith(
        "  REFUSED: version-webserver-1.0.0-version: region northeurope added (the version's "
        "source, a managed image or staging version (or, before staging, the builder VM), "
        "was retired); Azure answers "
    )
    assert lines[3:] == [
        "  version webserver 1.0.0: region northeurope added (x1 Standard_ZRS)",
        "  resources:",
        "    update version-webserver-1.0.0-version: publishingProfile.targetRegions",
    ]


def test_a_misspelled_stack_is_an_error_naming_the_known_ones(repo: Path) -> None:
    done = _plan_diff(repo, "HEAD~2", "HEAD~1", "--stack", "prd")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "plan diff: unknown stack 'prd'; known: dev, prod\n"


def test_json_and_markdown_carry_both_levels_and_the_exit_code() -> None:
    base = engine.run("dev")
    before = {
        "plan": plan.build_plan(base),
        "resources": changes.dump(r for r in base.resources if r.custom),
    }
    config = copy.deepcopy(engine.stack_config("dev"))
    config["imagefactory:gallery"]["name"] = "imgf_dev_gallery2"
    run = engine.run("dev", config=config)
    after = {
        "plan": plan.build_plan(run),
        "resources": changes.dump(r for r in run.resources if r.custom),
    }
    results: dict[str, plandiff.StackDiff | str] = {
        "dev": plandiff.compare(before, after, "dev"),
        "prod": plandiff.compare(before, before, "prod"),
    }
    assert plandiff.exit_code(results) == 3
    data = json.loads(plandiff.render(results, "json", "main", "pr"))
    assert data["exitCode"] == 3
    assert data["stacks"]["prod"] == {"actions": [], "changes": [], "findings": []}
    dev = data["stacks"]["dev"]
    assert dev["changes"] == [
        "gallery name imgf_dev_gallery -> imgf_dev_gallery2",
        "version webserver 0.1.0: created anew in the moved gallery (the old one is deleted)",
    ]
    assert [f["level"] for f in dev["findings"]] == ["DANGEROUS"] * 3
    assert dev["actions"][0]["line"] == (
        "replace gallery-gallery (galleryName cannot change in place)"
    )
    md = plandiff.render(results, "markdown", "main", "pr")
    assert "> [!WARNING]\n> 3 change(s) would replace or delete something published." in md
    assert "- gallery name imgf_dev_gallery -> imgf_dev_gallery2\n- version webserver" in md
    assert "<details><summary>Resource-level actions: 3 replace, 1 update</summary>" in md
    assert (
        "| replace | `gallery-gallery` | `galleryName` | galleryName cannot change in place |" in md
    )
    assert "### Stack `prod`\n\nNo image-level changes." in md


def test_destroy_shows_what_pulumi_destroy_would_do(repo: Path) -> None:
    done = _plan_diff(repo, "HEAD~2", "--stack", "dev", "--destroy", "--format", "markdown")
    assert done.returncode == 3, done.stderr
    text = done.stdout
    assert text.startswith(f"## Image plan diff HEAD~2 ({_short(repo, 'HEAD~2')}) → pulumi destroy")
    assert (
        "- **DANGEROUS**: version-webserver-0.1.0-version: published image version would be "
        "deleted; VMs and scale sets using it can no longer be created or scaled out from it"
    ) in text
    # The test VM's Run Commands and results go with it, like the builder's steps with it.
    assert "<details><summary>Resource-level actions: 21 delete, 10 delete-skipped</summary>" in (
        text
    )
    assert "| delete | `build-webserver-0.1.0-validate-vm` | — | — |" in text
    assert (
        "| delete-skipped | `build-webserver-0.1.0-validate-results` | — | deleted with "
        "build-webserver-0.1.0-validate-vm |"
    ) in text
