"""Azure's refusal rules, applied to the engine's resource-level actions.

`check(diff)` reads a `changes.Diff` (before = the deployed state, after = the program)
and returns findings of two levels:

- REFUSED: Azure rejects the call for the state the resource is in, so `pulumi up` would
  fail part-way. Each rule names the state it applies in, Azure's error, the page or issue
  it comes from, and what to do instead.
- DANGEROUS: Azure would do it, and a published image goes with it (a gallery,
  definition or version replaced or deleted, or the resource group that holds them).
- ROLLOUT: Azure does it, and how it reaches running machines is not obvious: a scale set
  whose custom data changes keeps it on running instances until they are reimaged; a VM
  takes custom data only when it is created, so it is rebuilt; zones added to a scale set
  take new instances only. Each names its source. These never fail the check.

The state of a resource is read from the base revision's own graph, as `pulumi up` left
it: a builder VM with a capture command is deallocated and generalized; a version whose
source (managed image or builder VM) the base no longer registers has lost its source.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from offline import changes
from offline.changes import CREATE, DELETE, REPLACE, UPDATE, Action, Diff
from offline.engine import Registered

REFUSED = "REFUSED"
DANGEROUS = "DANGEROUS"
ROLLOUT = "ROLLOUT"
LEVELS = (REFUSED, DANGEROUS, ROLLOUT)

VM_T = "azure-native:compute:VirtualMachine"
RUN_COMMAND_T = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
COMMAND_T = "command:local:Command"
IMAGE_T = "azure-native:compute:Image"
GALLERY_T = "azure-native:compute:Gallery"
DEFINITION_T = "azure-native:compute:GalleryImage"
VERSION_T = "azure-native:compute:GalleryImageVersion"
ROLE_T = "azure-native:authorization:RoleAssignment"
SUBNET_T = "azure-native:network:Subnet"
SCALE_SET_T = "azure-native:compute:VirtualMachineScaleSet"
VNET_T = "azure-native:network:VirtualNetwork"
NIC_T = "azure-native:network:NetworkInterface"
GROUP_T = "azure-native:resources:ResourceGroup"


@dataclass(frozen=True)
class Rule:
    """One documented refusal: where it applies, what Azure answers, and the way around."""

    id: str
    resource: str
    """The resource type it applies to (a short name)."""
    state: str
    """The state of the resource in which Azure refuses."""
    azure: str
    """Azure's error code or words."""
    source: str
    """The documentation page or public issue the rule comes from."""
    instead: str
    """What to do instead."""


