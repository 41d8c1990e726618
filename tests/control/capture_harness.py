"""Scenario builders and a runner for scripts/azure/capture.sh against fake_az.py.

Error texts follow the Azure CLI's shape on stderr: `ERROR: (Code) Message`
followed by `Code:` and `Message:` lines, exit status 1.

GitHubOidcEndpoint stands in for the runner's ACTIONS_ID_TOKEN_REQUEST_URL on
127.0.0.1, so the OIDC login is exercised through the script's real HTTP client.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "azure" / "capture.sh"
FAKE_AZ = Path(__file__).resolve().parent / "fake_az.py"

RG = "rg-imagefactory-dev"
VM = "vm-build-ubuntu2204"
# The VM `collect` reads: made from the new image, then validated by Run Commands.
TEST_VM = "vm-test-webserver-1-1-0"
SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"

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


# What capture.sh's login reads from the environment; run_script removes them (and
# proxies, so curl reaches 127.0.0.1 directly) unless a test sets them.
LOGIN_ENVIRONMENT = (
    "CAPTURE_LOGIN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "ARM_CLIENT_ID",
    "ARM_TENANT_ID",
    "AZURE_CONFIG_DIR",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)

CLIENT_ID = "6f1c2a3b-0000-4000-8000-00000000c11e"
TENANT_ID = "72f988bf-0000-4000-8000-0000000047e7"
AUDIENCE = "api://AzureADTokenExchange"


def login_ok() -> Call:
    return ok("login")


def token_check_ok() -> Call:
    return ok("account get-access-token")


def token_check_line(subscription: str | None = None) -> str:
    return _line("account", "get-access-token", "--output", "none", subscription=subscription)


def login_line(token: str, *, client_id: str = CLIENT_ID, tenant_id: str = TENANT_ID) -> str:
    return shlex.join(
        [
            "az",
            "login",
            "--service-principal",
            "--username",
            client_id,
            "--tenant",
            tenant_id,
            "--federated-token",
            token,
            "--allow-no-subscriptions",
            "--only-show-errors",
            "--output",
            "none",
        ]
    )


def fake_jwt(n: int) -> str:
    """A JWT-shaped token (three base64url segments), distinct per n."""

    def segment(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = segment({"alg": "RS256", "typ": "JWT"})
    payload = segment({"aud": AUDIENCE, "sub": "repo:example/imagefactory:environment:dev", "n": n})
    return f"{header}.{payload}.{segment({'signature': n})}"


@dataclass(frozen=True)
class TokenRequest:
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class GitHubOidcEndpoint:
    """GitHub's OIDC token endpoint on 127.0.0.1: answers `{"count": n, "value": JWT}`
    with the next of `tokens`, only for the right bearer request token and audience
    (401/400 otherwise, 404 once the tokens run out). Use it as a context manager."""

    tokens: list[str]
    request_token: str = "ghs-request-token-for-capture-tests"
    requests: list[TokenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                auth = self.headers.get("Authorization")
                endpoint.requests.append(TokenRequest(url.path, query, auth))
                if auth != f"bearer {endpoint.request_token}":
                    self._answer(401, {"message": "bad request token"})
                elif query.get("audience") != [AUDIENCE]:
                    self._answer(400, {"message": f"bad audience {query.get('audience')}"})
                elif not endpoint.tokens:
                    self._answer(404, {"message": "no more tokens in this test"})
                else:
                    self._answer(200, {"count": 1, "value": endpoint.tokens.pop(0)})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the next poll (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/idtoken?api-version=2.0"

    def env(self, *, client_id: str = CLIENT_ID, tenant_id: str = TENANT_ID) -> dict[str, str]:
        """The environment of a GitHub Actions job with `id-token: write` and the app's IDs."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
            "AZURE_CLIENT_ID": client_id,
            "AZURE_TENANT_ID": tenant_id,
        }

    def __enter__(self) -> GitHubOidcEndpoint:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _line(*words: str, subscription: str | None = None) -> str:
    argv = ["az", *words, "--only-show-errors"]
    if subscription is not None:
        argv += ["--subscription", subscription]
    return shlex.join(argv)


