"""The stack outputs other stacks rely on, defined once.

`__main__.py` exports these keys, `examples/consumer` reads them through a
StackReference, and the tests check both against each other. Values are plain IDs and
names, never whole resources and never secrets.

    galleryId            ARM id of the gallery
    galleryName          gallery name
    galleryResourceGroup resource group holding the gallery and managed images
    images               {image name: {
                            definitionId, os, generation, latestVersion,
                            versions: {version: {id, regions: [region, ...],
                                                 managedImageId | None}}}}
"""

from __future__ import annotations

from typing import TypedDict

GALLERY_ID = "galleryId"
GALLERY_NAME = "galleryName"
GALLERY_RESOURCE_GROUP = "galleryResourceGroup"
IMAGES = "images"

STACK_OUTPUTS = (GALLERY_ID, GALLERY_NAME, GALLERY_RESOURCE_GROUP, IMAGES)

# Keys inside IMAGES.
DEFINITION_ID = "definitionId"
OS = "os"
GENERATION = "generation"
LATEST_VERSION = "latestVersion"
VERSIONS = "versions"
VERSION_ID = "id"
REGIONS = "regions"
MANAGED_IMAGE_ID = "managedImageId"


class VersionOutput(TypedDict):
    id: str
    regions: list[str]
    managedImageId: str | None


class ImageOutput(TypedDict):
    definitionId: str
    os: str
    generation: str
    latestVersion: str | None
    versions: dict[str, VersionOutput]