RULES: tuple[Rule, ...] = (
    Rule(
        "generalized-vm-update",
        "VirtualMachine",
        "the VM is generalized after capture",
        "OperationNotAllowedOnGeneralizedVM",
        "https://learn.microsoft.com/azure/virtual-machines/capture-image-resource",
        "a builder keeps what it was created with; change what its fingerprint covers "
        "to rebuild it, or publish a new version",
    ),
    Rule(
        "extension-on-stopped-vm",
        "VirtualMachineRunCommand",
        "its VM is deallocated: a builder after capture, a test VM after validation",
        "OperationNotAllowed: extensions cannot be changed while the VM is not running",
        "https://learn.microsoft.com/azure/virtual-machines/run-command-managed",
        "run commands go with their VM; rebuild the builder (a new fingerprint) or the "
        "test VM (its trigger: size, disk, checks, timeout), or publish a new version",
    ),
    Rule(
        "version-region-added-without-source",
        "GalleryImageVersion",
        "the version's source, a managed image or staging version (or, before staging, the "
        "builder VM), was retired",
        "replication to a new region reads the version's source, which no longer exists",
        "https://learn.microsoft.com/azure/virtual-machines/update-image-resources",
        "publish the region with a new version (python -m offline.bump); reactivating the "
        "builder would build a different image under the same version number",
    ),
    Rule(
        "version-created-without-source",
        "GalleryImageVersion",
        "its source is not built in this update (builder retired or never built)",
        "a version is created from its source, which does not exist",
        "https://learn.microsoft.com/rest/api/compute/gallery-image-versions/create-or-update"
        " (GalleryArtifactVersionFullSource)",
        "give a new version builder: active until it is published; a published version "
        "cannot move to another gallery, group or location without its source",
    ),
    Rule(
        "version-region-removed-without-safety",
        "GalleryImageVersion",
        "the deployed safetyProfile.allowDeletionOfReplicatedLocations is false",
        "removing a replicated region is not allowed by the version's safety profile",
        "https://learn.microsoft.com/rest/api/compute/gallery-image-versions/create-or-update"
        " (GalleryImageVersionSafetyProfile.allowDeletionOfReplicatedLocations)",
        "set allowDeletionOfReplicatedLocations: true on the version and run pulumi up, "
        "then remove the region in the next change",
    ),
    Rule(
        "version-storage-type",
        "GalleryImageVersion",
        "a published version",
        "PropertyChangeNotAllowed: a target region's storageAccountType cannot change",
        "https://learn.microsoft.com/azure/virtual-machines/update-image-resources",
        "publish a new version with the new storage type",
    ),
    Rule(
        "version-replication-mode",
        "GalleryImageVersion",
        "a published version",
        "PropertyChangeNotAllowed: replicationMode cannot change",
        "https://learn.microsoft.com/rest/api/compute/gallery-image-versions/create-or-update"
        " (GalleryImageVersionPublishingProfile.replicationMode)",
        "publish a new version with the new replication mode",
    ),
    Rule(
        "version-source",
        "GalleryImageVersion",
        "a published version",
        "PropertyChangeNotAllowed: storageProfile.source cannot change",
        "https://learn.microsoft.com/azure/virtual-machines/update-image-resources",
        "publish a new version from the new source",
    ),
    Rule(
        "definition-immutable",
        "GalleryImage",
        "fixed when the definition is created",
        "PropertyChangeNotAllowed: identifier, osType, osState, hyperVGeneration, "
        "architecture and features are fixed at creation",
        "https://learn.microsoft.com/azure/virtual-machines/update-image-resources",
        "create a new image definition (another image name) and publish there",
    ),
    Rule(
        "managed-image-immutable",
        "Image",
        "fixed when the image is captured",
        "PropertyChangeNotAllowed: a managed image cannot change its source or generation",
        "https://learn.microsoft.com/rest/api/compute/images/update",
        "capture a new managed image from a new builder",
    ),
    Rule(
        "vm-image-reference",
        "VirtualMachine",
        "fixed when the VM is created",
        "PropertyChangeNotAllowed: a VM's imageReference cannot change in place",
        "https://learn.microsoft.com/azure/virtual-machines/linux/cli-ps-findimage",
        "recreate the VM (replace_on_changes on storageProfile.imageReference)",
    ),
    Rule(
        "os-profile-immutable",
        "VirtualMachine, VirtualMachineScaleSet",
        "fixed when the VM or scale set is created",
        "PropertyChangeNotAllowed: Changing property 'osProfile.adminUsername' is not "
        "allowed (nor the computer name, nor the OS)",
        "https://learn.microsoft.com/azure/virtual-machines/extensions/vmaccess-linux",
        "keep the admin name, or recreate the consumer under a new name (VM groups are "
        "rebuilt: replace_on_changes); reset credentials with the VMAccess extension",
    ),
    Rule(
        "role-assignment-exists",
        "RoleAssignment",
        "the same principal, role and scope is assigned already",
        "RoleAssignmentExists",
        "https://learn.microsoft.com/azure/role-based-access-control/troubleshooting",
        "delete the old assignment before creating the new one (delete_before_replace)",
    ),
    Rule(
        "subnet-in-use",
        "Subnet",
        "network interfaces or scale set instances are in it",
        "InUseSubnetCannotBeUpdated: the address range of a subnet in use cannot change",
        "https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-subnet",
        "empty the subnet first (retire the builders; remove or move the consumers), or "
        "use a new address range for a new network",
    ),
    Rule(
        "vnet-prefix-in-use",
        "VirtualNetwork",
        "a subnet lies in the address range being removed",
        "an address range that contains a subnet cannot be removed",
        "https://learn.microsoft.com/azure/virtual-network/manage-virtual-network",
        "keep the old range until its subnets are gone, or add the new range beside it",
    ),
    Rule(
        "scale-set-zones",
        "VirtualMachineScaleSet",
        "a scale set placed in zones, which are only ever added",
        "zones can be added to a scale set, never removed or replaced, and a zonal scale set "
        'cannot become regional ("You can\'t remove or replace zones, only add zones")',
        "https://learn.microsoft.com/azure/virtual-machine-scale-sets/"
        "virtual-machine-scale-sets-use-availability-zones",
        "keep the zones it has (adding more is fine); to leave a zone, deploy a scale set "
        "under a new name in the zones you want and remove this one",
    ),
    Rule(
        "vm-zone",
        "VirtualMachine",
        "fixed when the VM is created",
        "PropertyChangeNotAllowed: Changing property 'zones' is not allowed",
        "https://github.com/Azure/azure-powershell/issues/4704",
        "recreate the VM (replace_on_changes on zones)",
    ),
    Rule(
        "vm-custom-data",
        "VirtualMachine",
        "fixed when the VM is created",
        'OSProfile.customData "cannot be updated after the VM is created"',
        "https://learn.microsoft.com/azure/virtual-machines/custom-data",
        "recreate the VM (replace_on_changes on osProfile.customData)",
    ),
    Rule(
        "same-name-replacement",
        "any Azure resource",
        "the replacement has the same ARM id and is created before the old one is deleted",
        "the create finds the old resource: azure-native refuses to create a resource that "
        "exists (pulumi-azure-native#1123), a resource group cannot move "
        "(InvalidResourceGroupLocation)",
        "https://github.com/pulumi/pulumi-azure-native/issues/1123; "
        "https://github.com/Azure/azure-cli/issues/22242",
        "keep what forces the replacement (a location, a parent's name) or give the "
        "resource a new name",
    ),
)
_RULE = {r.id: r for r in RULES}


