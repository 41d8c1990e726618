"""The validation stage as data: what a test VM runs, and what its results become.

A test VM is created from each new image and checked by Run Commands before the version
is published (components/validation.py). This module renders those checks and turns the
summary `scripts/azure/capture.sh collect` prints into the version's tags and the stack
outputs, without Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from imagefactory import naming, scripts
from imagefactory.settings import COMMON_CHECK, Image, OsType

COMMON_CHECKS: dict[OsType, str] = COMMON_CHECK

# Azure's tag limits ("Use tags to organize your Azure resources", Limitations,
# learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations):
# 50 tag name/value pairs per resource and values up to 256 characters.
MAX_TAGS = 50
MAX_TAG_VALUE = 256

VALIDATION_TAGS = naming.VALIDATION_TAGS
RESULT_TAG, OS_TAG, BUILT_TAG, BASE_TAG, PACKAGES_TAG, KEY_PACKAGES_TAG = VALIDATION_TAGS
UNKNOWN = "unknown"
"""A tag's value when the manifest did not say (Azure takes empty values, readers would
not know what they mean)."""


def checks(*, image: Image, version: str, hostname: str, admin_username: str) -> list[scripts.Step]:
    """The Run Commands on one test VM, in order: the common checks (validate.sh /
    validate.ps1), then the image's own (`Image.validation_paths`).

    `hostname`: the test VM's computer name, which the common checks compare with the
    guest's; `admin_username`: the account Azure must have made on it.
    """
    os = image.os
    names = {"IMAGE_NAME": image.name, "IMAGE_VERSION": version}
    common = scripts.load(COMMON_CHECKS[os])
    env = {**names, "EXPECTED_HOSTNAME": hostname, "ADMIN_USERNAME": admin_username}
    steps = [scripts.Step("validate", common, scripts.render(common, os, env))]
    for path in image.validation_paths:
        script = scripts.load(path)
        stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        steps.append(scripts.Step(f"check-{stem}", script, scripts.render(script, os, names)))
    return steps


@dataclass(frozen=True)
class Check:
    """One check's result: ok None means skipped (e.g. no Azure agent in a qemu clone)."""

    check: str
    ok: bool | None
    detail: str
    run_command: str


@dataclass(frozen=True)
class Summary:
    """What `capture.sh collect` printed for one test VM."""

    result: Literal["passed", "failed"]
    test_vm: str
    checks: tuple[Check, ...]
    manifest: Mapping[str, Any]

    @property
    def passed(self) -> int:
        return sum(c.ok is True for c in self.checks)


def parse(stdout: str) -> Summary | None:
    """The summary line of `capture.sh collect`; None when there is none (not run yet, or
    under the offline engine, where commands never run).

    Format (one line of JSON): {"checks": [{"check", "detail", "ok", "runCommand"}, ...],
    "manifest": {...}, "result": "passed"|"failed", "testVm": NAME}.
    """
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict) or raw.get("result") not in ("passed", "failed"):
            continue
        found = tuple(
            Check(
                str(c.get("check", "")),
                c.get("ok") if isinstance(c.get("ok"), bool) else None,
                str(c.get("detail", "")),
                str(c.get("runCommand", "")),
            )
            for c in raw.get("checks") or []
            if isinstance(c, dict)
        )
        manifest = raw.get("manifest")
        return Summary(
            raw["result"],
            str(raw.get("testVm", "")),
            found,
            manifest if isinstance(manifest, dict) else {},
        )
    return None


def _value(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 1] + "…"


def _key_packages(found: Mapping[str, Any]) -> str:
    """'name=version' pairs by name, as many whole pairs as fit in one tag value."""
    out = ""
    for name in sorted(found):
        pair = f"{name}={' '.join(str(found[name]).split())}"
        joined = f"{out} {pair}" if out else pair
        if len(joined) > MAX_TAG_VALUE - 2:
            return f"{out} …"
        out = joined
    return out


def tags(summary: Summary | None, *, room: int) -> dict[str, str]:
    """The short form of a validation, as tags on the version: the first `room` of
    VALIDATION_TAGS (what the stack's own tags leave of Azure's 50), each value at most 256
    characters, "unknown" where the manifest did not say. Nothing without a summary.

    Example: {"imagefactory-validation": "passed: 9 of 9 checks on imgf-dev-tst-web-1-0-0",
    "imagefactory-os": "Ubuntu 24.04.1 LTS", "imagefactory-built": "2026-12-06T10:00:00Z",
    "imagefactory-base": "Canonical:...", "imagefactory-packages": "612 sha256:0f3a...",
    "imagefactory-key-packages": "nginx=1.24.0-2ubuntu7 openssh-server=1:9.6p1-3ubuntu13"}.
    """
    if summary is None or room <= 0:
        return {}
    m = summary.manifest
    key_packages = m.get("keyPackages")
    values = {
        RESULT_TAG: f"{summary.result}: {summary.passed} of {len(summary.checks)} checks on "
        f"{summary.test_vm}",
        OS_TAG: m.get("os"),
        BUILT_TAG: m.get("build_time"),
        BASE_TAG: m.get("base_image"),
        # Windows: its programs, and the Windows features it has installed.
        PACKAGES_TAG: (
            f"{m['packages']} sha256:{str(m.get('packagesSha256', ''))[:16]}"
            + (f", {m['features']} features" if m.get("features") is not None else "")
            if m.get("packages") is not None
            else None
        ),
        KEY_PACKAGES_TAG: _key_packages(key_packages) if isinstance(key_packages, dict) else None,
    }
    return {
        k: _value(values[k]) if values[k] not in (None, "") else UNKNOWN
        for k in VALIDATION_TAGS[:room]
    }


def tag_value(stdout: str, *, key: str) -> str:
    """One validation tag's value from `capture.sh collect`'s stdout ("unknown" without a
    summary). The version's tags are a map with known keys and these values, so that
    ignore_changes can keep each key even while the results are unknown in a preview."""
    return tags(parse(stdout), room=len(VALIDATION_TAGS)).get(key, UNKNOWN)


def room_for(base_tags: Mapping[str, str]) -> int:
    """How many validation tags fit beside the version's own tags."""
    return max(MAX_TAGS - len(base_tags), 0)


def from_tags(version_tags: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The validation as the stack outputs show it, read back from a version's tags (which
    outlive the test VM): {"result", "os", "built", "base", "packages", "keyPackages"};
    None for a version published without validation."""
    found = dict(version_tags or {})
    if RESULT_TAG not in found:
        return None
    pairs = (p.split("=", 1) for p in found.get(KEY_PACKAGES_TAG, "").split() if "=" in p)
    return {
        "result": found[RESULT_TAG],
        "os": found.get(OS_TAG),
        "built": found.get(BUILT_TAG),
        "base": found.get(BASE_TAG),
        "packages": found.get(PACKAGES_TAG),
        "keyPackages": dict(pairs),
    }


def ignored_tag_paths() -> list[str]:
    """ignore_changes paths that keep a version's validation tags as first written: a
    published version never changes, so neither does what was validated (a rebuilt or
    retired builder must not rewrite them)."""
    return [f'tags["{t}"]' for t in VALIDATION_TAGS]
