"""How long Azure takes for each resource `pulumi up` creates: a small, documented model.

Every figure is (median, p90) in seconds for a create. They are starting points, to be
recalibrated from real `pulumi up --json` event timings; each constant names where it
comes from. The model reads only what the program registered (offline.Registered), so
it follows the program's behaviour, not the config's intent.

Sources:
  [issue]  the latency figures collected for the "latency model" issue (#1): medians and
           p90s observed for ARM operations in eastus/westeurope.
  [ACG]    Azure Compute Gallery docs: replication to several regions runs in parallel,
           shallow replication does not copy the blob (dev/test only, one region).
  [pulumi] `pulumi up --parallel`: "Defaults to unbounded" (2147483647) in the CLI
           reference; the azure-native provider waits on long-running ARM operations by
           polling them (every 10 s per the issue), so a long operation is seen done on
           the next poll after it finishes.
Assumptions (no published figure; marked [assumed]) are kept few and said so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OsKind = Literal["linux", "windows"]


@dataclass(frozen=True)
class Estimate:
    """A duration in seconds: the typical case and the slow-but-normal case."""

    median: float
    p90: float

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.median + other.median, self.p90 + other.p90)

    def scaled(self, factor: float) -> Estimate:
        return Estimate(self.median * factor, self.p90 * factor)


# -- ARM control-plane resources [issue] ---------------------------------------------------
NETWORK = Estimate(3, 15)
"""Resource group, VNet, subnet, NSG, NIC, public IP."""
GALLERY = Estimate(1, 5)
"""Gallery and image definition."""
ROLE_ASSIGNMENT = Estimate(3, 15)
"""[assumed] like the other plain ARM writes."""
LOCAL = Estimate(0.1, 0.5)
"""[assumed] providers that compute locally: tls keys, random passwords."""
UNKNOWN = Estimate(5, 30)
# A Custom Script Extension on a running Windows VM: extension install, then the script
# (a first-boot configuration script, minutes) [assumed].
FIRST_BOOT_EXTENSION = Estimate(90, 300)
"""[assumed] any type the model does not know."""

# -- Compute [issue] -------------------------------------------------------------------------
VM = {"linux": Estimate(50, 120), "windows": Estimate(90, 300)}
"""VM from a marketplace (or gallery) image, until the agent reports ready."""
DEALLOCATE = {"linux": Estimate(15, 60), "windows": Estimate(45, 120)}
GENERALIZE = Estimate(1, 2)
"""`az vm generalize`: only marks the deallocated VM."""
MANAGED_IMAGE = Estimate(6, 30)
READ_CHECKS = Estimate(2, 10)
"""[assumed] `capture.sh collect` reading the checks' instance views: one ARM read each."""

# -- Gallery image version [issue], [ACG] ----------------------------------------------------
VERSION_ONE_REGION = Estimate(460, 900)
"""Full replication of an image of at most 64 GB to one region."""
VERSION_SIZE_STEP_GB = 64
"""[assumed] copy time grows with the blob: one more VERSION_ONE_REGION per 64 GB."""
VERSION_EXTRA_REGION = Estimate(120, 240)
"""Each further region when regions replicate in parallel (p90 [assumed] doubled)."""
VERSION_EXTRA_REPLICA = Estimate(15, 60)
"""[assumed] each replica beyond one in the busiest region (replicas copy in parallel)."""
VERSION_SHALLOW = Estimate(60, 180)
"""[assumed] shallow replication: no blob copy, only the version's metadata."""
DEFAULT_DISK_GB: dict[OsKind, int] = {"linux": 30, "windows": 127}
"""OS disk of the marketplace images we build from when config sets no osDiskSizeGb."""

# -- Scale sets [issue] ----------------------------------------------------------------------
SCALE_SET_BASE = Estimate(90, 240)
SCALE_SET_PER_INSTANCE = Estimate(0.5, 1.0)

