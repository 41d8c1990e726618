"""scripts: what each Run Command executes, and the local capture command, as plain text.

The rendered text is a short parameter header followed by the file unchanged, so the
same script runs under Run Command and in the script tests; its hash feeds `triggers`.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from imagefactory import scripts
from imagefactory.scripts import Script
from imagefactory.settings import SCRIPTS_DIR, Settings, load

LINUX_ENV = [
    "export IMAGE_NAME=webserver",
    "export IMAGE_VERSION=1.1.0",
    "export BASE_IMAGE=Canonical:ubuntu-24_04-lts:server:latest",
    "export BUILD_USERS=azureuser",
]
WINDOWS_ENV = [
    "$env:IMAGE_NAME = 'iis'",
    "$env:IMAGE_VERSION = '1.0.0'",
    "$env:BASE_IMAGE = 'MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest'",
    "$env:BUILD_USERS = 'azureuser'",
]


def linux_steps(settings: Settings) -> list[scripts.Step]:
    web = settings.images[0]
    return scripts.guest_steps(
        os="linux",
        provision=web.script_paths,
        image=web.name,
        version="1.1.0",
        base_image=web.base.urn(),
        build_user=settings.builder.admin_username,
    )


def windows_steps(settings: Settings) -> list[scripts.Step]:
    iis = settings.images[1]
    return scripts.guest_steps(
        os="windows",
        provision=iis.script_paths,
        image=iis.name,
        version="1.0.0",
        base_image=iis.base.urn(),
        build_user=settings.builder.admin_username,
    )


@pytest.fixture
def prod(prod_raw: dict[str, Any]) -> Settings:
    return load(prod_raw)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_linux_steps_in_order(prod: Settings) -> None:
    steps = linux_steps(prod)
    assert [(s.name, s.script.path) for s in steps] == [
        ("10-base", "linux/provision/10-base.sh"),
        ("20-webserver", "linux/provision/20-webserver.sh"),
        ("90-manifest", "linux/provision/90-manifest.sh"),
        ("audit", "linux/audit.sh"),
        ("generalize", "linux/generalize.sh"),
    ]


def test_windows_steps_in_order(prod: Settings) -> None:
    steps = windows_steps(prod)
    assert [(s.name, s.script.path) for s in steps] == [
        ("10-iis", "windows/provision/10-iis.ps1"),
        ("90-manifest", "windows/provision/90-manifest.ps1"),
        ("audit", "windows/audit.ps1"),
        ("generalize", "windows/generalize.ps1"),
    ]


def test_linux_header_then_file_unchanged(prod: Settings) -> None:
    steps = linux_steps(prod)
    for step in steps:
        content = (SCRIPTS_DIR / step.script.path).read_text(encoding="utf-8")
        assert step.script.content == content
        assert step.script.sha256 == sha(content)
        header = [
            "#!/bin/bash",
            f"# imagefactory: scripts/{step.script.path} sha256:{sha(content)}",
            *LINUX_ENV,
        ]
        if step.name == "audit":
            header.append("set -- --pre-generalize")
        if step.name == "generalize":
            audit = (SCRIPTS_DIR / "linux" / "audit.sh").read_text(encoding="utf-8")
            end = f"IMAGEFACTORY_FILE_{sha(audit)[:16]}"
            header += [
                "install -d -m 0700 /run/imagefactory || exit 1",
                f"cat > /run/imagefactory/audit.sh <<'{end}' || exit 1",
                audit.removesuffix("\n"),
                end,
                "chmod 0700 /run/imagefactory/audit.sh || exit 1",
            ]
        assert step.source == "\n".join(header) + "\n" + content


def test_generalize_writes_the_unpinned_audit_where_it_looks_for_it(
    prod: Settings, tmp_path: Path
) -> None:
    """Run the generalize step's header (pointed at a temporary folder): the audit it
    leaves is audit.sh byte for byte, with no `set --` pinning it to --pre-generalize."""
    (step,) = [s for s in linux_steps(prod) if s.name == "generalize"]
    header = step.source[: -len(step.script.content)]
    target = tmp_path / "run" / "imagefactory"
    # Point only the header's own commands at the folder; the file's text stays as it is.
    runnable = "\n".join(
        line.replace("/run/imagefactory", str(target))
        if line.startswith(("install -d ", "cat > ", "chmod "))
        else line
        for line in header.split("\n")
    )
    done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    written = (target / "audit.sh").read_bytes()
    assert written == (SCRIPTS_DIR / "linux" / "audit.sh").read_bytes()
    assert oct((target / "audit.sh").stat().st_mode & 0o777) == "0o700"


def test_a_helper_that_would_end_its_own_here_document_is_refused() -> None:
    digest = sha("any text")
    hostile = Script("linux/x.sh", f"echo hi\nIMAGEFACTORY_FILE_{digest[:16]}\n", digest)
    with pytest.raises(ValueError, match=r"scripts/linux/x.sh cannot be embedded"):
        scripts.render(SAMPLE, "linux", {}, files={"/run/x.sh": hostile})
    unterminated = Script("linux/y.sh", "echo no newline at the end", digest)
    with pytest.raises(ValueError, match=r"scripts/linux/y.sh cannot be embedded"):
        scripts.render(SAMPLE, "linux", {}, files={"/run/y.sh": unterminated})


def test_windows_header_then_file_unchanged(prod: Settings) -> None:
    for step in windows_steps(prod):
        content = (SCRIPTS_DIR / step.script.path).read_text(encoding="utf-8")
        assert step.script.sha256 == sha(content)
        header = [f"# imagefactory: scripts/{step.script.path} sha256:{sha(content)}", *WINDOWS_ENV]
        assert step.source == "\n".join(header) + "\n" + content


SAMPLE = Script("linux/sample.sh", 'echo "$IMAGE_NAME"\n', sha('echo "$IMAGE_NAME"\n'))


@pytest.mark.parametrize(
    ("value", "linux", "windows"),
    [
        ("it's", "export X='it'\"'\"'s'", "$env:X = 'it''s'"),
        ("two words", "export X='two words'", "$env:X = 'two words'"),
        (
            'say "hi"; $(rm -rf /)',
            "export X='say \"hi\"; $(rm -rf /)'",
            "$env:X = 'say \"hi\"; $(rm -rf /)'",
        ),
        ("", "export X=''", "$env:X = ''"),
    ],
)
def test_values_are_quoted(value: str, linux: str, windows: str) -> None:
    text = scripts.render(SAMPLE, "linux", {"X": value})
    assert text.splitlines()[2] == linux
    assert scripts.render(SAMPLE, "windows", {"X": value}).splitlines()[1] == windows


def test_linux_header_evaluates_back_to_the_values() -> None:
    env = {"A": "it's", "B": 'a "b" $c `d`', "C": "x\ny"}
    body = 'printf "%s|" "$A" "$B" "$C" "$@"\n'
    text = scripts.render(Script("t.sh", body, sha(body)), "linux", env, ["--x y", "'z'"])
    out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=True)
    assert out.stdout == "it's|a \"b\" $c `d`|x\ny|--x y|'z'|"


def test_powershell_steps_refuse_positional_arguments() -> None:
    with pytest.raises(ValueError, match="environment variables only"):
        scripts.render(SAMPLE, "windows", {}, ["--pre-generalize"])


def test_an_edited_script_renders_and_hashes_differently() -> None:
    original = scripts.load("linux/generalize.sh")
    edited_content = original.content + "echo edited\n"
    edited = Script(original.path, edited_content, sha(edited_content))
    before = scripts.render(original, "linux", {"IMAGE_NAME": "webserver"})
    after = scripts.render(edited, "linux", {"IMAGE_NAME": "webserver"})
    assert before != after
    assert f"sha256:{original.sha256}" in before
    assert f"sha256:{sha(edited_content)}" in after
    assert after.endswith("echo edited\n")


def test_load_is_cached_by_path() -> None:
    assert scripts.load("linux/audit.sh") is scripts.load("linux/audit.sh")


def test_capture_command_from_prod_settings(prod: Settings) -> None:
    vm = prod.names.builder_vm("webserver", "1.1.0", "linux")
    cmd = scripts.capture_command(
        resource_group=prod.names.build_group,
        vm_name=vm,
        stop_timeout_seconds=prod.capture.stop_timeout_seconds,
        poll_seconds=prod.capture.poll_seconds,
        max_tries=prod.capture.max_tries,
        backoff_seconds=prod.capture.backoff_seconds,
    )
    target = "--resource-group imgf-prod-build-rg --vm imgf-prod-bld-webserver-1-1-0"
    assert cmd.create == f"bash scripts/azure/capture.sh capture {target}"
    assert cmd.delete == f"bash scripts/azure/capture.sh delete {target}"
    assert cmd.environment == {
        "CAPTURE_STOP_TIMEOUT_SECONDS": "2700",
        "CAPTURE_POLL_SECONDS": "15",
        "CAPTURE_MAX_TRIES": "8",
        "CAPTURE_BACKOFF_SECONDS": "15",
    }
    content = (SCRIPTS_DIR / "azure/capture.sh").read_text(encoding="utf-8")
    assert cmd.script.path == "azure/capture.sh"
    assert cmd.script.sha256 == sha(content)


def test_capture_command_quotes_its_arguments() -> None:
    cmd = scripts.capture_command(
        resource_group="rg with space",
        vm_name="vm'1",
        stop_timeout_seconds=60,
        poll_seconds=1,
        max_tries=1,
        backoff_seconds=1,
    )
    assert shlex.split(cmd.create) == [
        "bash",
        "scripts/azure/capture.sh",
        "capture",
        "--resource-group",
        "rg with space",
        "--vm",
        "vm'1",
    ]