@dataclass(frozen=True)
class Finding:
    """One refused or dangerous change of one resource."""

    level: str
    resource: str
    change: str
    rule: str = ""
    """The id of the rule in RULES (REFUSED), empty for DANGEROUS."""
    note: str = ""

    def line(self) -> str:
        if self.level == REFUSED:
            rule = _RULE[self.rule]
            state = f"{rule.state}: {self.note}" if self.note else rule.state
            return (
                f"REFUSED: {self.resource}: {self.change} ({state}); Azure answers "
                f"{rule.azure} [{rule.source}]; instead: {rule.instead}"
            )
        return f"{self.level}: {self.resource}: {self.change}" + (
            f"; {self.note}" if self.note else ""
        )


# --- the state the base revision left ------------------------------------------------


# The program's tags, spelled out (as offline.plan does): a plan diff reads each side with
# this tooling, and a side from before the validation stage has no such constants.
LIFECYCLE_TAG = "imagefactory-lifecycle"
TEMPORARY = "temporary"
ROLE_TAG = "imagefactory-role"
TEST_VM_ROLE = "test-vm"


def _tag(res: Registered, key: str) -> str | None:
    tags = res.inputs.get("tags")
    value = tags.get(key) if isinstance(tags, dict) else None
    return str(value) if value is not None else None


def is_test_vm(res: Registered) -> bool:
    """A validation test VM: created from the captured image, never generalized."""
    return res.type == VM_T and _tag(res, ROLE_TAG) == TEST_VM_ROLE


def stopped_vms(before: dict[str, Registered]) -> set[str]:
    """VMs the base revision left deallocated: a builder's capture command, and a test VM's
    results command (`capture.sh collect`), go with them and stop them."""
    return {
        r.deleted_with
        for r in before.values()
        if r.type == COMMAND_T and r.deleted_with in before and before[r.deleted_with].type == VM_T
    }


def generalized_vms(before: dict[str, Registered]) -> set[str]:
    """Builder VMs the base revision captured. A test VM is only deallocated: Azure updates
    a deallocated VM (its tags, its size), and refuses only extension changes."""
    return {urn for urn in stopped_vms(before) if not is_test_vm(before[urn])}


def _source(res: Registered) -> str:
    src = ((res.inputs.get("storageProfile") or {}).get("source")) or {}
    return str(src.get("id") or src.get("virtualMachineId") or "")


def _exists(arm_id: str, side: dict[str, Registered]) -> bool:
    wanted = arm_id.lower()
    return any(r.id.lower() == wanted for r in side.values() if r.id)


def _regions(res: Registered) -> dict[str, dict[str, Any]]:
    profile = res.inputs.get("publishingProfile") or {}
    return {t["name"]: t for t in profile.get("targetRegions") or []}


