"""Compare what `pulumi up` would do between two sides of a change, offline.

    python -m offline.plan diff [BASE [HEAD]] [--stack STACK|all]
                                [--format text|markdown|json] [--destroy]

BASE is the deployed side (a git revision, default HEAD); HEAD is a revision or WORKTREE,
the working tree with its uncommitted edits (the default). Each side's program is run
under the mock engine by this checkout's tooling (`offline.snapshot`, one interpreter per
side), and the two are compared at two levels:

- image level (`diff_plans`, pure: two `plan.build_plan` dicts in, summary lines out):
  versions added and removed, regions and replicas, builders created, rebuilt and
  retired, consumers moved;
- resource level (`changes.diff`): what the engine does to each resource, and
  `refusals.check` over it: REFUSED where Azure rejects the change for the state the
  resource is in, DANGEROUS where a published gallery, definition or version (or the
  group holding them) would be replaced or deleted.

Exit codes: 0 nothing refused or dangerous, 1 a stack does not plan, 2 a usage or git
error, 3 DANGEROUS (and nothing refused), 4 REFUSED. No credentials, no Pulumi CLI.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from offline import changes, refusals

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Inputs of a version that Azure cannot change on an existing version.
VERSION_CREATE_ONLY = ("source", "sourceKind", "replicationMode", "urn")
# Fields of a definition that are part of its identity in Azure.
DEFINITION_CREATE_ONLY = ("os", "generation", "architecture", "identifier", "securityType")
GALLERY_CREATE_ONLY = ("name", "resourceGroup", "location")

EMPTY_PLAN: dict[str, Any] = {"gallery": {}, "images": {}}


@dataclass(frozen=True)
class Change:
    """One image-level difference between two plans: a summary line, no verdict (the
    resource-level findings say what Azure refuses and what is dangerous)."""

    stack: str
    text: str

    def line(self) -> str:
        return self.text


def _vkey(number: str) -> tuple[int, ...]:
    return tuple(int(p) for p in number.split("."))


def _regions(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in spec.get("regions", [])}


def _where(regions: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(f"{r['name']} x{r['replicas']} {r['storage']}" for r in regions)


def _consumers(plan: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for image_name, image in plan.get("images", {}).items():
        for number, spec in image.get("versions", {}).items():
            for c in spec.get("consumers", []):
                found[(c["kind"], str(c["name"]))] = {**c, "imageName": image_name, "at": number}
    return found


def _label(c: Mapping[str, Any]) -> str:
    return f"{c['imageName']} {c.get('image') or c['at']}"


def _how(a: Mapping[str, Any], c: Mapping[str, Any]) -> str:
    """How a consumer's instances reach the image it moves to (from `a` to `c`)."""
    if c["kind"] != "scaleSet":
        return ""
    if c.get("automaticOsUpgrade"):
        back = a["imageName"] == c["imageName"] and _vkey(c["at"]) < _vkey(a["at"])
        if a.get("automaticOsUpgrade") and back:
            # Automatic OS image upgrades only ever apply a newer version.
            return (
                f" (running instances keep {a['at']}: automatic OS image upgrades only move "
                f"forward; new instances get {c['at']})"
            )
        return " (automatic OS image upgrade)"
    if c.get("upgrade") == "Manual":
        return " (upgradePolicy Manual: running instances keep their image until upgraded)"
    return f" ({c.get('upgrade')} upgrade of the scale set model)" if c.get("upgrade") else ""


def _kind(kind: str) -> str:
    return "scale set" if kind == "scaleSet" else "vm"


