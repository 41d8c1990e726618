"""The parameter contract of scripts/linux, exercised the way the Python side
calls the scripts through Run Command: the exact text `imagefactory.scripts.render`
builds (a header of `export NAME=value` lines and optionally `set -- ARGS`, then
the file). Fast: no root file system is built, nothing outside tmp_path is
touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory import scripts

from .conftest import FAKE_PRIVATE_KEY, LINUX_SCRIPTS

PROVISION = sorted((LINUX_SCRIPTS / "provision").glob("*.sh"))
FULL_ENV = {
    "IMAGE_NAME": "webserver",
    "IMAGE_VERSION": "1.2.0",
    "BASE_IMAGE": "Canonical:ubuntu-24_04-lts:server:latest",
}


def run_script(
    script: Path, tmp_path: Path, env: dict[str, str] | None = None, args: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the script as Run Command does: the text `scripts.render` builds, saved to a file."""
    rendered = scripts.render(
        scripts.load(f"linux/{script.relative_to(LINUX_SCRIPTS)}"), "linux", env or {}, args or []
    )
    sent = tmp_path / script.name
    sent.write_text(rendered)
    return subprocess.run(
        ["bash", str(sent)],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


REQUIRED = [
    (script, name)
    for script in PROVISION
    for name in ("IMAGE_NAME", "IMAGE_VERSION", "BASE_IMAGE")
    if name != "BASE_IMAGE" or script.name == "90-manifest.sh"
]


@pytest.mark.parametrize(("script", "missing"), REQUIRED, ids=lambda v: getattr(v, "name", v))
def test_provisioning_names_a_missing_variable(script: Path, missing: str, tmp_path: Path) -> None:
    env = {k: v for k, v in FULL_ENV.items() if k != missing}
    result = run_script(script, tmp_path, env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{script.stem}: error: environment variable {missing} is required but not set"
    )
    assert result.stdout == ""


def test_audit_takes_arguments_from_the_header(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/ssh/ssh_host_ed25519_key").write_text(FAKE_PRIVATE_KEY)
    (root / "opt/app").mkdir(parents=True)
    (root / "opt/app/.env").write_text("# app\nDB_PASSWORD=hunter2\n")
    scope = (
        f"audit: scope: {root}: 3 files; skipped: 0 installed by dpkg unchanged, "
        "0 compiled from those; 3 to scan"
    )

    pre = run_script(
        LINUX_SCRIPTS / "audit.sh", tmp_path, args=["--root", str(root), "--pre-generalize"]
    )
    assert pre.returncode == 1
    assert pre.stdout.splitlines() == [
        scope,
        "audit: FINDING /opt/app/.env: secret-like assignment [keyword-assignment]",
        f"audit: 1 finding(s) in {root} (pre-generalize audit)",
    ]

    full = run_script(LINUX_SCRIPTS / "audit.sh", tmp_path, args=["--root", str(root)])
    assert full.returncode == 1
    assert full.stdout.splitlines() == [
        scope,
        "audit: FINDING /etc/machine-id: machine-id is not empty [identity]",
        "audit: FINDING /etc/ssh/ssh_host_ed25519_key: private key (PEM or OpenSSH) [private-key]",
        "audit: FINDING /etc/ssh/ssh_host_ed25519_key: SSH host key present [identity]",
        "audit: FINDING /opt/app/.env: secret-like assignment [keyword-assignment]",
        f"audit: 4 finding(s) in {root} (full audit)",
    ]


def test_audit_takes_the_allowlist_from_the_header(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "opt/app").mkdir(parents=True)
    (root / "opt/app/.env").write_text("DB_PASSWORD=hunter2\n")
    allowlist = "/opt/app/.env\tdemo database of the sample app"
    result = run_script(
        LINUX_SCRIPTS / "audit.sh", tmp_path, {"AUDIT_ALLOWLIST": allowlist}, ["--root", str(root)]
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[1:] == [
        "audit: allowlist: /opt/app/.env (demo database of the sample app)",
        "audit: ALLOWED /opt/app/.env: secret-like assignment [keyword-assignment] -- "
        "allowlisted: demo database of the sample app",
        f"audit: clean: {root} (full audit, 1 allowlisted)",
    ]


def test_audit_passes_a_clean_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/machine-id").write_text("")
    (root / "opt/app").mkdir(parents=True)
    (root / "opt/app/.env").write_text("LISTEN_PORT=8080\n")
    result = run_script(LINUX_SCRIPTS / "audit.sh", tmp_path, args=["--root", str(root)])
    assert result.returncode == 0, result.stdout
    assert result.stdout == (
        f"audit: scope: {root}: 2 files; skipped: 0 installed by dpkg unchanged, "
        f"0 compiled from those; 2 to scan\naudit: clean: {root} (full audit)\n"
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--build-user", "Bad Name"], {}, "invalid build user name: 'Bad Name'"),
        ([], {"BUILD_USERS": "azureuser root"}, "root cannot be a build user"),
        (["--delay", "soon"], {}, "--delay needs a number of seconds"),
        (["--frobnicate"], {}, "unknown argument: --frobnicate"),
    ],
)
def test_generalize_rejects_bad_usage_before_touching_anything(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    # Always with --root on an empty directory: without it the script is in live mode, and
    # if a check ever moved after the first real action it would generalize this machine.
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script(
        LINUX_SCRIPTS / "generalize.sh", tmp_path, env, ["--root", str(empty), *args]
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"generalize: error: {message}\n"
    assert list(empty.iterdir()) == []


def test_generalize_refuses_the_host_root(tmp_path: Path) -> None:
    result = run_script(LINUX_SCRIPTS / "generalize.sh", tmp_path, {}, ["--root", "/"])
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "generalize: error: --root / would generalize the host: "
        "run without --root on the builder instead\n"
    )