def _rebuilt(arm_id: str, d: Diff) -> bool:
    """The resource with this ARM id is created or replaced in this update."""
    wanted = arm_id.lower()
    return any(
        a.op in (CREATE, REPLACE)
        for a in d.actions
        if a.urn in d.after and d.after[a.urn].id.lower() == wanted
    )


def _touches(action: Action, path: str) -> bool:
    return any(p == path or p.startswith(path + ".") for p in action.paths)


# --- checks ---------------------------------------------------------------------------

Check = Callable[[Diff], Iterator[Finding]]


def _builders(d: Diff) -> Iterator[Finding]:
    # A run command replaced or deleted with its VM is no extension change: Azure removes a
    # VM's run commands with the VM, and a new VM runs them anew.
    staying = {
        urn
        for urn in stopped_vms(d.before)
        if (a := d.of(urn)) is not None and a.op not in (REPLACE, DELETE)
    }
    generalized = staying & generalized_vms(d.before)
    for action in d.actions:
        if action.urn in generalized and action.op == UPDATE:
            yield Finding(
                REFUSED,
                action.name,
                f"update of {', '.join(action.paths)}",
                "generalized-vm-update",
            )
        if action.type != RUN_COMMAND_T or action.op not in (CREATE, UPDATE, REPLACE, DELETE):
            continue
        res = d.after.get(action.urn) or d.before[action.urn]
        if res.deleted_with in staying:
            what = {CREATE: "create", UPDATE: "update", REPLACE: "replace", DELETE: "delete"}
            change = what[action.op] + (f" of {', '.join(action.paths)}" if action.paths else "")
            yield Finding(REFUSED, action.name, change, "extension-on-stopped-vm")


def _versions(d: Diff) -> Iterator[Finding]:
    for action in d.actions:
        if action.type == VERSION_T and action.op in (CREATE, REPLACE):
            source = _source(d.after[action.urn])
            if source and not _exists(source, d.after):
                yield Finding(
                    REFUSED,
                    action.name,
                    "created" if action.op == CREATE else "re-created (replaced)",
                    "version-created-without-source",
                )
        if action.type != VERSION_T or action.op != UPDATE:
            continue
        old, new = d.before[action.urn], d.after[action.urn]
        before, after = _regions(old), _regions(new)
        added = sorted(after.keys() - before.keys())
        removed = sorted(before.keys() - after.keys())
        source = _source(old)
        if added and not (_exists(source, d.before) or _exists(source, d.after)):
            yield Finding(
                REFUSED,
                action.name,
                f"region {', '.join(added)} added",
                "version-region-added-without-source",
            )
        elif added and _rebuilt(source, d):
            yield Finding(
                DANGEROUS,
                action.name,
                f"region {', '.join(added)} added while its source is built anew",
                note="the new region gets the new build, the others keep the published one, "
                "under one version number; publish the region with a new version instead",
            )
        safety = (old.inputs.get("safetyProfile") or {}).get("allowDeletionOfReplicatedLocations")
        if removed and safety is not True:
            yield Finding(
                REFUSED,
                action.name,
                f"region {', '.join(removed)} removed",
                "version-region-removed-without-safety",
            )
        for region in sorted(before.keys() & after.keys()):
            a, b = before[region].get("storageAccountType"), after[region].get("storageAccountType")
            if a != b:
                yield Finding(
                    REFUSED,
                    action.name,
                    f"{region} storage {a} -> {b}",
                    "version-storage-type",
                )
        if _touches(action, "publishingProfile.replicationMode"):
            mode = lambda r: (r.inputs.get("publishingProfile") or {}).get("replicationMode")  # noqa: E731
            yield Finding(
                REFUSED,
                action.name,
                f"replicationMode {mode(old)} -> {mode(new)}",
                "version-replication-mode",
            )
        if _touches(action, "storageProfile"):
            yield Finding(REFUSED, action.name, "source changed", "version-source")


_DEFINITION_FIXED = (
    "identifier",
    "osType",
    "osState",
    "hyperVGeneration",
    "architecture",
    "features",
)


