"""Facts about Azure the pre-flight checks need: VM sizes and marketplace images.

Two sources answer the same questions. `Snapshot` reads the dated data files beside this
module (`vm-sizes.json`, `marketplace-images.json`; each names its source and the command
that refreshes it); `imagefactory.facts.live.LiveFacts` asks Azure through the Azure SDK
for Python. Both parse Azure's own response shapes with the functions below, so a
refreshed snapshot and a live answer are read the same way.

A size or image the snapshot does not know is `None`: the checks warn and move on. Only
Azure itself can say a size is not offered in a region or an image does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

FACTS_DIR = Path(__file__).resolve().parent
SIZES_FILE = FACTS_DIR / "vm-sizes.json"
IMAGES_FILE = FACTS_DIR / "marketplace-images.json"


@dataclass(frozen=True)
class Plan:
    """A Marketplace purchase plan (the image's `plan`, the definition's `purchasePlan`)."""

    name: str
    product: str
    publisher: str

    def text(self) -> str:
        return f"{{name: {self.name}, product: {self.product}, publisher: {self.publisher}}}"


@dataclass(frozen=True)
class SizeFacts:
    """What Azure's Resource SKUs API says of one VM size (in one region, when live)."""

    name: str
    generations: tuple[str, ...] = ()
    """HyperVGenerations, e.g. ('V1', 'V2')."""
    architecture: str = "x64"
    """CpuArchitectureType: 'x64' or 'Arm64'."""
    premium_io: bool = False
    """PremiumIO: premium SSD OS disks allowed."""
    trusted_launch: bool = True
    """False when the size reports TrustedLaunchDisabled."""
    confidential: str | None = None
    """ConfidentialComputingType, e.g. 'SNP'."""
    os_support: tuple[str, ...] = ("linux", "windows")
    """Operating systems the size runs (documented, not in the API)."""
    offered: bool = True
    """False when Azure lists no such size in the region (live answers only)."""
    restriction: str | None = None
    """Azure's reason the size cannot be used in the region, e.g. NotAvailableForSubscription."""
    zones: tuple[str, ...] | None = None
    """Availability zones of the region where this subscription can use the size (live
    answers only: locationInfo zones less `Zone` restrictions); None: not known."""


@dataclass(frozen=True)
class ImageFacts:
    """What Azure's Virtual Machine Images API says of one marketplace image version."""

    urn: str
    os: str | None = None
    """'linux' or 'windows'."""
    generation: str | None = None
    """hyperVGeneration: 'V1' or 'V2'."""
    architecture: str | None = None
    """'x64' or 'Arm64'."""
    os_disk_gb: int | None = None
    """The image's OS disk size in GiB; a VM's OS disk cannot be smaller."""
    plan: Plan | None = None
    """The purchase plan a VM from this image must name."""
    exists: bool = True
    """False when Azure answered that the image does not exist in the region."""


@dataclass(frozen=True)
class GalleryImageFacts:
    """What Azure says of another gallery's image definition: what a build on it must be.

    Shape: GalleryImage (and the shared and community gallery images' GET responses),
    https://learn.microsoft.com/rest/api/compute/gallery-images/get."""

    id: str
    os: str | None = None
    """'linux' or 'windows'."""
    generation: str | None = None
    architecture: str | None = None
    security_type: str | None = None
    """The definition's SecurityType feature; 'Standard' when it has none."""
    exists: bool = True
    """False when Azure answered that there is no such image."""


def gallery_image_from_response(version_id: str, body: Mapping[str, Any]) -> GalleryImageFacts:
    """A gallery image's GET response (REST camelCase or the SDK's as_dict) -> facts."""
    props = body.get("properties") or body
    features = props.get("features") or []
    security = next(
        (str(f.get("value")) for f in features if str(f.get("name")) == "SecurityType"),
        "Standard",
    )
    os_type = props.get("osType") or props.get("os_type")
    return GalleryImageFacts(
        id=version_id,
        os=str(os_type).lower() if os_type else None,
        generation=props.get("hyperVGeneration") or props.get("hyper_v_generation"),
        architecture=props.get("architecture") or "x64",
        security_type=security,
    )


@dataclass
class Source:
    """Which facts answered, for the one line the program prints about it."""

    label: str
    notes: list[str] = field(default_factory=list)


class Facts(Protocol):
    """The questions the checks ask; `None` means 'not known here' (a warning)."""

    @property
    def source(self) -> Source: ...

    def size(self, name: str, region: str) -> SizeFacts | None: ...

    def image(self, urn: str, region: str) -> ImageFacts | None: ...

    def terms_accepted(self, plan: Plan) -> bool | None: ...

    def gallery_image(self, version_id: str, region: str) -> GalleryImageFacts | None: ...

    def version_published(
        self, resource_group: str, gallery: str, image: str, version: str
    ) -> bool | None:
        """Whether this subscription's gallery holds the version; None: not known here."""
        ...


# --- Azure's response shapes -> facts ------------------------------------------------------


def _capabilities(sku: Mapping[str, Any]) -> dict[str, str]:
    return {str(c["name"]): str(c["value"]) for c in sku.get("capabilities") or []}


