"""The stack outputs other stacks rely on, defined once.

`__main__.py` exports these keys, `examples/consumer` reads them through a
StackReference, and the tests check both against each other. Values are plain IDs and
names, never whole resources and never secrets.

    galleryId            ARM id of the gallery
    galleryName          gallery name
    galleryResourceGroup resource group holding the gallery and managed images
    images               {image name: {
                            definitionId, os, generation, securityType, latestVersion,
                            versions: {version: {id, regions: [region, ...],
                                                 managedImageId | None,
                                                 validation | None}}}}

`validation` is what the version's test VM read, as its tags keep it (they outlive the
test VM): {result, os, built, base, packages, keyPackages: {name: version}}; None for a
version published without validation (see imagefactory/validation.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

GALLERY_ID = "galleryId"
GALLERY_NAME = "galleryName"
GALLERY_RESOURCE_GROUP = "galleryResourceGroup"
IMAGES = "images"

STACK_OUTPUTS = (GALLERY_ID, GALLERY_NAME, GALLERY_RESOURCE_GROUP, IMAGES)

# Keys inside IMAGES.
DEFINITION_ID = "definitionId"
OS = "os"
GENERATION = "generation"
SECURITY_TYPE = "securityType"
"""The definition's SecurityType feature: which VMs Azure creates from it (Standard,
TrustedLaunchSupported, TrustedLaunch, ConfidentialVmSupported, ...)."""
LATEST_VERSION = "latestVersion"
VERSIONS = "versions"
VERSION_ID = "id"
REGIONS = "regions"
MANAGED_IMAGE_ID = "managedImageId"
VALIDATION = "validation"


class ValidationOutput(TypedDict):
    result: str
    os: str | None
    built: str | None
    base: str | None
    packages: str | None
    keyPackages: dict[str, str]


class VersionOutput(TypedDict):
    id: str
    regions: list[str]
    managedImageId: str | None
    validation: ValidationOutput | None


class ImageOutput(TypedDict):
    definitionId: str
    os: str
    generation: str
    securityType: str
    latestVersion: str | None
    versions: dict[str, VersionOutput]


def version_output(
    version_id: Any, regions: Sequence[str], managed_image_id: Any, validation: Any = None
) -> dict:
    """One entry of `images[name].versions` (ids and the validation may be Pulumi Outputs)."""
    return {
        VERSION_ID: version_id,
        REGIONS: list(regions),
        MANAGED_IMAGE_ID: managed_image_id,
        VALIDATION: validation,
    }


def image_output(
    definition_id: Any,
    os: str,
    generation: str,
    latest_version: str | None,
    versions: Mapping[str, dict],
    *,
    security_type: str,
) -> dict:
    """One entry of `images` (ids may be Pulumi Outputs)."""
    return {
        DEFINITION_ID: definition_id,
        OS: os,
        GENERATION: generation,
        SECURITY_TYPE: security_type,
        LATEST_VERSION: latest_version,
        VERSIONS: dict(versions),
    }
