"""Resource options shared by the components."""

from __future__ import annotations

import pulumi

from imagefactory.settings import Protection


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
