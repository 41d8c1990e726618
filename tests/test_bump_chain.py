"""offline.bump follows images built on images: a base's bump carries the images on its
latest, after it; images pinned to a base version stay and are named."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from offline import bump, engine, plan, plandiff


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "Pulumi.prod.yaml"
    shutil.copy(engine.PROJECT_DIR / "Pulumi.prod.yaml", target)
    return target


def _versions(text: str, image: str) -> list[dict]:
    images = yaml.safe_load(text)["config"][bump.IMAGES_KEY]
    return next(i for i in images if i["name"] == image)["versions"]


def test_bumping_a_base_bumps_the_images_on_its_latest(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    before = path.read_text()
    text, done = bump.bump_file(path, ["hardened"])
    assert done == ["hardened -> 1.0.1", "webapp -> 1.0.1 (built on hardened latest, now 1.0.1)"]
    for name in ("hardened", "webapp"):
        old, new = _versions(text, name)
        assert (old["builder"], new["version"]) == ("retired", "1.0.1")
        assert new["regions"] == old["regions"]
    assert _versions(text, "webserver") == _versions(before, "webserver")
    kept = iter(text.splitlines())
    assert all(line in kept for line in before.splitlines())


def test_the_bumped_chain_plans_base_first(tmp_path: Path) -> None:
    text, _ = bump.bump_file(_copy(tmp_path), ["hardened"])
    config = engine.stack_config("prod")
    config[bump.IMAGES_KEY] = yaml.safe_load(text)["config"][bump.IMAGES_KEY]
    run = engine.run("prod", config=config)
    assert [
        c.line()
        for c in plandiff.diff_plans(plan.build_plan(engine.run("prod")), plan.build_plan(run))
    ] == [
        "version hardened 1.0.1 added: eastus x1 Standard_ZRS",
        "builder of hardened 1.0.0 retired (VM imgf-prod-bld-hardened-1-0-0 "
        "and its test VM imgf-prod-tst-hardened-1-0-0 deleted)",
        "version webapp 1.0.1 added: eastus x1 Standard_ZRS, westeurope x1 Standard_ZRS",
        "builder of webapp 1.0.0 retired (VM imgf-prod-bld-webapp-1-0-0 "
        "and its test VM imgf-prod-tst-webapp-1-0-0 deleted)",
    ]
    # webapp 1.0.1's builder starts from hardened 1.0.1, built in the same up.
    base = next(
        r
        for r in run.of_type("azure-native:compute:GalleryImageVersion")
        if r.inputs["galleryImageName"] == "hardened"
        and r.inputs["galleryImageVersionName"] == "1.0.1"
    )
    vm = run.named("build-webapp-1.0.1-builder-vm")
    assert vm.inputs["storageProfile"]["imageReference"] == {"id": base.id}


def test_every_image_once_bases_first(tmp_path: Path) -> None:
    _, done = bump.bump_file(_copy(tmp_path))
    assert done == ["webserver -> 1.1.1", "iis -> 1.0.1", "hardened -> 1.0.1", "webapp -> 1.0.1"]


def test_an_image_pinned_to_a_base_version_stays_and_is_named(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    pinned = path.read_text().replace(
        "        image: hardened\n        version: latest\n",
        '        image: hardened\n        version: "1.0.0"\n',
    )
    path.write_text(pinned)
    text, done = bump.bump_file(path, ["hardened"])
    assert done == [
        "hardened -> 1.0.1",
        "webapp stays on hardened 1.0.0 (pinned; set its baseImage.version to latest, or bump "
        "it after moving the pin)",
    ]
    assert [v["version"] for v in _versions(text, "webapp")] == ["1.0.0"]


def test_bases_come_first_whatever_the_config_order() -> None:
    entries: list[dict[str, Any]] = [
        {"name": "app", "baseImage": {"image": "mid"}},
        {"name": "mid", "baseImage": {"image": "root", "version": "latest"}},
        {"name": "root"},
        {"name": "other", "baseImage": {"image": "root", "version": "1.0.0"}},
    ]
    assert bump.with_chain(entries, ["root"]) == [("root", None), ("mid", "root"), ("app", "mid")]
    assert bump.with_chain(entries, ["app", "root"]) == [
        ("root", None),
        ("mid", "root"),
        ("app", None),
    ]
