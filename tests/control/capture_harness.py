"""Scenario builders and a runner for scripts/azure/capture.sh against fake_az.py.

Error texts follow the Azure CLI's shape on stderr: `ERROR: (Code) Message`
followed by `Code:` and `Message:` lines, exit status 1.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "azure" / "capture.sh"
FAKE_AZ = Path(__file__).resolve().parent / "fake_az.py"

RG = "rg-imagefactory-dev"
VM = "vm-build-ubuntu2204"

Call = dict[str, Any]

# Small limits so every scenario finishes in well under a second of real time;
# the `sleep` shim returns at once and only records the requested delay.
FAST_ENV = {
    "CAPTURE_STOP_TIMEOUT_SECONDS": "60",
    "CAPTURE_POLL_SECONDS": "1",
    "CAPTURE_MAX_TRIES": "3",
    "CAPTURE_BACKOFF_SECONDS": "1",
}


def instance_view(power: str, *, generalized: bool = False) -> Call:
    codes = ["ProvisioningState/succeeded"]
    if generalized:
        codes.append("OSState/generalized")
    codes.append(f"PowerState/{power}")
    return {"expect": "vm get-instance-view", "stdout": "\n".join(codes) + "\n"}


def ok(subcommand: str) -> Call:
    return {"expect": subcommand, "stdout": ""}


def az_error(subcommand: str, code: str, message: str) -> Call:
    stderr = f"ERROR: ({code}) {message}\nCode: {code}\nMessage: {message}\n"
    return {"expect": subcommand, "stderr": stderr, "exit_code": 1}


def az_plain_error(subcommand: str, text: str) -> Call:
    return {"expect": subcommand, "stderr": f"ERROR: {text}\n", "exit_code": 1}


def _line(*words: str, subscription: str | None = None) -> str:
    argv = ["az", *words, "--only-show-errors"]
    if subscription is not None:
        argv += ["--subscription", subscription]
    return shlex.join(argv)


def iv_line(subscription: str | None = None) -> str:
    return _line(
        "vm",
        "get-instance-view",
        "--resource-group",
        RG,
        "--name",
        VM,
        "--query",
        "instanceView.statuses[].code",
        "-o",
        "tsv",
        subscription=subscription,
    )


def deallocate_line(subscription: str | None = None) -> str:
    return _line(
        "vm", "deallocate", "--resource-group", RG, "--name", VM, subscription=subscription
    )


def generalize_line(subscription: str | None = None) -> str:
    return _line(
        "vm", "generalize", "--resource-group", RG, "--name", VM, subscription=subscription
    )


def sleep_line(seconds: int) -> str:
    return f"sleep {seconds}"


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str
    calls: list[str]
    """Every az call and every sleep, in order, one line each."""


def make_bin(tmp_path: Path, *, with_az: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if with_az:
        az = bin_dir / "az"
        az.write_text(
            f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_AZ))} "$@"\n'
        )
        az.chmod(0o755)
    sleep = bin_dir / "sleep"
    sleep.write_text('#!/bin/sh\nprintf \'sleep %s\\n\' "$*" >> "$FAKE_AZ_LOG"\n')
    sleep.chmod(0o755)
    return bin_dir


def run_script(
    tmp_path: Path,
    args: list[str],
    calls: list[Call] | None = None,
    env: dict[str, str] | None = None,
    *,
    path: str | None = None,
) -> Result:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"calls": calls or []}))
    log = tmp_path / "calls.log"
    log.touch()
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        make_bin(tmp_path)

    full_env = {key: value for key, value in os.environ.items() if not key.startswith("CAPTURE_")}
    full_env |= FAST_ENV
    full_env |= env or {}
    full_env["PATH"] = path if path is not None else f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    full_env["FAKE_AZ_SCENARIO"] = str(scenario)
    full_env["FAKE_AZ_LOG"] = str(log)

    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, log.read_text().splitlines())


def capture_args(subscription: str | None = None) -> list[str]:
    args = ["capture", "--resource-group", RG, "--vm", VM]
    if subscription is not None:
        args += ["--subscription", subscription]
    return args