def _immutables(d: Diff) -> Iterator[Finding]:
    for action in d.actions:
        if action.op != UPDATE:
            continue
        if action.type == DEFINITION_T:
            fixed = sorted({p.split(".")[0] for p in action.paths} & set(_DEFINITION_FIXED))
            if fixed:
                yield Finding(
                    REFUSED, action.name, f"update of {', '.join(fixed)}", "definition-immutable"
                )
        elif action.type == IMAGE_T:
            fixed = sorted({p.split(".")[0] for p in action.paths} - {"tags"})
            if fixed:
                yield Finding(
                    REFUSED, action.name, f"update of {', '.join(fixed)}", "managed-image-immutable"
                )
        fixed_profile = [
            p
            for p in (
                "osProfile.adminUsername",
                "osProfile.computerName",
                "virtualMachineProfile.osProfile.adminUsername",
                "virtualMachineProfile.osProfile.computerNamePrefix",
            )
            if _touches(action, p)
        ]
        if action.type in (VM_T, SCALE_SET_T) and _os_of(d.before[action.urn]) != _os_of(
            d.after[action.urn]
        ):
            fixed_profile.append(
                f"the OS ({_os_of(d.before[action.urn])} -> {_os_of(d.after[action.urn])})"
            )
        if action.type in (VM_T, SCALE_SET_T) and fixed_profile:
            yield Finding(
                REFUSED,
                action.name,
                f"update of {', '.join(fixed_profile)}",
                "os-profile-immutable",
            )
        if action.type == VM_T and _touches(action, "storageProfile.imageReference"):
            yield Finding(
                REFUSED,
                action.name,
                "update of storageProfile.imageReference",
                "vm-image-reference",
            )
        if action.type == VM_T and _touches(action, "zones"):
            yield Finding(REFUSED, action.name, "update of zones", "vm-zone")
        if action.type == VM_T and _touches(action, "osProfile.customData"):
            yield Finding(REFUSED, action.name, "update of osProfile.customData", "vm-custom-data")


def _os_of(res: Registered) -> str:
    profile = res.inputs.get("osProfile") or (
        (res.inputs.get("virtualMachineProfile") or {}).get("osProfile") or {}
    )
    return "windows" if profile.get("windowsConfiguration") else "linux"


def _assignment_key(res: Registered) -> tuple[str, str, str]:
    i = res.inputs
    return (
        str(i.get("principalId", "")).lower(),
        str(i.get("roleDefinitionId", "")).lower(),
        str(i.get("scope", "")).lower(),
    )


def _role_assignments(d: Diff) -> Iterator[Finding]:
    kept_until_end = {
        _assignment_key(d.before[a.urn])
        for a in d.actions
        if a.type == ROLE_T and a.urn in d.before and a.op in (DELETE, changes.SAME, UPDATE)
    }
    for action in d.actions:
        if action.type != ROLE_T:
            continue
        if action.op == REPLACE and not action.delete_before_replace:
            yield Finding(
                REFUSED,
                action.name,
                "replaced, the new one created before the old is deleted",
                "role-assignment-exists",
            )
        elif action.op == CREATE and _assignment_key(d.after[action.urn]) in kept_until_end:
            yield Finding(
                REFUSED,
                action.name,
                "created while the same assignment under another name still exists",
                "role-assignment-exists",
            )


def _subnet_users(subnet_id: str, d: Diff) -> list[str]:
    """NICs and scale sets of the base revision in the subnet that stay in it."""
    wanted = subnet_id.lower()
    users = []
    for res in d.before.values():
        configs: list[dict[str, Any]] = []
        if res.type == NIC_T:
            configs = res.inputs.get("ipConfigurations") or []
        elif res.type == SCALE_SET_T:
            profile = (res.inputs.get("virtualMachineProfile") or {}).get("networkProfile") or {}
            for nic in profile.get("networkInterfaceConfigurations") or []:
                configs += nic.get("ipConfigurations") or []
        in_it = any(str((c.get("subnet") or {}).get("id", "")).lower() == wanted for c in configs)
        action = d.of(res.urn)
        if in_it and action is not None and action.op not in (DELETE, REPLACE):
            users.append(res.name)
    return sorted(users)


