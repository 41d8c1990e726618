"""Boot one clone of the generalized image with the user data the program renders for the dev
stack's scale set, and check that dev's values arrived: cloud-init wrote the environment
file and nginx names the environment on every response.

The clone's NoCloud seed carries the program's cloud-config unchanged, as one part of a MIME
multipart user data (a format cloud-init reads, like Azure's custom data); the second part is
the test's own report script, which writes what the VM sees to the serial console."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from offline import engine

from .conftest import BootImage, run

pytestmark = [pytest.mark.slow, pytest.mark.guest]

BOOT_TIMEOUT_S = 480
HTTP_TIMEOUT_S = 60
MARKER_RE = re.compile(r"IMAGEFACTORY-UD-([A-Z-]+)=(\S*)")

# Runs once the boot transaction is over (systemd-run, so it is not part of that transaction
# and can wait for it): cloud-init's final stage has run by then.
REPORT = """\
#!/bin/sh
cat >/usr/local/sbin/imagefactory-ud-report <<'EOF'
#!/bin/sh
timeout 300 systemctl is-system-running --wait >/dev/null 2>&1
header=$(python3 -c 'import urllib.request; \
print(urllib.request.urlopen("http://127.0.0.1/").headers.get("X-Imagefactory-Environment"))')
{
  echo
  echo "IMAGEFACTORY-UD-ENV-FILE=$(base64 -w0 /etc/imagefactory/environment 2>/dev/null)"
  echo "IMAGEFACTORY-UD-HEADER=${header:-none}"
  echo "IMAGEFACTORY-UD-CLOUD-INIT=$(cloud-init status 2>/dev/null | sed 's/^status: //')"
  echo "IMAGEFACTORY-UD-DONE=1"
} >/dev/ttyS0
EOF
chmod 0755 /usr/local/sbin/imagefactory-ud-report
systemd-run --no-block --unit=imagefactory-ud-report /usr/local/sbin/imagefactory-ud-report
"""


def rendered_for_dev() -> str:
    """The cloud-config the program hands web-dev as custom data, decoded."""
    (vmss,) = engine.run("dev").of_type("azure-native:compute:VirtualMachineScaleSet")
    custom_data = vmss.inputs["virtualMachineProfile"]["osProfile"]["customData"]
    return base64.b64decode(custom_data).decode()


def seed_user_data(cloud_config: str) -> str:
    message = MIMEMultipart()
    message.attach(MIMEText(cloud_config, "cloud-config"))
    message.attach(MIMEText(REPORT, "x-shellscript"))
    return message.as_string()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Booted:
    markers: dict[str, str]
    header: str | None
    console: str


def boot(image: BootImage, work: Path, user_data: str) -> Iterator[Booted]:
    disk = work / "disk.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.base_qcow2), "-F", "qcow2",
         str(disk)])  # fmt: skip
    seed_dir = work / "seed"
    seed_dir.mkdir()
    (seed_dir / "meta-data").write_text("instance-id: iid-user-data\nlocal-hostname: ud\n")
    (seed_dir / "user-data").write_text(user_data)
    seed = work / "seed.iso"
    run(["genisoimage", "-quiet", "-output", str(seed), "-volid", "cidata", "-joliet", "-rock",
         str(seed_dir / "user-data"), str(seed_dir / "meta-data")])  # fmt: skip
    port = free_port()
    console = work / "console.log"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-cpu", "max", "-smp", "1",
        "-m", "1024", "-display", "none", "-monitor", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 ds=nocloud panic=-1",
        "-drive", f"file={disk},format=qcow2,if=virtio",
        "-drive", f"file={seed},format=raw,if=virtio,readonly=on",
        "-nic", f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:80",
    ]  # fmt: skip
    with (work / "qemu.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            text = console.read_text(errors="replace") if console.exists() else ""
            markers = dict(MARKER_RE.findall(text))
            if "DONE" in markers:
                break
            if process.poll() is not None:
                pytest.fail(f"qemu exited ({process.returncode})\n{text[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no report within {BOOT_TIMEOUT_S}s\n{text[-3000:]}")
            time.sleep(3)
        yield Booted(markers, http_header(port), text)
    finally:
        # This clone's own qemu, by its PID.
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def http_header(port: int) -> str | None:
    deadline = time.monotonic() + HTTP_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                return str(response.headers.get("X-Imagefactory-Environment"))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.fixture(scope="module")
def booted(boot_image: BootImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    work = tmp_path_factory.mktemp("user-data")
    yield from boot(boot_image, work, seed_user_data(rendered_for_dev()))


def test_the_program_rendered_devs_values_into_the_seed() -> None:
    text = rendered_for_dev()
    assert text.startswith("#cloud-config\n")
    assert "ENVIRONMENT=dev\n" in text


def test_cloud_init_wrote_devs_environment_file(booted: Booted) -> None:
    content = base64.b64decode(booted.markers["ENV-FILE"]).decode()
    assert content == "ENVIRONMENT=dev\nAPI_URL=https://api.dev.contoso.example\n"


def test_nginx_names_the_environment_on_every_response(booted: Booted) -> None:
    assert booted.markers["HEADER"] == "dev"
    assert booted.header == "dev"


def test_cloud_init_finished_without_errors(booted: Booted) -> None:
    assert booted.markers["CLOUD-INIT"] == "done", booted.console[-3000:]
