"""Fixtures for the guest tests: a Debian 12 root file system built with
debootstrap (cached per package list), provisioned with scripts/linux/provision,
dressed up as a used build VM, then generalized with scripts/linux/generalize.sh.

Everything here needs root and the host packages debootstrap, qemu-system-x86,
qemu-utils and genisoimage. Without them the tests skip, except in CI (CI=true),
where a missing prerequisite is a failure: CI installs them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parents[2]
LINUX_SCRIPTS = REPO / "scripts" / "linux"

SUITE = "bookworm"
MIRROR = os.environ.get("IMAGEFACTORY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP_INCLUDE = ("systemd", "systemd-sysv", "udev", "dbus", "ca-certificates")
# What an Azure Debian image has that the scripts rely on, plus a kernel for
# the boot test. ifupdown and isc-dhcp-client are how cloud-init configures
# the network on Debian 12; locales is what its locale module runs
# (update-locale), as on Debian's own cloud images.
IMAGE_PACKAGES = (
    "locales",
    "openssh-server",
    "cloud-init",
    "waagent",
    "nginx",
    "unattended-upgrades",
    "linux-image-amd64",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
)
# Bump when the way the cached tree is made changes.
CACHE_RECIPE = 2

IMAGE_ENV = {
    "IMAGE_NAME": "webserver",
    "IMAGE_VERSION": "1.2.0",
    "BASE_IMAGE": "Debian:debian-12:12:latest",
}
BUILD_USER = "builder"
MARKED_BUILD_USER = "ci-runner"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

FAKE_PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
FAKE_RSA_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "-----END RSA PRIVATE KEY-----\n"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_guest_prerequisites(*tools: str) -> None:
    """Skips (fails in CI) unless running as root with every tool on PATH."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        problems.append(
            "missing host tools: " + ", ".join(missing) + " (apt-get install debootstrap "
            "qemu-system-x86 qemu-utils genisoimage)"
        )
    if problems:
        reason = "guest test prerequisites: " + "; ".join(problems)
        if in_ci():
            pytest.fail(reason + " -- CI must provide them", pytrace=False)
        pytest.skip(reason)


def run(
    argv: list[str], *, env: dict[str, str] | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, env=env, text=True, capture_output=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def host_env(**extra: str) -> dict[str, str]:
    return {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", **extra}


def run_in_chroot(
    root: Path, argv: list[str], *, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Runs argv inside root in its own UTS namespace, so nothing it does
    (hostname, waagent, package scripts) can rename the host."""
    chroot_env = [f"{k}={v}" for k, v in {**host_env(HOME="/root"), **(env or {})}.items()]
    return run(
        ["unshare", "--uts", "chroot", str(root), "/usr/bin/env", "-i", *chroot_env, *argv],
        check=check,
    )


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/dev, /proc and /sys inside root; always unmounted again."""
    mounted: list[Path] = []
    try:
        for target, args in (
            ("dev", ["--bind", "/dev"]),
            ("proc", ["-t", "proc", "proc"]),
            ("sys", ["-t", "sysfs", "sysfs"]),
        ):
            point = root / target
            point.mkdir(exist_ok=True)
            run(["mount", *args, str(point)])
            mounted.append(point)
        yield
    finally:
        for point in reversed(mounted):
            if run(["umount", str(point)], check=False).returncode != 0:
                run(["umount", "--lazy", str(point)], check=False)


def set_policy_rc(root: Path, *, deny_services: bool) -> None:
    """policy-rc.d exiting 101 keeps package installs from starting services."""
    policy = root / "usr/sbin/policy-rc.d"
    if deny_services:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    else:
        policy.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Cached base tree: debootstrap + packages, before any project script runs.
# ---------------------------------------------------------------------------


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) / "imagefactory" if base else REPO / ".cache") / "guest"


def cache_key() -> str:
    spec = {
        "suite": SUITE,
        "mirror": MIRROR,
        "variant": "minbase",
        "include": DEBOOTSTRAP_INCLUDE,
        "packages": IMAGE_PACKAGES,
        "recipe": CACHE_RECIPE,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_base_tree(target: Path) -> None:
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(DEBOOTSTRAP_INCLUDE),
            SUITE,
            str(target),
            MIRROR,
        ],
        timeout=1200,
    )
    set_policy_rc(target, deny_services=True)
    with chroot_mounts(target):
        apt = ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confold"]
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        run_in_chroot(target, [*apt, "update"], env=env)
        run_in_chroot(
            target, [*apt, "install", "--no-install-recommends", *IMAGE_PACKAGES], env=env
        )
        run_in_chroot(target, ["apt-get", "clean"])
        # Debian's locale-gen ignores its arguments and builds what
        # /etc/locale.gen lists, so cloud-init's locale module (en_US.UTF-8 by
        # default) needs the locale generated in the base, as Debian's cloud
        # images have it.
        (target / "etc/locale.gen").write_text("en_US.UTF-8 UTF-8\n")
        run_in_chroot(target, ["locale-gen"])


