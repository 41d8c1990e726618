"""The plan diff over real before/after pairs: the prod stack's config, one thing changed."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagefactory import offline, plan, plandiff

Config = dict[str, Any]


@cache
def _prod_plan() -> str:
    # Cached as JSON so no test can mutate another's baseline.
    return json.dumps(plan.build_plan(offline.run("prod")))


def _diff(change: Callable[[Config], None]) -> list[str]:
    config = copy.deepcopy(offline.stack_config("prod"))
    change(config)
    after = plan.build_plan(offline.run("prod", config=config))
    return [c.line() for c in plandiff.diff_plans(json.loads(_prod_plan()), after)]


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
        "scale set web-us moves from webserver latest (1.1.0) to webserver latest (1.2.0)",
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

    assert _diff(zrs) == ["version iis 1.0.0: westeurope storage Standard_LRS -> Standard_ZRS"]


def test_moving_a_consumer_from_pinned_to_latest() -> None:
    def follow(c: Config) -> None:
        next(s for s in c["imagefactory:scaleSets"] if s["name"] == "web-eu")["version"] = "latest"

    assert _diff(follow) == [
        "scale set web-eu moves from webserver 1.0.0 to webserver latest (1.1.0)"
    ]


def test_retiring_a_builder() -> None:
    def retire(c: Config) -> None:
        _version(c, "webserver", "1.1.0")["builder"] = "retired"

    assert _diff(retire) == [
        "builder of webserver 1.1.0 retired (VM imgf-prod-bld-webserver-1-1-0 deleted)"
    ]


def test_replication_mode_change_replaces_a_published_version() -> None:
    def shallow(c: Config) -> None:
        version = _version(c, "webserver", "1.0.0")
        version["replicationMode"] = "Shallow"
        for region in version["regions"]:
            region["replicas"] = 1  # shallow replication keeps one replica per region

    assert _diff(shallow) == [
        "DANGEROUS: version webserver 1.0.0 would be replaced (protected: pulumi up will "
        "refuse): replicationMode Full -> Shallow",
        "version webserver 1.0.0: eastus replicas 2 -> 1",
    ]


def test_builder_security_change_replaces_the_version_source() -> None:
    def trusted(c: Config) -> None:
        # A Trusted Launch builder publishes from the VM, which needs a TrustedLaunch
        # definition: both the definition and every version change source.
        _image(c, "webserver")["builder"] = {"securityType": "TrustedLaunch"}
        _image(c, "webserver")["securityType"] = "TrustedLaunch"

    lines = _diff(trusted)
    assert lines[0] == (
        "DANGEROUS: image webserver definition would be replaced: securityType "
        "TrustedLaunchSupported -> TrustedLaunch"
    )
    assert lines[1].startswith(
        "DANGEROUS: version webserver 1.0.0 would be replaced (protected: pulumi up will "
        "refuse): source /subscriptions/"
    )
    assert "sourceKind managedImage -> vm" in lines[1]
    assert lines[2].startswith("DANGEROUS: version webserver 1.1.0 would be replaced")
    assert lines[3:] == ["builder of webserver 1.1.0 rebuilt (VM imgf-prod-bld-webserver-1-1-0)"]


def test_removing_an_image() -> None:
    def drop(c: Config) -> None:
        c["imagefactory:images"] = [i for i in c["imagefactory:images"] if i["name"] != "iis"]
        c["imagefactory:vmGroups"] = []

    assert _diff(drop) == [
        "image iis removed with versions 1.0.0 (protected: pulumi up will refuse)",
        "vm iis-us-000 removed (was on iis 1.0.0)",
        "vm iis-us-001 removed (was on iis 1.0.0)",
    ]


def test_markdown_and_json_render_the_same_changes() -> None:
    changes = {
        "prod": [
            plandiff.Change("prod", "version webserver 1.0.0 would be replaced", True),
            plandiff.Change("prod", "version webserver 1.2.0 added: eastus x1 Standard_LRS"),
        ],
        "dev": [],
    }
    md = plandiff.render(changes, "markdown", "main", "pr")
    assert "- **DANGEROUS**: version webserver 1.0.0 would be replaced" in md
    assert "- version webserver 1.2.0 added: eastus x1 Standard_LRS" in md
    assert "### Stack `dev`\n\nNo image-level changes." in md
    data = json.loads(plandiff.render(changes, "json", "main", "pr"))
    assert data["stacks"]["prod"]["changes"][0] == {
        "stack": "prod",
        "text": "version webserver 1.0.0 would be replaced",
        "dangerous": True,
    }


def test_git_mode_end_to_end(tmp_path: Path) -> None:
    """Two commits of a copy of this tree; the CLI diffs them with each tree's own code."""
    repo = tmp_path / "repo"
    files = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=offline.PROJECT_DIR, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = offline.PROJECT_DIR / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    stack_file = repo / "Pulumi.prod.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    web = next(i for i in doc["config"]["imagefactory:images"] if i["name"] == "webserver")
    web["versions"][1]["regions"][1]["replicas"] = 3
    stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    git("commit", "-q", "-am", "more replicas in westeurope")

    done = subprocess.run(
        [sys.executable, "-m", "imagefactory.plan", "diff", "HEAD~1", "HEAD", "--stack", "all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "plan diff HEAD~1 -> HEAD",
        "stack dev: no changes",
        "stack prod: 1 change(s)",
        "  version webserver 1.1.0: westeurope replicas 1 -> 3",
    ]


def test_unknown_revision_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(plandiff.PlanError, match="no-such-rev"):
        plandiff.export("no-such-rev", tmp_path)
