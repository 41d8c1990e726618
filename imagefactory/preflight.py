"""Pre-flight checks that need Azure's facts: VM sizes against images, base images against
definitions, disks, purchase plans.

The facts come from the snapshot (`imagefactory.facts`) or from Azure itself
(`imagefactory.facts.live`); the rules are the same. A size or image the facts do not know
is a warning, never a refusal. `SOURCES` names the page each rule comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imagefactory.facts import Facts, ImageFacts, Plan, SizeFacts
from imagefactory.rules import config_key

if TYPE_CHECKING:
    from imagefactory.settings import Image, ScaleSet, VmGroup

_LEARN = "https://learn.microsoft.com/azure/"
SOURCES: dict[str, str] = {
    # the size boots the image's generation (capability HyperVGenerations)
    "generation": _LEARN + "virtual-machines/generation-2#generation-2-vm-sizes",
    # the size has the image's CPU architecture (CpuArchitectureType)
    "architecture": _LEARN + "virtual-machines/sizes/overview",
    # a premium OS disk needs a premium-capable size (PremiumIO)
    "premium": _LEARN + "virtual-machines/disks-types#premium-ssds",
    # Trusted Launch needs a size without TrustedLaunchDisabled
    "trusted-launch": _LEARN + "virtual-machines/trusted-launch#virtual-machines-sizes",
    # B1ls runs Linux only (not in the Resource SKUs API: documented per size)
    "os": _LEARN + "virtual-machines/sizes/general-purpose/bv1-series",
    # the size is offered to the subscription in the region (Resource SKUs restrictions)
    "region": _LEARN + "azure-resource-manager/troubleshooting/error-sku-not-available",
    # the base image's OS, generation and architecture are the definition's
    "base-image": _LEARN + "virtual-machines/image-version",
    # an OS disk cannot be smaller than its image's
    "disk-size": _LEARN + "virtual-machines/linux/expand-disks",
    # plan images: plan on the VM, purchasePlan on the definition, terms accepted
    "plan": _LEARN + "virtual-machines/marketplace-images",
    # the size is offered in the consumer's zones (Resource SKUs locationInfo, Zone restrictions)
    "zones": _LEARN + "azure-resource-manager/troubleshooting/error-sku-not-available",
}
PREMIUM_DISKS = ("Premium_LRS", "Premium_ZRS")
TRUSTED_LAUNCH_DEFINITIONS = (
    "TrustedLaunch",
    "TrustedLaunchSupported",
    "TrustedLaunchAndConfidentialVmSupported",
)


@dataclass(frozen=True)
class BuildSpec:
    """One image's builder as resolved from its own and the stack-wide settings, with the
    config key each value came from (so a problem names the key the user must edit)."""

    vm_size: str
    vm_size_key: str
    os_disk_type: str
    os_disk_type_key: str
    os_disk_size_gb: int | None
    os_disk_size_key: str
    trusted_launch: bool
    security_key: str
    test_vm_size: str | None = None
    """The validation test VM's own size (images[].validation.vmSize); None: the builder's."""
    test_vm_size_key: str = ""


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)

    def warn(self, line: str) -> None:
        if line not in self.warnings:
            self.warnings.append(line)


def check(
    facts: Facts,
    location: str | None,
    images: Sequence[tuple[int, Image, BuildSpec | None]],
    consumers: Sequence[tuple[str, int, ScaleSet | VmGroup, Image]],
) -> Findings:
    """Every fact-based rule over what parsed; problems and warnings in config order."""
    found = Findings()
    for i, image, build in images:
        base_facts = _base_image(found, facts, i, image, location, build)
        if build is not None and location is not None:
            _builder_size(found, facts, i, image, build, location, base_facts)
            if build.test_vm_size is not None and build.test_vm_size != build.vm_size:
                _test_vm_size(found, facts, image, build, location)
    for kind, n, consumer, image in consumers:
        _consumer_size(found, facts, kind, n, consumer, image)
    return found


def _not_known(facts: Facts, what: str, value: str) -> str:
    return (
        f"{value!r} is not in {facts.source.label}; its {what} were not checked. Run with "
        "Azure credentials (or python -m offline.plan --online) to ask Azure, or refresh "
        "the snapshot (see its 'refresh' command)"
    )


# --- base image vs definition ----------------------------------------------------------------


def _base_image(
    found: Findings,
    facts: Facts,
    i: int,
    image: Image,
    location: str | None,
    build: BuildSpec | None,
) -> ImageFacts | None:
    at = ("images", i)
    base = image.base
    if base.kind != "marketplace" or base.publisher is None or base.offer is None:
        # Built on a gallery image: the chain rules compare it with its base (chain.py).
        return None
    urn = base.urn()
    base_key = config_key((*at, "baseImage"))
    looked = facts.image(urn, location or "")
    if looked is None:
        found.warn(f"{base_key}: " + _not_known(facts, "OS, generation, disk size and plan", urn))
        return None
    if not looked.exists:
        found.problem(
            f"{base_key}: Azure has no image {urn!r} in {location!r}; list what there is with "
            f"az vm image list --location {location} --publisher {base.publisher} "
            f"--offer {base.offer} --sku {base.sku} --all"
        )
        return None
    where = "the default base image" if image.base_image is None else "the base image"
    if looked.os is not None and looked.os != image.os:
        found.problem(
            f"{config_key((*at, 'os'))}: {image.os!r} does not match {where} {urn}, which is "
            f"a {looked.os} image; use os: {looked.os} or a {image.os} base image"
        )
    if looked.generation is not None and looked.generation != image.generation:
        found.problem(
            f"{config_key((*at, 'generation'))}: {image.generation!r} does not match {where} "
            f"{urn}, which is a {looked.generation} image (the managed image and definition "
            f"would be labelled {image.generation} while the VM boots {looked.generation}); "
            f"use generation: {looked.generation}"
            + _counterpart(facts, image, base.publisher, base.offer, generation=image.generation)
        )
    if looked.architecture is not None and looked.architecture != image.architecture:
        found.problem(
            f"{config_key((*at, 'architecture'))}: {image.architecture!r} does not match "
            f"{where} {urn}, which is {looked.architecture}; use architecture: "
            f"{looked.architecture}"
            + _counterpart(facts, image, base.publisher, base.offer, arch=image.architecture)
        )
    if (
        build is not None
        and build.os_disk_size_gb is not None
        and looked.os_disk_gb is not None
        and build.os_disk_size_gb < looked.os_disk_gb
    ):
        found.problem(
            f"{build.os_disk_size_key}: {build.os_disk_size_gb} GiB is smaller than the "
            f"{looked.os_disk_gb} GiB OS disk of {urn} (image {image.name!r}); a disk cannot be "
            f"smaller than its image: use at least {looked.os_disk_gb}, or leave it out to "
            "take the image's size"
        )
    _plan(found, facts, i, image, looked)
    return looked


def _counterpart(
    facts: Facts,
    image: Image,
    publisher: str,
    offer: str,
    *,
    generation: str | None = None,
    arch: str | None = None,
) -> str:
    """', or a base image that fits such as ...' from the snapshot's images of the offer."""
    from imagefactory.facts import snapshot

    for candidate in snapshot().images.values():
        pub, off, sku, _ = candidate.urn.split(":")
        if (pub.lower(), off.lower()) != (publisher.lower(), offer.lower()):
            continue
        if candidate.os != image.os or candidate.plan is not None:
            continue
        if (generation or image.generation) != candidate.generation:
            continue
        if (arch or image.architecture) != candidate.architecture:
            continue
        kind = f"{'an' if arch == 'Arm64' else 'a'} {arch}" if arch else f"a {generation}"
        return f", or {kind} base image such as baseImage.sku: {sku}"
    return ""


