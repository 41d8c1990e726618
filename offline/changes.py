"""What the Pulumi engine would do to each resource between two runs of the program.

`diff(before, after)` takes the resources two offline runs registered (`engine.Run`, or
the same data read back from JSON) and returns one `Action` per resource, in a stable
order: created, updated (which inputs), replaced (why), deleted, forgotten, or left alone.
It follows the engine's own rules for the resource options the program uses:

- `ignore_changes`: an ignored path keeps its value from the state (the old inputs), so it
  neither updates nor replaces (pulumi.com/docs/iac/concepts/options/ignorechanges);
- `replace_on_changes`: a change under one of its paths replaces instead of updating;
- `replacement_trigger`: a new trigger value replaces the resource;
- `replace_with`: replacing any resource it names replaces this one too;
- `deleted_with`: its delete is skipped when the resource it names is deleted as well;
- `protect`: the engine refuses to delete or replace it (`pulumi up` stops);
- `retain_on_delete`: a delete only removes it from the state; Azure keeps it;
- create-only properties the providers themselves replace on: each Azure resource's name
  and the names of the resources it lives in (its URL), and its location; every input of a
  `random` resource; a pulumi-command `Command`'s `triggers`; a `tls` key's algorithm.

"Before" is the state after the base revision's `pulumi up`; "after" is what the head
revision registers. No credentials and no CLI: this is a model of the engine, and the
tests pin it on every edit the project's users make.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from offline.engine import Registered

CREATE = "create"
UPDATE = "update"
REPLACE = "replace"
DELETE = "delete"
FORGET = "forget"
"""retain_on_delete: Pulumi forgets the resource, Azure keeps it."""
SKIP_DELETE = "delete-skipped"
"""deleted_with: the resource goes with another one that is deleted."""
STATE = "state"
"""Only Pulumi's state changes (protect, retain_on_delete): no call to Azure."""
SAME = "same"

# Inputs whose change makes the provider replace the resource: the parts of its ARM URL
# (its own name and its parents' names, the resource group) and its location.
_URL_INPUTS = (
    "resourceGroupName",
    "location",
    "virtualNetworkName",
    "vmName",
    "galleryName",
    "galleryImageName",
    "scope",
)
_NAME_INPUT = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:network:NetworkSecurityGroup": "networkSecurityGroupName",
    "azure-native:network:NetworkInterface": "networkInterfaceName",
    "azure-native:network:PublicIPAddress": "publicIpAddressName",
    "azure-native:compute:VirtualMachine": "vmName",
    "azure-native:compute:VirtualMachineRunCommandByVirtualMachine": "runCommandName",
    "azure-native:compute:Image": "imageName",
    "azure-native:compute:Gallery": "galleryName",
    "azure-native:compute:GalleryImage": "galleryImageName",
    "azure-native:compute:GalleryImageVersion": "galleryImageVersionName",
    "azure-native:compute:VirtualMachineScaleSet": "vmScaleSetName",
    "azure-native:authorization:RoleAssignment": "roleAssignmentName",
    "azure-native:compute:VirtualMachineExtension": "vmExtensionName",
    "azure-native:monitor:AutoscaleSetting": "autoscaleSettingName",
}
_PROVIDER_REPLACES: dict[str, tuple[str, ...]] = {
    "command:local:Command": ("triggers",),
    "tls:index/privateKey:PrivateKey": ("algorithm", "rsaBits", "ecdsaCurve"),
    # Every input of a random resource replaces it (pulumi-random's schema).
    "random:index/randomPassword:RandomPassword": ("*",),
}


@dataclass(frozen=True)
class Action:
    """What the engine would do to one resource."""

    urn: str
    type: str
    name: str
    op: str
    paths: tuple[str, ...] = ()
    """The input paths that differ (after ignore_changes), for updates and replacements."""
    reasons: tuple[str, ...] = ()
    """Why a resource is replaced, or why a delete does not reach Azure."""
    protected: bool = False
    """Protected in the state: the engine refuses a delete or replacement and stops."""
    delete_before_replace: bool = False

    def line(self) -> str:
        """One readable line, e.g. `replace build-x-builder-vm (replacement_trigger changed)`."""
        text = f"{self.op} {self.name}"
        if self.op in (UPDATE, STATE):
            text += f": {', '.join(self.paths)}"
        if self.reasons:
            text += f" ({'; '.join(self.reasons)})"
        if self.protected and self.op in (REPLACE, DELETE):
            text += " [protected: pulumi up refuses]"
        return text


