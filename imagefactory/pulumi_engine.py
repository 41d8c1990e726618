"""The Pulumi engine this program needs, checked before anything is registered.

The program relies on three resource options that an older Pulumi CLI does not know. An
engine without them does not fail: it ignores the option, and a script edit then becomes
an in-place update of a generalized builder VM, which Azure refuses. The Python SDK learns
which options the engine supports when the program starts (`GetDeploymentInfo`), so the
program can stop with a clear message instead.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.proto import resource_pb2

MINIMUM_CLI = "3.214.0"
"""The oldest Pulumi CLI whose engine honours every option below."""

REQUIRED_OPTIONS: dict[str, int] = {
    # Rebuild the builder VM when its fingerprint changes (pulumi/pulumi 3.214).
    "replacement_trigger": resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACEMENT_TRIGGER,
    # Run commands and the managed image follow a rebuilt builder VM (3.207).
    "replace_with": resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACE_WITH,
    # Run commands go with their VM, never on their own (3.x, DeletedWith).
    "deleted_with": resource_pb2.RESOURCE_MONITOR_FEATURE_DELETED_WITH,
}


def missing_options() -> list[str]:
    """The options in REQUIRED_OPTIONS the connected engine would ignore, in table order."""
    return [
        name
        for name, feature in REQUIRED_OPTIONS.items()
        if not settings.monitor_supports_feature(feature)
    ]


def require_engine() -> None:
    """Raise pulumi.RunError naming the missing options and the minimum CLI, if any."""
    missing = missing_options()
    if missing:
        raise pulumi.RunError(
            f"this Pulumi engine does not support the resource option(s) "
            f"{', '.join(missing)}, which this program relies on (it would ignore them "
            f"silently and update generalized builder VMs in place, which Azure refuses); "
            f"use Pulumi CLI {MINIMUM_CLI} or newer (pulumi version; "
            f"https://www.pulumi.com/docs/install/)"
        )
