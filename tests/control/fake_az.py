"""A scripted stand-in for the Azure CLI, put first on PATH as `az` by the tests.

It plays back a scenario: a JSON file (path in FAKE_AZ_SCENARIO) of the form

    {"calls": [{"expect": "vm get-instance-view",
                "stdout": "PowerState/running\\n", "stderr": "", "exit_code": 0}, ...]}

Each invocation takes the next entry, checks that the az subcommand (the words
before the first flag) equals its "expect", and replays its stdout, stderr and
exit code. Every invocation is appended to FAKE_AZ_LOG as one shell-quoted line,
so tests can assert the exact sequence of calls, and the AZURE_CONFIG_DIR it ran
with (empty when unset) to FAKE_AZ_CONFIG_LOG, so tests can see which az profile
each call used. A call beyond the scenario, or one for a different subcommand,
exits 97 with a message saying what was expected.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

UNEXPECTED_CALL_EXIT = 97


def subcommand(argv: list[str]) -> str:
    words = []
    for arg in argv:
        if arg.startswith("-"):
            break
        words.append(arg)
    return " ".join(words)


def main(argv: list[str]) -> int:
    scenario_path = Path(os.environ["FAKE_AZ_SCENARIO"])
    log_path = Path(os.environ["FAKE_AZ_LOG"])
    cursor_path = scenario_path.with_name(scenario_path.name + ".cursor")

    with log_path.open("a", encoding="utf-8") as log:
        log.write(shlex.join(["az", *argv]) + "\n")
    with Path(os.environ["FAKE_AZ_CONFIG_LOG"]).open("a", encoding="utf-8") as config_log:
        config_log.write(os.environ.get("AZURE_CONFIG_DIR", "") + "\n")

    calls = json.loads(scenario_path.read_text(encoding="utf-8"))["calls"]
    index = int(cursor_path.read_text()) if cursor_path.exists() else 0
    cursor_path.write_text(str(index + 1))

    got = subcommand(argv)
    if index >= len(calls):
        sys.stderr.write(
            f"fake az: unexpected call #{index + 1} '{got}': scenario has {len(calls)}\n"
        )
        return UNEXPECTED_CALL_EXIT
    call = calls[index]
    if got != call["expect"]:
        sys.stderr.write(
            f"fake az: call #{index + 1} was '{got}', scenario expected '{call['expect']}'\n"
        )
        return UNEXPECTED_CALL_EXIT

    sys.stdout.write(call.get("stdout", ""))
    sys.stderr.write(call.get("stderr", ""))
    return int(call.get("exit_code", 0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