def _version_changes(
    name: str, number: str, old: Mapping[str, Any], new: Mapping[str, Any], moved: bool = False
) -> list[str]:
    """Change texts of one version present on both sides, fixed fields first. `moved`: the
    gallery moves (name, group or location), so the version is created anew there."""
    what = f"version {name} {number}"
    if moved:
        return [f"{what}: created anew in the moved gallery (the old one is deleted)"]
    # A version whose program pins its source (ignore_changes) keeps the one it has.
    pinned = "storageProfile.source" in new.get("ignoreChanges", [])
    kept = ("source", "sourceKind") if pinned else ()
    fixed = [
        f"{what}: {field} {old.get(field)} -> {new.get(field)}"
        for field in VERSION_CREATE_ONLY
        if field not in kept and old.get(field) != new.get(field)
    ]
    ordinary = []
    if pinned and old.get("source") != new.get("source"):
        ordinary.append(f"{what}: keeps its source (published versions never change it)")
    before, after = _regions(old), _regions(new)
    for region in after.keys() - before.keys():
        r = after[region]
        ordinary.append(f"{what}: region {region} added (x{r['replicas']} {r['storage']})")
    for region in before.keys() - after.keys():
        ordinary.append(f"{what}: region {region} removed")
    for region in sorted(before.keys() & after.keys()):
        a, b = before[region], after[region]
        if a["replicas"] != b["replicas"]:
            ordinary.append(f"{what}: {region} replicas {a['replicas']} -> {b['replicas']}")
        if a["storage"] != b["storage"]:
            ordinary.append(f"{what}: {region} storage {a['storage']} -> {b['storage']}")
    for field, label in (("excludeFromLatest", "excludeFromLatest"), ("endOfLifeDate", "EOL")):
        if old.get(field) != new.get(field):
            ordinary.append(f"{what}: {label} {old.get(field)} -> {new.get(field)}")
    ob, nb = old.get("builder"), new.get("builder")
    if ob and not nb:
        test = ob.get("validation")
        also = f" and its test VM {test['vm']}" if test else ""
        ordinary.append(f"builder of {name} {number} retired (VM {ob['vm']}{also} deleted)")
    elif nb and not ob:
        ordinary.append(f"builder of {name} {number} created (VM {nb['vm']})")
    elif ob and nb and ob.get("fingerprint") != nb.get("fingerprint"):
        ordinary.append(f"builder of {name} {number} rebuilt (VM {nb['vm']})")
    if ob and nb:
        ordinary += _validation_changes(
            f"{name} {number}",
            ob.get("validation"),
            nb.get("validation"),
            rebuilt=ob.get("fingerprint") != nb.get("fingerprint"),
        )
    return fixed + sorted(ordinary)


def _validation_changes(
    what: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    *,
    rebuilt: bool = False,
) -> list[str]:
    """A build's validation (test VM and checks) turned on, off or changed; a plan from
    before validation existed has none. `rebuilt`: the builder is new, so is what it tests."""
    if new and not old:
        return [
            f"validation of {what} added: test VM {new['vm']} ({new['size']}) from "
            f"{new['image']}: {' -> '.join(new['checks'])}"
        ]
    if old and not new:
        return [
            f"validation of {what} turned off (test VM {old['vm']} deleted; new builds "
            "publish untested)"
        ]
    if not (old and new) or old.get("fingerprint") == new.get("fingerprint"):
        return []
    changed = [
        f"{label} {a} -> {b}"
        for label, a, b in (
            ("size", old["size"], new["size"]),
            ("from", old.get("image"), new.get("image")),
            ("checks", ", ".join(old["checks"]), ", ".join(new["checks"])),
        )
        if a != b
    ]
    if rebuilt:
        changed.insert(0, "a new build")
    why = "; ".join(changed) or "check scripts, their time limit or the admin name changed"
    return [f"validation of {what} re-run on a new test VM {new['vm']} ({why})"]