def cached_base_tree() -> Path:
    """The cached tree for the current package list; built when missing.
    Other trees in the cache (older package lists) are deleted."""
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"debian-{SUITE}-{cache_key()}"
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".imagefactory-complete").exists():
            return target
        for stale in cache.glob(f"debian-{SUITE}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in cache.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        building = cache / f".build-{target.name}"
        build_base_tree(building)
        building.rename(target)
        (target / ".imagefactory-complete").touch()
    return target


def copy_tree(source: Path, dest: Path, *, hardlinks: bool = False) -> None:
    run(["cp", "-al" if hardlinks else "-a", str(source), str(dest)])
    (dest / ".imagefactory-complete").unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# The state of a used build VM, planted after provisioning.
# ---------------------------------------------------------------------------

After = Literal["absent", "empty", "reset"]


@dataclass(frozen=True)
class Plant:
    path: str
    """Absolute path inside the image."""
    content: str | None
    """What to write; None when the image already has the file (machine-id, host keys)."""
    after: After
    """What generalize.sh must leave: no file, an empty file, or generic content."""
    audit_reason: str | None = None
    """Part of the reason audit.sh gives when the file is left behind; None when
    the audit does not look for it (logs, leases: not secrets, but build state)."""


PLANTS: tuple[Plant, ...] = (
    # Build users: the Azure admin (named through BUILD_USERS) and one marked.
    Plant(f"/home/{BUILD_USER}/.ssh/id_ed25519", FAKE_PRIVATE_KEY, "absent", "private key"),
    Plant(f"/home/{BUILD_USER}/.ssh/authorized_keys", "ssh-ed25519 AAAAC3 builder@ci\n", "absent"),
    Plant(f"/home/{BUILD_USER}/.bash_history", "az login\n", "absent", "history"),
    Plant(f"/home/{MARKED_BUILD_USER}/.imagefactory-build-user", "", "absent"),
    Plant(
        f"/home/{MARKED_BUILD_USER}/.aws/credentials",
        "[default]\naws_secret_access_key = abc\n",
        "absent",
        "AWS credentials",
    ),
    Plant(f"/var/mail/{BUILD_USER}", "From: cron\n", "absent"),
    Plant(f"/var/spool/cron/crontabs/{BUILD_USER}", "* * * * * true\n", "absent"),
    Plant("/etc/sudoers.d/90-cloud-init-users", f"{BUILD_USER} ALL=(ALL) NOPASSWD:ALL\n", "absent"),
    Plant("/etc/sudoers.d/waagent", f"{BUILD_USER} ALL=(ALL) ALL\n", "absent"),
    # Root's credentials, token caches and histories.
    Plant("/root/.ssh/id_rsa", FAKE_RSA_KEY, "absent", "private key"),
    Plant("/root/.ssh/authorized_keys", "ssh-ed25519 AAAAC3 builder@ci\n", "absent"),
    Plant("/root/.azure/msal_token_cache.json", '{"AccessToken": {}}\n', "absent", "token cache"),
    Plant("/root/.azure/azureProfile.json", '{"subscriptions": []}\n', "absent", "Azure CLI"),
    Plant("/root/.aws/credentials", "[default]\naws_access_key_id = A\n", "absent", "AWS"),
    Plant("/root/.config/gcloud/credentials.db", "sqlite", "absent", "token cache"),
    Plant("/root/.config/gcloud/access_tokens.db", "sqlite", "absent", "token cache"),
    Plant(
        "/root/.docker/config.json", '{"auths": {"r.io": {"auth": "eDp5"}}}\n', "absent", "Docker"
    ),
    Plant("/root/.bash_history", "export ARM_CLIENT_SECRET=x\n", "absent", "history"),
    Plant("/root/.python_history", "import os\n", "absent", "history"),
    Plant("/root/.lesshst", ".less-history-file:\n", "absent", "history"),
    Plant("/root/.env", "ARM_CLIENT_SECRET=s3cr3t\n", "absent", "secret-like"),
    Plant("/root/.azure/accessTokens.json", "[]\n", "absent", "token cache"),
    # Build-only files.
    Plant("/tmp/deploy-key.pem", FAKE_RSA_KEY, "absent", "private key"),
    Plant("/tmp/build/app.env", "DB_PASSWORD=hunter2\n", "absent", "secret-like"),
    Plant("/var/tmp/download.partial", "x", "absent"),
    # Machine identity.
    Plant("/etc/machine-id", None, "empty", "machine-id"),
    Plant("/var/lib/dbus/machine-id", None, "absent", "D-Bus"),
    Plant("/etc/ssh/ssh_host_ed25519_key", None, "absent", "host key"),
    Plant("/etc/ssh/ssh_host_rsa_key.pub", None, "absent", "host key"),
    Plant("/var/lib/systemd/random-seed", "seed", "absent", "random seed"),
    Plant("/var/lib/systemd/credential.secret", "secret", "absent", "credential secret"),
    # Account database backups (these also name the build users).
    Plant("/etc/shadow-", None, "absent"),
    Plant("/etc/gshadow-", None, "absent"),
    Plant("/etc/passwd-", None, "absent"),
    Plant("/etc/group-", None, "absent"),
    Plant("/var/backups/shadow.bak", "builder:$6$x:19000:0:99999:7:::\n", "absent"),
    # Network and cloud-init state.
    Plant("/var/lib/dhcp/dhclient.eth0.leases", "lease { fixed-address 10.0.0.4; }\n", "absent"),
    Plant("/var/lib/cloud/instances/builder-iid/user-data.txt", "#cloud-config\n", "absent"),
    Plant("/var/lib/cloud/seed/nocloud-net/meta-data", "instance-id: builder-iid\n", "absent"),
    Plant("/var/log/cloud-init.log", "cloud-init ran\n", "absent"),
    Plant("/var/log/cloud-init-output.log", "cloud-init output\n", "absent"),
    Plant("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n", "absent"),
    Plant("/etc/network/interfaces.d/50-cloud-init", "auto eth0\n", "absent"),
    Plant("/etc/systemd/network/10-cloud-init-eth0.network", "[Match]\n", "absent"),
    Plant("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n", "absent"),
    # Azure agent state; its transport key is a private key.
    Plant("/var/lib/waagent/ovf-env.xml", "<Environment/>\n", "absent"),
    Plant("/var/lib/waagent/TransportPrivate.pem", FAKE_RSA_KEY, "absent", "private key"),
    Plant("/var/lib/waagent/history/2024-01-01.zip", "zip", "absent"),
    # Logs: live ones truncated, rotated ones deleted, journal (named by the
    # builder's machine-id) deleted.
    Plant("/var/log/waagent.log", "provisioned builder\n", "empty"),
    Plant("/var/log/syslog", "builder syslog\n", "empty"),
    Plant("/var/log/syslog.1", "older\n", "absent"),
    Plant("/var/log/auth.log.2.gz", "gz", "absent"),
    Plant("/var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "j", "absent"),
    # Host names.
    Plant("/etc/hosts", "127.0.0.1 localhost\n10.0.0.4 imagefactory-builder\n", "reset"),
    Plant("/etc/hostname", "imagefactory-builder\n", "reset"),
)


def write_plant(root: Path, path: str, content: bytes) -> None:
    """Writes a fresh file (never through an existing inode: trees may share
    files through hard links)."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_bytes(content)
    target.chmod(0o600)


def plant_used_vm_state(root: Path) -> dict[str, bytes]:
    """Makes root look like a build VM after provisioning; returns each plant's bytes."""
    run_in_chroot(root, ["useradd", "-m", "-u", "1000", "-s", "/bin/bash", BUILD_USER])
    run_in_chroot(root, ["usermod", "-aG", "sudo,adm", BUILD_USER])
    run_in_chroot(root, ["useradd", "-m", "-u", "1001", "-s", "/bin/bash", MARKED_BUILD_USER])
    for plant in PLANTS:
        if plant.content is not None:
            write_plant(root, plant.path, plant.content.encode())
    for user, uid in ((BUILD_USER, 1000), (MARKED_BUILD_USER, 1001)):
        for path in (root / "home" / user).rglob("*"):
            os.lchown(path, uid, uid)
    snapshot = {}
    for plant in PLANTS:
        target = root / plant.path.lstrip("/")
        assert target.is_file(), f"plant {plant.path} missing before generalization"
        snapshot[plant.path] = target.read_bytes()
    return snapshot


# ---------------------------------------------------------------------------
# The generalized tree, shared by the chroot and the boot tests.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    machine_id: str
    dbus_machine_id: str
    host_key_fingerprints: frozenset[str]


@dataclass(frozen=True)
class GeneralizedTree:
    root: Path
    builder: Builder
    plants: dict[str, bytes]
    provision_output: str
    generalize: subprocess.CompletedProcess[str]
    host_name_before: str
    host_name_after: str


def host_key_fingerprints(root: Path) -> frozenset[str]:
    prints = set()
    for pub in sorted((root / "etc/ssh").glob("ssh_host_*_key.pub")):
        prints.add(run(["ssh-keygen", "-lf", str(pub)]).stdout.split()[1])
    return frozenset(prints)


def provision(root: Path) -> str:
    staged = root / "tmp/imagefactory-provision"
    shutil.copytree(LINUX_SCRIPTS / "provision", staged)
    output = []
    for script in sorted(staged.glob("*.sh")):
        proc = run_in_chroot(
            root, ["bash", f"/tmp/imagefactory-provision/{script.name}"], env=IMAGE_ENV
        )
        output.append(proc.stdout)
    shutil.rmtree(staged)
    return "".join(output)


@pytest.fixture(scope="session")
def generalized_tree(tmp_path_factory: pytest.TempPathFactory) -> GeneralizedTree:
    require_guest_prerequisites("debootstrap", "unshare", "chroot", "ssh-keygen")
    base = cached_base_tree()
    root = tmp_path_factory.mktemp("chroot") / "rootfs"
    copy_tree(base, root)
    with chroot_mounts(root):
        provision_output = provision(root)
        plants = plant_used_vm_state(root)
    builder = Builder(
        machine_id=(root / "etc/machine-id").read_text().strip(),
        dbus_machine_id=(root / "var/lib/dbus/machine-id").read_text().strip(),
        host_key_fingerprints=host_key_fingerprints(root),
    )
    # A build-harness helper, not part of the image.
    set_policy_rc(root, deny_services=False)
    host_name_before = socket.gethostname()
    generalize = run(
        ["unshare", "--uts", "bash", str(LINUX_SCRIPTS / "generalize.sh"), "--root", str(root)],
        env=host_env(BUILD_USERS=BUILD_USER),
        check=False,
    )
    return GeneralizedTree(
        root=root,
        builder=builder,
        plants=plants,
        provision_output=provision_output,
        generalize=generalize,
        host_name_before=host_name_before,
        host_name_after=socket.gethostname(),
    )


# ---------------------------------------------------------------------------
# Boot image: a qcow2 of the generalized tree plus the kernel and initrd.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BootImage:
    base_qcow2: Path
    kernel: Path
    initrd: Path


@pytest.fixture(scope="session")
def boot_image(
    generalized_tree: GeneralizedTree, tmp_path_factory: pytest.TempPathFactory
) -> BootImage:
    require_guest_prerequisites("qemu-system-x86_64", "qemu-img", "genisoimage", "mkfs.ext4")
    assert generalized_tree.generalize.returncode == 0, generalized_tree.generalize.stdout
    work = tmp_path_factory.mktemp("boot")
    staging = work / "rootfs"
    copy_tree(generalized_tree.root, staging, hardlinks=True)
    # walinuxagent is masked in this test copy only. The image itself must keep
    # it enabled, since on Azure it reports readiness and runs extensions; under
    # qemu there is no wire server and the agent would retry for ever (and on
    # some versions exit non-zero), which says nothing about the image.
    mask = staging / "etc/systemd/system/walinuxagent.service"
    mask.unlink(missing_ok=True)
    mask.symlink_to("/dev/null")
    kernels = sorted((staging / "boot").glob("vmlinuz-*"))
    initrds = sorted((staging / "boot").glob("initrd.img-*"))
    assert kernels and initrds, "the image has no kernel or initrd in /boot"
    kernel, initrd = work / "vmlinuz", work / "initrd.img"
    shutil.copyfile(kernels[-1], kernel)
    shutil.copyfile(initrds[-1], initrd)
    raw = work / "root.raw"
    run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(staging), str(raw), "4G"], timeout=600)
    base = work / "base.qcow2"
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(base)], timeout=600)
    raw.unlink()
    shutil.rmtree(staging)
    return BootImage(base_qcow2=base, kernel=kernel, initrd=initrd)
