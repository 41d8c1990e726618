"""imagefactory.audit: the allowlist in stack config, its errors, and what the scripts get."""

from __future__ import annotations

from typing import Any

import pytest

from imagefactory import audit, scripts
from imagefactory.audit import Audit, AuditConfigError

KEY = "imagefactory:audit.allowlist"


def test_entries_parse_and_split_by_os() -> None:
    parsed = audit.load(
        {
            "allowlist": [
                {"path": "/etc/ssl/private/intranet.key", "reason": "intranet TLS, per release"},
                {"path": "C:\\inetpub\\app\\app.pfx", "reason": "IIS binding certificate"},
                {"path": "/opt/vendor/", "reason": "vendor licence keys"},
            ]
        }
    )
    assert [e.path for e in parsed.for_os("linux")] == [
        "/etc/ssl/private/intranet.key",
        "/opt/vendor/",
    ]
    assert [e.path for e in parsed.for_os("windows")] == ["C:\\inetpub\\app\\app.pfx"]
    assert audit.allowlist_env(parsed.for_os("linux")) == (
        "/etc/ssl/private/intranet.key\tintranet TLS, per release\n"
        "/opt/vendor/\tvendor licence keys"
    )


def test_no_config_means_no_allowlist() -> None:
    assert audit.load(None) == Audit()
    assert audit.load({}).allowlist == ()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            {"path": "etc/app.key", "reason": "r"},
            f"{KEY}[0].path: 'etc/app.key' is not an absolute path; write it as the image sees "
            "it, e.g. '/etc/ssl/private/app.key' (Linux) or 'C:\\inetpub\\app\\app.pfx' (Windows)",
        ),
        (
            {"path": "/etc/ssl/private/*.key", "reason": "r"},
            f"{KEY}[0].path: '/etc/ssl/private/*.key' has a wildcard; list each file, or a "
            "directory ending in '/' for everything below it",
        ),
        (
            {"path": "/opt/app/../etc/shadow", "reason": "r"},
            f"{KEY}[0].path: '/opt/app/../etc/shadow' is not a normalized path below the root; "
            "no '.', '..' or empty parts, and never the whole disk",
        ),
        (
            {"path": "/", "reason": "r"},
            f"{KEY}[0].path: '/' is not a normalized path below the root; no '.', '..' or empty "
            "parts, and never the whole disk",
        ),
        (
            {"path": "C:\\", "reason": "r"},
            f"{KEY}[0].path: 'C:\\\\' is not a normalized path below the root; no '.', '..' or "
            "empty parts, and never the whole disk",
        ),
        (
            {"path": "C:\\app/x.pfx", "reason": "r"},
            f"{KEY}[0].path: 'C:\\\\app/x.pfx' mixes '/' into a Windows path; use '\\' throughout",
        ),
        (
            {"path": "/etc/a\tb", "reason": "r"},
            f"{KEY}[0].path: '/etc/a\\tb' contains a tab or line break; a path is one line",
        ),
        (
            {"path": "/etc/app.key", "reason": ""},
            f"{KEY}[0].reason: the reason is empty; say why the image keeps this file",
        ),
        (
            {"path": "/etc/app.key", "reason": "two\nlines"},
            f"{KEY}[0].reason: the reason contains a tab or line break; write it on one line",
        ),
        (
            {"path": "/etc/app.key", "reason": "x" * 201},
            f"{KEY}[0].reason: the reason has 201 characters; at most 200",
        ),
        ({"path": "/etc/app.key"}, f"{KEY}[0].reason: required key is missing"),
        (
            {"path": "/etc/app.key", "reason": "r", "why": "x"},
            f"{KEY}[0].why: unknown key; allowed keys: path, reason",
        ),
        (
            {"path": 12, "reason": "r"},
            f"{KEY}[0].path: 12 is not text; write a string",
        ),
    ],
)
def test_bad_entry_names_its_key(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(AuditConfigError) as caught:
        audit.load({"allowlist": [entry]})
    assert caught.value.problems == [problem]


def test_every_problem_at_once_and_duplicates_by_index() -> None:
    with pytest.raises(AuditConfigError) as caught:
        audit.load(
            {
                "allowlist": [
                    {"path": "/etc/app.key", "reason": "first"},
                    {"path": "relative", "reason": "r"},
                    {"path": "/etc/x", "reason": ""},
                ]
            }
        )
    assert caught.value.problems == [
        f"{KEY}[1].path: 'relative' is not an absolute path; write it as the image sees it, "
        "e.g. '/etc/ssl/private/app.key' (Linux) or 'C:\\inetpub\\app\\app.pfx' (Windows)",
        f"{KEY}[2].reason: the reason is empty; say why the image keeps this file",
    ]
    with pytest.raises(AuditConfigError) as caught:
        audit.load(
            {
                "allowlist": [
                    {"path": "C:\\App\\a.pfx", "reason": "first"},
                    {"path": "/etc/app.key", "reason": "r"},
                    {"path": "c:\\app\\A.PFX", "reason": "again"},
                    {"path": "/etc/app.key", "reason": "again"},
                ]
            }
        )
    assert caught.value.problems == [
        f"{KEY}[2].path: 'c:\\\\app\\\\A.PFX' is already listed at {KEY}[0].path; "
        "one entry per path",
        f"{KEY}[3].path: '/etc/app.key' is already listed at {KEY}[1].path; one entry per path",
    ]


def test_wrong_shapes() -> None:
    with pytest.raises(AuditConfigError) as caught:
        audit.load({"allowlist": "/etc/app.key"})
    assert caught.value.problems == [
        f"{KEY}: '/etc/app.key' is not a list; write one '- path: ...' entry per line"
    ]
    with pytest.raises(AuditConfigError) as caught:
        audit.load({"allowlist": [], "extra": 1})
    assert caught.value.problems == [
        "imagefactory:audit.extra: unknown key; allowed keys: allowlist"
    ]


def _steps(os: str, allow: Audit | None) -> list[scripts.Step]:
    provision = (
        ["linux/provision/10-base.sh"] if os == "linux" else ["windows/provision/10-iis.ps1"]
    )
    return scripts.guest_steps(
        os="linux" if os == "linux" else "windows",
        provision=provision,
        image="img",
        version="1.0.0",
        base_image="a:b:c:latest",
        build_user="azureuser",
        audit=allow,
    )


ALLOW = audit.load(
    {
        "allowlist": [
            {"path": "/etc/ssl/private/intranet.key", "reason": "intranet TLS, it's per release"},
            {"path": "C:\\inetpub\\app\\app.pfx", "reason": "IIS binding"},
        ]
    }
)


def test_the_audit_and_generalize_steps_get_their_os_entries() -> None:
    linux = _steps("linux", ALLOW)
    line = (
        "export AUDIT_ALLOWLIST='/etc/ssl/private/intranet.key\tintranet TLS, it'\"'\"'s per "
        "release'"
    )
    assert [line in s.source.splitlines() for s in linux] == [False, True, True]
    windows = _steps("windows", ALLOW)
    ps_line = "$env:AUDIT_ALLOWLIST = 'C:\\inetpub\\app\\app.pfx\tIIS binding'"
    assert [ps_line in s.source.splitlines() for s in windows] == [False, True, True]


def test_without_entries_the_steps_are_unchanged() -> None:
    empty = Audit()
    windows_only = audit.load({"allowlist": [{"path": "C:\\a.pfx", "reason": "r"}]})
    for os, allow in (("linux", empty), ("linux", windows_only), ("windows", empty)):
        assert [s.source for s in _steps(os, allow)] == [s.source for s in _steps(os, None)]
        assert all("$env:AUDIT_ALLOWLIST =" not in s.source for s in _steps(os, allow))
        assert all("export AUDIT_ALLOWLIST=" not in s.source for s in _steps(os, allow))