def _plan(found: Findings, facts: Facts, i: int, image: Image, looked: ImageFacts) -> None:
    at = ("images", i, "baseImage")
    base = image.base
    given = Plan(base.plan.name, base.plan.product, base.plan.publisher) if base.plan else None
    urn = base.urn()
    if looked.plan is not None and given is None:
        found.problem(
            f"{config_key((*at, 'plan'))}: {urn} is sold through a Marketplace purchase "
            f"plan; add plan: {looked.plan.text()} (the builder, the definition and every "
            "consumer then carry it) and accept its terms once per subscription: "
            f"az vm image terms accept --urn {urn}"
        )
        return
    if given is not None and looked.plan is None:
        found.problem(
            f"{config_key((*at, 'plan'))}: {urn} has no purchase plan, so Azure refuses one "
            "on the VM; remove plan"
        )
        return
    if given is not None and looked.plan is not None:
        if (given.name, given.product, given.publisher) != (
            looked.plan.name,
            looked.plan.product,
            looked.plan.publisher,
        ):
            found.problem(
                f"{config_key((*at, 'plan'))}: {given.text()} is not the plan of {urn}; "
                f"Azure sells it as {looked.plan.text()}"
            )
            return
        accepted = facts.terms_accepted(given)
        if accepted is False:
            found.problem(
                f"{config_key((*at, 'plan'))}: the Marketplace terms of {urn} are not "
                f"accepted in this subscription ({facts.source.label}); accept them once: "
                f"az vm image terms accept --urn {urn}"
            )


