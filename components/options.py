"""Resource options shared by the components."""

from __future__ import annotations

import copy
import re

import pulumi

from imagefactory.settings import Protection

# azure-native's API-versioned modules, e.g. "azure-native:compute/v20240701:VirtualMachine".
_VERSIONED_TYPE = re.compile(r"^azure-native:[A-Za-z0-9]+/v\d{8}[a-z0-9]*:")


def drop_api_version_aliases(
    args: pulumi.ResourceTransformationArgs,
) -> pulumi.ResourceTransformationResult | None:
    """A stack transformation: drop the aliases azure-native adds to its versioned types.

    Each azure-native resource carries 10-40 of them so that state written by a versioned
    module still matches; this project only ever used the default modules, so they never
    match. The Python SDK turns every alias into URN outputs eagerly (pulumi/pulumi#11064),
    which was about 80% of the program's run time. Aliases written in this program stay.
    """
    aliases = args.opts.aliases
    if not aliases:
        return None
    kept = [
        a
        for a in aliases
        if not (
            isinstance(a, pulumi.Alias)
            and isinstance(a.type_, str)
            and _VERSIONED_TYPE.match(a.type_)
        )
    ]
    if len(kept) == len(aliases):
        return None
    opts = copy.copy(args.opts)
    opts.aliases = kept or None
    return pulumi.ResourceTransformationResult(args.props, opts)


# Inputs that builder-side resources (builder VM, NIC, public IP, managed image) take when
# they are created and never update. After capture the VM is deallocated and generalized:
# Azure refuses every update of it (OperationNotAllowedOnGeneralizedVM, "Create a managed
# image of a generalized VM", learn.microsoft.com/azure/virtual-machines/capture-image-resource)
# and of its extensions while it is not running. What shapes the image is in the builder's
# fingerprint (its replacement trigger) instead, so a change that matters rebuilds it.
KEPT_FROM_CREATION = ["tags"]


def protection_options(protection: Protection) -> pulumi.ResourceOptions:
    """Options that keep published assets (gallery, definitions, versions) from deletion.

    'protect' makes `pulumi up` refuse to delete; 'retainOnDelete' lets Pulumi forget the
    resource but leaves it in Azure; 'none' is for throw-away stacks.
    """
    if protection == "protect":
        return pulumi.ResourceOptions(protect=True)
    if protection == "retainOnDelete":
        return pulumi.ResourceOptions(retain_on_delete=True)
    return pulumi.ResourceOptions()