@dataclass
class Diff:
    """Every resource's action, with both sides kept for the refusal rules."""

    actions: list[Action]
    before: dict[str, Registered] = field(default_factory=dict)
    after: dict[str, Registered] = field(default_factory=dict)

    def of(self, urn: str) -> Action | None:
        return next((a for a in self.actions if a.urn == urn), None)

    def changed(self) -> list[Action]:
        return [a for a in self.actions if a.op != SAME]


# --- property paths ------------------------------------------------------------------

_PATH_PART = re.compile(r'\[(\d+)\]|\["([^"]*)"\]|\.?([^.\[\]]+)')


def parse_path(path: str) -> list[str | int]:
    """Pulumi property path -> parts: 'a.b[0]["c.d"]' -> ['a', 'b', 0, 'c.d']."""
    parts: list[str | int] = []
    for index, quoted, plain in _PATH_PART.findall(path):
        if index:
            parts.append(int(index))
        elif quoted:
            parts.append(quoted)
        else:
            parts.append(plain)
    return parts


_MISSING = object()


def _get(value: Any, parts: Sequence[str | int]) -> Any:
    for part in parts:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_dict = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_dict):
            return _MISSING
        value = value[part]
    return value


def _set(value: Any, parts: Sequence[str | int], new: Any) -> None:
    """Set (or, with _MISSING, remove) the value at parts; missing parents are left alone."""
    parent = _get(value, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        if new is _MISSING:
            parent.pop(last, None)
        else:
            parent[last] = new
    elif (
        isinstance(parent, list)
        and isinstance(last, int)
        and last < len(parent)
        and new is not _MISSING
    ):
        parent[last] = new


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def apply_ignore_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], ignored: Iterable[str]
) -> dict[str, Any]:
    """New inputs with every ignored path reset to its old value, as the engine does."""
    out: dict[str, Any] = _copy(new)
    for path in ignored:
        parts = parse_path(path)
        if parts:
            kept = _get(old, parts)
            _set(out, parts, _MISSING if kept is _MISSING else _copy(kept))
    return out


def changed_paths(old: Any, new: Any, prefix: str = "", depth: int = 3) -> list[str]:
    """Dotted paths where two input trees differ, at most `depth` levels deep."""
    if old == new:
        return []
    if depth == 0 or not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix or "(inputs)"]
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        sub = f"{prefix}.{key}" if prefix else str(key)
        out += changed_paths(old.get(key, _MISSING), new.get(key, _MISSING), sub, depth - 1)
    return out


def _under(path: str, roots: Iterable[str]) -> str | None:
    for root in roots:
        if (
            root == "*"
            or path == root
            or path.startswith(root + ".")
            or path.startswith(root + "[")
        ):
            return root
    return None


# --- the diff -------------------------------------------------------------------------


def _replace_reasons(old: Registered, new: Registered, paths: Sequence[str]) -> list[str]:
    reasons = []
    if new.replacement_trigger is not None and new.replacement_trigger != old.replacement_trigger:
        reasons.append("replacement_trigger changed")
    tops = sorted({p.split(".")[0] for p in paths})
    create_only = [*_URL_INPUTS, _NAME_INPUT.get(new.type, "")]
    forced = [t for t in tops if t in create_only]
    if forced:
        reasons.append(f"{', '.join(forced)} cannot change in place")
    renewing = [t for t in tops if _under(t, _PROVIDER_REPLACES.get(new.type, ()))]
    if renewing:
        reasons.append(f"{', '.join(renewing)} changed")
    hits = sorted({root for p in paths if (root := _under(p, new.replace_on_changes))})
    if hits:
        reasons.append(f"replace_on_changes {', '.join(hits)}")
    return reasons


# Outputs a resource gets anew each time it is created: ids of the instance, not its name.
_INSTANCE_OUTPUTS = ("vmId", "uniqueId")


