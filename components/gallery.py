"""The Azure Compute Gallery, its image definitions, and Reader access for other principals."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_azure_native import authorization, compute

from imagefactory import naming
from imagefactory.settings import Image, Sharing


def _gallery_key(subscription_id: str, resource_group: str, gallery_name: str) -> str:
    """The gallery's ARM id in lower case (ARM ids compare case-insensitively)."""
    path = f"Microsoft.Compute/galleries/{gallery_name}"
    return naming.arm_id(subscription_id, resource_group, path).lower()


def _share_key(principal_id: str, everyone: Sequence[str]) -> str:
    """The first 8 hex digits of a principal's id, or all of it when another principal
    shares them: two assignments must never get one URN (settings refuse duplicates)."""
    short = principal_id[:8]
    clash = sum(p[:8] == short for p in everyone) > 1
    return principal_id if clash else short


def _reader_assignment_name(gallery_key: str, *, principal_id: str) -> str:
    return naming.role_assignment_name(gallery_key, principal_id, naming.READER_ROLE_ID)


def definition_shape(image: Image) -> dict[str, Any]:
    """The GalleryImage arguments that say what an image is (identifier, OS, generation,
    architecture, security type, purchase plan); fixed once the definition exists."""
    features = []
    if image.security_type != "Standard":
        features.append(
            compute.GalleryImageFeatureArgs(name="SecurityType", value=image.security_type)
        )
    return {
        "identifier": compute.GalleryImageIdentifierArgs(
            publisher=image.identifier.publisher,
            offer=image.identifier.offer,
            sku=image.identifier.sku,
        ),
        "os_type": (
            compute.OperatingSystemTypes.LINUX
            if image.os == "linux"
            else compute.OperatingSystemTypes.WINDOWS
        ),
        "os_state": compute.OperatingSystemStateTypes.GENERALIZED,
        "hyper_v_generation": image.generation,
        "architecture": image.architecture,
        "features": features or None,
        # A definition of a Marketplace plan image carries the plan, so Azure can check it
        # on every VM created from its versions (marketplace-images).
        "purchase_plan": (
            compute.ImagePurchasePlanArgs(
                name=image.base.plan.name,
                product=image.base.plan.product,
                publisher=image.base.plan.publisher,
            )
            if image.base.plan
            else None
        ),
    }


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
            self.definitions[image.name] = compute.GalleryImage(
                f"{name}-{image.name}",
                gallery_image_name=image.name,
                gallery_name=self.gallery.name,
                resource_group_name=resource_group_name,
                location=location,
                **definition_shape(image),
                description=image.description,
                end_of_life_date=image.end_of_life_date,
                tags={**tags, "imagefactory-image": image.name},
                opts=kept,
            )
        # Role assignment names are GUIDs unique in the whole tenant: derive them from the
        # gallery's ARM id (subscription, group, name), so two stacks with the same gallery
        # name in other groups or subscriptions never collide (RoleAssignmentExists).
        scope = pulumi.Output.all(subscription_id, resource_group_name).apply(
            lambda parts: _gallery_key(str(parts[0]), str(parts[1]), gallery_name)
        )
        principals = [s.principal_id for s in sharing]
        self.shares = [
            authorization.RoleAssignment(
                f"{name}-reader-{_share_key(share.principal_id, principals)}",
                role_assignment_name=scope.apply(
                    functools.partial(_reader_assignment_name, principal_id=share.principal_id)
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
                # Azure keeps one assignment per principal, role and scope: a replacement
                # must delete the old one before it creates the new (RoleAssignmentExists).
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )
            for share in sharing
        ]
        self.register_outputs(
            {
                "id": self.gallery.id,
                "definitions": {k: d.id for k, d in self.definitions.items()},
            }
        )
