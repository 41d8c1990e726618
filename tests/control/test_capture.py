"""scripts/azure/capture.sh, run for real against a scripted fake `az`.

Each test states the scenario the fake plays back, then asserts the script's
exit code, the exact sequence of az calls and sleeps, and what it printed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from capture_harness import (
    AUDIENCE,
    CLIENT_ID,
    RG,
    TENANT_ID,
    VM,
    GitHubOidcEndpoint,
    TokenRequest,
    az_error,
    az_plain_error,
    capture_args,
    deallocate_line,
    fake_jwt,
    generalize_line,
    instance_view,
    iv_line,
    login_line,
    login_ok,
    make_bin,
    ok,
    run_script,
    sleep_line,
    token_check_line,
    token_check_ok,
)

IV = iv_line()
DEALLOCATE = deallocate_line()
GENERALIZE = generalize_line()
# Without GitHub OIDC (run_script removes it), capture checks the existing az login first.
CHECK = token_check_line()
LOGGED_IN = token_check_ok()
EXISTING_LOGIN = (
    "capture.sh: using the existing Azure CLI login (no GitHub OIDC login: not set: "
    "ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN, "
    "AZURE_CLIENT_ID (or ARM_CLIENT_ID), AZURE_TENANT_ID (or ARM_TENANT_ID))"
)

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
            LOGGED_IN,
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
        CHECK,
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
    assert lines[2] in {
        f"capture.sh: VM '{VM}' is running; checking again in 10s ({n}s of 60s waited)"
        for n in (0, 1)
    }
    assert lines[:2] + lines[3:] == [
        EXISTING_LOGIN,
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
            LOGGED_IN,
            *(instance_view(s) for s in states),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_POLL_SECONDS": "15", "CAPTURE_STOP_TIMEOUT_SECONDS": "1800"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        CHECK,
        *[line for _ in states for line in (IV, sleep_line(15))],
        IV,
        DEALLOCATE,
        GENERALIZE,
    ]
    assert f"VM '{VM}' is stopping; checking again in 15s (75s of 1800s waited)" in result.stdout


def test_vm_the_guest_left_deallocated_is_not_deallocated_again(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, capture_args(), [LOGGED_IN, instance_view("deallocated"), ok("vm generalize")]
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV, GENERALIZE]
    assert f"VM '{VM}' is already deallocated; skipping deallocate" in result.stdout


def test_subscription_is_passed_to_every_az_call(tmp_path: Path) -> None:
    sub = "11111111-2222-3333-4444-555555555555"
    result = run_script(
        tmp_path,
        capture_args(subscription=sub),
        [LOGGED_IN, instance_view("stopped"), ok("vm deallocate"), ok("vm generalize")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        token_check_line(sub),
        iv_line(sub),
        deallocate_line(sub),
        generalize_line(sub),
    ]


def test_flags_accept_the_equals_form(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        ["capture", f"--resource-group={RG}", f"--vm={VM}"],
        [LOGGED_IN, instance_view("stopped"), ok("vm deallocate"), ok("vm generalize")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV, DEALLOCATE, GENERALIZE]


# --- capture: idempotence -----------------------------------------------------


def test_already_deallocated_and_generalized_converges_without_mutations(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, capture_args(), [LOGGED_IN, instance_view("deallocated", generalized=True)]
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV]
    assert result.stdout.splitlines()[-1] == (
        f"capture.sh: VM '{VM}' is already generalized (power state 'deallocated'); nothing to do"
    )


def test_rerun_after_a_failed_generalize_only_generalizes(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    first = run_script(
        tmp_path / "first",
        capture_args(),
        [
            LOGGED_IN,
            instance_view("stopped"),
            ok("vm deallocate"),
            az_error("vm generalize", *FORBIDDEN),
        ],
    )
    assert first.exit_code == 1
    assert first.calls == [CHECK, IV, DEALLOCATE, GENERALIZE]

    (tmp_path / "second").mkdir()
    second = run_script(
        tmp_path / "second",
        capture_args(),
        [LOGGED_IN, instance_view("deallocated"), ok("vm generalize")],
    )
    assert second.exit_code == 0, second.stderr
    assert second.calls == [CHECK, IV, GENERALIZE]


def test_generalized_vm_reported_running_is_left_alone(tmp_path: Path) -> None:
    # Generalized is final: Azure refuses to start or deallocate-and-reuse a generalized VM,
    # so a 'running' next to OSState/generalized is stale; waiting for it to stop or
    # deallocating it again would only stall or fail the capture of a finished VM.
    result = run_script(
        tmp_path, capture_args(), [LOGGED_IN, instance_view("running", generalized=True)]
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV]
    assert result.stdout.splitlines() == [
        EXISTING_LOGIN,
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
            LOGGED_IN,
            crlf_instance_view("ProvisioningState/succeeded", "PowerState/running"),
            crlf_instance_view("ProvisioningState/succeeded", "PowerState/stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_POLL_SECONDS": "10"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV, sleep_line(10), IV, DEALLOCATE, GENERALIZE]
    lines = result.stdout.splitlines()
    assert lines[2] in {
        f"capture.sh: VM '{VM}' is running; checking again in 10s ({n}s of 60s waited)"
        for n in (0, 1)
    }
    assert lines[3] == f"capture.sh: VM '{VM}' is stopped"


def test_crlf_generalized_state_is_recognised(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            LOGGED_IN,
            crlf_instance_view(
                "ProvisioningState/succeeded", "OSState/generalized", "PowerState/deallocated"
            ),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV]
    assert result.stdout.splitlines()[-1] == (
        f"capture.sh: VM '{VM}' is already generalized (power state 'deallocated'); nothing to do"
    )


# --- capture: transient errors are retried with backoff -----------------------


def test_throttled_deallocate_is_retried(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            LOGGED_IN,
            instance_view("stopped"),
            az_error("vm deallocate", *THROTTLED),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        {"CAPTURE_BACKOFF_SECONDS": "10", "CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV, DEALLOCATE, sleep_line(10), DEALLOCATE, GENERALIZE]
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
            LOGGED_IN,
            instance_view("deallocated"),
            az_error("vm generalize", code, message),
            az_error("vm generalize", code, message),
            ok("vm generalize"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        CHECK,
        IV,
        GENERALIZE,
        sleep_line(1),
        GENERALIZE,
        sleep_line(2),
        GENERALIZE,
    ]


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
            LOGGED_IN,
            az_error("vm get-instance-view", code, message),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [CHECK, IV, sleep_line(1), IV, DEALLOCATE, GENERALIZE]
    assert f"retrying in 1s: ERROR: ({code}) {message}" in result.stdout


def test_retries_exhausted_fails_with_the_last_az_error(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [LOGGED_IN, instance_view("stopped"), *[az_error("vm deallocate", *THROTTLED)] * 3],
        {"CAPTURE_MAX_TRIES": "3", "CAPTURE_BACKOFF_SECONDS": "10"},
    )

    assert result.exit_code == 1
    assert result.calls == [
        CHECK,
        IV,
        DEALLOCATE,
        sleep_line(10),
        DEALLOCATE,
        sleep_line(20),
        DEALLOCATE,
    ]
    assert result.stderr.splitlines()[:2] == [
        f"capture.sh: error: deallocating VM '{VM}' failed after 3 tries"
        " (CAPTURE_MAX_TRIES=3); last error:",
        "ERROR: (TooManyRequests) The request is being throttled.",
    ]


def test_backoff_doubles_and_is_capped_at_300_seconds(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [LOGGED_IN, instance_view("stopped"), *[az_error("vm deallocate", *THROTTLED)] * 4],
        {"CAPTURE_MAX_TRIES": "4", "CAPTURE_BACKOFF_SECONDS": "100"},
    )

    assert result.exit_code == 1
    sleeps = [line for line in result.calls if line.startswith("sleep")]
    assert sleeps == [sleep_line(100), sleep_line(200), sleep_line(300)]


def test_first_backoff_above_the_cap_is_capped(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [LOGGED_IN, instance_view("stopped"), *[az_error("vm deallocate", *THROTTLED)] * 3],
        {"CAPTURE_MAX_TRIES": "3", "CAPTURE_BACKOFF_SECONDS": "500"},
    )

    assert result.exit_code == 1
    assert result.calls == [
        CHECK,
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
        [LOGGED_IN, instance_view("stopped"), az_error("vm deallocate", *THROTTLED)],
        {"CAPTURE_MAX_TRIES": "1"},
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, DEALLOCATE]
    assert "failed after 1 tries (CAPTURE_MAX_TRIES=1)" in result.stderr


# --- capture: permanent errors fail fast --------------------------------------


def test_forbidden_deallocate_fails_fast_with_az_text(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [LOGGED_IN, instance_view("stopped"), az_error("vm deallocate", *FORBIDDEN)],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, DEALLOCATE]
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
        [
            LOGGED_IN,
            instance_view("stopped"),
            az_error("vm deallocate", "AuthorizationFailed", message),
        ],
        {"CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, DEALLOCATE]
    assert result.stderr.splitlines()[:2] == [
        f"capture.sh: error: deallocating VM '{VM}' failed (permanent error, not retried):",
        f"ERROR: (AuthorizationFailed) {message}",
    ]
    assert "retrying" not in result.stdout


def test_az_failing_without_error_text_is_reported_and_not_retried(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            LOGGED_IN,
            instance_view("stopped"),
            {"expect": "vm deallocate", "stderr": "", "exit_code": 7},
        ],
        {"CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, DEALLOCATE]
    assert result.stderr == (
        f"capture.sh: error: deallocating VM '{VM}' failed (permanent error, not retried):\n"
        "az exited with status 7 and printed no error\n"
    )


def test_vm_not_found_fails_fast(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, capture_args(), [LOGGED_IN, az_error("vm get-instance-view", *NOT_FOUND)]
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV]
    assert (
        f"reading the instance view of VM '{VM}' failed (permanent error, not retried)"
        in result.stderr
    )
    assert f"ERROR: (ResourceNotFound) {NOT_FOUND[1]}" in result.stderr


def test_unrecognised_error_is_not_retried(tmp_path: Path) -> None:
    message = (
        f"Operation 'generalize' is not allowed on VM '{VM}' since the VM is running. "
        "Please power off the VM and try again."
    )
    result = run_script(
        tmp_path,
        capture_args(),
        [
            LOGGED_IN,
            instance_view("deallocated"),
            az_error("vm generalize", "OperationNotAllowed", message),
        ],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, GENERALIZE]
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


# --- capture: Azure login -----------------------------------------------------

SUB = "11111111-2222-3333-4444-555555555555"
LOGIN_HINT = (
    "Run 'az login' before 'pulumi up'; in GitHub Actions, give the job "
    "'permissions: id-token: write' and set AZURE_CLIENT_ID and AZURE_TENANT_ID, so that "
    "capture.sh logs in again with a fresh OIDC token when it runs."
)
OIDC_LOGIN = (
    f"capture.sh: logging in to Azure as client '{CLIENT_ID}' in tenant '{TENANT_ID}'"
    " with a fresh GitHub OIDC token"
)
# What az prints when the GitHub OIDC token it stored at login has run out.
ASSERTION_EXPIRED = (
    "AADSTS700024: Client assertion is not within its valid time range. "
    "Current time: 2025-01-15T14:03:11.8216479Z, assertion valid from "
    "2025-01-15T11:58:02.0000000Z, expiry time of assertion 2025-01-15T12:03:02.0000000Z. "
    "Review the documentation at https://learn.microsoft.com/entra/identity-platform/"
    "certificate-credentials . Trace ID: 5d1e0b7a-0000-4000-8000-000000000001 "
    "Correlation ID: 5d1e0b7a-0000-4000-8000-000000000002 Timestamp: 2025-01-15 14:03:11Z"
    "\nInteractive authentication is needed. Please run:\naz login"
)
TOKEN_EXPIRED = (
    "ExpiredAuthenticationToken",
    "The access token expiry UTC time '1/15/2025 1:03:11 PM' is earlier than current UTC "
    "time '1/15/2025 2:03:11 PM'.",
)


def token_request(endpoint: GitHubOidcEndpoint) -> TokenRequest:
    """The one request capture.sh should make for each login."""
    return TokenRequest(
        "/idtoken",
        {"api-version": ["2.0"], "audience": [AUDIENCE]},
        f"bearer {endpoint.request_token}",
    )


@pytest.mark.parametrize("prefix", ["AZURE", "ARM"])
def test_oidc_login_with_a_fresh_github_token_comes_before_the_first_az_call(
    tmp_path: Path, prefix: str
) -> None:
    token = fake_jwt(1)
    with GitHubOidcEndpoint([token]) as endpoint:
        env = endpoint.env()
        env[f"{prefix}_CLIENT_ID"] = env.pop("AZURE_CLIENT_ID")
        env[f"{prefix}_TENANT_ID"] = env.pop("AZURE_TENANT_ID")
        result = run_script(
            tmp_path,
            capture_args(subscription=SUB),
            [login_ok(), instance_view("stopped"), ok("vm deallocate"), ok("vm generalize")],
            env,
        )

    assert result.exit_code == 0, result.stderr
    assert endpoint.requests == [token_request(endpoint)]
    assert result.calls == [
        login_line(token),
        iv_line(SUB),
        deallocate_line(SUB),
        generalize_line(SUB),
    ]
    assert result.stdout.splitlines()[0] == OIDC_LOGIN
    assert token not in result.stdout + result.stderr


def test_oidc_login_uses_a_private_az_config_dir_removed_on_exit(tmp_path: Path) -> None:
    # Parallel captures (one per image) and the job's own ~/.azure never share a profile.
    with GitHubOidcEndpoint([fake_jwt(1)]) as endpoint:
        result = run_script(
            tmp_path,
            capture_args(subscription=SUB),
            [login_ok(), instance_view("deallocated", generalized=True)],
            endpoint.env(),
        )

    assert result.exit_code == 0, result.stderr
    login_dir, iv_dir = result.config_dirs
    assert login_dir == iv_dir
    assert Path(login_dir).name.startswith("tmp.")
    assert not Path(login_dir).exists()


def test_no_oidc_checks_the_existing_login_then_makes_the_usual_calls(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(subscription=SUB),
        [LOGGED_IN, instance_view("stopped"), ok("vm deallocate"), ok("vm generalize")],
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        token_check_line(SUB),
        iv_line(SUB),
        deallocate_line(SUB),
        generalize_line(SUB),
    ]
    assert result.config_dirs == ["", "", "", ""]
    assert result.stdout.splitlines()[0] == EXISTING_LOGIN


@pytest.mark.parametrize(
    "failure",
    [
        az_plain_error("account get-access-token", ASSERTION_EXPIRED),
        az_error("account get-access-token", *TOKEN_EXPIRED),
        az_plain_error("account get-access-token", "Please run 'az login' to setup account."),
    ],
    ids=["assertion-expired", "token-expired", "logged-out"],
)
def test_no_oidc_and_an_unusable_login_fails_at_once_before_any_vm_call(
    tmp_path: Path, failure: dict[str, object]
) -> None:
    result = run_script(tmp_path, capture_args(), [failure])

    assert result.exit_code == 1
    assert result.calls == [CHECK]
    assert result.stdout == EXISTING_LOGIN + "\n"
    assert result.stderr == (
        "capture.sh: error: the Azure CLI login is not usable "
        f"('az account get-access-token' failed). {LOGIN_HINT} az said:\n{failure['stderr']}"
    )


def test_assertion_expired_on_deallocate_logs_in_again_once_with_oidc(tmp_path: Path) -> None:
    first, second = fake_jwt(1), fake_jwt(2)
    with GitHubOidcEndpoint([first, second]) as endpoint:
        result = run_script(
            tmp_path,
            capture_args(),
            [
                login_ok(),
                instance_view("stopped"),
                az_plain_error("vm deallocate", ASSERTION_EXPIRED),
                login_ok(),
                ok("vm deallocate"),
                ok("vm generalize"),
            ],
            endpoint.env(),
        )

    assert result.exit_code == 0, result.stderr
    assert endpoint.requests == [token_request(endpoint)] * 2
    assert result.calls == [
        login_line(first),
        IV,
        DEALLOCATE,
        login_line(second),
        DEALLOCATE,
        GENERALIZE,
    ]
    assert result.stdout.splitlines()[3:6] == [
        f"capture.sh: deallocating VM '{VM}'",
        f"capture.sh: deallocating VM '{VM}': the Azure CLI credential has expired or is missing; "
        f"logging in again: ERROR: {ASSERTION_EXPIRED.splitlines()[0]}",
        OIDC_LOGIN,
    ]
    assert first not in result.stdout + result.stderr
    assert second not in result.stdout + result.stderr


def test_expired_again_right_after_a_fresh_oidc_login_fails(tmp_path: Path) -> None:
    with GitHubOidcEndpoint([fake_jwt(1), fake_jwt(2)]) as endpoint:
        result = run_script(
            tmp_path,
            capture_args(),
            [
                login_ok(),
                instance_view("stopped"),
                az_error("vm deallocate", *TOKEN_EXPIRED),
                login_ok(),
                az_error("vm deallocate", *TOKEN_EXPIRED),
            ],
            endpoint.env(),
        )

    assert result.exit_code == 1
    assert result.calls == [
        login_line(fake_jwt(1)),
        IV,
        DEALLOCATE,
        login_line(fake_jwt(2)),
        DEALLOCATE,
    ]
    assert result.stderr.splitlines()[:2] == [
        f"capture.sh: error: deallocating VM '{VM}' failed with an expired credential again right"
        " after a fresh GitHub OIDC login; check the runner's clock and the app registration's"
        " federated credential. az said:",
        f"ERROR: ({TOKEN_EXPIRED[0]}) {TOKEN_EXPIRED[1]}",
    ]


def test_assertion_expired_on_deallocate_without_oidc_fails(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [LOGGED_IN, instance_view("stopped"), az_plain_error("vm deallocate", ASSERTION_EXPIRED)],
        {"CAPTURE_MAX_TRIES": "6"},
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, DEALLOCATE]
    assert result.stderr == (
        f"capture.sh: error: deallocating VM '{VM}' failed: the Azure CLI login has expired or"
        f" is missing. {LOGIN_HINT} az said:\nERROR: {ASSERTION_EXPIRED}\n"
    )
    assert "retrying" not in result.stdout


def test_logged_out_mid_run_without_oidc_fails_with_the_login_hint(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [
            LOGGED_IN,
            az_plain_error("vm get-instance-view", "Please run 'az login' to setup account."),
        ],
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV]
    assert result.stderr == (
        f"capture.sh: error: reading the instance view of VM '{VM}' failed: the Azure CLI login"
        f" has expired or is missing. {LOGIN_HINT} az said:\n"
        "ERROR: Please run 'az login' to setup account.\n"
    )


def test_capture_login_existing_never_uses_oidc(tmp_path: Path) -> None:
    with GitHubOidcEndpoint([fake_jwt(1)]) as endpoint:
        result = run_script(
            tmp_path,
            capture_args(),
            [
                LOGGED_IN,
                instance_view("stopped"),
                az_plain_error("vm deallocate", ASSERTION_EXPIRED),
            ],
            {**endpoint.env(), "CAPTURE_LOGIN": "existing"},
        )

    assert result.exit_code == 1
    assert endpoint.requests == []
    assert result.calls == [CHECK, IV, DEALLOCATE]
    assert result.stdout.splitlines()[0] == (
        "capture.sh: using the existing Azure CLI login (CAPTURE_LOGIN=existing)"
    )
    assert result.stderr.startswith(
        f"capture.sh: error: deallocating VM '{VM}' failed: the Azure CLI login has expired"
    )


@pytest.mark.parametrize("value", ["yes", "OIDC", "github", " auto"])
def test_bad_capture_login_exits_2_naming_the_variable(tmp_path: Path, value: str) -> None:
    result = run_script(tmp_path, capture_args(), env={"CAPTURE_LOGIN": value})

    assert result.exit_code == 2
    assert result.calls == []
    assert result.stderr.splitlines()[0] == (
        "capture.sh: usage error: CAPTURE_LOGIN must be 'auto', 'oidc' or 'existing', "
        f"got '{value}'"
    )
    assert "usage: capture.sh capture --resource-group RG --vm NAME" in result.stderr


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        (
            {},
            "ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN, "
            "AZURE_CLIENT_ID (or ARM_CLIENT_ID), AZURE_TENANT_ID (or ARM_TENANT_ID)",
        ),
        (
            {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/t?v=1"},
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN, AZURE_CLIENT_ID (or ARM_CLIENT_ID), "
            "AZURE_TENANT_ID (or ARM_TENANT_ID)",
        ),
        (
            {
                "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/t?v=1",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
                "ARM_CLIENT_ID": CLIENT_ID,
            },
            "AZURE_TENANT_ID (or ARM_TENANT_ID)",
        ),
    ],
    ids=["nothing", "url-only", "no-tenant"],
)
def test_capture_login_oidc_without_github_oidc_exits_1_naming_what_is_missing(
    tmp_path: Path, env: dict[str, str], missing: str
) -> None:
    result = run_script(tmp_path, capture_args(), env={**env, "CAPTURE_LOGIN": "oidc"})

    assert result.exit_code == 1
    assert result.calls == []
    assert result.stderr == (
        f"capture.sh: error: CAPTURE_LOGIN=oidc, but GitHub OIDC is not available; not set: "
        f"{missing}. Run capture in a GitHub Actions job with 'permissions: id-token: write' "
        "(GitHub then sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN) and "
        "set AZURE_CLIENT_ID and AZURE_TENANT_ID to the app registration's IDs, or use "
        "CAPTURE_LOGIN=existing with a working 'az login'.\n"
    )


def test_refused_github_token_request_fails_before_az_login(tmp_path: Path) -> None:
    with GitHubOidcEndpoint([fake_jwt(1)]) as endpoint:
        env = {**endpoint.env(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "expired-request-token"}
        result = run_script(tmp_path, capture_args(), [], env)

    assert result.exit_code == 1
    assert len(endpoint.requests) == 1
    assert result.calls == []
    first, second = result.stderr.splitlines()
    assert first == (
        "capture.sh: error: requesting a GitHub OIDC token from ACTIONS_ID_TOKEN_REQUEST_URL"
        " failed (curl exit 22):"
    )
    assert second.startswith("curl: (22)") and "401" in second
    assert "expired-request-token" not in result.stderr


def test_oidc_login_refused_by_entra_id_is_not_retried(tmp_path: Path) -> None:
    refusal = (
        "AADSTS70021: No matching federated identity record found for presented assertion. "
        "Assertion Issuer: 'https://token.actions.githubusercontent.com'. Assertion Subject: "
        "'repo:example/imagefactory:environment:dev'. Assertion Audience: "
        "'api://AzureADTokenExchange'."
    )
    with GitHubOidcEndpoint([fake_jwt(1)]) as endpoint:
        result = run_script(
            tmp_path, capture_args(), [az_plain_error("login", refusal)], endpoint.env()
        )

    assert result.exit_code == 1
    assert result.calls == [login_line(fake_jwt(1))]
    assert result.stderr == (
        f"capture.sh: error: logging in to Azure as client '{CLIENT_ID}' in tenant '{TENANT_ID}'"
        f" failed (permanent error, not retried):\nERROR: {refusal}\n"
    )


def test_transient_oidc_login_failure_is_retried_with_a_new_github_token(tmp_path: Path) -> None:
    with GitHubOidcEndpoint([fake_jwt(1), fake_jwt(2)]) as endpoint:
        result = run_script(
            tmp_path,
            capture_args(),
            [
                az_error("login", "ServiceUnavailable", "The service is temporarily unavailable."),
                login_ok(),
                instance_view("deallocated", generalized=True),
            ],
            endpoint.env(),
        )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [login_line(fake_jwt(1)), sleep_line(1), login_line(fake_jwt(2)), IV]


# --- capture: the guest never powers off --------------------------------------


# Polls of tens of seconds, so the slept time the fake sleep records dominates the real
# time the polls take (each one starts a Python fake az) and the waited times are exact.


def test_vm_that_never_stops_times_out_with_a_hint(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        capture_args(),
        [LOGGED_IN, *[instance_view("running")] * 4],
        {"CAPTURE_STOP_TIMEOUT_SECONDS": "30", "CAPTURE_POLL_SECONDS": "10"},
    )

    assert result.exit_code == 3
    assert result.calls == [CHECK, IV, sleep_line(10), IV, sleep_line(10), IV, sleep_line(10), IV]
    assert result.stdout.splitlines()[3:] == [
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
        [LOGGED_IN, *[instance_view("running")] * 4],
        {"CAPTURE_STOP_TIMEOUT_SECONDS": "50", "CAPTURE_POLL_SECONDS": "20"},
    )

    assert result.exit_code == 3
    assert result.calls == [CHECK, IV, sleep_line(20), IV, sleep_line(20), IV, sleep_line(10), IV]
    assert result.stdout.splitlines()[3:] == [
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
        ([], "missing action: expected 'capture', 'collect' or 'delete'"),
        (
            ["generalize", "--resource-group", RG, "--vm", VM],
            "unknown action 'generalize': expected 'capture', 'collect' or 'delete'",
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
        (
            ["capture", "--resource-group", RG, "--vm", VM, "--run-command", "validate"],
            "--run-command is only for 'collect'",
        ),
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
            LOGGED_IN,
            instance_view("running"),
            az_error("vm get-instance-view", *THROTTLED),
            instance_view("stopped"),
            ok("vm deallocate"),
            ok("vm generalize"),
        ],
        unset,
    )

    assert result.exit_code == 0, result.stderr
    assert result.calls == [
        CHECK,
        IV,
        sleep_line(15),
        IV,
        sleep_line(10),
        IV,
        DEALLOCATE,
        GENERALIZE,
    ]
    assert "waiting up to 1800s" in result.stdout
    assert "transient error on try 1/6" in result.stdout


USAGE = (
    "usage: capture.sh capture --resource-group RG --vm NAME [--subscription SUB]\n"
    "       capture.sh collect --resource-group RG --vm NAME --run-command NAME"
    " [--run-command NAME ...] [--subscription SUB]\n"
    "       capture.sh delete  --resource-group RG --vm NAME [--subscription SUB]\n"
)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["-h"], ["capture", "--help"], ["delete", "--vm", VM, "-h"], ["collect", "-h"]],
)
def test_help_prints_usage_and_succeeds(tmp_path: Path, args: list[str]) -> None:
    result = run_script(tmp_path, args)

    assert result.exit_code == 0
    assert result.stderr == ""
    # The usage, then the header comment: what each action does, its output and limits.
    assert result.stdout.startswith(USAGE + "\nControl-plane half of the capture stage:")
    help_lines = result.stdout.splitlines()
    for line in (
        "collect  gets a working az credential the same way, then reads each named managed Run",
        "Exit codes:",
    ):
        assert line in help_lines
    assert "VALIDATION_KEEP_RUNNING" in result.stdout
    assert not any(line.startswith("#") for line in help_lines)
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
    result = run_script(
        tmp_path, capture_args(), [LOGGED_IN, instance_view("stopped"), ok("vm generalize")]
    )

    assert result.exit_code == 1
    assert result.calls == [CHECK, IV, DEALLOCATE]
    assert "fake az: call #3 was 'vm deallocate', scenario expected 'vm generalize'" in (
        result.stderr
    )
