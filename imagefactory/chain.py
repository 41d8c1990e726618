"""Images built on images: which base each image starts from, the order builds must follow,
and what must agree along the chain. Pure, no Pulumi.

An image's `baseImage` is one of three kinds: a Marketplace image (publisher/offer/sku), an
image of this stack (`image`, `version` default `latest`), or a version of another gallery
by id. For an image of this stack the builder starts from that image's version in this
gallery, so the version must exist first (the graph orders it) and the fingerprint names
the version (a new base version rebuilds what is built on it).

Agreement, checked before any resource exists, with the page each rule comes from:

- OS, generation and architecture: a VM boots what its image is; the definition only
  labels it ("image definitions", https://learn.microsoft.com/azure/virtual-machines/
  shared-image-galleries#image-definitions).
- Security type: a definition's SecurityType says which VMs Azure creates from it
  (TrustedLaunch: Trusted Launch VMs only; TrustedLaunchSupported: standard or Trusted
  Launch; an image version in a TrustedLaunch definition serves "to create Azure Trusted
  Launch VMs only", https://learn.microsoft.com/azure/virtual-machines/
  trusted-launch-portal#trusted-launch-vm-images). So the builder's own security type must
  be one its base accepts, and an image cannot promise a VM type its base never supported.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from imagefactory.rules import config_key

if TYPE_CHECKING:
    from imagefactory.facts import GalleryImageFacts
    from imagefactory.settings import BaseImage, Image

LATEST = "latest"

# The VM security types Azure creates from a definition with each SecurityType feature.
ACCEPTS: Mapping[str, frozenset[str]] = {
    "Standard": frozenset({"Standard"}),
    "TrustedLaunchSupported": frozenset({"Standard", "TrustedLaunch"}),
    "TrustedLaunch": frozenset({"TrustedLaunch"}),
    "ConfidentialVmSupported": frozenset({"Standard", "ConfidentialVM"}),
    "TrustedLaunchAndConfidentialVmSupported": frozenset(
        {"Standard", "TrustedLaunch", "ConfidentialVM"}
    ),
}

# Gallery image version ids a VM can be created from: an ARM id (direct or RBAC sharing),
# a direct-shared gallery's or a community gallery's unique id (ImageReference id,
# sharedGalleryImageId, communityGalleryImageId). Always a version: a definition id means
# "latest when the VM is created", and a rebuild must not depend on when it runs.
_VERSION = r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
ARM_VERSION_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/"
    rf"[^/]+/images/[^/]+/versions/{_VERSION}$",
    re.IGNORECASE,
)
SHARED_VERSION_ID = re.compile(rf"^/SharedGalleries/[^/]+/Images/[^/]+/Versions/{_VERSION}$", re.I)
COMMUNITY_VERSION_ID = re.compile(
    rf"^/CommunityGalleries/[^/]+/Images/[^/]+/Versions/{_VERSION}$", re.I
)

IdKind = Literal["id", "sharedGalleryImageId", "communityGalleryImageId"]


def id_kind(value: str) -> IdKind | None:
    """Which ImageReference field takes this version id, or None when it is not one."""
    if ARM_VERSION_ID.match(value):
        return "id"
    if SHARED_VERSION_ID.match(value):
        return "sharedGalleryImageId"
    if COMMUNITY_VERSION_ID.match(value):
        return "communityGalleryImageId"
    return None


@dataclass(frozen=True)
class BaseRef:
    """An image's base, resolved: what the builder starts from and what the build records."""

    kind: Literal["marketplace", "image", "id"]
    label: str
    """What the fingerprint and the image manifest record: the Marketplace URN, the gallery
    image and its resolved version, or the id."""
    image: str | None = None
    """kind 'image': the base image's name."""
    version: str | None = None
    """kind 'image': the base version the build starts from (latest resolved)."""
    follows_latest: bool = False
    """kind 'image': the config says latest, so a new base version moves the build."""
    id: str | None = None
    """kind 'id': the other gallery's version id."""