def size_from_sku(
    sku: Mapping[str, Any], region: str | None, os_support: Mapping[str, Iterable[str]]
) -> SizeFacts:
    """One Resource SKUs entry (resourceType virtualMachines) -> SizeFacts.

    Capability names and values as Azure reports them: https://learn.microsoft.com/
    rest/api/compute/resource-skus/list; TrustedLaunchDisabled per
    https://learn.microsoft.com/azure/virtual-machines/trusted-launch#virtual-machines-sizes.
    """
    caps = _capabilities(sku)
    name = str(sku["name"])
    restriction = None
    for r in sku.get("restrictions") or []:
        # A "Location" restriction lists the regions where this subscription cannot use
        # the size at all; "Zone" restrictions only narrow zones, which we do not pin.
        # Restrictions are the subscription's: a snapshot (region None) never applies them.
        if (
            r.get("type") == "Location"
            and region is not None
            and region.lower() in [str(v).lower() for v in r.get("values") or []]
        ):
            restriction = str(r.get("reasonCode") or "restricted")
    return SizeFacts(
        name=name,
        generations=tuple(g.strip() for g in caps.get("HyperVGenerations", "V1").split(",")),
        architecture=caps.get("CpuArchitectureType", "x64"),
        premium_io=caps.get("PremiumIO", "False") == "True",
        trusted_launch=caps.get("TrustedLaunchDisabled", "False") != "True",
        confidential=caps.get("ConfidentialComputingType"),
        os_support=tuple(os_support.get(name, ("linux", "windows"))),
        restriction=restriction,
        zones=_zones(sku, region),
    )


def _zones(sku: Mapping[str, Any], region: str | None) -> tuple[str, ...] | None:
    """The zones of `region` where the subscription can use the size: the SKU's locationInfo
    zones, less those a `Zone` restriction names (Resource SKUs list,
    https://learn.microsoft.com/rest/api/compute/resource-skus/list). JSON from the REST API
    is camelCase, the SDK's as_dict() snake_case: both are read. None for a snapshot entry."""
    if region is None:
        return None
    info = sku.get("locationInfo") or sku.get("location_info") or []
    here = [i for i in info if str(i.get("location", "")).lower() == region.lower()]
    if not here:
        return None
    zones = {str(z) for z in here[0].get("zones") or []}
    for r in sku.get("restrictions") or []:
        details = r.get("restrictionInfo") or r.get("restriction_info") or {}
        places = [str(v).lower() for v in details.get("locations") or r.get("values") or []]
        if r.get("type") == "Zone" and region.lower() in places:
            zones -= {str(z) for z in details.get("zones") or []}
    return tuple(sorted(zones))


def image_from_response(urn: str, body: Mapping[str, Any]) -> ImageFacts:
    """A Virtual Machine Images GET response (or a snapshot entry) -> ImageFacts.

    Shape: https://learn.microsoft.com/rest/api/compute/virtual-machine-images/get.
    """
    props = body.get("properties") or {}
    disk = props.get("osDiskImage") or {}
    plan = props.get("plan")
    size = disk.get("sizeInGb")
    os_name = disk.get("operatingSystem")
    return ImageFacts(
        urn=urn,
        os=str(os_name).lower() if os_name else None,
        generation=props.get("hyperVGeneration"),
        architecture=props.get("architecture") or "x64",
        os_disk_gb=int(size) if size is not None else None,
        plan=Plan(str(plan["name"]), str(plan["product"]), str(plan["publisher"]))
        if plan
        else None,
    )


def urn_of(entry: Mapping[str, Any]) -> str:
    return ":".join(str(entry[k]) for k in ("publisher", "offer", "sku", "version"))


def _image_key(urn: str) -> str:
    """Publisher, offer and SKU compare case-insensitively in Azure; a pinned version is
    looked up as 'latest' in the snapshot, which records one version per SKU."""
    publisher, offer, sku, _version = urn.split(":")
    return f"{publisher}:{offer}:{sku}".lower()


# --- the snapshot --------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The dated data files: sizes and images as recorded, no regions, no terms."""

    recorded: str
    sizes: Mapping[str, SizeFacts]
    images: Mapping[str, ImageFacts]
    source: Source

    def size(self, name: str, region: str) -> SizeFacts | None:
        return self.sizes.get(name.lower())

    def image(self, urn: str, region: str) -> ImageFacts | None:
        return self.images.get(_image_key(urn))

    def terms_accepted(self, plan: Plan) -> bool | None:
        return None  # per subscription: only Azure knows

    def gallery_image(self, version_id: str, region: str) -> GalleryImageFacts | None:
        return None  # another gallery: only Azure knows

    def version_published(
        self, resource_group: str, gallery: str, image: str, version: str
    ) -> bool | None:
        return None  # the stack's own gallery: only Azure knows


@cache
def snapshot() -> Snapshot:
    """The snapshot as this checkout's data files hold it (read once per process)."""
    return load_snapshot(FACTS_DIR)


def load_snapshot(directory: Path) -> Snapshot:
    """A snapshot from `vm-sizes.json` and `marketplace-images.json` in `directory`."""
    sizes_doc = json.loads((directory / SIZES_FILE.name).read_text())
    images_doc = json.loads((directory / IMAGES_FILE.name).read_text())
    os_support = {name: entry["os"] for name, entry in sizes_doc["documented"]["osSupport"].items()}
    sizes = {
        str(s["name"]).lower(): size_from_sku(s, None, os_support)
        for s in sizes_doc["resourceSkus"]
        if s.get("resourceType") == "virtualMachines"
    }
    images = {
        _image_key(urn_of(i)): image_from_response(urn_of(i), i) for i in images_doc["images"]
    }
    recorded = str(sizes_doc["about"]["recorded"])
    label = f"the facts snapshot of {recorded} (imagefactory/facts/)"
    return Snapshot(recorded, sizes, images, Source(label))


def documented_os_support() -> dict[str, list[str]]:
    """Sizes limited to some operating systems, from their documentation pages."""
    doc = json.loads(SIZES_FILE.read_text())
    return {name: list(e["os"]) for name, e in doc["documented"]["osSupport"].items()}
