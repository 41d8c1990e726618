"""Provision a Debian 12 tree, plant the state of a used build VM, run
generalize.sh --root and check that nothing of the build VM survives, and that
audit.sh catches each secret or identity item if it did."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import (
    BUILD_USER,
    IMAGE_ENV,
    LINUX_SCRIPTS,
    MARKED_BUILD_USER,
    PLANTS,
    GeneralizedTree,
    Plant,
    copy_tree,
    host_env,
    run,
    write_plant,
)

pytestmark = [pytest.mark.slow, pytest.mark.guest]

AUDITED_PLANTS = [p for p in PLANTS if p.audit_reason is not None]


def audit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(
        ["bash", str(LINUX_SCRIPTS / "audit.sh"), "--root", str(root), *args],
        env=host_env(),
        check=False,
    )


def account_names(root: Path, db: str) -> set[str]:
    return {line.split(":", 1)[0] for line in (root / "etc" / db).read_text().splitlines()}


def test_provisioning_prints_one_line_per_step(generalized_tree: GeneralizedTree) -> None:
    lines = generalized_tree.provision_output.splitlines()
    prefixes = [line.split(":", 1)[0] for line in lines]
    assert sorted(set(prefixes)) == ["10-base", "20-webserver", "90-manifest"]
    assert lines[-1].startswith("90-manifest: manifest written to /etc/image-manifest.json (")


def test_generalize_succeeds_with_clean_audit(generalized_tree: GeneralizedTree) -> None:
    result = generalized_tree.generalize
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (f"audit: clean: {generalized_tree.root} (full audit)")
    assert f"build user {BUILD_USER} (uid 1000): removed" in result.stdout
    assert f"build user {MARKED_BUILD_USER} (uid 1001): removed" in result.stdout


def test_generalize_never_renames_the_host(generalized_tree: GeneralizedTree) -> None:
    assert generalized_tree.host_name_after == generalized_tree.host_name_before


def assert_plant_is_gone_or_reset(root: Path, plant: Plant) -> None:
    target = root / plant.path.lstrip("/")
    if plant.after == "absent":
        assert not target.exists() and not target.is_symlink()
    elif plant.after == "empty":
        assert target.is_file() and not target.is_symlink()
        assert target.stat().st_size == 0
    else:
        assert target.is_file()
        assert b"imagefactory-builder" not in target.read_bytes()


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.path)
def test_plant_is_gone_or_reset(generalized_tree: GeneralizedTree, plant: Plant) -> None:
    assert_plant_is_gone_or_reset(generalized_tree.root, plant)


def test_build_users_are_removed_from_every_account_database(
    generalized_tree: GeneralizedTree,
) -> None:
    root = generalized_tree.root
    for db in ("passwd", "shadow", "group", "gshadow"):
        names = account_names(root, db)
        assert BUILD_USER not in names and MARKED_BUILD_USER not in names, db
    for db in ("group", "gshadow"):
        for line in (root / "etc" / db).read_text().splitlines():
            members = line.split(":")[-1].split(",")
            assert BUILD_USER not in members, f"{db}: {line}"
    assert not (root / "home" / BUILD_USER).exists()
    assert not (root / "home" / MARKED_BUILD_USER).exists()
    # System accounts and their groups are untouched.
    assert {"root", "sshd", "www-data"} <= account_names(root, "passwd")
    assert {"sudo", "adm"} <= account_names(root, "group")


def test_identity_is_reset(generalized_tree: GeneralizedTree) -> None:
    root = generalized_tree.root
    machine_id = root / "etc/machine-id"
    assert machine_id.is_file() and not machine_id.is_symlink()
    assert machine_id.read_bytes() == b""
    assert list((root / "etc/ssh").glob("ssh_host_*")) == []
    assert (root / "etc/hosts").read_text().splitlines()[0] == "127.0.0.1\tlocalhost"
    assert (root / "etc/hostname").read_text() == "localhost\n"
    assert list((root / "var/log/journal").iterdir()) == []


def test_host_keys_are_regenerated_at_first_boot(generalized_tree: GeneralizedTree) -> None:
    root = generalized_tree.root
    unit = root / "etc/systemd/system/imagefactory-regenerate-keys.service"
    text = unit.read_text()
    assert "ExecStart=/usr/bin/ssh-keygen -A" in text
    assert re.search(r"^Before=.*\bssh\.service\b", text, re.MULTILINE)
    wants = root / "etc/systemd/system/multi-user.target.wants" / unit.name
    assert wants.is_symlink() and str(wants.readlink()) == f"/etc/systemd/system/{unit.name}"


def test_build_caches_are_gone(generalized_tree: GeneralizedTree) -> None:
    root = generalized_tree.root
    assert sorted(p.name for p in (root / "var/lib/apt/lists").iterdir()) in (
        ["lock", "partial"],
        ["partial"],
    )
    assert list((root / "var/cache/apt/archives").glob("*.deb")) == []
    assert list((root / "tmp").iterdir()) == []
    assert list((root / "var/tmp").iterdir()) == []
    assert list((root / "var/lib/waagent").iterdir()) == []
    assert list((root / "var/lib/cloud").iterdir()) == []
    assert not (root / "usr/sbin/policy-rc.d").exists()


def test_image_content_survives(generalized_tree: GeneralizedTree) -> None:
    root = generalized_tree.root
    manifest = json.loads((root / "etc/image-manifest.json").read_text())
    assert manifest["image_name"] == IMAGE_ENV["IMAGE_NAME"]
    assert manifest["image_version"] == IMAGE_ENV["IMAGE_VERSION"]
    assert manifest["base_image"] == IMAGE_ENV["BASE_IMAGE"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["build_time"])
    packages = {p["name"]: p["version"] for p in manifest["packages"]}
    assert {"nginx", "openssh-server", "cloud-init", "unattended-upgrades"} <= packages.keys()
    page = (root / "var/www/imagefactory/index.html").read_text()
    assert '<span id="image-name">webserver</span>' in page
    assert '<span id="image-version">1.2.0</span>' in page
    hardening = (root / "etc/ssh/sshd_config.d/10-imagefactory-hardening.conf").read_text()
    assert "PasswordAuthentication no" in hardening.splitlines()
    auto = (root / "etc/apt/apt.conf.d/20auto-upgrades").read_text()
    assert 'APT::Periodic::Unattended-Upgrade "1";' in auto


def test_generalize_is_idempotent(generalized_tree: GeneralizedTree, tmp_path: Path) -> None:
    again = tmp_path / "rootfs"
    copy_tree(generalized_tree.root, again)
    result = run(
        [
            "unshare",
            "--uts",
            "bash",
            str(LINUX_SCRIPTS / "generalize.sh"),
            "--root",
            str(again),
            "--build-user",
            BUILD_USER,
        ],
        env=host_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"build user {BUILD_USER}: not present" in result.stdout
    assert result.stdout.splitlines()[-1] == f"audit: clean: {again.resolve()} (full audit)"
    for plant in PLANTS:
        assert_plant_is_gone_or_reset(again, plant)


def test_generalize_refuses_system_account_as_build_user(
    generalized_tree: GeneralizedTree, tmp_path: Path
) -> None:
    copy = tmp_path / "rootfs"
    copy_tree(generalized_tree.root, copy, hardlinks=True)
    result = run(
        [
            "unshare",
            "--uts",
            "bash",
            str(LINUX_SCRIPTS / "generalize.sh"),
            "--root",
            str(copy),
            "--build-user",
            "www-data",
        ],
        env=host_env(),
        check=False,
    )
    assert result.returncode == 1
    assert "build user www-data has uid 33 (< 1000)" in result.stderr


def test_pre_generalize_audit_ignores_identity(
    generalized_tree: GeneralizedTree, tmp_path: Path
) -> None:
    copy = tmp_path / "rootfs"
    copy_tree(generalized_tree.root, copy, hardlinks=True)
    for path in (
        "/etc/machine-id",
        "/etc/ssh/ssh_host_ed25519_key",
        "/var/lib/waagent/TransportPrivate.pem",
    ):
        write_plant(copy, path, generalized_tree.plants[path])
    assert audit(copy).returncode == 1
    pre = audit(copy, "--pre-generalize")
    assert pre.returncode == 0, pre.stdout
    assert pre.stdout.strip() == f"audit: clean: {copy} (pre-generalize audit)"


@pytest.mark.parametrize("plant", AUDITED_PLANTS, ids=lambda p: p.path)
def test_audit_names_a_plant_left_behind(
    generalized_tree: GeneralizedTree, plant: Plant, tmp_path: Path
) -> None:
    copy = tmp_path / "rootfs"
    copy_tree(generalized_tree.root, copy, hardlinks=True)
    write_plant(copy, plant.path, generalized_tree.plants[plant.path])
    result = audit(copy)
    assert result.returncode == 1, result.stdout
    findings = [line for line in result.stdout.splitlines() if line.startswith("audit: FINDING ")]
    # A file in a credentials directory may be reported as the directory.
    named = [
        f for f in findings if f.split(" ", 2)[2].split(":", 1)[0] in _self_and_parents(plant.path)
    ]
    assert plant.audit_reason is not None
    assert named, f"audit did not name {plant.path}:\n{result.stdout}"
    assert any(plant.audit_reason in f for f in named), named
    assert result.stdout.splitlines()[-1].startswith(f"audit: {len(findings)} finding(s) in ")


def _self_and_parents(path: str) -> set[str]:
    parts = path.split("/")
    return {"/".join(parts[:i]) for i in range(2, len(parts) + 1)}