def _subnets(d: Diff) -> Iterator[Finding]:
    for action in d.actions:
        if action.type != SUBNET_T or action.op not in (UPDATE, REPLACE):
            continue
        if not _touches(action, "addressPrefix"):
            continue
        users = _subnet_users(d.before[action.urn].id, d)
        if users:
            old = d.before[action.urn].inputs.get("addressPrefix")
            new = d.after[action.urn].inputs.get("addressPrefix")
            yield Finding(
                REFUSED,
                action.name,
                f"addressPrefix {old} -> {new}",
                "subnet-in-use",
                note=", ".join(users),
            )
    for action in d.actions:
        if action.type != VNET_T or action.op != UPDATE:
            continue
        prefixes = lambda r: set(  # noqa: E731
            (r.inputs.get("addressSpace") or {}).get("addressPrefixes") or []
        )
        removed = prefixes(d.before[action.urn]) - prefixes(d.after[action.urn])
        vnet = d.before[action.urn]
        inside = sorted(
            s.name
            for s in d.before.values()
            if s.type == SUBNET_T
            and s.inputs.get("virtualNetworkName") == vnet.inputs.get("virtualNetworkName")
            and s.inputs.get("resourceGroupName") == vnet.inputs.get("resourceGroupName")
            and any(_contains(r, str(s.inputs.get("addressPrefix", ""))) for r in removed)
            and (a := d.of(s.urn)) is not None
            and a.op != DELETE
        )
        if inside:
            yield Finding(
                REFUSED,
                action.name,
                f"address range {', '.join(sorted(removed))} removed",
                "vnet-prefix-in-use",
                note=", ".join(inside),
            )


def _contains(outer: str, inner: str) -> bool:
    try:
        return ipaddress.ip_network(inner).subnet_of(ipaddress.ip_network(outer))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def _same_name(d: Diff) -> Iterator[Finding]:
    # Resources that go first: replaced delete-first. What lives inside one of them in
    # Azure (a VM's run commands) goes with it, so its replacement finds nothing in the way.
    first = {a.urn for a in d.actions if a.op == REPLACE and a.delete_before_replace}
    for action in d.actions:
        if action.op != REPLACE or action.delete_before_replace or action.type == ROLE_T:
            continue
        if not action.type.startswith("azure-native:"):
            continue
        res = d.after[action.urn]
        if res.deleted_with in first or first & set(res.replace_with):
            continue
        old, new = d.before[action.urn].id, d.after[action.urn].id
        if old and old.lower() == new.lower():
            yield Finding(
                REFUSED, action.name, "replaced under the same name", "same-name-replacement"
            )


_PUBLISHED = {GALLERY_T: "gallery", DEFINITION_T: "image definition", VERSION_T: "image version"}
_KEEP = {
    GALLERY_T: "every definition and version in it goes too; keep its name, group and location",
    DEFINITION_T: "every version under it goes too; publish under a new image name instead",
    VERSION_T: "VMs and scale sets using it lose their image; publish a new version instead",
}


def _temporary(res: Registered) -> bool:
    """A resource of the build, tagged temporary like the builders: the staging gallery, its
    definitions and versions, where a Trusted Launch build waits for validation. Nothing
    consumes them (a staging version is excluded from latest, one replica in the build
    group), and the published version is its own copy in the stack's gallery, as a version
    copied from a managed image is ("Store and share images in an Azure Compute Gallery":
    a version's source can be a version in another gallery,
    learn.microsoft.com/azure/virtual-machines/shared-image-galleries)."""
    return _tag(res, LIFECYCLE_TAG) == TEMPORARY


def _published(d: Diff) -> Iterator[Finding]:
    for action in d.actions:
        kind = _PUBLISHED.get(action.type)
        if kind is None or action.op not in (REPLACE, DELETE):
            continue
        if _temporary(d.before[action.urn]):
            continue
        verb = "replaced" if action.op == REPLACE else "deleted"
        why = f" ({'; '.join(action.reasons)})" if action.reasons else ""
        if action.protected:
            note = (
                "protected: Pulumi refuses to delete it and the operation fails at that step "
                "(changes before it are already applied)"
            )
        elif action.op == DELETE:
            note = "VMs and scale sets using it can no longer be created or scaled out from it"
        else:
            note = _KEEP[action.type]
        yield Finding(DANGEROUS, action.name, f"published {kind} would be {verb}{why}", note=note)
    for action in d.actions:
        # A protected group is never deleted (the engine stops first).
        if action.type != GROUP_T or action.op not in (REPLACE, DELETE) or action.protected:
            continue
        group = str(d.before[action.urn].inputs.get("resourceGroupName", ""))
        kept = sorted(
            r.name
            for r in d.before.values()
            if r.type != GROUP_T
            and not r.deleted_with  # meant to go with another resource
            and str(r.inputs.get("resourceGroupName", "")) == group
            and (r.retain_on_delete or r.protect)
        )
        if kept:
            yield Finding(
                DANGEROUS,
                action.name,
                f"resource group {group} would be deleted",
                note=f"Azure deletes what it holds, including {', '.join(kept)}, which "
                "Pulumi keeps (protect/retainOnDelete)",
            )


