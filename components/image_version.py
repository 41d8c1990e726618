"""One gallery image version, replicated to its target regions in a single resource."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import pulumi
from pulumi_azure_native import compute

from imagefactory import validation
from imagefactory.settings import Version


class ImageVersion(pulumi.ComponentResource):
    """`compute.GalleryImageVersion`, immutable once published.

    Its source is an ARM id computed from names, never another resource's output, so
    retiring the builder (and its managed image) later changes nothing in its inputs.
    """

    version: compute.GalleryImageVersion

    def __init__(
        self,
        name: str,
        *,
        spec: Version,
        definition: compute.GalleryImage,
        gallery_name: pulumi.Input[str],
        resource_group_name: pulumi.Input[str],
        location: str,
        source_id: pulumi.Input[str],
        built_by: Sequence[pulumi.Resource],
        replication_timeout_minutes: int,
        protection: pulumi.ResourceOptions,
        tags: Mapping[str, str],
        validated: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`validated`: the stdout of the build's `capture.sh collect`, whose short form
        (imagefactory.validation.tags) goes on the version beside `tags`."""
        super().__init__("imagefactory:publish:ImageVersion", name, None, opts)
        source = compute.GalleryArtifactVersionFullSourceArgs(id=source_id)
        timeout = f"{replication_timeout_minutes}m"
        self.version = compute.GalleryImageVersion(
            f"{name}-version",
            gallery_image_version_name=spec.version,
            gallery_image_name=definition.name,
            gallery_name=gallery_name,
            resource_group_name=resource_group_name,
            # The source region must be one of the target regions (checked in settings).
            location=location,
            storage_profile=compute.GalleryImageVersionStorageProfileArgs(source=source),
            publishing_profile=compute.GalleryImageVersionPublishingProfileArgs(
                target_regions=[
                    compute.TargetRegionArgs(
                        name=t.name,
                        regional_replica_count=t.replicas,
                        storage_account_type=t.storage,
                    )
                    for t in spec.regions
                ],
                exclude_from_latest=spec.exclude_from_latest,
                end_of_life_date=spec.end_of_life_date,
                replication_mode=spec.replication_mode,
            ),
            safety_profile=compute.GalleryImageVersionSafetyProfileArgs(
                allow_deletion_of_replicated_locations=spec.allow_deletion_of_replicated_locations
            ),
            tags={
                **tags,
                # Known keys, values from the results: Pulumi's ignore_changes resets a path
                # inside a map only when the map itself is known (also in a preview).
                **{
                    key: pulumi.Output.from_input(validated).apply(
                        functools.partial(validation.tag_value, key=key)
                    )
                    for key in validation.VALIDATION_TAGS[: validation.room_for(tags)]
                    if validated is not None
                },
            },
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(
                    parent=self,
                    depends_on=list(built_by),
                    # Published means immutable: a later builder change (another security
                    # type, a retired build) must never reach a version's source, which
                    # Azure refuses to change anyway (PropertyChangeNotAllowed).
                    # What validation read is kept as first written, for the same reason.
                    ignore_changes=["storageProfile.source", *validation.ignored_tag_paths()],
                    # Replication to several regions outlives the provider's default.
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=timeout, update=timeout, delete=timeout
                    ),
                ),
                protection,
            ),
        )
        self.register_outputs({"id": self.version.id})

    @property
    def validation(self) -> pulumi.Output[dict | None]:
        """What the version's tags say its validation read (contract.ValidationOutput)."""
        return self.version.tags.apply(validation.from_tags)