def diff_plans(
    before: Mapping[str, Any], after: Mapping[str, Any], stack: str = ""
) -> list[Change]:
    """Image-level changes from `before` to `after` (two `plan.build_plan` dicts)."""
    stack = stack or str(after.get("stack") or before.get("stack") or "")
    out: list[Change] = []

    def add(text: str) -> None:
        out.append(Change(stack, text))

    old_g, new_g = before.get("gallery") or {}, after.get("gallery") or {}
    gallery_moved = False
    if old_g.get("name") and new_g.get("name"):
        moved = [
            f"{f} {old_g.get(f)} -> {new_g.get(f)}"
            for f in GALLERY_CREATE_ONLY
            if old_g.get(f) != new_g.get(f)
        ]
        if moved:
            gallery_moved = True
            add(f"gallery {'; '.join(moved)}")
    old_share = {s["principalId"]: s for s in old_g.get("sharedWith", [])}
    new_share = {s["principalId"]: s for s in new_g.get("sharedWith", [])}
    for pid in sorted(new_share.keys() - old_share.keys()):
        add(f"gallery shared with {new_share[pid]['type']} {pid}")
    for pid in sorted(old_share.keys() - new_share.keys()):
        add(f"gallery no longer shared with {old_share[pid]['type']} {pid}")

    old_images, new_images = before.get("images", {}), after.get("images", {})
    for name in sorted(new_images.keys() - old_images.keys()):
        image = new_images[name]
        numbers = ", ".join(sorted(image.get("versions", {}), key=_vkey))
        add(
            f"image {name} added ({image.get('os')}, {image.get('generation')}, "
            f"{image.get('securityType')}) with versions {numbers}"
        )
    for name in sorted(old_images.keys() - new_images.keys()):
        numbers = ", ".join(sorted(old_images[name].get("versions", {}), key=_vkey))
        guard = " (protected: pulumi up will refuse)" if old_images[name].get("protected") else ""
        add(f"image {name} removed with versions {numbers}{guard}")

    for name in sorted(old_images.keys() & new_images.keys(), key=str):
        old_i, new_i = old_images[name], new_images[name]
        changed = [
            f"{f} {old_i.get(f)} -> {new_i.get(f)}"
            for f in DEFINITION_CREATE_ONLY
            if old_i.get(f) != new_i.get(f)
        ]
        if changed:
            add(f"image {name} definition: {'; '.join(changed)}")
        old_v, new_v = old_i.get("versions", {}), new_i.get("versions", {})
        for number in sorted(new_v.keys() - old_v.keys(), key=_vkey):
            add(f"version {name} {number} added: {_where(new_v[number]['regions'])}")
        for number in sorted(old_v.keys() - new_v.keys(), key=_vkey):
            guard = " (protected: pulumi up will refuse)" if old_v[number].get("protected") else ""
            add(f"version {name} {number} removed{guard}")
        for number in sorted(old_v.keys() & new_v.keys(), key=_vkey):
            for text in _version_changes(name, number, old_v[number], new_v[number], gallery_moved):
                add(text)

    old_c, new_c = _consumers(before), _consumers(after)
    for key in sorted(new_c.keys() - old_c.keys()):
        c = new_c[key]
        add(f"{_kind(key[0])} {key[1]} added in {c['region']} on {_label(c)}")
    for key in sorted(old_c.keys() - new_c.keys()):
        add(f"{_kind(key[0])} {key[1]} removed (was on {_label(old_c[key])})")
    for key in sorted(old_c.keys() & new_c.keys()):
        a, b = old_c[key], new_c[key]
        if (a["imageName"], a["at"]) == (b["imageName"], b["at"]) and a["follows"] != b["follows"]:
            now = "follows latest" if b["follows"] == "latest" else "is pinned"
            add(
                f"{_kind(key[0])} {key[1]} now {now} ({_label(b)}); it runs the same version"
                + (_how(a, b) if b.get("automaticOsUpgrade") else "")
            )
        elif (a["imageName"], a["at"], a["follows"]) != (b["imageName"], b["at"], b["follows"]):
            add(f"{_kind(key[0])} {key[1]} moves from {_label(a)} to {_label(b)}{_how(a, b)}")
        if a.get("capacity") != b.get("capacity"):
            add(f"{_kind(key[0])} {key[1]} capacity {a.get('capacity')} -> {b.get('capacity')}")
        if a.get("region") != b.get("region"):
            add(f"{_kind(key[0])} {key[1]} moves from {a.get('region')} to {b.get('region')}")
    return out


# One stack, both levels


@dataclass
class StackDiff:
    """A stack's comparison: image-level summary, resource-level actions and findings."""

    summary: list[Change]
    actions: list[changes.Action]
    findings: list[refusals.Finding]

    @property
    def refused(self) -> int:
        return sum(f.level == refusals.REFUSED for f in self.findings)

    @property
    def dangerous(self) -> int:
        return sum(f.level == refusals.DANGEROUS for f in self.findings)


def compare(before: Mapping[str, Any], after: Mapping[str, Any], stack: str) -> StackDiff:
    """Two snapshots (`offline.snapshot`) of one stack -> both levels of the diff."""
    found = changes.diff(
        changes.load(before.get("resources", [])), changes.load(after.get("resources", []))
    )
    return StackDiff(
        diff_plans(before.get("plan") or EMPTY_PLAN, after.get("plan") or EMPTY_PLAN, stack),
        found.changed(),
        refusals.check(found),
    )


def exit_code(results: Mapping[str, StackDiff | str]) -> int:
    """0 clean; 1 a stack does not plan; 3 DANGEROUS only; 4 any REFUSED (2: usage/git)."""
    if any(isinstance(r, str) for r in results.values()):
        return 1
    diffs = [r for r in results.values() if isinstance(r, StackDiff)]
    if any(d.refused for d in diffs):
        return 4
    if any(d.dangerous for d in diffs):
        return 3
    return 0


# Rendering

_OP_ORDER = (
    changes.REPLACE,
    changes.DELETE,
    changes.UPDATE,
    changes.CREATE,
    changes.FORGET,
    changes.SKIP_DELETE,
)


def _ordered(actions: Sequence[changes.Action]) -> list[changes.Action]:
    return sorted(actions, key=lambda a: (_OP_ORDER.index(a.op), a.name, a.urn))


