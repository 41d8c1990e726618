"""The managed image captured from a generalized builder (not for Trusted Launch builders)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
from pulumi_azure_native import compute

from components.options import KEPT_FROM_CREATION
from imagefactory.settings import Generation


class ManagedImage(pulumi.ComponentResource):
    """`compute.Image` from the builder VM, in the images group, same location."""

    image: compute.Image

    def __init__(
        self,
        name: str,
        *,
        image_name: str,
        vm: compute.VirtualMachine,
        generation: Generation,
        resource_group_name: pulumi.Input[str],
        location: str,
        captured: pulumi.Resource,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("imagefactory:build:ManagedImage", name, None, opts)
        self.image = compute.Image(
            f"{name}-image",
            image_name=image_name,
            resource_group_name=resource_group_name,
            location=location,
            source_virtual_machine=compute.SubResourceArgs(id=vm.id),
            hyper_v_generation=generation,
            tags=dict(tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                # Nothing in the inputs refers to the capture command, yet Azure refuses
                # to capture a VM that is not deallocated and generalized.
                depends_on=[captured],
                # A rebuilt builder has the same ARM id: capture it again.
                replace_with=[vm],
                delete_before_replace=True,
                ignore_changes=KEPT_FROM_CREATION,
            ),
        )
        self.register_outputs({"id": self.image.id})
