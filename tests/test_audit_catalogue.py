"""The audit's rule catalogue (scripts/linux/audit.sh; audit.ps1 holds the same table) and
its detectors on small trees, fast: no root, no Debian tree.

Each rule's regex is read by GNU grep -E on Linux and by .NET on Windows; here every rule
meets samples that must and must not match, through grep -E and through Python's re (the
regexes keep to the syntax the three read alike, which is checked too).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIT = REPO / "scripts" / "linux" / "audit.sh"


def catalogue() -> list[tuple[str, str, str, str, str]]:
    text = AUDIT.read_text().split("CATALOGUE=$(cat <<'RULES'\n", 1)[1].split("\nRULES\n")[0]
    rows = [tuple(line.split("\t")) for line in text.splitlines()]
    assert all(len(r) == 5 for r in rows), [r for r in rows if len(r) != 5]
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


RULES = {r[0]: r for r in catalogue()}

# rule id -> (lines it must find, lines it must not)
SAMPLES: dict[str, tuple[list[str], list[str]]] = {
    "private-key": (
        [
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        ],
        ["-----BEGIN CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----"],
    ),
    "putty-private-key": (["PuTTY-User-Key-File-3: ssh-ed25519"], ["see PuTTY-User-Key-File docs"]),
    "gnupg-private-key": (["Key: (protected-private-key (rsa (n #00"], ["private-key list"]),
    "aws-access-token": (["aws_access_key_id=AKIA454ML6LG4TJFCZ4K"], ["AKIA454ML6LG4TJFCZ4"]),
    "azure-ad-client-secret": (
        ["secret: aEk8Q~ZirLnqB0PRfMBH7_WY5-YQ1xOy1bAimCaX"],
        ["aEk8Q~short"],
    ),
    "azure-storage-key": (["AccountKey=" + "a" * 86 + "=="], ["AccountKey=short"]),
    "azure-sas-token": (
        ["?sv=2022-11-02&ss=b&sp=r&sig=IEEciXvC57vvtIy96VWFre5E32a8yB3fkAnqYYlAmEF%3D"],
        ["?sv=2022-11-02&ss=b&sp=r"],
    ),
    "github-token": (["token ghp_FoHQ4auVY7vsldcd1iFhwgBTmFeBO9sHfxnq"], ["ghp_short"]),
    "github-fine-grained-pat": (["github_pat_" + "A1" * 41], ["github_pat_short"]),
    "gitlab-pat": (["glpat-6fQ5AXTJrnMhKw5Vq7cf"], ["glpat-short"]),
    "npm-access-token": (["npm_5PUZqQMobzzw6M4NYOl6UNIIfW152CtE8R0K"], ["npm_install"]),
    "pypi-upload-token": (["pypi-AgEIcHlwaS5vcmc" + "x" * 60], ["pypi-AgEI"]),
    "slack-token": (["xoxb-626727899067-648694584748-7SqtvSBAxPlC"], ["xoxb-"]),
    "slack-app-token": (["xapp-1-A012BC3DEF4-1234567890123-abcdef0123"], ["xapp-x"]),
    "slack-webhook-url": (
        ["https://hooks.slack.com/services/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"],
        ["https://hooks.slack.com/services/"],
    ),
    "jwt": (
        ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijkl"],
        ["eyJhbGciOiJIUzI1NiJ9"],
    ),
    "gcp-api-key": (["AIzaT4-Lc4lVgnwamSi-Z0OAwDFzP_LVI60zif8"], ["AIzaShort"]),
    "stripe-access-token": (["sk_live_fIVb50756ehUGManB7QIsxBC"], ["sk_live_x"]),
    "sendgrid-api-token": (["SG." + "a" * 22 + "." + "b" * 43], ["SG.short"]),
    "twilio-api-key": (["SK" + "0123456789abcdef" * 2], ["SKIP"]),
    "vault-service-token": (["hvs." + "a" * 95], ["hvs.short"]),
    "hashicorp-tf-api-token": (["abcdefghij1234.atlasv1." + "x" * 64], ["atlasv1"]),
    "digitalocean-pat": (["dop_v1_" + "ab" * 32], ["dop_v1_x"]),
    "openai-api-key": (["sk-" + "a" * 20 + "T3BlbkFJ" + "b" * 20], ["sk-ant"]),
    "anthropic-api-key": (["sk-ant-api03-" + "a" * 93 + "AA"], ["sk-ant-api03-x"]),
    "huggingface-access-token": (["hf_" + "abcdefghij" * 3 + "abcd"], ["hf_short"]),
    "age-secret-key": (["AGE-SECRET-KEY-1" + "Q" * 58], ["AGE-SECRET-KEY-1"]),
    "databricks-api-token": (["dapi" + "0123456789abcdef" * 2], ["dapi"]),
    "grafana-service-account-token": (["glsa_" + "A" * 32 + "_0123abcd"], ["glsa_"]),
    "shopify-access-token": (["shpat_" + "0123456789abcdef" * 2], ["shpat_"]),
    "url-credentials": (
        ["url = https://deploy:s3cr3t@git.example.com/app.git", "amqp://guest:guest@mq:5672/"],
        ["https://git.example.com/app.git", "https://user:${TOKEN}@host/", "git@github.com:a/b"],
    ),
    "connection-string-password": (
        ["Server=db;Database=app;User Id=sa;Password=Passw0rd;"],
        ["Server=db;Database=app;Integrated Security=true;"],
    ),
    "xml-password": (
        ['<add key="ClearTextPassword" value="s3cr3t" />', "<password>hunter2</password>"],
        ['<add key="Username" value="deploy" />', "<password></password>"],
    ),
    "npmrc-auth": (
        ["//registry.npmjs.org/:_authToken=abc", "_auth = ZGVwbG95"],
        ["//registry.npmjs.org/:_authToken=${NPM_TOKEN}", "registry=https://r.example.com"],
    ),
    "keyword-assignment": (
        [
            "DB_PASSWORD=hunter2",
            "export API_TOKEN=abc123",
            "Environment=DB_PASSWORD=hunter2-prod",
            '{"password": "hunter2"}',
            "client_secret: s3cr3t-value",
            "psk=correct-horse-battery",
            "password = ab/cdefgh",
        ],
        [
            "PasswordAuthentication no",
            "passwd:         files",
            "passwd:amd64 (1:4.13)",
            "DB_PASSWORD=${DB_PASSWORD}",
            "token_ttl: 3600",
            "verify_token: true",
            "auth_url: https://login.example.com",
            "token_endpoint: https://login.example.com/token",
            "password_file=/run/secrets/db",
            "SECRET_KEY=",
            "pam_unix.so new_authtok_reqd=done",
            "psk.ko: kernel/drivers/psk.ko",
            "deploy ALL=(ALL) NOPASSWD: ALL",
        ],
    ),
}


def test_every_rule_has_samples() -> None:
    assert set(SAMPLES) == set(RULES)


def test_rules_keep_to_the_common_regex_syntax() -> None:
    """No PCRE or .NET-only syntax (grep -E would read it otherwise), no backslash escape
    inside brackets but a literal backslash, no inline flags."""
    for rule_id, _flags, _reason, regex, unless in RULES.values():
        for pattern in (regex, unless):
            assert not re.search(r"\(\?|\\[dDhHRNKQEz]|\\\\[sw]", pattern), rule_id
            for bracket in re.findall(r"\[\^?\]?[^]]*\]", pattern):
                assert re.sub(r"\\\\", "", bracket).count("\\") == 0, (rule_id, bracket)


def grep_matches(regex: str, flags: str, unless: str, lines: list[str], tmp: Path) -> list[bool]:
    """What audit.sh decides for each line: grep -o finds the matches, unless drops some."""
    results = []
    for line in lines:
        tmp.write_text(line + "\n")
        opts = ["-a", "-o", "-E"] + (["-i"] if flags == "i" else [])
        found = subprocess.run(
            ["grep", *opts, "-e", regex, str(tmp)], capture_output=True, text=True, check=False
        )
        assert found.returncode in (0, 1), found.stderr
        matches = found.stdout.splitlines()
        if unless != "-":
            matches = [m for m in matches if not re.search(unless, m, re.IGNORECASE)]
        results.append(bool(matches))
    return results


def python_matches(regex: str, flags: str, unless: str, lines: list[str]) -> list[bool]:
    compiled = re.compile(regex, re.IGNORECASE if flags == "i" else 0)
    results = []
    for line in lines:
        matches = [m.group(0) for m in compiled.finditer(line)]
        if unless != "-":
            matches = [m for m in matches if not re.search(unless, m, re.IGNORECASE)]
        results.append(bool(matches))
    return results


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_rule_samples(rule_id: str, tmp_path: Path) -> None:
    _, flags, _, regex, unless = RULES[rule_id]
    hits, misses = SAMPLES[rule_id]
    expected = [True] * len(hits) + [False] * len(misses)
    lines = hits + misses
    assert grep_matches(regex, flags, unless, lines, tmp_path / "sample") == expected
    assert python_matches(regex, flags, unless, lines) == expected


# --- the detectors that are not regexes, on small trees -----------------------------------


def audit(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(AUDIT), "--root", str(root), *args],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def findings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("audit: FINDING ")]


def put(root: Path, path: str, content: str | bytes) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content if isinstance(content, bytes) else content.encode())


def test_key_stores_are_found_by_their_first_bytes(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    root = tmp_path / "root"
    put(
        root,
        "/opt/a/no-extension",
        pkcs12.serialize_key_and_certificates(b"a", key, cert, None, serialization.NoEncryption()),
    )
    put(
        root,
        "/opt/a/key.bin",
        key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    put(
        root,
        "/opt/a/enc.bin",
        key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        ),
    )
    put(root, "/opt/a/cert.der", cert.public_bytes(der))
    put(
        root,
        "/opt/a/pub.der",
        key.public_key().public_bytes(der, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    result = audit(root)
    assert findings(result.stdout) == [
        "audit: FINDING /opt/a/enc.bin: private key (DER) [binary-key-store]",
        "audit: FINDING /opt/a/key.bin: private key (DER) [binary-key-store]",
        "audit: FINDING /opt/a/no-extension: PKCS#12/PFX key store [binary-key-store]",
    ]


def test_accounts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    put(root, "/etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/srv/app:/bin/sh\n")
    put(root, "/etc/group", "root:x:0:\nsudo:x:27:\napp:x:1001:\n")
    put(root, "/etc/shadow", "root:*:1::::::\napp:!$6$salt$hash:1::::::\nnobody::1::::::\n")
    put(root, "/etc/gshadow", "sudo:!::\napp:$6$s$h::\n")
    put(
        root,
        "/etc/sudoers",
        "Defaults env_reset\n# comment\nroot ALL=(ALL) ALL\n%sudo ALL=(ALL) ALL\n"
        "User_Alias OPS = app, gone\nOPS ALL=(ALL) ALL\n#1001 ALL=(ALL) ALL\n#2000 ALL=(ALL) ALL\n",
    )
    put(
        root,
        "/etc/sudoers.d/old",
        "ghost, app ALL=(ALL) \\\n  NOPASSWD: ALL\n%oldops ALL=(ALL) ALL\n",
    )
    put(root, "/etc/sudoers.d/skipped.bak", "ghost2 ALL=(ALL) ALL\n")
    put(root, "/srv/app/.ssh/authorized_keys", "# none\n")
    put(root, "/srv/app/keys/authorized_keys2", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA app\n")
    put(root, "/etc/ssh/sshd_config", "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u\n")
    put(root, "/etc/ssh/keys/app", "ssh-rsa AAAAB3NzaC1yc2E app\n")
    result = audit(root)
    assert findings(result.stdout) == [
        "audit: FINDING /etc/gshadow: password hash for group app [password-hash]",
        "audit: FINDING /etc/shadow: password hash for account app (locked, still crackable) "
        "[password-hash]",
        "audit: FINDING /etc/shadow: account nobody has an empty password (login without one) "
        "[password-hash]",
        "audit: FINDING /etc/ssh/keys/app: AuthorizedKeysFile: SSH login into every VM made "
        "from the image [authorized-keys]",
        "audit: FINDING /etc/sudoers: sudo rule for user gone, who does not exist [sudoers]",
        "audit: FINDING /etc/sudoers: sudo rule for user id 2000, which does not exist [sudoers]",
        "audit: FINDING /etc/sudoers.d/old: sudo rule for user ghost, who does not exist [sudoers]",
        "audit: FINDING /etc/sudoers.d/old: sudo rule for group oldops, which does not exist "
        "[sudoers]",
        "audit: FINDING /srv/app/keys/authorized_keys2: authorized_keys: SSH login into every "
        "VM made from the image [authorized-keys]",
    ]


@pytest.mark.parametrize(
    ("allowlist", "message"),
    [
        ("/etc/x", "allowlist entry '/etc/x' has no TAB between path and reason"),
        ("etc/x\tr", "allowlist path 'etc/x' is not absolute"),
        ("/etc/x\t ", "allowlist entry /etc/x has no reason"),
    ],
)
def test_a_bad_allowlist_is_a_usage_error(allowlist: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    result = audit(tmp_path / "root", env={"AUDIT_ALLOWLIST": allowlist})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"audit: error: {message}\n"


def test_directory_allowlist_and_file_allowlist(tmp_path: Path) -> None:
    root = tmp_path / "root"
    put(root, "/opt/app/a.env", "API_TOKEN=abcdef\n")
    put(root, "/opt/app/sub/b.env", "API_TOKEN=abcdef\n")
    put(root, "/opt/application/c.env", "API_TOKEN=abcdef\n")
    listed = tmp_path / "allow"
    listed.write_text("/opt/app/\tsample app, fake tokens\n")
    result = audit(root, "--allowlist", str(listed))
    assert result.returncode == 1
    assert findings(result.stdout) == [
        "audit: FINDING /opt/application/c.env: secret-like assignment [keyword-assignment]"
    ]
    assert result.stdout.count("audit: ALLOWED /opt/app/") == 2