def iv_line(subscription: str | None = None, *, vm: str = VM) -> str:
    return _line(
        "vm",
        "get-instance-view",
        "--resource-group",
        RG,
        "--name",
        vm,
        "--query",
        "instanceView.statuses[].code",
        "-o",
        "tsv",
        subscription=subscription,
    )


def deallocate_line(subscription: str | None = None, *, vm: str = VM) -> str:
    return _line(
        "vm", "deallocate", "--resource-group", RG, "--name", vm, subscription=subscription
    )


def generalize_line(subscription: str | None = None) -> str:
    return _line(
        "vm", "generalize", "--resource-group", RG, "--name", VM, subscription=subscription
    )


def run_command_line(name: str, subscription: str | None = None, *, vm: str = TEST_VM) -> str:
    return _line(
        "vm",
        "run-command",
        "show",
        "--resource-group",
        RG,
        "--vm-name",
        vm,
        "--name",
        name,
        "--instance-view",
        "--output",
        "json",
        subscription=subscription,
    )


def run_command_view(
    name: str,
    output: str,
    *,
    state: str = "Succeeded",
    exit_code: int | None = 0,
    error: str = "",
    message: str = "",
    vm: str = TEST_VM,
) -> Call:
    """`az vm run-command show --instance-view` for a managed Run Command: the resource
    as az prints it, its script's stdout and stderr in instanceView.output and .error."""
    resource = {
        "asyncExecution": False,
        "errorBlobUri": None,
        "id": (
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RG}/providers/"
            f"Microsoft.Compute/virtualMachines/{vm}/runCommands/{name}"
        ),
        "instanceView": {
            "endTime": "2025-01-15T14:03:11.8216479+00:00",
            "error": error,
            "executionMessage": message,
            "executionState": state,
            "exitCode": exit_code,
            "output": output,
            "startTime": "2025-01-15T14:01:02.1234567+00:00",
            "statuses": None,
        },
        "location": "westeurope",
        "name": name,
        "outputBlobUri": None,
        "provisioningState": "Succeeded",
        "resourceGroup": RG,
        "source": {"commandId": None, "script": "#!/usr/bin/env bash\n...", "scriptUri": None},
        "tags": None,
        "timeoutInSeconds": 3600,
        "treatFailureAsDeploymentFailure": False,
        "type": "Microsoft.Compute/virtualMachines/runCommands",
    }
    return {"expect": "vm run-command show", "stdout": json.dumps(resource, indent=2) + "\n"}


def sleep_line(seconds: int) -> str:
    return f"sleep {seconds}"


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str
    calls: list[str]
    """Every az call and every sleep, in order, one line each."""
    config_dirs: list[str]
    """AZURE_CONFIG_DIR of each az call, in order ("" when unset)."""


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
    config_log = tmp_path / "config_dirs.log"
    config_log.touch()
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        make_bin(tmp_path)

    # The script's own settings (CAPTURE_*, VALIDATION_*) come from the test alone.
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CAPTURE_", "VALIDATION_")) and key not in LOGIN_ENVIRONMENT
    }
    full_env |= FAST_ENV
    full_env |= env or {}
    full_env["PATH"] = path if path is not None else f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    full_env["FAKE_AZ_SCENARIO"] = str(scenario)
    full_env["FAKE_AZ_LOG"] = str(log)
    full_env["FAKE_AZ_CONFIG_LOG"] = str(config_log)

    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        log.read_text().splitlines(),
        config_log.read_text().splitlines(),
    )


def capture_args(subscription: str | None = None) -> list[str]:
    args = ["capture", "--resource-group", RG, "--vm", VM]
    if subscription is not None:
        args += ["--subscription", subscription]
    return args


def collect_args(*run_commands: str, subscription: str | None = None) -> list[str]:
    args = ["collect", "--resource-group", RG, "--vm", TEST_VM]
    for name in run_commands:
        args += ["--run-command", name]
    if subscription is not None:
        args += ["--subscription", subscription]
    return args