# -- Run Command [issue] ---------------------------------------------------------------------
RUN_COMMAND_MIN = 20.0
"""Agent hand-off and status reporting around any script."""
ESTIMATE_HEADER = re.compile(r"^#\s*imagefactory-estimate-seconds:\s*(\d+)\s*$", re.MULTILINE)
"""A script may declare its own median: `# imagefactory-estimate-seconds: 240`."""
SCRIPT_PATH = re.compile(r"^# imagefactory: scripts/(\S+) ", re.MULTILINE)
"""The header scripts.render puts on every rendered script: which file it runs."""
SCRIPT_DEFAULTS: dict[str, float] = {
    # [assumed] medians per script for scripts without the header; p90 is twice.
    "linux/provision/10-base.sh": 180,  # apt-get update + full-upgrade on fresh Ubuntu
    "linux/provision/20-webserver.sh": 60,
    "linux/provision/90-manifest.sh": 20,
    "linux/audit.sh": 20,
    "linux/generalize.sh": 30,  # scrub + waagent -deprovision; power-off comes later
    "windows/provision/10-iis.ps1": 300,  # Install-WindowsFeature Web-Server
    "windows/provision/90-manifest.ps1": 30,
    "windows/audit.ps1": 30,
    "windows/generalize.ps1": 300,  # sysprep until IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE
    # Validation on the test VM (issue 12): the common checks mostly wait for cloud-init
    # (Linux) to finish; the image's own checks fetch one page.
    "linux/validate.sh": 30,
    "linux/validate/10-base.sh": 20,  # reads sshd -T, apt settings and timers, dpkg
    "linux/validate/20-webserver.sh": 20,
    "linux/validate/listening-ports.sh": 20,  # one `ss` listing
    "windows/validate.ps1": 30,
    "windows/validate/10-iis.ps1": 20,
}
SCRIPT_DEFAULT = 120.0
"""[assumed] a script nobody estimated."""

POLL_SECONDS = 10
"""[pulumi] long-running operations are seen finished on the next poll."""
LONG_RUNNING = {
    "azure-native:compute:VirtualMachine",
    "azure-native:compute:VirtualMachineRunCommandByVirtualMachine",
    "azure-native:compute:Image",
    "azure-native:compute:GalleryImageVersion",
    "azure-native:compute:VirtualMachineScaleSet",
}

PULUMI_DEFAULT_PARALLEL = 2_147_483_647
"""[pulumi] `pulumi up --parallel` default: unbounded."""


def vm(os: OsKind) -> Estimate:
    return VM[os]


def capture(os: OsKind) -> Estimate:
    """scripts/azure/capture.sh: wait for power-off, deallocate, generalize."""
    return DEALLOCATE[os] + GENERALIZE


def collect(os: OsKind) -> Estimate:
    """`capture.sh collect`: read each check's instance view (an ARM read each), then
    deallocate the running test VM (no power-off to wait for)."""
    return READ_CHECKS + DEALLOCATE[os]


def run_command(script: str) -> Estimate:
    """max(RUN_COMMAND_MIN, the script's own header estimate or the default for its file)."""
    found = ESTIMATE_HEADER.search(script)
    path = SCRIPT_PATH.search(script)
    if found:
        median = float(found.group(1))
    else:
        median = SCRIPT_DEFAULTS.get(path.group(1) if path else "", SCRIPT_DEFAULT)
    median = max(RUN_COMMAND_MIN, median)
    return Estimate(median, 2 * median)


def image_version(
    *, regions: int, max_replicas: int, mode: str, disk_gb: int | None, os: OsKind
) -> Estimate:
    """One GalleryImageVersion replicated to `regions` regions in parallel."""
    if mode == "Shallow":
        return VERSION_SHALLOW
    size = disk_gb or DEFAULT_DISK_GB[os]
    first = VERSION_ONE_REGION.scaled(max(1, math.ceil(size / VERSION_SIZE_STEP_GB)))
    extra = VERSION_EXTRA_REGION.scaled(max(0, regions - 1))
    replicas = VERSION_EXTRA_REPLICA.scaled(max(0, max_replicas - 1))
    return first + extra + replicas


def scale_set(capacity: int) -> Estimate:
    return SCALE_SET_BASE + SCALE_SET_PER_INSTANCE.scaled(capacity)


def polled(token: str, est: Estimate) -> Estimate:
    """Round long-running operations up to the provider's poll interval."""
    if token not in LONG_RUNNING:
        return est

    def up(x: float) -> float:
        return math.ceil(x / POLL_SECONDS) * POLL_SECONDS

    return Estimate(up(est.median), up(est.p90))


def os_of_vm(inputs: Mapping[str, Any]) -> OsKind:
    """A VM's OS from what the program registered (Windows has windowsConfiguration)."""
    profile = inputs.get("osProfile") or {}
    return "windows" if profile.get("windowsConfiguration") else "linux"
