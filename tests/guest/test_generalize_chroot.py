"""Provision a Debian 12 tree, plant the state of a used build VM (residue of the build,
secrets generalization must not guess about, content that must survive), run
generalize.sh --root and check each plant: removed, reset or scrubbed, named by the final
audit (the build fails), or left untouched. A real secret scanner from PyPI
(detect-secrets) then reads the generalized trees as a second opinion."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import (
    BUILD_USER,
    IMAGE_ENV,
    LINUX_SCRIPTS,
    MARKED_BUILD_USER,
    OPS_USER,
    PLANTS,
    SERVICE_HASH,
    SERVICE_USER,
    GeneralizedTree,
    Plant,
    audit_root,
    copy_tree,
    host_env,
    run,
    write_plant,
)

pytestmark = [pytest.mark.slow, pytest.mark.guest]

NAMED = [p for p in PLANTS if p.after == "named"]
CLEAN = [p for p in PLANTS if p.after != "named"]
RESIDUE = [p for p in CLEAN if p.after not in ("survives",)]
SCOPE_RE = re.compile(
    r"audit: scope: (?P<root>\S+): (?P<total>\d+) files; skipped: (?P<dpkg>\d+) installed by "
    r"dpkg unchanged, (?P<pyc>\d+) compiled from those; (?P<scan>\d+) to scan"
)


def findings(output: str) -> set[str]:
    return {line for line in output.splitlines() if line.startswith("audit: FINDING ")}


def expected_findings(plants: list[Plant]) -> set[str]:
    lines = set()
    for plant in plants:
        lines |= {f"audit: FINDING {plant.path}: {reason}" for reason in plant.findings}
        lines |= {f"audit: FINDING {path}: {reason}" for path, reason in plant.extra}
    return lines


def account_names(root: Path, db: str) -> set[str]:
    return {line.split(":", 1)[0] for line in (root / "etc" / db).read_text().splitlines()}


def test_provisioning_prints_one_line_per_step(generalized_tree: GeneralizedTree) -> None:
    lines = generalized_tree.provision_output.splitlines()
    prefixes = [line.split(":", 1)[0] for line in lines]
    assert sorted(set(prefixes)) == ["10-base", "20-webserver", "90-manifest"]
    assert lines[-1].startswith("90-manifest: manifest written to /etc/image-manifest.json (")


def test_there_are_plants_of_every_outcome() -> None:
    counts = {
        after: sum(p.after == after for p in PLANTS)
        for after in ("absent", "empty", "reset", "scrubbed", "named", "survives")
    }
    assert len(PLANTS) >= 60
    assert all(n >= 2 for n in counts.values()), counts


def test_generalize_succeeds_with_clean_audit(generalized_tree: GeneralizedTree) -> None:
    result = generalized_tree.generalize
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"audit: clean: {generalized_tree.root} (full audit)"
    # The initramfs is compressed and built from files the audit scans: named, not searched
    # as text (its bytes match secret patterns by chance).
    assert re.fullmatch(
        r"audit: not searched as text: 1 compressed file\(s\): /boot/initrd\.img-\S+", lines[-2]
    ), lines[-2]
    scope = SCOPE_RE.fullmatch(lines[-3])
    assert scope is not None, lines[-3]
    # Most of the tree is dpkg's, unchanged; what is left is read whole.
    assert int(scope["dpkg"]) > 10 * int(scope["scan"]) > 0
    assert f"build user {BUILD_USER} (uid 1000): removed" in result.stdout
    assert f"build user {MARKED_BUILD_USER} (uid 1001): removed" in result.stdout
    assert "generalize: root password removed (shadow entry set to '*')" in lines
    assert "generalize: debconf password answers removed (1)" in lines
    assert "generalize: sudoers.d files for build users removed (3)" in lines
    assert (
        "generalize: build admin's SSH keys (2) removed from 2 other authorized_keys files "
        "(2 lines)" in lines
    )


def test_pre_generalize_audit_is_clean_when_generalization_fixes_everything(
    generalized_tree: GeneralizedTree,
) -> None:
    pre = generalized_tree.pre_audit
    assert pre.returncode == 0, pre.stdout
    assert pre.stdout.splitlines()[-1] == (
        f"audit: clean: {generalized_tree.root} (pre-generalize audit)"
    )


def test_generalize_never_renames_the_host(generalized_tree: GeneralizedTree) -> None:
    assert generalized_tree.host_name_after == generalized_tree.host_name_before


def assert_plant_outcome(root: Path, plant: Plant, before: bytes) -> None:
    target = root / plant.path.lstrip("/")
    if plant.after == "absent":
        assert not target.exists() and not target.is_symlink()
    elif plant.after == "empty":
        assert target.is_file() and not target.is_symlink()
        assert target.stat().st_size == 0
    elif plant.after == "reset":
        assert target.is_file()
        assert b"imagefactory-builder" not in target.read_bytes()
    elif plant.after == "scrubbed":
        assert plant.secret is not None
        assert target.is_file()
        assert plant.secret.encode() not in target.read_bytes()
    elif plant.after == "survives":
        assert target.is_file() and not target.is_symlink()
        assert target.read_bytes() == before
    else:
        raise AssertionError(f"not a clean-tree plant: {plant}")


@pytest.mark.parametrize("plant", CLEAN, ids=lambda p: f"{p.after}:{p.path}")
def test_plant_outcome(generalized_tree: GeneralizedTree, plant: Plant) -> None:
    assert_plant_outcome(generalized_tree.root, plant, generalized_tree.plants[plant.path])


@pytest.mark.parametrize("plant", CLEAN, ids=lambda p: f"{p.after}:{p.path}")
def test_plant_outcome_in_the_dirty_build(generalized_tree: GeneralizedTree, plant: Plant) -> None:
    dirty = generalized_tree.dirty
    assert_plant_outcome(dirty.root, plant, dirty.plants[plant.path])


def test_dirty_build_fails_and_the_audit_names_exactly_what_is_left(
    generalized_tree: GeneralizedTree,
) -> None:
    result = generalized_tree.dirty.generalize
    assert result.returncode == 1, result.stdout + result.stderr
    expected = expected_findings(NAMED)
    assert findings(result.stdout) == expected
    assert result.stdout.splitlines()[-1] == (
        f"audit: {len(expected)} finding(s) in {generalized_tree.dirty.root} (full audit)"
    )


def test_pre_generalize_audit_names_what_generalization_will_not_fix(
    generalized_tree: GeneralizedTree,
) -> None:
    """Before the destructive step the build already fails, on exactly the items the final
    audit would name: nothing generalization removes, nothing it misses."""
    pre = generalized_tree.dirty.pre_audit
    assert pre.returncode == 1, pre.stdout
    assert findings(pre.stdout) == expected_findings(NAMED)
    assert pre.stdout.splitlines()[-1].endswith("(pre-generalize audit)")


@pytest.mark.parametrize("plant", NAMED, ids=lambda p: f"{p.kind}:{p.path}")
def test_named_plant_is_left_for_the_build_to_fail(
    generalized_tree: GeneralizedTree, plant: Plant
) -> None:
    dirty = generalized_tree.dirty
    target = dirty.root / plant.path.lstrip("/")
    assert target.is_file()
    if plant.secret is not None:
        # The build admin's key goes, the other account's key stays (and is named).
        assert plant.secret.encode() not in target.read_bytes()
    elif plant.path == "/etc/shadow":
        assert SERVICE_HASH in target.read_text()
    else:
        assert target.read_bytes() == dirty.plants[plant.path]
    assert all(
        f"audit: FINDING {plant.path}: {r}" in dirty.generalize.stdout for r in plant.findings
    )


def test_audit_names_every_residue_plant_left_behind(
    generalized_tree: GeneralizedTree, tmp_path: Path
) -> None:
    """Each item generalization removes, put back into the generalized tree: the audit names
    every one (so a step that stopped removing it fails the build)."""
    copy = tmp_path / "rootfs"
    copy_tree(generalized_tree.root, copy, hardlinks=True)
    planted = [p for p in RESIDUE if p.findings or p.extra]
    for plant in planted:
        write_plant(copy, plant.path, generalized_tree.plants[plant.path])
    result = audit_root(copy)
    assert result.returncode == 1, result.stdout
    assert findings(result.stdout) == expected_findings(planted)
    assert len(planted) >= 40


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
    # System accounts, other users and their groups are untouched.
    assert {"root", "sshd", "www-data", OPS_USER} <= account_names(root, "passwd")
    assert {"sudo", "adm"} <= account_names(root, "group")
    shadow = {
        line.split(":")[0]: line.split(":")[1]
        for line in (root / "etc/shadow").read_text().splitlines()
    }
    assert shadow["root"] == "*"
    dirty = (generalized_tree.dirty.root / "etc/shadow").read_text()
    assert f"{SERVICE_USER}:{SERVICE_HASH}:" in dirty


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
    # Packages stay installed and unchanged: dpkg's own check finds nothing.
    verify = run(["chroot", str(root), "dpkg", "--verify"], env=host_env(), check=False)
    assert (verify.returncode, verify.stdout) == (0, "")


def test_audit_prints_the_allowlist_and_passes_what_it_covers(
    generalized_tree: GeneralizedTree,
) -> None:
    dirty = generalized_tree.dirty.root
    named_paths = sorted({p.path for p in NAMED} - {"/etc/app/age.key"})
    entries = (
        [("/opt/app/", "the application's own secrets, rotated per release")]
        + [
            (path, f"intentional: {path}")
            for path in named_paths
            if not path.startswith("/opt/app/")
        ]
        + [("/etc/unused.conf", "a stale entry")]
    )
    allowlist = "\n".join(f"{path}\t{reason}" for path, reason in entries)
    result = audit_root(dirty, AUDIT_ALLOWLIST=allowlist)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    for path, reason in entries:
        assert f"audit: allowlist: {path} ({reason})" in lines
    assert findings(result.stdout) == {
        "audit: FINDING /etc/app/age.key: age secret key [age-secret-key]"
    }
    allowed = [line for line in lines if line.startswith("audit: ALLOWED ")]
    assert len(allowed) == len(expected_findings(NAMED)) - 1
    assert (
        "audit: ALLOWED /opt/app/deploy_key: private key (PEM or OpenSSH) [private-key] -- "
        "allowlisted: the application's own secrets, rotated per release"
    ) in allowed
    assert "audit: allowlist entry matched nothing: /etc/unused.conf" in lines
    assert lines[-1] == f"audit: 1 finding(s) in {dirty} (full audit)"

    everything = allowlist + "\n/etc/app/age.key\tencrypts the app's backups (rotated yearly)"
    clean = audit_root(dirty, AUDIT_ALLOWLIST=everything)
    assert clean.returncode == 0, clean.stdout
    assert clean.stdout.splitlines()[-1] == (
        f"audit: clean: {dirty} (full audit, {len(expected_findings(NAMED))} allowlisted)"
    )


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
    for plant in CLEAN:
        assert_plant_outcome(again, plant, generalized_tree.plants[plant.path])


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
