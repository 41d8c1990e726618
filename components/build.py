"""One version's build: builder VM -> provisioning -> generalization -> managed image."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import compute

from components.builder import BuilderArgs, BuilderVm
from components.generalization import Generalization
from components.managed_image import ManagedImage
from components.provisioning import Provisioning
from components.staging import StagingGallery, staging_version
from components.validation import TestVmArgs, Validation
from imagefactory import chain, naming, scripts, validation
from imagefactory.naming import Names
from imagefactory.settings import Image, Settings, Version


def fingerprint(image: Image, settings: Settings, steps: list[scripts.Step]) -> str:
    """A digest of everything that shapes what the builder bakes into the image and how its
    steps run: 16 hex characters, the builder VM's replacement trigger.

    The Run Command timeout is in it because a Run Command can never be updated once its VM
    is generalized: a new limit reaches a build only through a new builder.
    """
    builder = settings.builder_for(image)
    shape = {
        "os": image.os,
        "generation": image.generation,
        # The Marketplace URN, or the gallery image and its resolved version: a new version
        # of a base this image follows (latest) rebuilds it.
        "base": settings.base_of(image).label,
        "builder": builder.model_dump(),
        "steps": [hashlib.sha256(s.source.encode()).hexdigest() for s in steps],
        "runCommandTimeoutMinutes": settings.builder.run_command_timeout_minutes,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BuildPlacement:
    """Where builds happen: shared by every build of the stack."""

    names: Names
    location: str
    build_group: pulumi.Input[str]
    images_group: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    staging: StagingGallery | None = None
    """Where Trusted Launch builds are published first (and validated); None when no
    Trusted Launch image is being built."""


class ImageBuild(pulumi.ComponentResource):
    """Everything temporary that one version needs; retiring the builder removes it all.

    Published versions are not children of this component, so their URNs do not change
    when it goes away.
    """

    builder: BuilderVm
    managed_image: ManagedImage | None
    staging: compute.GalleryImageVersion | None
    """A Trusted Launch build's staging version, which its gallery version copies."""
    validation: Validation | None
    done: pulumi.Resource
    """What the gallery version waits for: the validation's results, or (validation off)
    the managed image or the staging version."""

    def __init__(
        self,
        name: str,
        *,
        image: Image,
        version: Version,
        settings: Settings,
        placement: BuildPlacement,
        tags: Mapping[str, str],
        base_image_id: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`base_image_id`: the id of the gallery version the image is built on, when its
        base is an image of this stack (the version resource's id, so the builder waits for
        it) or another gallery's version; None for a Marketplace base."""
        super().__init__("imagefactory:build:ImageBuild", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = placement.names
        builder = settings.builder_for(image)
        admin = settings.builder.admin_username
        base = settings.base_of(image)
        steps = scripts.guest_steps(
            os=image.os,
            provision=image.script_paths,
            image=image.name,
            version=version.version,
            base_image=base.label,
            build_user=admin,
            audit=settings.audit,
        )
        vm_name = names.builder_vm(image.name, version.version, image.os)
        build_fingerprint = fingerprint(image, settings, steps)
        self.builder = BuilderVm(
            f"{name}-builder",
            BuilderArgs(
                os=image.os,
                generation=image.generation,
                base_image=image.base,
                builder=builder,
                vm_name=vm_name,
                nic_name=names.builder_nic(image.name, version.version),
                admin_username=admin,
                resource_group_name=placement.build_group,
                location=placement.location,
                subnet_id=placement.subnet_id,
                public_ip=settings.builder.public_ip,
                fingerprint=build_fingerprint,
                tags=tags,
                base_image_id=base_image_id,
                base_id_field=(chain.id_kind(base.id) or "id") if base.id else "id",
            ),
            opts=child,
        )
        vm = self.builder.vm
        timeout = settings.builder.run_command_timeout_minutes * 60
        # Run Commands carry only the program's own tags, which never change for a given
        # build: a stack-wide tag edit must not become an extension update on a VM that
        # is deallocated and generalized.
        step_tags = naming.own_tags(tags)
        provisioning = Provisioning(
            f"{name}-provision",
            steps=steps[:-1],
            vm=vm,
            resource_group_name=placement.build_group,
            location=placement.location,
            timeout_seconds=timeout,
            tags=step_tags,
            opts=child,
        )
        capture = settings.capture
        generalization = Generalization(
            f"{name}-generalize",
            step=steps[-1],
            step_index=len(steps),
            capture=scripts.capture_command(
                resource_group=names.build_group,
                vm_name=vm_name,
                stop_timeout_seconds=capture.stop_timeout_seconds,
                poll_seconds=capture.poll_seconds,
                max_tries=capture.max_tries,
                backoff_seconds=capture.backoff_seconds,
            ),
            subscription_id=placement.subscription_id,
            vm=vm,
            after=provisioning.last,
            resource_group_name=placement.build_group,
            location=placement.location,
            timeout_seconds=timeout,
            tags=step_tags,
            opts=child,
        )
        self.managed_image = None
        self.staging = None
        self.validation = None
        tested: pulumi.Resource | None = None
        tested_id: pulumi.Input[str] | None = None
        trusted_launch = builder.security_type == "TrustedLaunch"
        if not trusted_launch:
            # Azure refuses managed images of Trusted Launch VMs; those go through staging.
            self.managed_image = ManagedImage(
                f"{name}-capture",
                image_name=names.managed_image(image.name, version.version),
                vm=vm,
                generation=image.generation,
                resource_group_name=placement.images_group,
                location=placement.location,
                captured=generalization.capture,
                tags=tags,
                opts=child,
            )
            self.done = self.managed_image.image
            tested, tested_id = self.managed_image.image, self.managed_image.image.id
        else:
            assert placement.staging is not None, "Trusted Launch builds publish through staging"
            self.staging = staging_version(
                f"{name}-staging",
                version=version.version,
                definition=placement.staging.definitions[image.name],
                gallery_name=placement.staging.gallery.name,
                resource_group_name=placement.build_group,
                location=placement.location,
                vm=vm,
                captured=generalization.capture,
                tags=tags,
                parent=self,
            )
            self.done = self.staging
            tested, tested_id = self.staging, self.staging.id
        if settings.validation.enabled:
            assert tested is not None and tested_id is not None
            test_vm = names.test_vm(image.name, version.version, image.os)
            checks = validation.checks(
                image=image, version=version.version, hostname=test_vm, admin_username=admin
            )
            self.validation = Validation(
                f"{name}-validate",
                args=TestVmArgs(
                    os=image.os,
                    base_image=image.base,
                    image_id=tested_id,
                    trusted_launch=trusted_launch,
                    vm_size=image.validation.vm_size or str(builder.vm_size),
                    os_disk_type=str(builder.os_disk_type),
                    vm_name=test_vm,
                    nic_name=names.test_vm_nic(image.name, version.version),
                    admin_username=admin,
                    resource_group_name=placement.build_group,
                    location=placement.location,
                    subnet_id=placement.subnet_id,
                    tags={**tags, naming.ROLE_TAG: naming.TEST_VM_ROLE},
                    build=build_fingerprint,
                ),
                checks=checks,
                collect=scripts.collect_command(
                    resource_group=names.build_group,
                    vm_name=test_vm,
                    run_commands=[
                        naming.run_command_name(i, c.name) for i, c in enumerate(checks, 1)
                    ],
                    max_tries=capture.max_tries,
                    backoff_seconds=capture.backoff_seconds,
                ),
                subscription_id=placement.subscription_id,
                image=tested,
                timeout_seconds=timeout,
                opts=child,
            )
            self.done = self.validation.results
        self.register_outputs(
            {
                "vmId": vm.vm_id,
                "managedImageId": self.managed_image.image.id if self.managed_image else None,
                "testVmId": self.validation.test_vm.id if self.validation else None,
            }
        )