def _counts(actions: Sequence[changes.Action]) -> str:
    counts = [(op, sum(a.op == op for a in actions)) for op in _OP_ORDER]
    return ", ".join(f"{n} {op}" for op, n in counts if n) or "none"


def _headline(d: StackDiff) -> str:
    return (
        f"{len(d.summary)} image-level change(s), {len(d.actions)} resource action(s) "
        f"({_counts(d.actions)}); {d.refused} refused, {d.dangerous} dangerous"
    )


def render(results: Mapping[str, StackDiff | str], fmt: str, base: str, head: str) -> str:
    """`results`: stack -> its diff, or an error text when a side does not plan."""
    if fmt == "json":
        return json.dumps(
            {
                "base": base,
                "head": head,
                "exitCode": exit_code(results),
                "stacks": {
                    s: {"error": v}
                    if isinstance(v, str)
                    else {
                        "changes": [c.text for c in v.summary],
                        "findings": [asdict(f) | {"line": f.line()} for f in v.findings],
                        "actions": [asdict(a) | {"line": a.line()} for a in _ordered(v.actions)],
                    }
                    for s, v in results.items()
                },
            },
            indent=2,
            sort_keys=True,
        )
    if fmt == "markdown":
        return _markdown(results, base, head)
    lines = [f"plan diff {base} -> {head}"]
    for stack, found in results.items():
        if isinstance(found, str):
            lines += [f"stack {stack}: does not plan", *("  " + x for x in found.splitlines())]
            continue
        if not (found.summary or found.actions):
            lines.append(f"stack {stack}: no changes")
            continue
        lines.append(f"stack {stack}: {_headline(found)}")
        lines += [f"  {f.line()}" for f in found.findings]
        lines += [f"  {c.line()}" for c in found.summary]
        if found.actions:
            lines.append("  resources:")
            lines += [f"    {a.line()}" for a in _ordered(found.actions)]
    return "\n".join(lines)


def _markdown(results: Mapping[str, StackDiff | str], base: str, head: str) -> str:
    out = [f"## Image plan diff {base} → {head}", ""]
    for stack, found in results.items():
        out.append(f"### Stack `{stack}`")
        if isinstance(found, str):
            out += ["", "```", found, "```", ""]
            continue
        if found.refused:
            out.append(
                f"\n> [!CAUTION]\n> {found.refused} change(s) Azure refuses in the state the "
                "resources are in: `pulumi up` would fail part-way."
            )
        if found.dangerous:
            out.append(
                f"\n> [!WARNING]\n> {found.dangerous} change(s) would replace or delete "
                "something published."
            )
        out.append("")
        out += [f"- **{f.level}**: {f.line().split(': ', 1)[1]}" for f in found.findings]
        out += [f"- {c.text}" for c in found.summary] or (
            [] if found.findings else ["No image-level changes."]
        )
        if found.actions:
            out += [
                "",
                f"<details><summary>Resource-level actions: {_counts(found.actions)}</summary>",
                "",
                "| action | resource | what | why |",
                "| --- | --- | --- | --- |",
            ]
            for a in _ordered(found.actions):
                what = ", ".join(f"`{p}`" for p in a.paths) or "—"
                why = "; ".join(a.reasons) or "—"
                if a.protected and a.op in (changes.REPLACE, changes.DELETE):
                    why += " (protected: pulumi up refuses)"
                out.append(f"| {a.op} | `{a.name}` | {what} | {why} |")
            out += ["", "</details>"]
        out.append("")
    out.append("_Offline plan under Pulumi mocks: no credentials, no `pulumi preview`._")
    return "\n".join(out)


# Sides: a git revision or the working tree


class PlanError(Exception):
    """A revision could not be exported or planned."""


WORKTREE = "WORKTREE"
"""The side that is the working tree as it is, uncommitted edits included."""


