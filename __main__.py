"""Image factory: build, generalize, capture, publish and consume custom Azure VM images.

This file only wires components together; settings, names and scripts live in
imagefactory/, each lifecycle stage in components/.
"""

import functools

import pulumi
from pulumi_azure_native import authorization

from components import drop_api_version_aliases, protection_options
from components.build import BuildPlacement, ImageBuild
from components.consumers import (
    ConsumerPlacement,
    FirstBoot,
    ImageChoice,
    ScaleSetConsumer,
    VmGroupConsumer,
)
from components.gallery import Gallery
from components.groups import ResourceGroups
from components.image_version import ImageVersion
from components.network import build_network, consumer_network
from components.staging import StagingGallery
from imagefactory import contract, naming, pulumi_engine, stackconfig, userdata
from imagefactory.settings import LATEST, ScaleSet

pulumi_engine.require_engine()
pulumi.runtime.register_stack_transformation(drop_api_version_aliases)
# Every check (config, Azure's rules and facts, the stack file) runs here, all problems at
# once; what the wiring below derives from settings is derived here too, so no config can
# make the program fail once it has registered a resource.
settings = stackconfig.settings()
builders = {image.name: settings.builder_for(image) for image in settings.images}
chosen_versions = {c.name: settings.image(c.image).find(c.version) for c in settings.consumers()}
# User data rendered with the stack's values (and secrets) before anything is registered.
first_boot = {c.name: settings.user_data_for(c) for c in settings.consumers()}
windows_loader = (userdata.SCRIPTS_DIR / userdata.WINDOWS_FIRST_BOOT_LOADER).read_text()
stack = pulumi.get_stack()
names = settings.names
location = settings.location
tags = naming.tags(settings.tags, stack=stack)
builds_active = any(v.builder == "active" for i in settings.images for v in i.versions)
subscription_id = authorization.get_client_config_output().subscription_id

protection = protection_options(settings.protection)
groups = ResourceGroups(
    "groups",
    names=names,
    location=location,
    consumer_regions=[c.region for c in settings.consumers()],
    with_build=builds_active,
    tags=tags,
    build_tags=naming.tags(settings.tags, stack=stack, temporary=True),
    images_protection=protection,
)
images_group = groups.images.name

placement = None
if groups.build is not None:
    net = settings.network
    builders_net = build_network(
        "build-network",
        resource_group_name=groups.build.name,
        location=location,
        vnet_name=names.build_vnet,
        nsg_name=names.build_nsg,
        subnet_name=names.build_subnet,
        address_space=net.builder_address_space,
        subnet_prefix=net.builder_subnet,
        tags=naming.tags(settings.tags, stack=stack, temporary=True),
    )
    # Trusted Launch builds have no managed image: they are published through a version in
    # a staging gallery of the build group, where they are validated (components/staging.py).
    staged_images = [
        i
        for i in settings.images
        if builders[i.name].security_type == "TrustedLaunch"
        and any(v.builder == "active" for v in i.versions)
    ]
    staging = (
        StagingGallery(
            "staging",
            gallery_name=names.staging_gallery(),
            images=staged_images,
            resource_group_name=groups.build.name,
            location=location,
            tags=naming.tags(settings.tags, stack=stack, temporary=True),
        )
        if staged_images
        else None
    )
    placement = BuildPlacement(
        names,
        location,
        groups.build.name,
        images_group,
        builders_net.subnet.id,
        subscription_id,
        staging,
    )

gallery = Gallery(
    "gallery",
    gallery_name=settings.gallery.name,
    description=settings.gallery.description,
    images=settings.images,
    sharing=settings.gallery.sharing,
    subscription_id=subscription_id,
    resource_group_name=images_group,
    location=location,
    protection=protection,
    tags=tags,
)