def _fresh_inputs(
    res: Registered, old: Mapping[str, Registered], ops: Mapping[str, Action]
) -> list[str]:
    """Inputs of `res` that carry an instance output of a resource being replaced."""
    found: list[str] = []
    for key, deps in sorted(res.property_dependencies.items()):
        for dep in deps:
            if dep not in old or dep not in ops or ops[dep].op != REPLACE:
                continue
            values = [str(old[dep].outputs.get(o)) for o in _INSTANCE_OUTPUTS]
            text = json.dumps(res.inputs.get(key), default=str)
            if any(v != "None" and v in text for v in values) and key not in found:
                found.append(key)
    return found


def diff(before: Iterable[Registered], after: Iterable[Registered]) -> Diff:
    """Every custom resource's action from `before` (deployed) to `after` (the program)."""
    old = {r.urn: r for r in before if r.custom}
    new = {r.urn: r for r in after if r.custom}
    ops: dict[str, Action] = {}
    for urn, res in new.items():
        if urn not in old:
            ops[urn] = Action(urn, res.type, res.name, CREATE)
            continue
        prior = old[urn]
        inputs = apply_ignore_changes(prior.inputs, res.inputs, res.ignore_changes)
        paths = changed_paths(prior.inputs, inputs)
        reasons = _replace_reasons(prior, res, paths)
        op = REPLACE if reasons else UPDATE if paths else SAME
        if op == SAME:
            flags = [
                f"{flag} {old_value} -> {new_value}"
                for flag, old_value, new_value in (
                    ("protect", prior.protect, res.protect),
                    ("retain_on_delete", prior.retain_on_delete, res.retain_on_delete),
                )
                if old_value != new_value
            ]
            if flags:
                op, paths = STATE, flags
        ops[urn] = Action(
            urn,
            res.type,
            res.name,
            op,
            tuple(paths),
            tuple(reasons),
            prior.protect,
            res.delete_before_replace,
        )
    # A replaced resource is a new instance: outputs unique to it (a VM's vmId) change,
    # and so does every input that carries them. replace_with: replacing a named resource
    # replaces this one too. Both spread until nothing changes.
    spreading = True
    while spreading:
        spreading = False
        for urn, res in new.items():
            action = ops[urn]
            if action.op in (CREATE, REPLACE):
                continue
            fresh = _fresh_inputs(res, old, ops)
            if fresh:
                grown = tuple(sorted({*action.paths, *fresh}))
                why = _replace_reasons(old[urn], res, list(fresh))
                renewed = dataclasses.replace(
                    action,
                    op=REPLACE if why else UPDATE,
                    paths=grown,
                    reasons=(*action.reasons, *why),
                )
                if renewed != action:
                    ops[urn] = action = renewed
                    spreading = True
                if action.op == REPLACE:
                    continue
            followed = sorted(
                new[u].name for u in res.replace_with if u in ops and ops[u].op == REPLACE
            )
            if followed:
                ops[urn] = dataclasses.replace(
                    action,
                    op=REPLACE,
                    reasons=(*action.reasons, f"replace_with {', '.join(followed)}"),
                )
                spreading = True
    gone = [r for urn, r in old.items() if urn not in new]
    gone_urns = {r.urn for r in gone}
    for res in gone:
        note: tuple[str, ...] = ()
        if res.deleted_with and res.deleted_with in gone_urns:
            op, note = SKIP_DELETE, (f"deleted with {old[res.deleted_with].name}",)
        elif res.retain_on_delete:
            op, note = FORGET, ("retain_on_delete: Azure keeps it",)
        else:
            op = DELETE
        ops[res.urn] = Action(res.urn, res.type, res.name, op, (), note, res.protect)
    # URN order: the same two runs always give the same list, whatever order the
    # registrations arrived in.
    return Diff([ops[u] for u in sorted(ops)], old, new)


# --- transport ------------------------------------------------------------------------


def dump(resources: Iterable[Registered]) -> list[dict[str, Any]]:
    """Resources as plain JSON data (the snapshot a plan diff reads for each side)."""
    return [dataclasses.asdict(r) for r in resources]


def load(data: Iterable[Mapping[str, Any]]) -> list[Registered]:
    names = {f.name for f in dataclasses.fields(Registered)}
    return [Registered(**{k: v for k, v in d.items() if k in names}) for d in data]
