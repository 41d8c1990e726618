"""Fixtures for the guest tests: a Debian 12 root file system built with
debootstrap (cached per package list), provisioned with scripts/linux/provision,
dressed up as a used build VM, then generalized with scripts/linux/generalize.sh.

Everything here needs root and the host packages debootstrap, qemu-system-x86,
qemu-utils and genisoimage. Without them the tests skip, except in CI (CI=true),
where a missing prerequisite is a failure: CI installs them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
# The state of a used build VM, planted after provisioning: residue of the
# build that generalize.sh must remove, secrets it must not guess about that
# the audit must name (the build then fails), and content that must survive.
# ---------------------------------------------------------------------------

After = Literal["absent", "empty", "reset", "scrubbed", "named", "survives"]
"""absent/empty/reset: what generalize.sh leaves of the file; scrubbed: the file stays but
no longer contains `secret`; named: left for the final audit, which names it (the build
fails); survives: left byte for byte and never named."""

OPS_USER = "ops"
SERVICE_USER = "svc"
BUILD_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIAcUIS47SFVib3yJlqOwvcrX5PH+CxglMj9MWWZzgI2a"
OPS_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIA4bKDVCT1xpdoOQnaq3xNHe6/gFEh8sOUZTYG16h5Sh"
# A yescrypt hash (format only; no one knows its password).
ROOT_HASH = "$y$j9T$Pq5kN0e2Wm1lQ3v8Yr6tT.$QfZ0bX4k8yW7pD2nE5sV1hL9cR3mJ6gU0aT2oI4eK7B"
SERVICE_HASH = (
    "$6$bW9kQ2xpcGVy$4vX2mK8qL0pN5rT7yU1wE3zA6cB9dF2gH4jK7lM0nP3qR5sT8uV1wX4yZ7aB0cD3eF6gH9i"
    "J2kL5mN8oP1qR4"
)

AWS_KEY_ID = "AKIA454ML6LG4TJFCZ4K"
AWS_SECRET = "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"
AZURE_CLIENT_SECRET = "aEk8Q~ZirLnqB0PRfMBH7_WY5-YQ1xOy1bAimCaX"
AZURE_STORAGE_KEY = (
    "yMFSb4hBqlxJJLafBvv6Q9RxXTndfYUZx9K1GNNEgeyg1+lWIQd9JjbaCIi05fHFWkvQLuR5qREC8tnECJ9Ino=="
)
SAS_SIG = "IEEciXvC57vvtIy96VWFre5E32a8yB3fkAnqYYlAmEF"
GITHUB_PAT = "ghp_FoHQ4auVY7vsldcd1iFhwgBTmFeBO9sHfxnq"
GITLAB_PAT = "glpat-6fQ5AXTJrnMhKw5Vq7cf"
NPM_TOKEN = "npm_5PUZqQMobzzw6M4NYOl6UNIIfW152CtE8R0K"
PYPI_TOKEN = "pypi-AgEIcHlwaS5vcmcO58jb0w-o5pJEjFjtnCRz6YDieSGO5NvJZZ8gWB8EWcisUycL0xQ56ZAwr7p"
SLACK_WEBHOOK = "https://hooks.slack.com/services/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"
SLACK_BOT = "xoxb-626727899067-648694584748-7SqtvSBAxPlCoKawrYD5UvZD"
GCP_API_KEY = "AIzaT4-Lc4lVgnwamSi-Z0OAwDFzP_LVI60zif8"
STRIPE_KEY = "sk_live_fIVb50756ehUGManB7QIsxBC"
VAULT_TOKEN = (
    "hvs.YTdBkptf-N-PgZ3Cw0UabbRdsXooYbYMReQLhxM31QZzCMZtuOrYJ9NDE9SYXOaWUkMHR7JMpy72t3av"
    "BFZX06uvzYVMBpK"
)
AGE_KEY = "AGE-SECRET-KEY-1EV4S382EG4HMTEDTY4N7XQKRW3N4DETYCLD8EP8X0SUERVCQXSS346XUYZ"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

PEM_KEY = "private key (PEM or OpenSSH) [private-key]"
DER_KEY = "private key (DER) [binary-key-store]"
ASSIGNMENT = "secret-like assignment [keyword-assignment]"
HISTORY = "non-empty shell or REPL history [credential-file]"
TOKEN_CACHE = "token cache [credential-file]"
IDENTITY_MAC = "network configuration pinned to a MAC address [identity]"


@dataclass(frozen=True)
class Plant:
    path: str
    """Absolute path inside the image."""
    content: str | bytes | None
    """What to write; None when the image already has the file or a step edits it."""
    after: After
    findings: tuple[str, ...] = ()
    """The audit's exact reasons for this path: for 'named' plants what the final audit
    prints; for the others what it prints when the plant is left behind after all."""
    kind: str = ""
    """What the plant stands for (the issue's list): for reading the test ids."""
    secret: str | None = None
    """For 'scrubbed': the text that must be gone from the file."""
    extra: tuple[tuple[str, str], ...] = ()
    """Findings on other paths this plant causes (a credentials directory)."""


def _ssh_key(blob: str, comment: str) -> str:
    return f"ssh-ed25519 {blob} {comment}\n"


def _keys() -> dict[str, bytes]:
    """Key material made fresh for each run: PEM, OpenSSH, DER (PKCS#8, PKCS#1, SEC1),
    PKCS#12, and a certificate (public, must survive)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(rsa_key, hashes.SHA256())
    )
    enc = serialization.Encoding
    fmt = serialization.PrivateFormat
    none = serialization.NoEncryption()
    return {
        "pem_pkcs8": rsa_key.private_bytes(enc.PEM, fmt.PKCS8, none),
        "pem_encrypted": ec_key.private_bytes(
            enc.PEM, fmt.PKCS8, serialization.BestAvailableEncryption(b"build-only")
        ),
        "openssh": ed_key.private_bytes(enc.PEM, fmt.OpenSSH, none),
        "der_pkcs8": ed_key.private_bytes(enc.DER, fmt.PKCS8, none),
        "der_pkcs1": rsa_key.private_bytes(enc.DER, fmt.TraditionalOpenSSL, none),
        "der_sec1": ec_key.private_bytes(enc.DER, fmt.TraditionalOpenSSL, none),
        "pfx": pkcs12.serialize_key_and_certificates(
            b"app", rsa_key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass")
        ),
        "cert_pem": cert.public_bytes(enc.PEM),
        "cert_der": cert.public_bytes(enc.DER),
        "pub_der": rsa_key.public_key().public_bytes(
            enc.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


# Binary stores identified by their first bytes only (no Java or KeePass here to
# write real ones): the header of each format, then filler.
JKS = b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x03app" + bytes(64)
JCEKS = b"\xce\xce\xce\xce\x00\x00\x00\x02\x00\x00\x00\x01" + bytes(64)
KDBX = b"\x03\xd9\xa2\x9a\x67\xfb\x4b\xb5\x01\x00\x04\x00" + bytes(64)
KEYTAB = b"\x05\x02\x00\x00\x00\x3b\x00\x01\x00\x0bEXAMPLE.COM" + bytes(48)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(32)

KEY_PLANTS = {  # path -> key material name (bytes made by _keys at plant time)
    "/opt/app/tls/server.key": "pem_pkcs8",
    "/etc/ssl/private/app.key": "pem_encrypted",
    "/opt/app/deploy_key": "openssh",
    "/opt/app/keys/signing.der": "der_pkcs8",
    "/srv/legacy/rsa.bin": "der_pkcs1",
    "/srv/legacy/ec.bin": "der_sec1",
    "/opt/app/certs/app.pfx": "pfx",
    "/var/lib/app/bundle.p12.bak": "pfx",
    "/etc/ssl/certs/app.example.com.pem": "cert_pem",
    "/etc/ssl/certs/app.example.com.der": "cert_der",
    "/opt/app/keys/signing.pub.der": "pub_der",
}

PLANTS: tuple[Plant, ...] = (
    # --- Build users: the Azure admin (named through BUILD_USERS) and one marked. ------
    Plant(
        f"/home/{BUILD_USER}/.ssh/id_ed25519", FAKE_PRIVATE_KEY, "absent", (PEM_KEY,), "build user"
    ),
    Plant(
        f"/home/{BUILD_USER}/.ssh/authorized_keys",
        _ssh_key(BUILD_KEY, "builder@ci"),
        "absent",
        ("authorized_keys: SSH login into every VM made from the image [authorized-keys]",),
        "build user",
    ),
    Plant(f"/home/{BUILD_USER}/.bash_history", "az login\n", "absent", (HISTORY,), "build user"),
    Plant(f"/home/{MARKED_BUILD_USER}/.imagefactory-build-user", "", "absent", (), "build user"),
    Plant(
        f"/home/{MARKED_BUILD_USER}/.aws/credentials",
        f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n",
        "absent",
        ("AWS access key ID [aws-access-token]", "AWS credentials [credential-file]", ASSIGNMENT),
        "build user",
    ),
    Plant(f"/var/mail/{BUILD_USER}", "From: cron\n", "absent", (), "build user"),
    Plant(f"/var/spool/cron/crontabs/{BUILD_USER}", "* * * * * true\n", "absent", (), "build user"),
    Plant(
        "/etc/sudoers.d/90-cloud-init-users",
        f"{BUILD_USER} ALL=(ALL) NOPASSWD:ALL\n",
        "absent",
        (f"sudo rule for user {BUILD_USER}, who does not exist [sudoers]",),
        "accounts",
    ),
    Plant(
        "/etc/sudoers.d/waagent",
        f"{BUILD_USER} ALL=(ALL) ALL\n",
        "absent",
        (f"sudo rule for user {BUILD_USER}, who does not exist [sudoers]",),
        "accounts",
    ),
    Plant(
        "/etc/sudoers.d/builder",
        "# written by 10-base for the build\n"
        f"{BUILD_USER},{MARKED_BUILD_USER} ALL=(ALL) NOPASSWD:ALL\n",
        "absent",
        (
            f"sudo rule for user {BUILD_USER}, who does not exist [sudoers]",
            f"sudo rule for user {MARKED_BUILD_USER}, who does not exist [sudoers]",
        ),
        "accounts",
    ),
    # The build admin's key copied to another account: SSH into every clone.
    Plant(
        f"/home/{OPS_USER}/.ssh/authorized_keys",
        _ssh_key(BUILD_KEY, "builder@ci"),
        "absent",
        ("authorized_keys: SSH login into every VM made from the image [authorized-keys]",),
        "accounts",
    ),
    Plant(
        "/srv/backup/.ssh/authorized_keys",
        _ssh_key(OPS_KEY, "ops@example.com") + _ssh_key(BUILD_KEY, "builder@ci"),
        "named",
        ("authorized_keys: SSH login into every VM made from the image [authorized-keys]",),
        "accounts",
        secret=BUILD_KEY,
    ),
    # --- Root's credentials, token caches and histories. ------------------------------
    Plant("/root/.ssh/id_rsa", FAKE_RSA_KEY, "absent", (PEM_KEY,), "tool credentials"),
    Plant(
        "/root/.ssh/authorized_keys",
        'no-port-forwarding,command="echo login as builder" ' + _ssh_key(BUILD_KEY, "builder"),
        "absent",
        ("authorized_keys: SSH login into every VM made from the image [authorized-keys]",),
        "accounts",
    ),
    Plant(
        "/root/.azure/msal_token_cache.json",
        '{"AccessToken": {}}\n',
        "absent",
        (TOKEN_CACHE,),
        "tool credentials",
        extra=(("/root/.azure", "Azure CLI credentials directory [credential-file]"),),
    ),
    Plant(
        "/root/.azure/azureProfile.json",
        '{"subscriptions": []}\n',
        "absent",
        (),
        "tool credentials",
    ),
    Plant("/root/.azure/accessTokens.json", "[]\n", "absent", (TOKEN_CACHE,), "tool credentials"),
    Plant(
        "/root/.aws/credentials",
        f"[default]\naws_access_key_id = {AWS_KEY_ID}\n",
        "absent",
        ("AWS access key ID [aws-access-token]", "AWS credentials [credential-file]", ASSIGNMENT),
        "tool credentials",
    ),
    Plant(
        "/root/.config/gcloud/credentials.db",
        "sqlite",
        "absent",
        (TOKEN_CACHE,),
        "tool credentials",
        extra=(("/root/.config/gcloud", "Google Cloud credentials directory [credential-file]"),),
    ),
    Plant(
        "/root/.config/gcloud/access_tokens.db",
        "sqlite",
        "absent",
        (TOKEN_CACHE,),
        "tool credentials",
    ),
    Plant(
        "/root/.docker/config.json",
        '{"auths": {"registry.example.com": {"auth": "ZGVwbG95OnMzY3IzdA=="}}}\n',
        "absent",
        ("Docker registry credentials [credential-file]",),
        "tool credentials",
    ),
    Plant(
        "/root/.npmrc",
        f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n",
        "absent",
        (
            "npm access token [npm-access-token]",
            "npm registry credentials (.npmrc) [npmrc-auth]",
            ASSIGNMENT,
        ),
        "tool credentials",
    ),
    Plant(
        "/root/.pypirc",
        f"[pypi]\nusername = __token__\npassword = {PYPI_TOKEN}\n",
        "absent",
        ("PyPI upload token [pypi-upload-token]", ASSIGNMENT),
        "tool credentials",
    ),
    Plant(
        "/root/.config/gh/hosts.yml",
        f"github.com:\n    oauth_token: {GITHUB_PAT}\n    user: builder\n",
        "absent",
        ("GitHub token [github-token]", ASSIGNMENT, "tool credentials [credential-file]"),
        "tool credentials",
    ),
    Plant(
        "/root/.vault-token",
        VAULT_TOKEN,
        "absent",
        ("HashiCorp Vault token [credential-file]", "HashiCorp Vault token [vault-service-token]"),
        "tool credentials",
    ),
    Plant(
        "/root/.git-credentials",
        f"https://builder:{GITHUB_PAT}@github.com\n",
        "absent",
        (
            "GitHub token [github-token]",
            "credentials in a URL (user:secret@host) [url-credentials]",
            "git credentials [credential-file]",
        ),
        "tool credentials",
    ),
    Plant(
        "/root/.bash_history",
        f"export ARM_CLIENT_SECRET={AZURE_CLIENT_SECRET}\n",
        "absent",
        ("Azure AD client secret [azure-ad-client-secret]", HISTORY, ASSIGNMENT),
        "tool credentials",
    ),
    Plant("/root/.python_history", "import os\n", "absent", (HISTORY,), "tool credentials"),
    Plant("/root/.lesshst", ".less-history-file:\n", "absent", (HISTORY,), "tool credentials"),
    Plant("/root/.env", "ARM_CLIENT_SECRET=s3cr3t-value\n", "absent", (ASSIGNMENT,), "app secrets"),
    Plant(f"/home/{OPS_USER}/.bash_history", "sudo -i\n", "absent", (HISTORY,), "tool credentials"),
    Plant(
        f"/home/{OPS_USER}/.docker/config.json",
        '{"auths": {"ghcr.io": {"auth": "b3BzOnRva2Vu"}}}\n',
        "absent",
        ("Docker registry credentials [credential-file]",),
        "tool credentials",
    ),
    Plant("/opt/app/.mysql_history", "SELECT 1;\n", "absent", (HISTORY,), "tool credentials"),
    Plant(
        "/var/lib/app/msal_token_cache.bin", "cache", "absent", (TOKEN_CACHE,), "tool credentials"
    ),
    # --- Build-only files. -------------------------------------------------------------
    Plant("/tmp/deploy-key.pem", FAKE_RSA_KEY, "absent", (PEM_KEY,), "build files"),
    Plant("/tmp/build/app.env", "DB_PASSWORD=hunter2\n", "absent", (ASSIGNMENT,), "build files"),
    Plant("/var/tmp/download.partial", "x", "absent", (), "build files"),
    # --- Accounts and package-manager secrets. ------------------------------------------
    Plant(
        "/etc/shadow",
        None,
        "scrubbed",
        ("password hash for account root [password-hash]",),
        "accounts",
        secret=ROOT_HASH,
    ),
    Plant(
        "/var/cache/debconf/passwords.dat",
        "Name: mysql-server/root_password\nTemplate: mysql-server/root_password\n"
        "Value: s3cr3t-mysql-root\nOwners: mysql-server-8.0\nFlags: seen\n\n",
        "scrubbed",
        ("debconf password answers [credential-file]",),
        "package-manager secrets",
        secret="s3cr3t-mysql-root",
    ),
    # --- Machine identity. -------------------------------------------------------------
    Plant("/etc/machine-id", None, "empty", ("machine-id is not empty [identity]",), "identity"),
    Plant(
        "/var/lib/dbus/machine-id",
        None,
        "absent",
        ("D-Bus machine-id present [identity]",),
        "identity",
    ),
    Plant(
        "/etc/ssh/ssh_host_ed25519_key",
        None,
        "absent",
        (PEM_KEY, "SSH host key present [identity]"),
        "identity",
    ),
    Plant(
        "/etc/ssh/ssh_host_rsa_key.pub",
        None,
        "absent",
        ("SSH host key present [identity]",),
        "identity",
    ),
    Plant(
        "/var/lib/systemd/random-seed",
        "seed",
        "absent",
        ("systemd random seed present [identity]",),
        "identity",
    ),
    Plant(
        "/var/lib/systemd/credential.secret",
        "secret",
        "absent",
        ("systemd credential secret present [identity]",),
        "identity",
    ),
    Plant(
        "/etc/udev/rules.d/70-persistent-net.rules",
        'SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="00:0d:3a:6e:21:4f", '
        'NAME="eth0"\n',
        "absent",
        (IDENTITY_MAC,),
        "identity",
    ),
    # --- Account database backups (these also name the build users). ------------------
    Plant("/etc/shadow-", None, "absent", (), "accounts"),
    Plant("/etc/gshadow-", None, "absent", (), "accounts"),
    Plant("/etc/passwd-", None, "absent", (), "accounts"),
    Plant("/etc/group-", None, "absent", (), "accounts"),
    Plant("/var/backups/shadow.bak", "builder:$6$x:19000:0:99999:7:::\n", "absent", (), "accounts"),
    # --- Network and cloud-init state. -------------------------------------------------
    Plant(
        "/var/lib/dhcp/dhclient.eth0.leases",
        "lease { fixed-address 10.0.0.4; }\n",
        "absent",
        (),
        "identity",
    ),
    Plant(
        "/var/lib/cloud/instances/builder-iid/user-data.txt",
        "#cloud-config\n",
        "absent",
        (),
        "identity",
        extra=(
            (
                "/var/lib/cloud/instances/builder-iid",
                "cloud provisioning state of the builder [identity]",
            ),
        ),
    ),
    Plant(
        "/var/lib/cloud/seed/nocloud-net/meta-data",
        "instance-id: builder-iid\n",
        "absent",
        (),
        "identity",
    ),
    Plant("/var/log/cloud-init.log", "cloud-init ran\n", "absent", (), "logs"),
    Plant("/var/log/cloud-init-output.log", "cloud-init output\n", "absent", (), "logs"),
    Plant("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n", "absent", (), "identity"),
    Plant("/etc/network/interfaces.d/50-cloud-init", "auto eth0\n", "absent", (), "identity"),
    Plant("/etc/systemd/network/10-cloud-init-eth0.network", "[Match]\n", "absent", (), "identity"),
    Plant(
        "/etc/ssh/sshd_config.d/50-cloud-init.conf",
        "PasswordAuthentication yes\n",
        "absent",
        (),
        "identity",
    ),
    # --- Azure agent state; its transport key is a private key. ------------------------
    Plant(
        "/var/lib/waagent/ovf-env.xml",
        "<Environment/>\n",
        "absent",
        ("cloud provisioning state of the builder [identity]",),
        "identity",
    ),
    Plant("/var/lib/waagent/TransportPrivate.pem", FAKE_RSA_KEY, "absent", (PEM_KEY,), "identity"),
    Plant("/var/lib/waagent/history/2024-01-01.zip", "zip", "absent", (), "identity"),
    # --- Logs: live ones truncated, rotated ones and the journal deleted. --------------
    Plant("/var/log/waagent.log", "provisioned builder\n", "empty", (), "logs"),
    Plant("/var/log/syslog", "builder syslog\n", "empty", (), "logs"),
    Plant("/var/log/syslog.1", "older\n", "absent", (), "logs"),
    Plant("/var/log/auth.log.2.gz", "gz", "absent", (), "logs"),
    Plant(
        "/var/log/journal/0123456789abcdef0123456789abcdef/system.journal",
        "j",
        "absent",
        (),
        "logs",
    ),
    # --- Host names. -------------------------------------------------------------------
    Plant(
        "/etc/hosts",
        "127.0.0.1 localhost\n10.0.0.4 imagefactory-builder\n",
        "reset",
        (),
        "identity",
    ),
    Plant("/etc/hostname", "imagefactory-builder\n", "reset", (), "identity"),
    # --- What generalization must not guess about: the final audit names it. -----------
    Plant("/opt/app/tls/server.key", None, "named", (PEM_KEY,), "private keys"),
    Plant("/etc/ssl/private/app.key", None, "named", (PEM_KEY,), "private keys"),
    Plant("/opt/app/deploy_key", None, "named", (PEM_KEY,), "private keys"),
    Plant("/opt/app/keys/signing.der", None, "named", (DER_KEY,), "binary key stores"),
    Plant("/srv/legacy/rsa.bin", None, "named", (DER_KEY,), "binary key stores"),
    Plant("/srv/legacy/ec.bin", None, "named", (DER_KEY,), "binary key stores"),
    Plant(
        "/opt/app/certs/app.pfx",
        None,
        "named",
        ("PKCS#12/PFX key store [binary-key-store]",),
        "binary key stores",
    ),
    Plant(
        "/var/lib/app/bundle.p12.bak",
        None,
        "named",
        ("PKCS#12/PFX key store [binary-key-store]",),
        "binary key stores",
    ),
    Plant(
        "/opt/app/keystore.jks",
        JKS,
        "named",
        ("Java key store (JKS) [binary-key-store]",),
        "binary key stores",
    ),
    Plant(
        "/opt/app/keystore.jceks",
        JCEKS,
        "named",
        ("Java key store (JCEKS) [binary-key-store]",),
        "binary key stores",
    ),
    Plant(
        "/opt/app/passwords.kdbx",
        KDBX,
        "named",
        ("KeePass password database [binary-key-store]",),
        "binary key stores",
    ),
    Plant("/etc/krb5.keytab", KEYTAB, "named", ("Kerberos keytab [binary-key-store]",), "identity"),
    Plant(
        "/opt/app/ssh/legacy.ppk",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: legacy\n",
        "named",
        ("private key (PuTTY) [putty-private-key]",),
        "private keys",
    ),
    Plant(
        "/etc/apt/auth.conf.d/private.conf",
        "machine apt.example.com\nlogin deploy\npassword s3cr3t-apt-pass\n",
        "named",
        ("netrc-style credentials (machine/login/password) [credential-file]",),
        "tool credentials",
    ),
    Plant(
        f"/home/{OPS_USER}/.npmrc",
        f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n",
        "named",
        (
            "npm access token [npm-access-token]",
            "npm registry credentials (.npmrc) [npmrc-auth]",
            ASSIGNMENT,
        ),
        "tool credentials",
    ),
    Plant(
        "/etc/environment",
        'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
        "DB_PASSWORD=Tr0ub4dor-prod\n",
        "named",
        (ASSIGNMENT,),
        "secrets outside .env",
    ),
    Plant(
        "/etc/profile.d/app.sh",
        f'export API_TOKEN="{GITHUB_PAT}"\n',
        "named",
        ("GitHub token [github-token]", ASSIGNMENT),
        "secrets outside .env",
    ),
    Plant(
        "/etc/systemd/system/app.service",
        "[Service]\nEnvironment=DB_PASSWORD=hunter2-prod\nExecStart=/opt/app/run\n",
        "named",
        (ASSIGNMENT,),
        "secrets outside .env",
    ),
    Plant(
        "/opt/app/.git/config",
        f'[remote "origin"]\n\turl = https://deploy:{GITLAB_PAT}@gitlab.example.com/app.git\n',
        "named",
        ("GitLab token [gitlab-pat]", "credentials in a URL (user:secret@host) [url-credentials]"),
        "credentials in URLs",
    ),
    Plant(
        "/etc/pip.conf",
        "[global]\nindex-url = https://build:pipS3cret@pypi.example.com/simple\n",
        "named",
        ("credentials in a URL (user:secret@host) [url-credentials]",),
        "credentials in URLs",
    ),
    Plant(
        "/opt/app/.env.production",
        f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n",
        "named",
        ("AWS access key ID [aws-access-token]", ASSIGNMENT),
        "app secrets",
    ),
    Plant(
        "/etc/app/azure.conf",
        f"AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000\nAZURE_CLIENT_SECRET={AZURE_CLIENT_SECRET}\n",
        "named",
        ("Azure AD client secret [azure-ad-client-secret]", ASSIGNMENT),
        "app secrets",
    ),
    Plant(
        "/opt/app/appsettings.json",
        '{"Storage": "DefaultEndpointsProtocol=https;AccountName=appdata;AccountKey='
        + AZURE_STORAGE_KEY
        + ';EndpointSuffix=core.windows.net"}\n',
        "named",
        ("Azure storage or Service Bus key [azure-storage-key]", ASSIGNMENT),
        "connection strings",
    ),
    Plant(
        "/etc/app/backup.conf",
        "BACKUP_URL=https://appdata.blob.core.windows.net/backups?sv=2022-11-02&ss=b&srt=co"
        f"&sp=rwl&se=2027-01-01T00:00:00Z&sig={SAS_SIG}%3D\n",
        "named",
        ("Azure shared access signature [azure-sas-token]",),
        "connection strings",
    ),
    Plant(
        "/opt/app/db.ini",
        "[db]\nconn = Server=db.internal;Database=app;User Id=app;Password=Passw0rd-prod;\n",
        "named",
        ("connection string with a password [connection-string-password]", ASSIGNMENT),
        "connection strings",
    ),
    Plant(
        "/opt/app/config/settings.json",
        '{"db": {"host": "db.internal", "password": "hunter2-json"}}\n',
        "named",
        (ASSIGNMENT,),
        "app secrets",
    ),
    Plant(
        "/opt/app/config/app.yaml",
        f"stripe:\n  api_key: {STRIPE_KEY}\n",
        "named",
        ("Stripe key [stripe-access-token]", ASSIGNMENT),
        "app secrets",
    ),
    Plant(
        "/usr/local/bin/notify",
        f'#!/bin/sh\ncurl -X POST -d "$1" {SLACK_WEBHOOK}\n',
        "named",
        ("Slack webhook URL [slack-webhook-url]",),
        "app secrets",
    ),
    Plant(
        "/var/lib/app/session.json",
        f'{{"bearer": "{JWT}"}}\n',
        "named",
        ("JSON Web Token [jwt]",),
        "app secrets",
    ),
    Plant(
        "/etc/app/maps.conf",
        f"MAPS_KEY={GCP_API_KEY}\n",
        "named",
        ("Google API key [gcp-api-key]",),
        "app secrets",
    ),
    Plant(
        "/etc/app/vault.hcl",
        f'vault {{\n  address = "https://vault.internal:8200"\n  token = "{VAULT_TOKEN}"\n}}\n',
        "named",
        ("HashiCorp Vault token [vault-service-token]", ASSIGNMENT),
        "app secrets",
    ),
    Plant(
        "/etc/app/age.key",
        f"# created: 2026-01-01\n{AGE_KEY}\n",
        "named",
        ("age secret key [age-secret-key]",),
        "private keys",
    ),
    Plant(
        "/opt/app/bot.cfg",
        f"[slack]\nbot = {SLACK_BOT}\n",
        "named",
        ("Slack token [slack-token]",),
        "app secrets",
    ),
    Plant(
        "/etc/NetworkManager/system-connections/office.nmconnection",
        "[wifi-security]\nkey-mgmt=wpa-psk\npsk=correct-horse-battery\n",
        "named",
        (ASSIGNMENT,),
        "app secrets",
    ),
    Plant(
        "/etc/ppp/chap-secrets",
        "# client server secret IP\nuplink * s3cr3t-chap *\n",
        "named",
        ("secrets file [credential-file]",),
        "tool credentials",
    ),
    Plant(
        "/etc/shadow",
        None,
        "named",
        (f"password hash for account {SERVICE_USER} [password-hash]",),
        "accounts",
    ),
    Plant(
        "/etc/sudoers.d/legacy",
        "olddeploy ALL=(ALL) NOPASSWD: /usr/bin/systemctl\n%oldadmins ALL=(ALL) ALL\n",
        "named",
        (
            "sudo rule for group oldadmins, which does not exist [sudoers]",
            "sudo rule for user olddeploy, who does not exist [sudoers]",
        ),
        "accounts",
    ),
    Plant(
        "/etc/systemd/network/10-eth0.link",
        "[Match]\nMACAddress=00:0d:3a:6e:21:4f\n\n[Link]\nName=eth0\n",
        "named",
        (IDENTITY_MAC,),
        "identity",
    ),
    # --- What must survive, untouched and never named. ---------------------------------
    Plant("/etc/ssl/certs/app.example.com.pem", None, "survives", (), "public material"),
    Plant("/etc/ssl/certs/app.example.com.der", None, "survives", (), "public material"),
    Plant("/opt/app/keys/signing.pub.der", None, "survives", (), "public material"),
    Plant(
        "/opt/app/keys/deploy.pub",
        _ssh_key(OPS_KEY, "ops@example.com"),
        "survives",
        (),
        "public material",
    ),
    Plant(
        "/etc/ssh/ssh_known_hosts",
        "github.com " + _ssh_key(OPS_KEY, "").strip() + "\n",
        "survives",
        (),
        "public material",
    ),
    Plant(
        "/etc/apt/sources.list.d/app.list",
        "deb [signed-by=/usr/share/keyrings/app-archive-keyring.gpg] "
        "https://apt.example.com stable main\n",
        "survives",
        (),
        "packages",
    ),
    Plant(
        "/usr/share/keyrings/app-archive-keyring.gpg",
        b"\x99\x01\x0d\x04" + bytes(range(256)) * 2,
        "survives",
        (),
        "public material",
    ),
    Plant(
        "/opt/app/config/app.defaults.yaml",
        "password_min_length: 12\ntoken_ttl: 3600\nauth_url: https://login.example.com/oauth2\n"
        "session_cookie_secure: true\nverify_token: true\n",
        "survives",
        (),
        "app config",
    ),
    Plant(
        "/opt/app/.env.example",
        "DB_PASSWORD=${DB_PASSWORD}\nAPI_TOKEN=<your token>\nSECRET_KEY=\n",
        "survives",
        (),
        "app config",
    ),
    Plant(
        "/opt/app/README.md",
        "Set the database password with `app set-password`; tokens come from the vault.\n",
        "survives",
        (),
        "app config",
    ),
    Plant(
        f"/etc/sudoers.d/{OPS_USER}",
        f"{OPS_USER} ALL=(root) NOPASSWD: /usr/bin/systemctl restart app\n",
        "survives",
        (),
        "accounts",
    ),
    Plant(
        "/etc/systemd/network/20-wired.network",
        "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n",
        "survives",
        (),
        "identity",
    ),
    Plant("/opt/app/static/logo.png", PNG, "survives", (), "app content"),
    Plant(
        "/opt/app/run",
        "#!/bin/sh\nexec /opt/app/bin/server --password-file /run/secrets/db\n",
        "survives",
        (),
        "app content",
    ),
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


def _set_password_hash(root: Path, user: str, crypt: str) -> None:
    shadow = root / "etc/shadow"
    lines = []
    for line in shadow.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            fields[1] = crypt
        lines.append(":".join(fields))
    text = "\n".join(lines) + "\n"
    shadow.unlink()
    shadow.write_text(text)
    shadow.chmod(0o640)


def plant_used_vm_state(root: Path, *, named: bool) -> dict[str, bytes]:
    """Makes root look like a build VM after provisioning; returns each plant's bytes.
    `named`: also plant what the final audit must name (the build then fails)."""
    print(f"planting a used build VM's state in {root} (named items: {named})", flush=True)
    run_in_chroot(root, ["useradd", "-m", "-u", "1000", "-s", "/bin/bash", BUILD_USER])
    run_in_chroot(root, ["usermod", "-aG", "sudo,adm", BUILD_USER])
    run_in_chroot(root, ["useradd", "-m", "-u", "1001", "-s", "/bin/bash", MARKED_BUILD_USER])
    run_in_chroot(root, ["useradd", "-m", "-u", "1002", "-s", "/bin/bash", OPS_USER])
    run_in_chroot(
        root, ["useradd", "-M", "-r", "-d", "/srv/backup", "-s", "/bin/sh", "backup-agent"]
    )
    _set_password_hash(root, "root", ROOT_HASH)
    if named:
        run_in_chroot(
            root, ["useradd", "-M", "-u", "1003", "-s", "/usr/sbin/nologin", SERVICE_USER]
        )
        _set_password_hash(root, SERVICE_USER, SERVICE_HASH)
    keys = _keys()
    for plant in PLANTS:
        if plant.after == "named" and not named:
            continue
        content = plant.content
        if content is None and plant.path in KEY_PLANTS:
            content = keys[KEY_PLANTS[plant.path]]
        if content is not None:
            write_plant(
                root, plant.path, content if isinstance(content, bytes) else content.encode()
            )
    for user, uid in ((BUILD_USER, 1000), (MARKED_BUILD_USER, 1001), (OPS_USER, 1002)):
        for path in (root / "home" / user).rglob("*"):
            os.lchown(path, uid, uid)
    snapshot = {}
    for plant in PLANTS:
        if plant.after == "named" and not named:
            continue
        target = root / plant.path.lstrip("/")
        assert target.is_file(), f"plant {plant.path} missing before generalization"
        snapshot[plant.path] = target.read_bytes()
    return snapshot


# ---------------------------------------------------------------------------
# The generalized trees, shared by the chroot and the boot tests: one with only
# what generalization removes (and what must survive), whose audit is clean;
# one with everything, whose audit names what generalization must not guess.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    machine_id: str
    dbus_machine_id: str
    host_key_fingerprints: frozenset[str]


@dataclass(frozen=True)
class Generalized:
    root: Path
    plants: dict[str, bytes]
    pre_audit: subprocess.CompletedProcess[str]
    """audit.sh --pre-generalize on the tree before generalize.sh ran."""
    generalize: subprocess.CompletedProcess[str]


@dataclass(frozen=True)
class GeneralizedTree:
    root: Path
    builder: Builder
    plants: dict[str, bytes]
    provision_output: str
    pre_audit: subprocess.CompletedProcess[str]
    generalize: subprocess.CompletedProcess[str]
    host_name_before: str
    host_name_after: str
    dirty: Generalized
    """The same build with the 'named' plants too."""


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


def audit_root(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    print(f"audit.sh --root {root} {' '.join(args)}", flush=True)
    return run(
        ["bash", str(LINUX_SCRIPTS / "audit.sh"), "--root", str(root), *args],
        env=host_env(BUILD_USERS=BUILD_USER, **env),
        check=False,
    )


def generalize_root(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    print(f"generalize.sh --root {root}", flush=True)
    return run(
        ["unshare", "--uts", "bash", str(LINUX_SCRIPTS / "generalize.sh"), "--root", str(root)],
        env=host_env(BUILD_USERS=BUILD_USER, **env),
        check=False,
    )


@pytest.fixture(scope="session")
def generalized_tree(tmp_path_factory: pytest.TempPathFactory) -> GeneralizedTree:
    require_guest_prerequisites("debootstrap", "unshare", "chroot", "ssh-keygen")
    print("guest tests: building or reusing the cached Debian tree", flush=True)
    base = cached_base_tree()
    work = tmp_path_factory.mktemp("chroot")
    root = work / "rootfs"
    copy_tree(base, root)
    with chroot_mounts(root):
        print("provisioning with scripts/linux/provision", flush=True)
        provision_output = provision(root)
    # The dirty twin starts from the same provisioned tree.
    dirty_root = work / "rootfs-dirty"
    copy_tree(root, dirty_root)
    with chroot_mounts(root):
        plants = plant_used_vm_state(root, named=False)
    with chroot_mounts(dirty_root):
        dirty_plants = plant_used_vm_state(dirty_root, named=True)
    builder = Builder(
        machine_id=(root / "etc/machine-id").read_text().strip(),
        dbus_machine_id=(root / "var/lib/dbus/machine-id").read_text().strip(),
        host_key_fingerprints=host_key_fingerprints(root),
    )
    # A build-harness helper, not part of the image.
    set_policy_rc(root, deny_services=False)
    set_policy_rc(dirty_root, deny_services=False)
    pre_audit = audit_root(root, "--pre-generalize")
    dirty_pre_audit = audit_root(dirty_root, "--pre-generalize")
    host_name_before = socket.gethostname()
    generalize = generalize_root(root)
    dirty = Generalized(dirty_root, dirty_plants, dirty_pre_audit, generalize_root(dirty_root))
    return GeneralizedTree(
        root=root,
        builder=builder,
        plants=plants,
        provision_output=provision_output,
        pre_audit=pre_audit,
        generalize=generalize,
        host_name_before=host_name_before,
        host_name_after=socket.gethostname(),
        dirty=dirty,
    )


# ---------------------------------------------------------------------------
# Boot image: a qcow2 of the generalized tree plus the kernel and initrd.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BootImage:
    base_qcow2: Path
    kernel: Path
    initrd: Path
    broken_qcow2: Path
    """The same image with the builder's machine-id left in, as a careless capture would
    ship it (file time: the build's), for the validation scripts to reject."""


def leave_builder_machine_id(raw: Path, machine_id: str, mtime: int, work: Path) -> None:
    """Writes the builder's machine-id into the ext4 image `raw`, dated `mtime`."""
    source = work / "builder-machine-id"
    source.write_text(machine_id + "\n")
    script = work / "debugfs.cmd"
    script.write_text(
        "rm /etc/machine-id\n"
        f"write {source} /etc/machine-id\n"
        "set_inode_field /etc/machine-id mode 0100444\n"
        f"set_inode_field /etc/machine-id mtime @{mtime}\n"
        f"set_inode_field /etc/machine-id ctime @{mtime}\n"
    )
    run(["debugfs", "-w", "-f", str(script), str(raw)])
    source.unlink()


@pytest.fixture(scope="session")
def boot_image(
    generalized_tree: GeneralizedTree, tmp_path_factory: pytest.TempPathFactory
) -> BootImage:
    require_guest_prerequisites(
        "qemu-system-x86_64", "qemu-img", "genisoimage", "mkfs.ext4", "debugfs"
    )
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
    # The broken twin: same blocks, one file changed in place.
    built_at = int((generalized_tree.root / "etc/image-manifest.json").stat().st_mtime)
    leave_builder_machine_id(raw, generalized_tree.builder.machine_id, built_at, work)
    broken = work / "broken.qcow2"
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(broken)], timeout=600)
    raw.unlink()
    shutil.rmtree(staging)
    return BootImage(base_qcow2=base, kernel=kernel, initrd=initrd, broken_qcow2=broken)