def resolve(image: Image, by_name: Mapping[str, Image], gallery: str) -> BaseRef:
    """`image`'s base; the chain rules have passed (the base image and version exist)."""
    base = image.base_image
    if base is None or base.kind == "marketplace":
        return BaseRef("marketplace", image.base.urn())
    if base.kind == "id":
        assert base.id is not None
        return BaseRef("id", base.id, id=base.id)
    assert base.image is not None
    wanted = base.version or LATEST
    found = by_name[base.image].find(wanted)
    assert found is not None
    return BaseRef(
        "image",
        f"{gallery}/{base.image}/{found.version}",
        image=base.image,
        version=found.version,
        follows_latest=wanted == LATEST,
    )


def inherited_plan(image: Image, by_name: Mapping[str, Image]) -> BaseImage | None:
    """The Marketplace or other-gallery base at the root of `image`'s chain (its plan is the
    one every VM of the chain must name), or None for a broken chain."""
    seen: set[str] = set()
    current = image
    while True:
        base = current.base_image
        if base is None or base.kind != "image":
            return current.base
        if base.image in seen or base.image not in by_name:
            return None
        seen.add(current.name)
        current = by_name[str(base.image)]


def order(images: Sequence[Image]) -> list[Image]:
    """Bases before the images built on them, otherwise in config order (stable)."""
    names = {i.name for i in images}
    waiting = {
        i.name: {i.base_image.image}
        if i.base_image is not None and i.base_image.image in names
        else set()
        for i in images
    }
    done: list[Image] = []
    placed: set[str] = set()
    while len(done) < len(images):
        ready = [i for i in images if i.name not in placed and waiting[i.name] <= placed]
        if not ready:  # a cycle: the rules report it; keep config order for the rest
            ready = [i for i in images if i.name not in placed]
        done.append(ready[0])
        placed.add(ready[0].name)
    return done


def dependents(name: str, images: Sequence[Image], *, latest_only: bool) -> list[Image]:
    """Images built on `name`, directly or through others (bases first)."""
    found: list[Image] = []
    frontier = {name}
    for image in order(images):
        base = image.base_image
        if base is None or base.kind != "image" or base.image not in frontier:
            continue
        if latest_only and (base.version or LATEST) != LATEST:
            continue
        found.append(image)
        frontier.add(image.name)
    return found


# --- rules -------------------------------------------------------------------------------


