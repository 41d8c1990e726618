"""The Azure Compute Gallery, its image definitions, and Reader access for other principals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_azure_native import authorization, compute

from imagefactory import naming
from imagefactory.settings import Image, Sharing


class Gallery(pulumi.ComponentResource):
    """Gallery + one definition per image + role assignments, all protected per stack."""

    gallery: compute.Gallery
    definitions: dict[str, compute.GalleryImage]
    shares: list[authorization.RoleAssignment]

    def __init__(
        self,
        name: str,
        *,
        gallery_name: str,
        description: str,
        images: Sequence[Image],
        sharing: Sequence[Sharing],
        subscription_id: pulumi.Input[str],
        resource_group_name: pulumi.Input[str],
        location: str,
        protection: pulumi.ResourceOptions,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:publish:Gallery", name, None, opts)
        kept = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), protection)
        self.gallery = compute.Gallery(
            f"{name}-gallery",
            gallery_name=gallery_name,
            description=description,
            resource_group_name=resource_group_name,
            location=location,
            tags=dict(tags),
            opts=kept,
        )
        self.definitions = {}
        for image in images:
            features = []
            if image.security_type != "Standard":
                features.append(
                    compute.GalleryImageFeatureArgs(name="SecurityType", value=image.security_type)
                )
            self.definitions[image.name] = compute.GalleryImage(
                f"{name}-{image.name}",
                gallery_image_name=image.name,
                gallery_name=self.gallery.name,
                resource_group_name=resource_group_name,
                location=location,
                identifier=compute.GalleryImageIdentifierArgs(
                    publisher=image.identifier.publisher,
                    offer=image.identifier.offer,
                    sku=image.identifier.sku,
                ),
                os_type=(
                    compute.OperatingSystemTypes.LINUX
                    if image.os == "linux"
                    else compute.OperatingSystemTypes.WINDOWS
                ),
                os_state=compute.OperatingSystemStateTypes.GENERALIZED,
                hyper_v_generation=image.generation,
                architecture=image.architecture,
                features=features or None,
                description=image.description,
                end_of_life_date=image.end_of_life_date,
                tags={**tags, "imagefactory-image": image.name},
                opts=kept,
            )
        scope_key = f"{naming.short_hash(gallery_name)}"
        self.shares = [
            authorization.RoleAssignment(
                f"{name}-reader-{share.principal_id[:8]}",
                role_assignment_name=naming.role_assignment_name(
                    scope_key, share.principal_id, naming.READER_ROLE_ID
                ),
                scope=self.gallery.id,
                principal_id=share.principal_id,
                # Without it the SDK assumes "User", and assignments to groups or
                # service principals in other tenants fail to replicate.
                principal_type=share.principal_type,
                role_definition_id=pulumi.Output.concat(
                    "/subscriptions/",
                    subscription_id,
                    "/providers/Microsoft.Authorization/roleDefinitions/",
                    naming.READER_ROLE_ID,
                ),
                description=share.description,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for share in sharing
        ]
        self.register_outputs(
            {
                "id": self.gallery.id,
                "definitions": {k: d.id for k, d in self.definitions.items()},
            }
        )