def _zones(res: Registered) -> list[str]:
    return [str(z) for z in res.inputs.get("zones") or []]


def _consumers(d: Diff) -> Iterator[Finding]:
    """Zones and custom data of scale sets and VM groups: what Azure refuses, and how a
    change it accepts reaches the machines that run."""
    custom_data = "virtualMachineProfile.osProfile.customData"
    for action in d.actions:
        if action.type == SCALE_SET_T and action.op == UPDATE:
            old, new = d.before[action.urn], d.after[action.urn]
            before, after = _zones(old), _zones(new)
            gone = [z for z in before if z not in after]
            if gone:
                change = f"zones {', '.join(before)} -> {', '.join(after) or 'none (regional)'}"
                yield Finding(REFUSED, action.name, change, "scale-set-zones")
            elif len(after) > len(before):
                added = [z for z in after if z not in before]
                yield Finding(
                    ROLLOUT,
                    action.name,
                    f"zone{'s' if len(added) > 1 else ''} {', '.join(added)} added",
                    note="running instances stay where they are and new ones go to every "
                    "zone: scale out, then in, to spread them (Azure removes the old "
                    "instances first) [https://learn.microsoft.com/azure/"
                    "virtual-machine-scale-sets/virtual-machine-scale-sets-use-availability-zones]",
                )
            if _touches(action, custom_data):
                yield Finding(
                    ROLLOUT,
                    action.name,
                    "user data (custom data) changed",
                    note=_scale_set_rollout(new),
                )
            if _touches(action, "sku.capacity") and "sku.capacity" in old.ignore_changes:
                count = (new.inputs.get("sku") or {}).get("capacity")
                yield Finding(
                    ROLLOUT,
                    action.name,
                    "autoscale removed",
                    note=f"the scale set is set to {count:g} instances, whatever count "
                    "autoscale left it at; Azure adds or deletes instances to match",
                )
        if (
            action.type == VM_T
            and action.op == REPLACE
            and any(
                "replace_on_changes" in r and ("osProfile.customData" in r or "zones" in r)
                for r in action.reasons
            )
        ):
            yield Finding(
                ROLLOUT,
                action.name,
                "rebuilt for its user data or zone",
                note="Azure sets both only when a VM is created: the VM is deleted and created "
                "anew under its name, with a new OS disk "
                "[https://learn.microsoft.com/azure/virtual-machines/custom-data]",
            )


def _scale_set_rollout(res: Registered) -> str:
    """How new custom data reaches a scale set's instances (custom data FAQ: "Existing
    instances in the scale set that are upgraded won't get the updated custom data")."""
    policy = res.inputs.get("upgradePolicy") or {}
    automatic = (policy.get("automaticOSUpgradePolicy") or {}).get("enableAutomaticOSUpgrade")
    how = (
        "or the next automatic OS image upgrade, which reimages them batch by batch"
        if automatic
        else f"its {policy.get('mode', 'Manual')} upgrade policy does not apply it"
    )
    return (
        "new instances get it at once; running instances keep theirs until they are "
        f"reimaged (az vmss reimage, a batch at a time; {how}) "
        "[https://learn.microsoft.com/azure/virtual-machines/custom-data]"
    )


CHECKS: tuple[Check, ...] = (
    _builders,
    _versions,
    _immutables,
    _role_assignments,
    _subnets,
    _same_name,
    _published,
    _consumers,
)


def check(d: Diff) -> list[Finding]:
    """Every finding, REFUSED first, then DANGEROUS, then ROLLOUT, each in resource order."""
    found = [f for c in CHECKS for f in c(d)]
    return sorted(found, key=lambda f: (LEVELS.index(f.level), f.resource, f.change))