# --- VM sizes --------------------------------------------------------------------------------


def _size_rules(
    size: SizeFacts,
    key: str,
    region: str,
    *,
    image: Image,
    generation: str,
    trusted_launch: bool,
    what: str,
) -> list[str]:
    name = size.name
    if not size.offered:
        return [
            f"{key}: {name!r} is not offered in {region!r} (Azure's Resource SKUs for this "
            f"subscription); list what is: az vm list-skus --location {region} "
            "--resource-type virtualMachines -o table"
        ]
    if size.restriction:
        return [
            f"{key}: {name!r} cannot be used in {region!r} by this subscription "
            f"({size.restriction}); choose another size or region, or request access"
        ]
    problems = []
    if generation not in size.generations:
        problems.append(
            f"{key}: {name!r} cannot boot {what} (generation {generation}); it boots "
            f"{' and '.join(size.generations)} only (HyperVGenerations); allowed: a size whose "
            f"HyperVGenerations include {generation}"
            + _suggest(
                name, lambda s: generation in s.generations and s.architecture == image.architecture
            )
        )
    if size.architecture != image.architecture:
        problems.append(
            f"{key}: {name!r} is an {size.architecture} size and cannot run {what} "
            f"({image.architecture}); allowed: an {image.architecture} size"
            + _suggest(
                name, lambda s: s.architecture == image.architecture and generation in s.generations
            )
        )
    if image.os not in size.os_support:
        problems.append(
            f"{key}: {name!r} runs {' and '.join(size.os_support)} only and cannot run {what} "
            f"({image.os}); choose another size"
        )
    if trusted_launch and not size.trusted_launch:
        problems.append(
            f"{key}: {name!r} does not support Trusted Launch (TrustedLaunchDisabled), which "
            f"{what} needs; allowed: a size that supports it, or securityType Standard"
        )
    return problems


def _suggest(name: str, fits: Callable[[SizeFacts], bool]) -> str:
    """', such as X': a common size the snapshot knows that fits; never an invented one."""
    from imagefactory.facts import snapshot

    for candidate in ("Standard_D2s_v5", "Standard_D2ps_v5"):
        facts = snapshot().sizes.get(candidate.lower())
        if facts is not None and candidate != name and fits(facts):
            return f", such as {candidate!r}"
    return ""


