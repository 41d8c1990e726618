"""The image audit's allowlist: files an image keeps on purpose, each with its reason.

Stack config, under the key `imagefactory:audit`:

    audit:
      allowlist:
        - path: /etc/ssl/private/intranet.key
          reason: TLS key of the intranet site, issued per image release

A path is a file as the image sees it, or a directory ending in `/` (or `\\`) for everything
below it. POSIX paths apply to Linux images, drive paths (`C:\\...`) to Windows images. The
audit scripts get the entries of their OS in the environment variable AUDIT_ALLOWLIST, one
`PATH<TAB>REASON` a line, and print every entry and every finding it covers in the build log.

The model follows the settings models (camelCase keys, unknown keys refused, frozen); each
error names its key, the value and what is allowed. `settings.Settings` holds it as `audit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

KEY = "imagefactory:audit"
ENV_VAR = "AUDIT_ALLOWLIST"
REASON_MAX = 200

_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\")
_GLOB = re.compile(r"[*?\[\]]")


class AuditConfigError(ValueError):
    """Audit config that cannot be used; ``problems`` holds one line per bad value."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def path_os(path: str) -> Literal["linux", "windows"]:
    """Which images an allowlist path applies to, from its form."""
    return "windows" if _WINDOWS_PATH.match(path) else "linux"


def check_path(value: str) -> str:
    """An absolute image path, literal (no globs), normalized; ValueError says what is allowed."""
    if any(c in value for c in "\t\n\r"):
        raise ValueError(f"{value!r} contains a tab or line break; a path is one line")
    if _GLOB.search(value):
        raise ValueError(
            f"{value!r} has a wildcard; list each file, or a directory ending in '/' for "
            "everything below it"
        )
    windows = bool(_WINDOWS_PATH.match(value))
    if not windows and not value.startswith("/"):
        raise ValueError(
            f"{value!r} is not an absolute path; write it as the image sees it, e.g. "
            "'/etc/ssl/private/app.key' (Linux) or 'C:\\inetpub\\app\\app.pfx' (Windows)"
        )
    sep = "\\" if windows else "/"
    parts = value[3:].split(sep) if windows else value[1:].split(sep)
    inner = parts[:-1] if parts[-1] == "" else parts
    whole_disk = len(value) <= 3 if windows else value == "/"
    if whole_disk or any(p in ("", ".", "..") for p in inner):
        raise ValueError(
            f"{value!r} is not a normalized path below the root; no '.', '..' or empty "
            "parts, and never the whole disk"
        )
    if windows and "/" in value:
        raise ValueError(f"{value!r} mixes '/' into a Windows path; use '\\' throughout")
    return value


def check_reason(value: str) -> str:
    if not value:
        raise ValueError("the reason is empty; say why the image keeps this file")
    if any(c in value for c in "\t\n\r"):
        raise ValueError("the reason contains a tab or line break; write it on one line")
    if len(value) > REASON_MAX:
        raise ValueError(f"the reason has {len(value)} characters; at most {REASON_MAX}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )


class AllowlistEntry(_Model):
    """A file (or a directory ending in a separator) the audit lets through, and why."""

    path: str
    """Required: the path inside the image; its form (POSIX or drive path) picks the OS."""
    reason: str
    """Required: one line, printed beside every finding the entry covers."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value)


class Audit(_Model):
    """`imagefactory:audit`: settings of the secret audit that runs before capture."""

    allowlist: tuple[AllowlistEntry, ...] = Field(default=())
    """Default none; changing it re-runs the audit and rebuilds the builder (its scripts'
    environment is part of the build's fingerprint)."""

    def for_os(self, os: Literal["linux", "windows"]) -> tuple[AllowlistEntry, ...]:
        return tuple(e for e in self.allowlist if path_os(e.path) == os)


def rules(audit: Audit) -> list[str]:
    """Problems between entries (settings runs these with its other cross-field rules)."""
    problems = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(audit.allowlist):
        # Windows paths are case-insensitive.
        folded = entry.path.lower() if path_os(entry.path) == "windows" else entry.path
        if folded in seen:
            problems.append(
                f"{KEY}.allowlist[{i}].path: {entry.path!r} is already listed at "
                f"{KEY}.allowlist[{seen[folded]}].path; one entry per path"
            )
        else:
            seen[folded] = i
    return problems


def allowlist_env(entries: Sequence[AllowlistEntry]) -> str:
    """The AUDIT_ALLOWLIST value the audit scripts read: `PATH<TAB>REASON` lines."""
    return "\n".join(f"{e.path}\t{e.reason}" for e in entries)


def _key(loc: Sequence[str | int]) -> str:
    out = KEY
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        model = AllowlistEntry if "allowlist" in loc[:-1] else Audit
        allowed = ", ".join(f.alias or n for n, f in model.model_fields.items())
        return f"{_key(loc)}: unknown key; allowed keys: {allowed}"
    if kind == "missing":
        return f"{_key(loc)}: required key is missing"
    if kind == "value_error":
        return f"{_key(loc)}: {str(error['msg']).removeprefix('Value error, ')}"
    value = error.get("input")
    if kind in ("list_type", "tuple_type"):
        return f"{_key(loc)}: {value!r} is not a list; write one '- path: ...' entry per line"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{_key(loc)}: {value!r} is not a mapping; write 'key: value' lines under it"
    if kind == "string_type":
        return f"{_key(loc)}: {value!r} is not text; write a string"
    return f"{_key(loc)}: {value!r} is not a valid value here"


def load(raw: Mapping[str, Any] | None) -> Audit:
    """`imagefactory:audit` from raw stack config (None: not set) or AuditConfigError."""
    try:
        audit = Audit.model_validate(dict(raw or {}))
    except ValidationError as exc:
        raise AuditConfigError([_describe(e) for e in exc.errors()]) from None
    problems = rules(audit)
    if problems:
        raise AuditConfigError(problems)
    return audit
