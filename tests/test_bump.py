"""The scheduled rebuild's version bump, on copies of the real stack files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from offline import bump, engine, plan, plandiff


def _copy(stack: str, tmp_path: Path) -> Path:
    target = tmp_path / f"Pulumi.{stack}.yaml"
    shutil.copy(engine.PROJECT_DIR / f"Pulumi.{stack}.yaml", target)
    return target


def _versions(text: str, image: str) -> list[dict]:
    images = yaml.safe_load(text)["config"][bump.IMAGES_KEY]
    return next(i for i in images if i["name"] == image)["versions"]


def test_bump_adds_a_patch_version_and_retires_the_previous_builder(tmp_path: Path) -> None:
    path = _copy("prod", tmp_path)
    before = path.read_text()
    text, done = bump.bump_file(path, ["webserver"])
    assert done == ["webserver -> 1.1.1"]
    versions = _versions(text, "webserver")
    assert [v["version"] for v in versions] == ["1.0.0", "1.1.0", "1.1.1"]
    assert versions[1]["builder"] == "retired"
    assert "builder" not in versions[2]  # active, the default
    assert versions[2]["regions"] == versions[1]["regions"]
    assert _versions(text, "iis") == _versions(before, "iis")
    # A textual edit: every original line, comments included, is still there in order.
    kept = iter(text.splitlines())
    assert all(line in kept for line in before.splitlines())
    assert "# Published and in use; its builder is gone, the version stays untouched." in text


def test_bumped_stack_plans_as_expected(tmp_path: Path) -> None:
    text, _ = bump.bump_file(_copy("prod", tmp_path), ["webserver"])
    config = engine.stack_config("prod")
    config[bump.IMAGES_KEY] = yaml.safe_load(text)["config"][bump.IMAGES_KEY]
    after = plan.build_plan(engine.run("prod", config=config))
    before = plan.build_plan(engine.run("prod"))
    assert [c.line() for c in plandiff.diff_plans(before, after)] == [
        "version webserver 1.1.1 added: eastus x2 Standard_ZRS, westeurope x1 Standard_ZRS",
        "builder of webserver 1.1.0 retired (VM imgf-prod-bld-webserver-1-1-0 "
        "and its test VM imgf-prod-tst-webserver-1-1-0 deleted)",
        "scale set web-us moves from webserver latest (1.1.0) to webserver latest (1.1.1) "
        "(automatic OS image upgrade)",
    ]


def test_bump_keeps_the_replication_mode(tmp_path: Path) -> None:
    text, done = bump.bump_file(_copy("dev", tmp_path))
    assert done == ["webserver -> 0.1.1"]
    newest = _versions(text, "webserver")[-1]
    assert newest == {
        "version": "0.1.1",
        "replicationMode": "Shallow",
        "regions": [{"name": "eastus", "replicas": 1, "storage": "Standard_LRS"}],
    }


def test_unknown_image_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(bump.BumpError) as err:
        bump.bump_file(_copy("prod", tmp_path), ["nginx"])
    assert str(err.value) == (
        "imagefactory:images: no image 'nginx'; allowed: webserver, iis, hardened, webapp"
    )


def test_cli_writes_the_stack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy("dev", tmp_path)
    monkeypatch.setattr(bump, "PROJECT_DIR", tmp_path)
    assert bump.main(["dev"]) == 0
    assert _versions((tmp_path / "Pulumi.dev.yaml").read_text(), "webserver")[-1]["version"] == (
        "0.1.1"
    )
