"""Where Trusted Launch builds are published first, and validated, before the real version.

Azure captures no managed image from a Trusted Launch VM: its only image is a gallery
version. Published straight into the stack's gallery, an unvalidated version would be
visible to every consumer and, unless excluded, become `latest` at once. So a Trusted Launch
build is first published to a staging gallery in the build resource group (excluded from
latest, source region only), a test VM is validated from that staging version, and only
then is the real version created, copied from the staging version. With validation off
the real version is still copied from the staging version: what a version is published
from never depends on that switch. Sources: an image
version's source can be "an image version in another gallery" ("Store and share images in
an Azure Compute Gallery", learn.microsoft.com/azure/virtual-machines/shared-image-galleries);
a Trusted Launch VM can be captured into a TrustedLaunch definition only
(learn.microsoft.com/azure/virtual-machines/trusted-launch-portal#trusted-launch-vm-images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_azure_native import compute

from components.gallery import definition_shape
from components.options import KEPT_FROM_CREATION
from imagefactory.settings import Image


class StagingGallery(pulumi.ComponentResource):
    """A gallery in the build group with one definition per Trusted Launch image being
    built; temporary like the builders (it goes with the build group)."""

    gallery: compute.Gallery
    definitions: dict[str, compute.GalleryImage]

    def __init__(
        self,
        name: str,
        *,
        gallery_name: str,
        images: Sequence[Image],
        resource_group_name: pulumi.Input[str],
        location: str,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:build:StagingGallery", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.gallery = compute.Gallery(
            f"{name}-gallery",
            gallery_name=gallery_name,
            description="Trusted Launch builds waiting for validation (temporary)",
            resource_group_name=resource_group_name,
            location=location,
            tags=dict(tags),
            opts=child,
        )
        self.definitions = {
            image.name: compute.GalleryImage(
                f"{name}-{image.name}",
                gallery_image_name=image.name,
                gallery_name=self.gallery.name,
                resource_group_name=resource_group_name,
                location=location,
                **definition_shape(image),
                description=f"Staging for {image.name}: unvalidated builds, never consumed",
                tags={**tags, "imagefactory-image": image.name},
                opts=child,
            )
            for image in images
        }
        self.register_outputs({"id": self.gallery.id})


def staging_version(
    name: str,
    *,
    version: str,
    definition: compute.GalleryImage,
    gallery_name: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    location: str,
    vm: compute.VirtualMachine,
    captured: pulumi.Resource,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> compute.GalleryImageVersion:
    """The build published from its generalized Trusted Launch VM into the staging gallery:
    one replica in the source region, excluded from latest."""
    return compute.GalleryImageVersion(
        name,
        gallery_image_version_name=version,
        gallery_image_name=definition.name,
        gallery_name=gallery_name,
        resource_group_name=resource_group_name,
        location=location,
        storage_profile=compute.GalleryImageVersionStorageProfileArgs(
            source=compute.GalleryArtifactVersionFullSourceArgs(virtual_machine_id=vm.id)
        ),
        publishing_profile=compute.GalleryImageVersionPublishingProfileArgs(
            target_regions=[
                compute.TargetRegionArgs(
                    name=location, regional_replica_count=1, storage_account_type="Standard_LRS"
                )
            ],
            exclude_from_latest=True,
        ),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(
            parent=parent,
            # Azure refuses to publish from a VM that is not deallocated and generalized.
            depends_on=[captured],
            # A rebuilt builder keeps its ARM id: publish it again.
            replace_with=[vm],
            delete_before_replace=True,
            ignore_changes=KEPT_FROM_CREATION,
        ),
    )
