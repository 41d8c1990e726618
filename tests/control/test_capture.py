"""scripts/azure/capture.sh, run for real against a scripted fake `az`.

Each test states the scenario the fake plays back, then asserts the script's
exit code, the exact sequence of az calls and sleeps, and what it printed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from capture_harness import (
    RG,
    VM,
    az_error,
    az_plain_error,
    capture_args,
    deallocate_line,
    generalize_line,
    instance_view,
    iv_line,
    make_bin,
    ok,
    run_script,
    sleep_line,
)

IV = iv_line()
DEALLOCATE = deallocate_line()
GENERALIZE = generalize_line()

THROTTLED = ("TooManyRequests", "The request is being throttled.")
FORBIDDEN = (
    "AuthorizationFailed",
    "The client 'ci@example.com' with object id '00000000-0000-0000-0000-000000000001' "
    "does not have authorization to perform action "
    "'Microsoft.Compute/virtualMachines/deallocate/action' over scope "
    f"'/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{RG}/providers/"
    f"Microsoft.Compute/virtualMachines/{VM}' or the scope is invalid.",
)
NOT_FOUND = (
    "ResourceNotFound",
    f"The Resource 'Microsoft.Compute/virtualMachines/{VM}' under resource group '{RG}' "
    "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
)


# --- capture: the normal path -------------------------------------------------


def test_happy_path_waits_for_stop_then_deallocates_then_generalizes(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            instance_view("running"),
            instance_view("running"),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_POLL_SECONDS": "10", "CAPTURE_STOP_TIMEOUT_SECONDS": "60"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        IV,
        sleep_line(10),
        IV,
        sleep_line(10),
        IV,
        DEALLOCATE,
        GENERALIZE,
    ]
    lines = result.stdout.splitlines()
    # Waited time is the larger of the wall clock and the slept seconds. Before the first
    # sleep nothing has been slept, so a second boundary passed during the first az call
    # shows as 1s; after it the 10 slept seconds dominate the real fraction of a second.
    assert lines[1] in {
        f"capture.sh: VM '{VM}' is running; checking again in 10s ({n}s of 60s waited)"
        for n in (0, 1)
    }
    assert lines[:1] + lines[2:] == [
        f"capture.sh: waiting up to 60s for VM '{VM}' in resource group '{RG}' to power off"
        " (poll every 10s)",
        f"capture.sh: VM '{VM}' is running; checking again in 10s (10s of 60s waited)",
        f"capture.sh: VM '{VM}' is stopped",
        f"capture.sh: deallocating VM '{VM}'",
        f"capture.sh: VM '{VM}' is deallocated",
        f"capture.sh: marking VM '{VM}' as generalized",
        f"capture.sh: VM '{VM}' is deallocated and generalized; ready for image capture",
    ]
    assert result.stderr == ""


def test_slow_stop_keeps_polling_through_transitional_states(tmp_path: Path) -> None:
    states = ["starting", "running", "running", "running", "stopping", "stopping"]
    result = run_script(
        tmp_path,
        capture_args(),
        [
            *(instance_view(s) for s in states),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_POLL_SECONDS": "15", "CAPTURE_STOP_TIMEOUT_SECONDS": "1800"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        *[line for _ in states for line in (IV, sleep_line(15))],
        IV,
        DEALLOCATE,
        GENERALIZE,
    ]
    assert f"VM '{VM}' is stopping; checking again in 15s (75s of 1800s waited)" in result.stdout


def test_vm_the_guest_left_deallocated_is_not_deallocated_again(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, capture_args(), [instance_view("deallocated"), ok("vm generalize")]
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, GENERALIZE]
    assert f"VM '{VM}' is already deallocated; skipping deallocate" in result.stdout


def test_subscription_is_passed_to_every_az_call(tmp_path: Path) -> None:
    sub = "11111111-2222-3333-4444-555555555555"
    result = run_script(
        tmp_path,
        capture_args(subscription=sub),
        [instance_view("stopped"), ok("vm deallocate"), ok("vm generalize")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [iv_line(sub), deallocate_line(sub), generalize_line(sub)]


def test_flags_accept_the_equals_form(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        ["capture", f"--resource-group={RG}", f"--vm={VM}"],
        [instance_view("stopped"), ok("vm deallocate"), ok("vm generalize")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, DEALLOCATE, GENERALIZE]


# --- capture: idempotence -----------------------------------------------------


def test_already_deallocated_and_generalized_converges_without_mutations(tmp_path: Path) -> None:
    result = run_script(tmp_path, capture_args(), [instance_view("deallocated", generalized=True)])

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV]
    assert result.stdout.splitlines()[-1] == (
        f"capture.sh: VM '{VM}' is already generalized (power state 'deallocated'); nothing to do"
    )


def test_rerun_after_a_failed_generalize_only_generalizes(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    first = run_script(
        tmp_path / "first",
        capture_args(),
        [instance_view("stopped"), ok("vm deallocate"), az_error("vm generalize", *FORBIDDEN)],
    )
    assert first.exit_code == 1
    assert first.calls == [IV, DEALLOCATE, GENERALIZE]

    (tmp_path / "second").mkdir()
    second = run_script(
        tmp_path / "second", capture_args(), [instance_view("deallocated"), ok("vm generalize")]
    )
    assert second.exit_code == 0, second.stderr
    assert second.calls == [IV, GENERALIZE]


def test_generalized_vm_reported_running_is_left_alone(tmp_path: Path) -> None:
    # Generalized is final: Azure refuses to start or deallocate-and-reuse a generalized VM,
    # so a 'running' next to OSState/generalized is stale; waiting for it to stop or
    # deallocating it again would only stall or fail the capture of a finished VM.
    result = run_script(tmp_path, capture_args(), [instance_view("running", generalized=True)])

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV]
    assert result.stdout.splitlines() == [
        f"capture.sh: waiting up to 60s for VM '{VM}' in resource group '{RG}' to power off"
        " (poll every 1s)",
        f"capture.sh: VM '{VM}' is already generalized (power state 'running'); nothing to do",
    ]
    assert result.stderr == ""


def crlf_instance_view(*codes: str) -> dict[str, object]:
    return {"expect": "vm get-instance-view", "stdout": "".join(f"{c}\r\n" for c in codes)}


def test_crlf_instance_view_output_is_read_like_lf(tmp_path: Path) -> None:
    # az on Windows (or under WSL) ends tsv lines with CRLF.
    result = run_script(
        tmp_path,
        capture_args(),
        [
            crlf_instance_view("ProvisioningState/succeeded", "PowerState/running"),
            crlf_instance_view("ProvisioningState/succeeded", "PowerState/stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_POLL_SECONDS": "10"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, sleep_line(10), IV, DEALLOCATE, GENERALIZE]
    lines = result.stdout.splitlines()
    assert lines[1] in {
        f"capture.sh: VM '{VM}' is running; checking again in 10s ({n}s of 60s waited)"
        for n in (0, 1)
    }
    assert lines[2] == f"capture.sh: VM '{VM}' is stopped"


def test_crlf_generalized_state_is_recognised(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            crlf_instance_view(
                "ProvisioningState/succeeded", "OSState/generalized", "PowerState/deallocated"
            )
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV]
    assert result.stdout.splitlines()[-1] == (
        f"capture.sh: VM '{VM}' is already generalized (power state 'deallocated'); nothing to do"
    )


# --- capture: transient errors are retried with backoff -----------------------


def test_throttled_deallocate_is_retried(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            instance_view("stopped"),
            az_error("vm deallocate", *THROTTLED),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_BACKOFF_SECONDS": "10", "CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, DEALLOCATE, sleep_line(10), DEALLOCATE, GENERALIZE]
    assert (
        f"capture.sh: deallocating VM '{VM}': transient error on try 1/6, retrying in 10s: "
        "ERROR: (TooManyRequests) The request is being throttled."
    ) in result.stdout.splitlines()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("Conflict", f"The operation on VM '{VM}' conflicts with an operation in progress."),
        (
            "OperationNotAllowed",
            f"Operation 'generalize' is not allowed on VM '{VM}' "
            "since another operation is in progress.",
        ),
    ],
)
def test_conflicting_generalize_is_retried(tmp_path: Path, code: str, message: str) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            instance_view("deallocated"),
            az_error("vm generalize", code, message),
            az_error("vm generalize", code, message),
            ok("vm generalize"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, GENERALIZE, sleep_line(1), GENERALIZE, sleep_line(2), GENERALIZE]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InternalServerError", "An internal server error occurred."),
        ("ServiceUnavailable", "The service is temporarily unavailable."),
        (
            "GatewayTimeout",
            "The gateway did not receive a response within the specified time period.",
        ),
    ],
)
def test_server_error_reading_power_state_is_retried(
    tmp_path: Path, code: str, message: str
) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            az_error("vm get-instance-view", code, message),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, sleep_line(1), IV, DEALLOCATE, GENERALIZE]
    assert f"retrying in 1s: ERROR: ({code}) {message}" in result.stdout


def test_retries_exhausted_fails_with_the_last_az_error(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("stopped"), *[az_error("vm deallocate", *THROTTLED)] * 3],
        {"CAPTURE_MAX_TRIES": "3", "CAPTURE_BACKOFF_SECONDS": "10"},
    )

    assert result.exit_code == 1
    assert result.calls == [IV, DEALLOCATE, sleep_line(10), DEALLOCATE, sleep_line(20), DEALLOCATE]
    assert result.stderr.splitlines()[:2] == [
        f"capture.sh: error: deallocating VM '{VM}' failed after 3 tries"
        " (CAPTURE_MAX_TRIES=3); last error:",
        "ERROR: (TooManyRequests) The request is being throttled.",
    ]


def test_backoff_doubles_and_is_capped_at_300_seconds(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("stopped"), *[az_error("vm deallocate", *THROTTLED)] * 4],
        {"CAPTURE_MAX_TRIES": "4", "CAPTURE_BACKOFF_SECONDS": "100"},
    )

    assert result.exit_code == 1
    sleeps = [line for line in result.calls if line.startswith("sleep")]
    assert sleeps == [sleep_line(100), sleep_line(200), sleep_line(300)]


def test_first_backoff_above_the_cap_is_capped(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("stopped"), *[az_error("vm deallocate", *THROTTLED)] * 3],
        {"CAPTURE_MAX_TRIES": "3", "CAPTURE_BACKOFF_SECONDS": "500"},
    )

    assert result.exit_code == 1
    assert result.calls == [
        IV,
        DEALLOCATE,
        sleep_line(300),
        DEALLOCATE,
        sleep_line(300),
        DEALLOCATE,
    ]
    assert [line for line in result.stdout.splitlines() if "transient error" in line] == [
        f"capture.sh: deallocating VM '{VM}': transient error on try {n}/3, retrying in 300s: "
        "ERROR: (TooManyRequests) The request is being throttled."
        for n in (1, 2)
    ]


def test_a_single_try_means_no_retry(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("stopped"), az_error("vm deallocate", *THROTTLED)],
        {"CAPTURE_MAX_TRIES": "1"},
    )

    assert result.exit_code == 1
    assert result.calls == [IV, DEALLOCATE]
    assert "failed after 1 tries (CAPTURE_MAX_TRIES=1)" in result.stderr


# --- capture: permanent errors fail fast --------------------------------------


def test_forbidden_deallocate_fails_fast_with_az_text(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, capture_args(), [instance_view("stopped"), az_error("vm deallocate", *FORBIDDEN)]
    )

    assert result.exit_code == 1
    assert result.calls == [IV, DEALLOCATE]
    assert result.stderr.splitlines()[:2] == [
        f"capture.sh: error: deallocating VM '{VM}' failed (permanent error, not retried):",
        f"ERROR: (AuthorizationFailed) {FORBIDDEN[1]}",
    ]
    assert "retrying" not in result.stdout


def test_permanent_error_beats_a_transient_word_in_the_same_message(tmp_path: Path) -> None:
    # "Conflict" alone would be retried; the AuthorizationFailed code makes it permanent.
    message = (
        "The client 'ci@example.com' does not have authorization to perform action "
        "'Microsoft.Compute/virtualMachines/deallocate/action' to resolve a Conflict "
        f"on VM '{VM}'."
    )
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("stopped"), az_error("vm deallocate", "AuthorizationFailed", message)],
        {"CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 1
    assert result.calls == [IV, DEALLOCATE]
    assert result.stderr.splitlines()[:2] == [
        f"capture.sh: error: deallocating VM '{VM}' failed (permanent error, not retried):",
        f"ERROR: (AuthorizationFailed) {message}",
    ]
    assert "retrying" not in result.stdout


def test_az_failing_without_error_text_is_reported_and_not_retried(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("stopped"), {"expect": "vm deallocate", "stderr": "", "exit_code": 7}],
        {"CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 1
    assert result.calls == [IV, DEALLOCATE]
    assert result.stderr == (
        f"capture.sh: error: deallocating VM '{VM}' failed (permanent error, not retried):\n"
        "az exited with status 7 and printed no error\n"
    )


def test_vm_not_found_fails_fast(tmp_path: Path) -> None:
    result = run_script(tmp_path, capture_args(), [az_error("vm get-instance-view", *NOT_FOUND)])

    assert result.exit_code == 1
    assert result.calls == [IV]
    assert (
        f"reading the instance view of VM '{VM}' failed (permanent error, not retried)"
        in result.stderr
    )
    assert f"ERROR: (ResourceNotFound) {NOT_FOUND[1]}" in result.stderr


def test_not_logged_in_fails_fast_with_the_login_hint(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [az_plain_error("vm get-instance-view", "Please run 'az login' to setup account.")],
    )

    assert result.exit_code == 1
    assert result.calls == [IV]
    assert "ERROR: Please run 'az login' to setup account." in result.stderr


def test_unrecognised_error_is_not_retried(tmp_path: Path) -> None:
    message = (
        f"Operation 'generalize' is not allowed on VM '{VM}' since the VM is running. "
        "Please power off the VM and try again."
    )
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("deallocated"), az_error("vm generalize", "OperationNotAllowed", message)],
    )

    assert result.exit_code == 1
    assert result.calls == [IV, GENERALIZE]
    assert f"ERROR: (OperationNotAllowed) {message}" in result.stderr


def test_az_missing_from_path_is_reported(tmp_path: Path) -> None:
    bin_dir = make_bin(tmp_path, with_az=False)
    for tool in ("grep", "mktemp", "rm"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)

    result = run_script(tmp_path, capture_args(), path=str(bin_dir))

    assert result.exit_code == 1
    assert result.calls == []
    assert result.stderr == "capture.sh: error: the Azure CLI 'az' is not on PATH\n"


# --- capture: the guest never powers off --------------------------------------


# Polls of tens of seconds, so the slept time the fake sleep records dominates the real
# time the polls take (each one starts a Python fake az) and the waited times are exact.


def test_vm_that_never_stops_times_out_with_a_hint(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("running")] * 4,
        {"CAPTURE_STOP_TIMEOUT_SECONDS": "30", "CAPTURE_POLL_SECONDS": "10"},
    )

    assert result.exit_code == 3
    assert result.calls == [IV, sleep_line(10), IV, sleep_line(10), IV, sleep_line(10), IV]
    assert result.stdout.splitlines()[2:] == [
        f"capture.sh: VM '{VM}' is running; checking again in 10s (10s of 30s waited)",
        f"capture.sh: VM '{VM}' is running; checking again in 10s (20s of 30s waited)",
    ]
    assert result.stderr == (
        f"capture.sh: error: VM '{VM}' never stopped: power state is still 'running' after 30s "
        "(CAPTURE_STOP_TIMEOUT_SECONDS=30). The in-guest generalization or audit probably "
        "failed; check the run command output and the serial log (boot diagnostics) of "
        f"VM '{VM}'.\n"
    )


def test_last_poll_is_shortened_to_land_on_the_timeout(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [instance_view("running")] * 4,
        {"CAPTURE_STOP_TIMEOUT_SECONDS": "50", "CAPTURE_POLL_SECONDS": "20"},
    )

    assert result.exit_code == 3
    assert result.calls == [IV, sleep_line(20), IV, sleep_line(20), IV, sleep_line(10), IV]
    assert result.stdout.splitlines()[2:] == [
        f"capture.sh: VM '{VM}' is running; checking again in 20s (20s of 50s waited)",
        f"capture.sh: VM '{VM}' is running; checking again in 10s (40s of 50s waited)",
    ]
    assert result.stderr.startswith(
        f"capture.sh: error: VM '{VM}' never stopped: power state is still 'running' after 50s "
        "(CAPTURE_STOP_TIMEOUT_SECONDS=50)."
    )


# --- usage errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing action: expected 'capture' or 'delete'"),
        (
            ["generalize", "--resource-group", RG, "--vm", VM],
            "unknown action 'generalize': expected 'capture' or 'delete'",
        ),
        (["capture", "--vm", VM], "missing required flag --resource-group"),
        (["capture", "--resource-group", RG], "missing required flag --vm"),
        (["capture", "--resource-group", RG, "--vm"], "--vm needs a value"),
        (["capture", "--vm", "--resource-group", RG], "--vm needs a value"),
        (["capture", "--resource-group", RG, "--vm", ""], "--vm must not be empty"),
        (["capture", "--resource-group=", "--vm", VM], "--resource-group must not be empty"),
        (
            ["capture", "--resource-group", RG, "--vm", VM, "--subscription", ""],
            "--subscription must not be empty when given",
        ),
        (
            ["capture", "--resource-group", RG, "--vm", VM, "--name", VM],
            "unknown argument '--name'",
        ),
        (["delete", "--resource-group", RG], "missing required flag --vm"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_script(tmp_path, args)

    assert result.exit_code == 2
    assert result.calls == []
    assert result.stderr.splitlines()[0] == f"capture.sh: usage error: {message}"
    assert "usage: capture.sh capture --resource-group RG --vm NAME" in result.stderr


@pytest.mark.parametrize(
    "variable",
    [
        "CAPTURE_STOP_TIMEOUT_SECONDS",
        "CAPTURE_POLL_SECONDS",
        "CAPTURE_MAX_TRIES",
        "CAPTURE_BACKOFF_SECONDS",
    ],
)
@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "10s", "1234567890"])
def test_bad_environment_exits_2_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run_script(tmp_path, capture_args(), env={variable: value})

    assert result.exit_code == 2
    assert result.calls == []
    assert result.stderr.splitlines()[0] == (
        f"capture.sh: usage error: {variable} must be a positive integer "
        f"(at most 999999999), got '{value}'"
    )


def test_defaults_apply_when_the_environment_is_unset(tmp_path: Path) -> None:
    unset = {
        key: ""
        for key in (
            "CAPTURE_STOP_TIMEOUT_SECONDS",
            "CAPTURE_POLL_SECONDS",
            "CAPTURE_MAX_TRIES",
            "CAPTURE_BACKOFF_SECONDS",
        )
    }
    result = run_script(
        tmp_path,
        capture_args(),
        [
            instance_view("running"),
            az_error("vm get-instance-view", *THROTTLED),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        unset,
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [IV, sleep_line(15), IV, sleep_line(10), IV, DEALLOCATE, GENERALIZE]
    assert "waiting up to 1800s" in result.stdout
    assert "transient error on try 1/6" in result.stdout


USAGE = (
    "usage: capture.sh capture --resource-group RG --vm NAME [--subscription SUB]\n"
    "       capture.sh delete  --resource-group RG --vm NAME [--subscription SUB]\n"
)


@pytest.mark.parametrize(
    "args", [["--help"], ["-h"], ["capture", "--help"], ["delete", "--vm", VM, "-h"]]
)
def test_help_prints_usage_and_succeeds(tmp_path: Path, args: list[str]) -> None:
    result = run_script(tmp_path, args)

    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == (USAGE, "")
    assert result.calls == []


# --- delete -------------------------------------------------------------------


def test_delete_touches_nothing_and_says_so(tmp_path: Path) -> None:
    result = run_script(tmp_path, ["delete", "--resource-group", RG, "--vm", VM])

    assert result.exit_code == 0, result.stderr
    assert result.calls == []
    assert result.stdout == (
        f"capture.sh: delete: leaving VM '{VM}' in resource group '{RG}' untouched; "
        "a generalized VM cannot be un-generalized, and deleting the VM resource removes it\n"
    )


def test_delete_ignores_capture_limits_so_destroy_is_never_blocked(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        ["delete", "--resource-group", RG, "--vm", VM],
        env={"CAPTURE_POLL_SECONDS": "0"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == []


# --- the script itself --------------------------------------------------------


def test_fake_az_rejects_calls_the_scenario_does_not_script(tmp_path: Path) -> None:
    # An extra or out-of-order call must fail loudly, or the sequence checks above prove nothing.
    result = run_script(tmp_path, capture_args(), [instance_view("stopped"), ok("vm generalize")])

    assert result.exit_code == 1
    assert result.calls == [IV, DEALLOCATE]
    assert "fake az: call #2 was 'vm deallocate', scenario expected 'vm generalize'" in (
        result.stderr
    )