def _builder_size(
    found: Findings,
    facts: Facts,
    i: int,
    image: Image,
    build: BuildSpec,
    location: str,
    base: ImageFacts | None,
) -> None:
    what = f"the builder of image {image.name!r}"
    size = _checked_size(
        found, facts, image, build, location, build.vm_size, build.vm_size_key, what
    )
    if size is None:
        return
    if size.offered and build.os_disk_type in PREMIUM_DISKS and not size.premium_io:
        premium = _premium_variant(build.vm_size)
        hint = f" or a premium-capable size such as {premium!r}" if premium else ""
        found.problem(
            f"{build.os_disk_type_key}: {build.os_disk_type!r} needs a VM size with premium "
            f"storage, and {what} is {build.vm_size!r}, which has none (PremiumIO False); "
            f"use 'StandardSSD_LRS'{hint}"
        )


def _checked_size(
    found: Findings,
    facts: Facts,
    image: Image,
    build: BuildSpec,
    location: str,
    name: str,
    key: str,
    what: str,
) -> SizeFacts | None:
    """A size's facts after the rules every VM of the build meets (offered, generation,
    architecture, OS, Trusted Launch); None, with a warning, when the facts do not know it."""
    size = facts.size(name, location)
    if size is None:
        found.warn(f"{key}: " + _not_known(facts, "generations, architecture and storage", name))
        return None
    for line in _size_rules(
        size,
        key,
        location,
        image=image,
        generation=image.generation,
        trusted_launch=build.trusted_launch,
        what=what,
    ):
        found.problem(line)
    return size


def _test_vm_size(
    found: Findings, facts: Facts, image: Image, build: BuildSpec, location: str
) -> None:
    """The validation test VM boots the new image like a consumer: the same rules as the
    builder's size, with the builder's security type and OS disk type."""
    assert build.test_vm_size is not None
    what = f"the validation test VM of image {image.name!r}"
    size = _checked_size(
        found, facts, image, build, location, build.test_vm_size, build.test_vm_size_key, what
    )
    if size is None:
        return
    if size.offered and build.os_disk_type in PREMIUM_DISKS and not size.premium_io:
        found.problem(
            f"{build.test_vm_size_key}: {build.test_vm_size!r} has no premium storage "
            f"(PremiumIO False), and the test VM's OS disk is {build.os_disk_type!r} like the "
            f"builder's ({build.os_disk_type_key}); choose a premium-capable size"
        )


def _premium_variant(name: str) -> str | None:
    """Standard_D2_v5 -> Standard_D2s_v5 when the snapshot knows it as premium-capable."""
    from imagefactory.facts import snapshot

    head, sep, tail = name.partition("_v")
    candidate = f"{head}s{sep}{tail}" if sep else f"{name}s"
    facts = snapshot().sizes.get(candidate.lower())
    return candidate if facts is not None and facts.premium_io else None


def _consumer_size(
    found: Findings,
    facts: Facts,
    kind: str,
    n: int,
    consumer: ScaleSet | VmGroup,
    image: Image,
) -> None:
    from imagefactory.settings import ScaleSet

    is_scale_set = isinstance(consumer, ScaleSet)
    field_name = "sku" if is_scale_set else "size"
    name = consumer.sku if isinstance(consumer, ScaleSet) else consumer.size
    key = config_key((kind, n, field_name))
    size = facts.size(name, consumer.region)
    if size is None:
        found.warn(f"{key}: " + _not_known(facts, "generations and architecture", name))
        return
    trusted = image.generation == "V2" and image.security_type in TRUSTED_LAUNCH_DEFINITIONS
    what = f"image {image.name!r}"
    for line in _size_rules(
        size,
        key,
        consumer.region,
        image=image,
        generation=image.generation,
        trusted_launch=trusted,
        what=what,
    ):
        found.problem(line)
    missing = [z for z in consumer.zones if size.zones is not None and z not in size.zones]
    if size.offered and missing:
        zones = ", ".join(size.zones or ()) or "none"
        found.problem(
            f"{config_key((kind, n, 'zones'))}: {name!r} cannot be placed in zone "
            f"{', '.join(missing)} of {consumer.region!r} by this subscription (Resource SKUs: "
            f"zones {zones}); allowed: zones {zones}, or another size"
        )
