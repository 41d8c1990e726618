"""Resource groups: image assets, the temporary build, and each consumer region apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pulumi
from pulumi_azure_native import resources

from imagefactory.naming import Names


class ResourceGroups(pulumi.ComponentResource):
    """The images group (gallery, managed images), the build group, consumer groups."""

    images: resources.ResourceGroup
    build: resources.ResourceGroup | None
    consumers: dict[str, resources.ResourceGroup]

    def __init__(
        self,
        name: str,
        *,
        names: Names,
        location: str,
        consumer_regions: Iterable[str],
        with_build: bool,
        tags: Mapping[str, str],
        build_tags: Mapping[str, str],
        images_protection: pulumi.ResourceOptions | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:core:ResourceGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Deleting a resource group deletes everything in it, whatever Pulumi retains or
        # protects inside: the group that holds the gallery takes the gallery's protection.
        self.images = resources.ResourceGroup(
            f"{name}-images",
            resource_group_name=names.images_group,
            location=location,
            tags=dict(tags),
            opts=pulumi.ResourceOptions.merge(child, images_protection),
        )
        # The build group exists only while some version still has an active builder.
        self.build = (
            resources.ResourceGroup(
                f"{name}-build",
                resource_group_name=names.build_group,
                location=location,
                tags=dict(build_tags),
                opts=child,
            )
            if with_build
            else None
        )
        self.consumers = {
            region: resources.ResourceGroup(
                f"{name}-consumers-{region}",
                resource_group_name=names.consumers_group(region),
                location=region,
                tags=dict(tags),
                opts=child,
            )
            for region in sorted(set(consumer_regions))
        }
        self.register_outputs(
            {
                "imagesGroup": self.images.name,
                "buildGroup": self.build.name if self.build else None,
                "consumerGroups": {r: g.name for r, g in self.consumers.items()},
            }
        )
