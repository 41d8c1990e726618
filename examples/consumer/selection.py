"""Pick one gallery image version from an imagefactory stack's outputs: pure, no Pulumi.

The output keys come from `imagefactory.contract`, the module the factory exports with,
so a renamed key breaks this example's tests instead of its deployments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagefactory import contract

NAMESPACE = "imagefactory-consumer"
STACK_KEY = "imagefactoryStack"
IMAGE_KEY = "image"
VERSION_KEY = "version"
REGION_KEY = "region"
LATEST = "latest"
# Definitions Azure creates Trusted Launch VMs from ("Trusted Launch VM images",
# https://learn.microsoft.com/azure/virtual-machines/trusted-launch-portal).
TRUSTED_LAUNCH = (
    "TrustedLaunch",
    "TrustedLaunchSupported",
    "TrustedLaunchAndConfidentialVmSupported",
)


class SelectionError(Exception):
    """The config asks for something the factory stack does not offer; names the key."""

    def __init__(self, key: str, problem: str, allowed: list[str]) -> None:
        self.key = key
        super().__init__(f"{NAMESPACE}:{key}: {problem}; allowed: {', '.join(allowed) or '(none)'}")


@dataclass(frozen=True)
class Selection:
    """The version a consumer runs, resolved from the factory's outputs."""

    image: str
    version: str
    """A concrete version number; 'latest' is resolved here."""
    image_id: str
    """ARM id of the gallery image version, for `imageReference.id`."""
    os: str
    generation: str
    security_type: str
    """The definition's SecurityType: which VMs Azure creates from the image."""
    region: str

    @property
    def trusted_launch(self) -> bool:
        """Whether the instances must (TrustedLaunch) or may run with Trusted Launch; the
        example uses it whenever the definition allows it. Confidential-VM-only and Standard
        definitions get a standard VM."""
        return self.generation == "V2" and self.security_type in TRUSTED_LAUNCH


def _version_order(number: str) -> tuple[int, ...]:
    return tuple(int(p) for p in number.split("."))


def select(
    outputs: Mapping[str, Any], *, stack: str, image: str, version: str, region: str
) -> Selection:
    """The version of `image` to deploy in `region`, or a SelectionError naming the key."""
    missing = [key for key in contract.STACK_OUTPUTS if outputs.get(key) is None]
    if missing:
        raise SelectionError(
            STACK_KEY,
            f"stack {stack!r} does not export {', '.join(missing)}"
            " (is it an imagefactory stack that has been deployed?)",
            [f"a deployed imagefactory stack exporting {', '.join(contract.STACK_OUTPUTS)}"],
        )
    images: Mapping[str, Any] = outputs[contract.IMAGES]
    if image not in images:
        raise SelectionError(IMAGE_KEY, f"stack {stack!r} has no image {image!r}", sorted(images))
    found = images[image]
    versions: Mapping[str, Any] = found[contract.VERSIONS]
    number = found[contract.LATEST_VERSION] if version == LATEST else version
    if number not in versions:
        allowed = [LATEST] if found[contract.LATEST_VERSION] else []
        problem = (
            f"image {image!r} has no version eligible for latest"
            if version == LATEST
            else f"image {image!r} has no version {version!r}"
        )
        raise SelectionError(VERSION_KEY, problem, allowed + sorted(versions, key=_version_order))
    published = versions[number]
    if contract.SECURITY_TYPE not in found:
        raise SelectionError(
            STACK_KEY,
            f"stack {stack!r} does not export images.{image}.{contract.SECURITY_TYPE}, so the "
            "VM security type its image needs is unknown (run pulumi up in the factory stack)",
            [f"an imagefactory stack whose images export {contract.SECURITY_TYPE}"],
        )
    regions = list(published[contract.REGIONS])
    if region not in regions:
        label = f"{number} (latest)" if version == LATEST else number
        raise SelectionError(
            REGION_KEY, f"image {image} {label} is not replicated to {region!r}", regions
        )
    return Selection(
        image=image,
        version=number,
        image_id=published[contract.VERSION_ID],
        os=found[contract.OS],
        generation=found[contract.GENERATION],
        security_type=found[contract.SECURITY_TYPE],
        region=region,
    )