published: dict[tuple[str, str], ImageVersion] = {}
image_outputs: dict[str, dict[str, object]] = {}
# Bases first: a build on another image of the stack starts from that image's version, whose
# id it takes as its image reference (and so waits for it).
for image in settings.build_order():
    base = settings.base_of(image)
    base_image_id: pulumi.Input[str] | None = None
    if base.kind == "image":
        assert base.image is not None and base.version is not None
        base_image_id = published[(base.image, base.version)].version.id
    elif base.kind == "id":
        base_image_id = base.id
    version_outputs: dict[str, dict] = {}
    for spec in image.versions:
        key = f"{image.name}-{spec.version}"
        # A Trusted Launch build is copied from its staging version, validated or not, so
        # turning validation off or on never changes what a version was published from.
        staged = builders[image.name].security_type == "TrustedLaunch"
        build = None
        if spec.builder == "active":
            assert placement is not None
            build = ImageBuild(
                f"build-{key}",
                image=image,
                version=spec,
                settings=settings,
                placement=placement,
                tags=naming.tags(
                    settings.tags,
                    stack=stack,
                    image=image.name,
                    version=spec.version,
                    temporary=True,
                ),
                base_image_id=base_image_id,
            )
        # The source id is built from names, so it stays the same after the builder retires.
        source_id = subscription_id.apply(
            functools.partial(
                naming.version_source_id,
                names=names,
                image=image.name,
                version=spec.version,
                staged=staged,
            )
        )
        version = ImageVersion(
            f"version-{key}",
            spec=spec,
            definition=gallery.definitions[image.name],
            gallery_name=gallery.gallery.name,
            resource_group_name=images_group,
            location=location,
            source_id=source_id,
            built_by=[build.done] if build else [],
            replication_timeout_minutes=settings.replication_timeout_minutes,
            protection=protection,
            tags=naming.tags(settings.tags, stack=stack, image=image.name, version=spec.version),
            validated=build.validation.results.stdout if build and build.validation else None,
        )
        published[(image.name, spec.version)] = version
        managed = build.managed_image if build else None
        version_outputs[spec.version] = contract.version_output(
            version.version.id,
            [t.name for t in spec.regions],
            managed.image.id if managed else None,
            version.validation,
        )
    newest = image.newest()
    image_outputs[image.name] = contract.image_output(
        gallery.definitions[image.name].id,
        image.os,
        image.generation,
        newest.version if newest else None,
        version_outputs,
        security_type=image.security_type,
    )

consumer_nets = {
    region: consumer_network(
        f"consumers-{region}",
        resource_group_name=group.name,
        location=region,
        vnet_name=names.consumer_vnet(region),
        nsg_name=names.consumer_nsg(region),
        address_space=settings.network.consumer_address_space,
        subnet_prefix=settings.network.consumer_subnet,
        tags=tags,
    )
    for region, group in groups.consumers.items()
}
for consumer in settings.consumers():
    image = settings.image(consumer.image)
    chosen = chosen_versions[consumer.name]
    assert chosen is not None  # settings refuse consumers of unknown versions
    version = published[(image.name, chosen.version)]
    follows = consumer.version == LATEST
    if follows and isinstance(consumer, ScaleSet):
        # The definition's id: new versions reach the instances by automatic OS upgrade.
        choice = ImageChoice(
            image=image,
            image_id=gallery.definitions[image.name].id,
            version_label=LATEST,
            waits_for=version.version,
            follows_latest=True,
        )
    else:
        # A VM takes the version it is created from: following latest means rebuilding it
        # from the newest version's own id whenever latest moves.
        choice = ImageChoice(
            image=image,
            image_id=version.version.id,
            version_label=f"latest ({chosen.version})" if follows else chosen.version,
            waits_for=version.version,
        )
    where = ConsumerPlacement(
        names=names,
        admin_username=settings.builder.admin_username,
        resource_group_name=groups.consumers[consumer.region].name,
        subnet_id=consumer_nets[consumer.region].subnet.id,
        tags=tags,
    )
    rendered = first_boot[consumer.name]
    boot = FirstBoot(rendered, windows_loader) if rendered else None
    if isinstance(consumer, ScaleSet):
        ScaleSetConsumer(
            f"scaleset-{consumer.name}",
            spec=consumer,
            choice=choice,
            placement=where,
            first_boot=boot,
        )
    else:
        VmGroupConsumer(
            f"vmgroup-{consumer.name}",
            spec=consumer,
            choice=choice,
            placement=where,
            first_boot=boot,
        )

pulumi.export(contract.GALLERY_ID, gallery.gallery.id)
pulumi.export(contract.GALLERY_NAME, gallery.gallery.name)
pulumi.export(contract.GALLERY_RESOURCE_GROUP, images_group)
# Config order, whatever order the images were built in.
pulumi.export(contract.IMAGES, {i.name: image_outputs[i.name] for i in settings.images})
