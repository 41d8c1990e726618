"""Scripts as data: load files from scripts/, hash them, and build what runs them.

The Python side never inlines a script. It reads the file, prepends the parameters as
variable assignments (so a script behaves the same under Run Command as in a test), and
hashes the result: an edited script changes the Run Command's input and runs again.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imagefactory.audit import ENV_VAR as AUDIT_ALLOWLIST_VAR
from imagefactory.audit import Audit, allowlist_env
from imagefactory.settings import SCRIPTS_DIR, OsType

CAPTURE_SCRIPT = "azure/capture.sh"
LINUX_AUDIT = "linux/audit.sh"
LINUX_GENERALIZE = "linux/generalize.sh"
# Where generalize.sh looks for the audit on a builder (tmpfs, never captured).
LINUX_AUDIT_ON_VM = "/run/imagefactory/audit.sh"
WINDOWS_AUDIT = "windows/audit.ps1"
WINDOWS_GENERALIZE = "windows/generalize.ps1"


@dataclass(frozen=True)
class Script:
    """One file under scripts/, read once."""

    path: str
    """Path relative to scripts/, e.g. 'linux/generalize.sh'."""
    content: str
    sha256: str


@functools.cache
def load(path: str) -> Script:
    """Read a script once per process (the program and its tests ask for the same files)."""
    content = (SCRIPTS_DIR / path).read_text(encoding="utf-8")
    return Script(path, content, hashlib.sha256(content.encode()).hexdigest())


def _ps_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render(
    script: Script,
    os: OsType,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    files: Mapping[str, Script] | None = None,
) -> str:
    """The text a Run Command executes: a parameter header, then the file unchanged.

    `files` (Linux) are written to the given absolute paths before the script runs, for
    helpers a step needs on the VM exactly as they are in scripts/.
    """
    if os == "linux":
        lines = ["#!/bin/bash", f"# imagefactory: scripts/{script.path} sha256:{script.sha256}"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
        for target, helper in (files or {}).items():
            lines += _linux_file(target, helper)
        if args:
            lines.append("set -- " + " ".join(shlex.quote(a) for a in args))
    else:
        if files:
            raise ValueError("PowerShell steps carry no helper files")
        lines = [f"# imagefactory: scripts/{script.path} sha256:{script.sha256}"]
        lines += [f"$env:{k} = {_ps_quote(v)}" for k, v in env.items()]
        if args:
            raise ValueError("PowerShell steps take parameters as environment variables only")
    return "\n".join(lines) + "\n" + script.content


def _linux_file(target: str, helper: Script) -> list[str]:
    """Shell lines that write `helper` to `target` byte for byte (a quoted here-document)."""
    end = f"IMAGEFACTORY_FILE_{helper.sha256[:16]}"
    if end in helper.content or not helper.content.endswith("\n"):
        raise ValueError(f"scripts/{helper.path} cannot be embedded as a here-document")
    folder = target.rsplit("/", 1)[0] or "/"
    return [
        f"install -d -m 0700 {shlex.quote(folder)} || exit 1",
        f"cat > {shlex.quote(target)} <<'{end}' || exit 1",
        helper.content.removesuffix("\n"),
        end,
        f"chmod 0700 {shlex.quote(target)} || exit 1",
    ]


@dataclass(frozen=True)
class Step:
    """One in-guest step of a build, run through managed Run Command."""

    name: str
    """Short label, e.g. '10-base' or 'generalize'."""
    script: Script
    source: str
    """The rendered text the VM runs."""


def guest_steps(
    *,
    os: OsType,
    provision: Sequence[str],
    image: str,
    version: str,
    base_image: str,
    build_user: str,
    audit: Audit | None = None,
) -> list[Step]:
    """Provision scripts in order, then the secret audit, then in-guest generalization.

    `audit` (stack config `audit`): its allowlist entries for this OS go to the audit and
    generalization steps as AUDIT_ALLOWLIST; without entries the variable is left out, so
    the steps (and the build's fingerprint) are those of a stack without an allowlist.
    """
    env = {
        "IMAGE_NAME": image,
        "IMAGE_VERSION": version,
        "BASE_IMAGE": base_image,
        "BUILD_USERS": build_user,
    }
    allowed = audit.for_os(os) if audit is not None else ()
    audit_env = {**env, AUDIT_ALLOWLIST_VAR: allowlist_env(allowed)} if allowed else env
    steps = []
    for path in provision:
        script = load(path)
        name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        steps.append(Step(name, script, render(script, os, env)))
    if os == "linux":
        audit_script = load(LINUX_AUDIT)
        steps.append(
            Step("audit", audit_script, render(audit_script, os, audit_env, ["--pre-generalize"]))
        )
        generalize = load(LINUX_GENERALIZE)
        # The full audit generalize.sh runs last: the file itself, not the copy the
        # pre-generalize step left, whose header pins it to --pre-generalize.
        helpers = {LINUX_AUDIT_ON_VM: audit_script}
        steps.append(
            Step("generalize", generalize, render(generalize, os, audit_env, files=helpers))
        )
    else:
        audit_script = load(WINDOWS_AUDIT)
        steps.append(Step("audit", audit_script, render(audit_script, os, audit_env)))
        generalize = load(WINDOWS_GENERALIZE)
        steps.append(Step("generalize", generalize, render(generalize, os, audit_env)))
    return steps


@dataclass(frozen=True)
class CaptureCommand:
    """The local command that deallocates the builder and marks it generalized."""

    create: str
    delete: str
    environment: dict[str, str]
    script: Script


def capture_command(
    *,
    resource_group: str,
    vm_name: str,
    stop_timeout_seconds: int,
    poll_seconds: int,
    max_tries: int,
    backoff_seconds: int,
) -> CaptureCommand:
    """`az vm deallocate` + `az vm generalize` for one builder, with its limits from config.

    The path stays relative to the project: Pulumi runs programs (and their commands) from
    the project directory, and an absolute path would differ between machines and show a
    diff on every checkout.
    """
    script = load(CAPTURE_SCRIPT)
    target = f"--resource-group {shlex.quote(resource_group)} --vm {shlex.quote(vm_name)}"
    return CaptureCommand(
        create=f"bash scripts/{CAPTURE_SCRIPT} capture {target}",
        delete=f"bash scripts/{CAPTURE_SCRIPT} delete {target}",
        environment={
            "CAPTURE_STOP_TIMEOUT_SECONDS": str(stop_timeout_seconds),
            "CAPTURE_POLL_SECONDS": str(poll_seconds),
            "CAPTURE_MAX_TRIES": str(max_tries),
            "CAPTURE_BACKOFF_SECONDS": str(backoff_seconds),
        },
        script=script,
    )


def collect_command(
    *,
    resource_group: str,
    vm_name: str,
    run_commands: Sequence[str],
    max_tries: int,
    backoff_seconds: int,
) -> CaptureCommand:
    """`capture.sh collect` for one test VM: read its checks' results from the Run
    Commands' instance views (one JSON line on stdout), then deallocate it."""
    script = load(CAPTURE_SCRIPT)
    target = f"--resource-group {shlex.quote(resource_group)} --vm {shlex.quote(vm_name)}"
    named = " ".join(f"--run-command {shlex.quote(n)}" for n in run_commands)
    return CaptureCommand(
        create=f"bash scripts/{CAPTURE_SCRIPT} collect {target} {named}",
        delete="",
        environment={
            "CAPTURE_MAX_TRIES": str(max_tries),
            "CAPTURE_BACKOFF_SECONDS": str(backoff_seconds),
        },
        script=script,
    )


def with_subscription(command: str, subscription_id: str) -> str:
    """The capture command pinned to one subscription (`--subscription` on every az call)."""
    return f"{command} --subscription {shlex.quote(subscription_id)}"