def problems(
    index: int,
    image: Image,
    by_name: Mapping[str, Image],
    broken: set[str] | None,
    builder_security: str,
    disk_of: Callable[[Image], int | None],
) -> list[str]:
    """The chain rules for one image whose base is another image of this stack.

    `broken`: images in config that did not parse (their own errors are reported); None
    when the images key itself is unusable. `builder_security`: the image's builder
    security type. `disk_of(image)`: the OS disk size a version of `image` has, if known.
    """
    base = image.base_image
    if base is None or base.kind != "image" or base.image is None:
        return []
    at = ("images", index, "baseImage")
    name = base.image
    if broken is None or name in broken:
        return []
    if name == image.name:
        return [
            f"{config_key((*at, 'image'))}: {name!r} is this image itself; an image starts "
            "from another image, a Marketplace image or a gallery image version"
        ]
    if name not in by_name:
        close = difflib.get_close_matches(name, sorted(by_name), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [
            f"{config_key((*at, 'image'))}: {name!r} is not an image of this stack{hint}; "
            f"known images: {', '.join(sorted(by_name))}"
        ]
    cycle = _cycle(image, by_name)
    first = min(cycle, key=list(by_name).index) if cycle else None
    if cycle and first != image.name:
        return []  # reported once, at the cycle's first image in config order
    if cycle:
        return [
            f"{config_key((*at, 'image'))}: images {' -> '.join(cycle)} are built on each "
            "other; one of them must start from a Marketplace image or a gallery image "
            "version id"
        ]
    parent = by_name[name]
    wanted = base.version or LATEST
    found: list[str] = []
    if parent.find(wanted) is None:
        if wanted == LATEST:
            found.append(
                f"{config_key((*at, 'version'))}: 'latest' of image {name!r} resolves to no "
                f"version: every version is excluded from latest; {image.name!r} is built on "
                "it, so keep at least one version in latest or pin one"
            )
        else:
            known = ", ".join(v.version for v in parent.versions)
            found.append(
                f"{config_key((*at, 'version'))}: {wanted!r} is not a version of image "
                f"{name!r} (known: {known}); {image.name!r} is built on it"
            )
    where = f"its base {name!r}"
    found += agreement(
        index,
        image,
        where,
        {"os": parent.os, "generation": parent.generation, "architecture": parent.architecture},
        parent.security_type,
        builder_security,
    )
    mine_disk, base_disk = disk_of(image), disk_of(parent)
    if mine_disk is not None and base_disk is not None and mine_disk < base_disk:
        found.append(
            f"{config_key(('images', index, 'builder', 'osDiskSizeGb'))}: {mine_disk} GiB is "
            f"smaller than the {base_disk} GiB OS disk of {where}; a disk cannot be smaller "
            f"than its image: use at least {base_disk}, or leave it out to take the base's size"
        )
    return found


def agreement(
    index: int,
    image: Image,
    where: str,
    base: Mapping[str, str | None],
    base_security: str | None,
    builder_security: str,
) -> list[str]:
    """OS, generation and architecture equal to the base's; a builder the base's definition
    accepts; no VM security type the base does not support. Unknown facts (None) pass."""
    found: list[str] = []
    for key, theirs in base.items():
        mine = getattr(image, key)
        if theirs is not None and mine != theirs:
            found.append(
                f"{config_key(('images', index, key))}: {mine!r} does not match {where}, "
                f"which is {theirs!r}; a VM boots what its base is, so use {key}: {theirs}"
            )
    if base_security is None or base_security not in ACCEPTS:
        return found
    accepted = ACCEPTS[base_security]
    if builder_security not in accepted:
        allowed = " or ".join(sorted(accepted))
        found.append(
            f"{config_key(('images', index, 'builder', 'securityType'))}: "
            f"{builder_security!r} cannot start from {where}, whose definition is "
            f"{base_security!r} (Azure creates only {allowed} VMs from it); allowed: "
            f"{allowed}"
        )
    promised = ACCEPTS[image.security_type] - accepted
    if promised:
        fits = sorted(s for s, a in ACCEPTS.items() if a <= accepted)
        found.append(
            f"{config_key(('images', index, 'securityType'))}: {image.security_type!r} "
            f"promises {' and '.join(sorted(promised))} VMs, which {where} "
            f"({base_security!r}) does not support; an image supports at most what "
            f"its base does (allowed: {', '.join(repr(f) for f in fits)})"
        )
    return found


def external_problems(
    index: int, image: Image, facts: GalleryImageFacts, builder_security: str
) -> list[str]:
    """Another gallery's image as Azure describes it, against the image built on it."""
    key = config_key(("images", index, "baseImage", "id"))
    if not facts.exists:
        return [
            f"{key}: Azure has no image {facts.id!r} that this subscription can read; check "
            "the id and that the deployer has Reader on that gallery (or that it is shared "
            "with this subscription)"
        ]
    base = {"os": facts.os, "generation": facts.generation, "architecture": facts.architecture}
    return agreement(index, image, "its base (another gallery's image)", base,
                     facts.security_type, builder_security)  # fmt: skip


def id_problems(index: int, base: BaseImage) -> list[str]:
    if base.kind != "id" or base.id is None or id_kind(base.id) is not None:
        return []
    return [
        f"{config_key(('images', index, 'baseImage', 'id'))}: {base.id!r} is not a gallery "
        "image version id; expected /subscriptions/<subscription>/resourceGroups/<group>/"
        "providers/Microsoft.Compute/galleries/<gallery>/images/<image>/versions/"
        "<MAJOR.MINOR.PATCH> (or a /SharedGalleries/... or /CommunityGalleries/... version "
        "id); a definition id would mean its latest version at build time"
    ]


def unchecked_warning(index: int, base: BaseImage) -> str | None:
    """Another gallery's version: its definition is not in this stack's config."""
    if base.kind != "id":
        return None
    return (
        f"{config_key(('images', index, 'baseImage', 'id'))}: the OS, generation, "
        "architecture and security type of another gallery's image were not checked; Azure "
        "refuses a mismatch when it creates the builder VM"
    )


def _cycle(image: Image, by_name: Mapping[str, Image]) -> list[str]:
    """The names around a cycle that starts at `image`, or [] when its chain ends."""
    path = [image.name]
    current = image
    while True:
        base = current.base_image
        if base is None or base.kind != "image" or base.image not in by_name:
            return []
        nxt = str(base.image)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt] if nxt == image.name else []
        path.append(nxt)
        current = by_name[nxt]
