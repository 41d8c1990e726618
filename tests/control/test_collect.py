"""`capture.sh collect`, run for real against a scripted fake `az`.

collect reads the output of the validation Run Commands on the test VM and prints one
summary line on stdout (all its logging goes to stderr), then deallocates a test VM
that passed. Each test states the scenario, then asserts the exit code, the exact az
calls, the exact stdout and what it logged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from capture_harness import (
    RG,
    TEST_VM,
    GitHubOidcEndpoint,
    az_error,
    az_plain_error,
    collect_args,
    deallocate_line,
    fake_jwt,
    instance_view,
    iv_line,
    login_line,
    login_ok,
    make_bin,
    ok,
    run_command_line,
    run_command_view,
    run_script,
    sleep_line,
    token_check_line,
    token_check_ok,
)

VALIDATE = "validate"
WEBSERVER = "validate-webserver"
SUB = "11111111-2222-3333-4444-555555555555"

CHECK = token_check_line()
SHOW_VALIDATE = run_command_line(VALIDATE)
SHOW_WEBSERVER = run_command_line(WEBSERVER)
IV = iv_line(vm=TEST_VM)
DEALLOCATE = deallocate_line(vm=TEST_VM)

EXISTING_LOGIN = (
    "capture.sh: using the existing Azure CLI login (no GitHub OIDC login: not set: "
    "ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN, "
    "AZURE_CLIENT_ID (or ARM_CLIENT_ID), AZURE_TENANT_ID (or ARM_TENANT_ID))"
)
THROTTLED = ("TooManyRequests", "The request is being throttled.")

MANIFEST = {
    "base_image": "Canonical:ubuntu-24_04-lts:server:24.04.202501140",
    "build_time": "2025-01-15T12:41:07Z",
    "image_name": "webserver",
    "image_version": "1.1.0",
    "keyPackages": {"nginx": "1.24.0-2ubuntu7", "openssh-server": "1:9.6p1-3ubuntu13.5"},
    "os": "Ubuntu 24.04.1 LTS",
    "packages": 612,
    "packagesSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
}
# The manifest as it appears in the summary: compact, keys sorted.
MANIFEST_JSON = (
    '{"base_image":"Canonical:ubuntu-24_04-lts:server:24.04.202501140",'
    '"build_time":"2025-01-15T12:41:07Z","image_name":"webserver","image_version":"1.1.0",'
    '"keyPackages":{"nginx":"1.24.0-2ubuntu7","openssh-server":"1:9.6p1-3ubuntu13.5"},'
    '"os":"Ubuntu 24.04.1 LTS","packages":612,'
    '"packagesSha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}'
)


# The lines the validation scripts print, in their own spelling (json.dumps' default
# separators, keys in the scripts' order), one a line.
def check(name: str, ok: bool | None, detail: str) -> str:
    return json.dumps({"check": name, "ok": ok, "detail": detail})


def manifest(value: dict[str, Any]) -> str:
    return '{"manifest": ' + json.dumps(value, sort_keys=True, separators=(",", ":")) + "}"


def result_line(failed: list[str]) -> str:
    return json.dumps({"result": "failed" if failed else "passed", "failed": failed})


def output(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


VALIDATE_OUTPUT = output(
    check("provisioning.cloud-init", True, "status: done"),
    check("provisioning.agent", None, "EXPECT_AGENT=0: no Azure fabric here"),
    check("identity.machine-id", True, "5f1c0d2e9a7b4c3d8e6f0a1b2c3d4e5f, written on first boot"),
    manifest(MANIFEST),
    result_line([]),
)
WEBSERVER_OUTPUT = output(
    check("webserver.nginx", True, "nginx.service active"),
    check("webserver.page", True, "http://127.0.0.1/ names webserver 1.1.0"),
)
VALIDATE_CHECKS_JSON = (
    '{"check":"provisioning.cloud-init","detail":"status: done","ok":true,'
    '"runCommand":"validate"},'
    '{"check":"provisioning.agent","detail":"EXPECT_AGENT=0: no Azure fabric here","ok":null,'
    '"runCommand":"validate"},'
    '{"check":"identity.machine-id",'
    '"detail":"5f1c0d2e9a7b4c3d8e6f0a1b2c3d4e5f, written on first boot","ok":true,'
    '"runCommand":"validate"}'
)
PASSED_SUMMARY = (
    '{"checks":['
    + VALIDATE_CHECKS_JSON
    + ',{"check":"webserver.nginx","detail":"nginx.service active","ok":true,'
    '"runCommand":"validate-webserver"},'
    '{"check":"webserver.page","detail":"http://127.0.0.1/ names webserver 1.1.0","ok":true,'
    '"runCommand":"validate-webserver"}],'
    f'"manifest":{MANIFEST_JSON},"result":"passed","testVm":"{TEST_VM}"}}\n'
)


def both_ran() -> list[dict[str, Any]]:
    return [
        run_command_view(VALIDATE, VALIDATE_OUTPUT),
        run_command_view(WEBSERVER, WEBSERVER_OUTPUT),
    ]


# --- the normal path ------------------------------------------------------------------


def test_passed_validation_prints_one_summary_line_then_deallocates_the_test_vm(
    tmp_path: Path,
) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [token_check_ok(), *both_ran(), instance_view("running"), ok("vm deallocate")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, SHOW_VALIDATE, SHOW_WEBSERVER, IV, DEALLOCATE]
    assert result.stdout == PASSED_SUMMARY
    assert result.stderr.splitlines() == [
        EXISTING_LOGIN,
        f"capture.sh: run command 'validate' on VM '{TEST_VM}' exited 0: "
        "3 checks: 2 passed, 0 failed, 1 skipped",
        f"capture.sh: run command 'validate-webserver' on VM '{TEST_VM}' exited 0: "
        "2 checks: 2 passed, 0 failed, 0 skipped",
        f"capture.sh: validation passed on VM '{TEST_VM}': 5 checks: 4 passed, 0 failed, 1 skipped",
        f"capture.sh: deallocating test VM '{TEST_VM}' (power state 'running') so it stops"
        " costing compute",
        f"capture.sh: VM '{TEST_VM}' is deallocated",
    ]


def test_subscription_is_passed_to_every_az_call(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER, subscription=SUB),
        [token_check_ok(), *both_ran(), instance_view("running"), ok("vm deallocate")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        token_check_line(SUB),
        run_command_line(VALIDATE, SUB),
        run_command_line(WEBSERVER, SUB),
        iv_line(SUB, vm=TEST_VM),
        deallocate_line(SUB, vm=TEST_VM),
    ]
    assert result.stdout == PASSED_SUMMARY


def test_validation_keep_running_leaves_a_passed_test_vm_running(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [token_check_ok(), *both_ran()],
        {"VALIDATION_KEEP_RUNNING": "1"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, SHOW_VALIDATE, SHOW_WEBSERVER]
    assert result.stdout == PASSED_SUMMARY
    assert result.stderr.splitlines()[-1] == (
        f"capture.sh: VALIDATION_KEEP_RUNNING=1: leaving test VM '{TEST_VM}' running"
    )


def test_validation_keep_running_0_deallocates(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [token_check_ok(), *both_ran(), instance_view("stopped"), ok("vm deallocate")],
        {"VALIDATION_KEEP_RUNNING": "0"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, SHOW_VALIDATE, SHOW_WEBSERVER, IV, DEALLOCATE]


def test_test_vm_already_deallocated_is_not_deallocated_again(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [token_check_ok(), *both_ran(), instance_view("deallocated")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, SHOW_VALIDATE, SHOW_WEBSERVER, IV]
    assert result.stdout == PASSED_SUMMARY
    assert result.stderr.splitlines()[-1] == (
        f"capture.sh: VM '{TEST_VM}' is already deallocated; skipping deallocate"
    )


def test_one_run_command_without_a_manifest_line_gives_an_empty_manifest(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(WEBSERVER),
        [
            token_check_ok(),
            run_command_view(WEBSERVER, WEBSERVER_OUTPUT),
            instance_view("running"),
            ok("vm deallocate"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, SHOW_WEBSERVER, IV, DEALLOCATE]
    assert result.stdout == (
        '{"checks":[{"check":"webserver.nginx","detail":"nginx.service active","ok":true,'
        '"runCommand":"validate-webserver"},'
        '{"check":"webserver.page","detail":"http://127.0.0.1/ names webserver 1.1.0","ok":true,'
        f'"runCommand":"validate-webserver"}}],"manifest":{{}},"result":"passed",'
        f'"testVm":"{TEST_VM}"}}\n'
    )


# --- a failed validation ----------------------------------------------------------------


def test_failed_checks_print_the_summary_exit_1_and_leave_the_vm_running(tmp_path: Path) -> None:
    # Run Command exit 0 with a failed check: the summary, not the exit code, decides.
    webserver_output = output(
        check("webserver.nginx", False, "nginx.service is 'failed'"),
        check("webserver.page", False, "http://127.0.0.1/: no page: [Errno 111]"),
    )
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [
            token_check_ok(),
            run_command_view(VALIDATE, VALIDATE_OUTPUT),
            run_command_view(WEBSERVER, webserver_output),
        ],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, SHOW_VALIDATE, SHOW_WEBSERVER]
    assert result.stdout == (
        '{"checks":['
        + VALIDATE_CHECKS_JSON
        + ',{"check":"webserver.nginx","detail":"nginx.service is \'failed\'","ok":false,'
        '"runCommand":"validate-webserver"},'
        '{"check":"webserver.page","detail":"http://127.0.0.1/: no page: [Errno 111]",'
        '"ok":false,"runCommand":"validate-webserver"}],'
        f'"manifest":{MANIFEST_JSON},"result":"failed","testVm":"{TEST_VM}"}}\n'
    )
    assert result.stderr.splitlines()[-3:] == [
        f"capture.sh: run command 'validate-webserver' on VM '{TEST_VM}' exited 0: "
        "2 checks: 0 passed, 2 failed, 0 skipped",
        f"capture.sh: leaving test VM '{TEST_VM}' running so that an operator can inspect it",
        f"capture.sh: error: validation failed on VM '{TEST_VM}': webserver.nginx, webserver.page",
    ]


def test_a_check_line_without_ok_counts_as_failed(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(WEBSERVER),
        [
            token_check_ok(),
            run_command_view(WEBSERVER, output('{"check": "webserver.page", "detail": "?"}')),
        ],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, SHOW_WEBSERVER]
    assert result.stdout == (
        '{"checks":[{"check":"webserver.page","detail":"?","ok":false,'
        '"runCommand":"validate-webserver"}],"manifest":{},"result":"failed",'
        f'"testVm":"{TEST_VM}"}}\n'
    )
    assert result.stderr.splitlines()[-1] == (
        f"capture.sh: error: validation failed on VM '{TEST_VM}': webserver.page"
    )


@pytest.mark.parametrize(
    ("view", "how"),
    [
        (
            {
                "state": "Failed",
                "exit_code": 1,
                "error": "validate: FAIL identity.hostname: host name is 'builder'\n"
                "validate: 1 check(s) failed: identity.hostname\n",
            },
            "(execution state 'Failed', exit code 1)",
        ),
        (
            {"state": "Succeeded", "exit_code": 2, "error": "validate: error: must run as root"},
            "(execution state 'Succeeded', exit code 2)",
        ),
        (
            {
                "state": "TimedOut",
                "exit_code": None,
                "message": "Script execution timed out after 3600 seconds.",
            },
            "(execution state 'TimedOut', exit code none; Azure says: Script execution timed out"
            " after 3600 seconds.)",
        ),
    ],
    ids=["failed", "non-zero-exit", "timed-out"],
)
def test_run_command_that_did_not_succeed_fails_naming_it_and_the_vm(
    tmp_path: Path, view: dict[str, Any], how: str
) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [token_check_ok(), run_command_view(VALIDATE, VALIDATE_OUTPUT, **view)],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, SHOW_VALIDATE]
    assert result.stdout == ""
    error_tail = view.get("error", "").rstrip("\n") or "(empty)"
    assert result.stderr == (
        f"{EXISTING_LOGIN}\n"
        f"capture.sh: error: run command 'validate' on VM '{TEST_VM}' did not succeed {how};"
        f" VM '{TEST_VM}' is left running for inspection. The end of its error output:\n"
        f"{error_tail}\n"
    )


def test_error_output_is_cut_to_its_last_ten_lines(tmp_path: Path) -> None:
    error = "".join(f"line {n}\n" for n in range(1, 26))
    result = run_script(
        tmp_path,
        collect_args(VALIDATE),
        [
            token_check_ok(),
            run_command_view(VALIDATE, "", state="Failed", exit_code=1, error=error),
        ],
    )

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-11:] == [
        f"capture.sh: error: run command 'validate' on VM '{TEST_VM}' did not succeed"
        f" (execution state 'Failed', exit code 1); VM '{TEST_VM}' is left running for"
        " inspection. The end of its error output:",
        *[f"line {n}" for n in range(16, 26)],
    ]


# --- what Azure keeps of the output -----------------------------------------------------


def test_lines_that_are_not_json_objects_are_ignored(tmp_path: Path) -> None:
    # The instance view keeps only the output's last 4 KB, so its first line may be cut
    # anywhere, even inside the manifest's nested objects; Azure may put its own text
    # first; Windows lines end in CRLF.
    validate_output = (
        'l": true, "detail": "cut off by the 4 KB limit"}\n'
        '"nginx": "1.24.0-2ubuntu7"}}}\n'
        "Enable succeeded: \n"
        "[stdout]\n"
        "\n"
        "[1, 2, 3]\n"
        '"a JSON string"\n'
        "{not json at all}\n"
        + check("identity.machine-id", True, "written on first boot")
        + "\r\n"
        + f"   {manifest(MANIFEST)}   \r\n"
        + result_line([])
    )
    result = run_script(
        tmp_path,
        collect_args(VALIDATE),
        [
            token_check_ok(),
            run_command_view(VALIDATE, validate_output),
            instance_view("running"),
            ok("vm deallocate"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, SHOW_VALIDATE, IV, DEALLOCATE]
    assert result.stdout == (
        '{"checks":[{"check":"identity.machine-id","detail":"written on first boot","ok":true,'
        f'"runCommand":"validate"}}],"manifest":{MANIFEST_JSON},"result":"passed",'
        f'"testVm":"{TEST_VM}"}}\n'
    )


def test_output_without_a_check_line_fails(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [
            token_check_ok(),
            run_command_view(VALIDATE, VALIDATE_OUTPUT),
            run_command_view(WEBSERVER, output("nginx is up", result_line([]))),
        ],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, SHOW_VALIDATE, SHOW_WEBSERVER]
    assert result.stdout == ""
    assert result.stderr.splitlines()[-3:] == [
        f"capture.sh: error: run command 'validate-webserver' on VM '{TEST_VM}' printed no check"
        ' line (no {"check": ...} JSON line in the output Azure kept);'
        f" VM '{TEST_VM}' is left as it is. A deallocated VM's run commands report no output:"
        " if it is off, start it (az vm start) and run pulumi up again. The end of its output:",
        "nginx is up",
        result_line([]),
    ]


# --- az errors and login, as for capture -------------------------------------------------


def test_throttled_read_of_a_run_command_is_retried(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        collect_args(VALIDATE, WEBSERVER),
        [
            token_check_ok(),
            run_command_view(VALIDATE, VALIDATE_OUTPUT),
            az_error("vm run-command show", *THROTTLED),
            run_command_view(WEBSERVER, WEBSERVER_OUTPUT),
            instance_view("running"),
            az_error("vm deallocate", *THROTTLED),
            ok("vm deallocate"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        CHECK,
        SHOW_VALIDATE,
        SHOW_WEBSERVER,
        sleep_line(1),
        SHOW_WEBSERVER,
        IV,
        DEALLOCATE,
        sleep_line(1),
        DEALLOCATE,
    ]
    assert result.stdout == PASSED_SUMMARY
    assert (
        f"capture.sh: reading run command 'validate-webserver' on VM '{TEST_VM}': transient"
        " error on try 1/3, retrying in 1s: ERROR: (TooManyRequests) The request is being"
        " throttled."
    ) in result.stderr.splitlines()


def test_run_command_that_does_not_exist_fails_fast(tmp_path: Path) -> None:
    message = (
        f"The Resource 'Microsoft.Compute/virtualMachines/{TEST_VM}/runCommands/validate' under"
        f" resource group '{RG}' was not found."
    )
    result = run_script(
        tmp_path,
        collect_args(VALIDATE),
        [token_check_ok(), az_error("vm run-command show", "ResourceNotFound", message)],
        {"CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, SHOW_VALIDATE]
    assert result.stdout == ""
    assert result.stderr.splitlines()[1:3] == [
        f"capture.sh: error: reading run command 'validate' on VM '{TEST_VM}' failed"
        " (permanent error, not retried):",
        f"ERROR: (ResourceNotFound) {message}",
    ]


def test_oidc_login_and_a_fresh_login_on_an_expired_credential(tmp_path: Path) -> None:
    expired = "AADSTS700024: Client assertion is not within its valid time range."
    first, second = fake_jwt(1), fake_jwt(2)
    with GitHubOidcEndpoint([first, second]) as endpoint:
        result = run_script(
            tmp_path,
            collect_args(VALIDATE, WEBSERVER, subscription=SUB),
            [
                login_ok(),
                run_command_view(VALIDATE, VALIDATE_OUTPUT),
                az_plain_error("vm run-command show", expired),
                login_ok(),
                run_command_view(WEBSERVER, WEBSERVER_OUTPUT),
                instance_view("running"),
                ok("vm deallocate"),
            ],
            endpoint.env(),
        )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        login_line(first),
        run_command_line(VALIDATE, SUB),
        run_command_line(WEBSERVER, SUB),
        login_line(second),
        run_command_line(WEBSERVER, SUB),
        iv_line(SUB, vm=TEST_VM),
        deallocate_line(SUB, vm=TEST_VM),
    ]
    # The login's own messages go to stderr too: stdout is the summary alone.
    assert result.stdout == PASSED_SUMMARY
    assert (
        f"capture.sh: reading run command 'validate-webserver' on VM '{TEST_VM}': the Azure CLI"
        f" credential has expired or is missing; logging in again: ERROR: {expired}"
    ) in result.stderr.splitlines()
    login_dir = result.config_dirs[0]
    assert set(result.config_dirs) == {login_dir}
    assert not Path(login_dir).exists()


def test_python3_missing_from_path_is_reported(tmp_path: Path) -> None:
    bin_dir = make_bin(tmp_path)
    for tool in ("grep", "mktemp", "rm"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)

    result = run_script(tmp_path, collect_args(VALIDATE), path=str(bin_dir))

    assert result.exit_code == 1
    assert result.calls == []
    assert result.stdout == ""
    assert result.stderr == (
        "capture.sh: error: python3 is not on PATH; capture.sh collect needs it to read the"
        " run commands' JSON output\n"
    )


# --- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["collect", "--resource-group", RG, "--vm", TEST_VM],
            "missing required flag --run-command (at least one)",
        ),
        (
            ["collect", "--vm", TEST_VM, "--run-command", VALIDATE],
            "missing required flag --resource-group",
        ),
        ([*collect_args(), "--run-command"], "--run-command needs a value"),
        ([*collect_args(), "--run-command="], "--run-command must not be empty"),
        (collect_args(VALIDATE, WEBSERVER, VALIDATE), "--run-command 'validate' is given twice"),
    ],
)
def test_bad_collect_arguments_exit_2_naming_the_flag(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_script(tmp_path, args)

    assert result.exit_code == 2
    assert result.calls == []
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == f"capture.sh: usage error: {message}"
    assert (
        "       capture.sh collect --resource-group RG --vm NAME --run-command NAME"
        " [--run-command NAME ...] [--subscription SUB]"
    ) in result.stderr.splitlines()


@pytest.mark.parametrize("value", ["true", "yes", "2", " 1"])
def test_bad_validation_keep_running_exits_2(tmp_path: Path, value: str) -> None:
    result = run_script(tmp_path, collect_args(VALIDATE), env={"VALIDATION_KEEP_RUNNING": value})

    assert result.exit_code == 2
    assert result.calls == []
    assert result.stderr.splitlines()[0] == (
        f"capture.sh: usage error: VALIDATION_KEEP_RUNNING must be '0' or '1', got '{value}'"
    )