def _git(*args: str, cwd: Path = PROJECT_DIR) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PlanError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def export(rev: str, into: Path, repo: Path = PROJECT_DIR) -> Path:
    """Write the project's tree at `rev` into `into` (git archive: no worktree metadata)."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=repo)
    prefix = _git("rev-parse", "--show-prefix", cwd=repo)
    spec = f"{commit}:{prefix.rstrip('/')}" if prefix else commit
    data = subprocess.run(["git", "archive", "--format=tar", spec], cwd=repo, capture_output=True)
    if data.returncode != 0:
        raise PlanError(f"git archive {rev}: {data.stderr.decode(errors='replace').strip()}")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def describe(side: str, repo: Path = PROJECT_DIR) -> str:
    """'HEAD (a111db1)', or 'working tree (uncommitted changes included)'."""
    if side == WORKTREE:
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=repo)
        return "working tree" + (" (uncommitted changes included)" if dirty else " (clean)")
    commit = _git("rev-parse", "--short", "--verify", f"{side}^{{commit}}", cwd=repo)
    return side if side == commit else f"{side} ({commit})"


def stacks_in(tree: Path) -> list[str]:
    return sorted(p.name.split(".")[1] for p in tree.glob("Pulumi.*.yaml"))


def snapshot_tree(tree: Path, stacks: Sequence[str], tooling: Path) -> dict[str, Any]:
    """`tree`'s program for each stack, recorded by this checkout's tooling (snapshot.py),
    in one interpreter: {stack: snapshot or {"error": text}}; an absent stack is empty.

    `tooling` is a directory holding only this package, so the tree's own `offline/` (or
    its absence, in old revisions) cannot change how a side is recorded.
    """
    empty = {s: {"stack": s, "plan": {**EMPTY_PLAN, "stack": s}, "resources": []} for s in stacks}
    present = [s for s in stacks if s in stacks_in(tree)]
    if not present:
        return empty
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(tooling), str(tree)])
    done = subprocess.run(
        [sys.executable, "-P", "-m", "offline.snapshot", "--project-dir", str(tree), *present],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PlanError((done.stderr or done.stdout).strip())
    try:
        data: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise PlanError(f"no snapshot from {tree}: {err}") from None
    return {**empty, **data}


def diff_sides(
    base: str,
    head: str,
    stacks: Sequence[str] | None = None,
    *,
    destroy: bool = False,
    repo: Path = PROJECT_DIR,
) -> dict[str, StackDiff | str]:
    """Per stack, the diff from `base` to `head` (revisions or WORKTREE), or the error text
    of a side that does not plan. With `destroy`, `head` is ignored: nothing is left."""
    with tempfile.TemporaryDirectory(prefix="plandiff-") as tmp:
        tooling = Path(tmp) / "tooling"
        tooling.mkdir()
        (tooling / "offline").symlink_to(Path(__file__).resolve().parent)
        trees: dict[str, Path] = {}
        for side, rev in (("a", base), ("b", head)):
            if rev not in trees:
                trees[rev] = repo if rev == WORKTREE else export(rev, Path(tmp) / side, repo)
        known = sorted(set(stacks_in(trees[base])) | set(stacks_in(trees[head])))
        names = list(stacks) if stacks else known
        unknown = [s for s in names if s not in known]
        if unknown:
            raise PlanError(
                f"unknown stack {', '.join(repr(s) for s in unknown)}; known: {', '.join(known)}"
            )

        def record(rev: str, nothing: bool) -> dict[str, Any]:
            if nothing:  # pulumi destroy: no resource is left
                return {s: {"stack": s, "resources": []} for s in names}
            return snapshot_tree(trees[rev], names, tooling)

        with ThreadPoolExecutor(max_workers=2) as pool:
            before_f = pool.submit(record, base, False)
            after_f = pool.submit(record, head, destroy)
            before, after = before_f.result(), after_f.result()

        def one(stack: str) -> StackDiff | str:
            for rev, snap in ((base, before), (head, after)):
                if "error" in snap[stack]:
                    return f"{rev}: {snap[stack]['error']}"
            return compare(before[stack], after[stack], stack)

        return {stack: one(stack) for stack in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.plan diff",
        description=(
            "Compare what pulumi up would do between two sides, offline: an image-level "
            "summary, Azure's refusals (REFUSED) and replacements of published images "
            "(DANGEROUS), and every resource's action. Exit 0 clean, 1 a stack does not "
            "plan, 2 usage or git error, 3 DANGEROUS, 4 REFUSED."
        ),
    )
    parser.add_argument(
        "base", nargs="?", default="HEAD", help="base revision, the deployed side (default HEAD)"
    )
    parser.add_argument(
        "head",
        nargs="?",
        default=WORKTREE,
        help=f"head revision, or {WORKTREE} for the working tree with uncommitted edits "
        f"(default {WORKTREE})",
    )
    parser.add_argument("--stack", default="all", help="stack name or 'all' (default)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--destroy",
        action="store_true",
        help="what pulumi destroy of BASE would do (HEAD is not used)",
    )
    args = parser.parse_args(argv)
    try:
        results = diff_sides(
            args.base,
            args.head,
            None if args.stack == "all" else [args.stack],
            destroy=args.destroy,
        )
        base = describe(args.base)
        head = "pulumi destroy" if args.destroy else describe(args.head)
    except PlanError as err:
        print(f"plan diff: {err}", file=sys.stderr)
        return 2
    print(render(results, args.format, base, head))
    return exit_code(results)
