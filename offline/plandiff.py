"""Compare the offline plans of two git revisions, image by image.

    python -m offline.plan diff BASE HEAD [--stack dev|prod|all]
                                                [--format markdown|text|json]

`diff_plans(before, after)` is pure: two dicts from `plan.build_plan` in, a list of
changes out. `plan_at(rev, stack)` exports a revision with `git archive` into a temporary
directory and runs that tree's own `python -m offline.plan STACK --format json` with
this interpreter, so each side is planned by its own code. No credentials, no Pulumi CLI.

A change is DANGEROUS when `pulumi up` would replace something published: a gallery
version whose create-only inputs changed (source, replication mode, logical name), or a
definition or gallery whose identity changed. Azure cannot update those in place, and a
protected resource makes `pulumi up` stop instead.
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

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Inputs of a version that Azure cannot change on an existing version.
VERSION_CREATE_ONLY = ("source", "sourceKind", "replicationMode", "urn")
# Fields of a definition that are part of its identity in Azure.
DEFINITION_CREATE_ONLY = ("os", "generation", "identifier", "securityType")
GALLERY_CREATE_ONLY = ("name", "resourceGroup", "location")

EMPTY_PLAN: dict[str, Any] = {"gallery": {}, "images": {}}


@dataclass(frozen=True)
class Change:
    """One image-level difference between two plans."""

    stack: str
    text: str
    dangerous: bool = False

    def line(self) -> str:
        return f"DANGEROUS: {self.text}" if self.dangerous else self.text


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


def _kind(kind: str) -> str:
    return "scale set" if kind == "scaleSet" else "vm"


def _version_changes(
    name: str, number: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(dangerous, ordinary) change texts of one version present on both sides."""
    what = f"version {name} {number}"
    # A version whose program pins its source (ignore_changes) keeps the one it has.
    pinned = "storageProfile.source" in new.get("ignoreChanges", [])
    kept = ("source", "sourceKind") if pinned else ()
    replaced = [
        f"{field} {old.get(field)} -> {new.get(field)}"
        for field in VERSION_CREATE_ONLY
        if field not in kept and old.get(field) != new.get(field)
    ]
    dangerous = []
    if replaced:
        guard = " (protected: pulumi up will refuse)" if old.get("protected") else ""
        dangerous.append(f"{what} would be replaced{guard}: {'; '.join(replaced)}")
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
            # Azure does not update a target region's storage account type.
            dangerous.append(
                f"{what}: {region} storage {a['storage']} -> {b['storage']} cannot change "
                "in place; publish a new version with the new storage"
            )
    for field, label in (("excludeFromLatest", "excludeFromLatest"), ("endOfLifeDate", "EOL")):
        if old.get(field) != new.get(field):
            ordinary.append(f"{what}: {label} {old.get(field)} -> {new.get(field)}")
    ob, nb = old.get("builder"), new.get("builder")
    if ob and not nb:
        ordinary.append(f"builder of {name} {number} retired (VM {ob['vm']} deleted)")
    elif nb and not ob:
        ordinary.append(f"builder of {name} {number} created (VM {nb['vm']})")
    elif ob and nb and ob.get("fingerprint") != nb.get("fingerprint"):
        ordinary.append(f"builder of {name} {number} rebuilt (VM {nb['vm']})")
    return dangerous, sorted(ordinary)


def diff_plans(
    before: Mapping[str, Any], after: Mapping[str, Any], stack: str = ""
) -> list[Change]:
    """Image-level changes from `before` to `after` (two `plan.build_plan` dicts)."""
    stack = stack or str(after.get("stack") or before.get("stack") or "")
    out: list[Change] = []

    def add(text: str, dangerous: bool = False) -> None:
        out.append(Change(stack, text, dangerous))

    old_g, new_g = before.get("gallery") or {}, after.get("gallery") or {}
    if old_g.get("name") and new_g.get("name"):
        moved = [
            f"{f} {old_g.get(f)} -> {new_g.get(f)}"
            for f in GALLERY_CREATE_ONLY
            if old_g.get(f) != new_g.get(f)
        ]
        if moved:
            add(f"gallery would be replaced with every image in it: {'; '.join(moved)}", True)
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
            add(f"image {name} definition would be replaced: {'; '.join(changed)}", True)
        old_v, new_v = old_i.get("versions", {}), new_i.get("versions", {})
        for number in sorted(new_v.keys() - old_v.keys(), key=_vkey):
            add(f"version {name} {number} added: {_where(new_v[number]['regions'])}")
        for number in sorted(old_v.keys() - new_v.keys(), key=_vkey):
            guard = " (protected: pulumi up will refuse)" if old_v[number].get("protected") else ""
            add(f"version {name} {number} removed{guard}")
        for number in sorted(old_v.keys() & new_v.keys(), key=_vkey):
            dangerous, ordinary = _version_changes(name, number, old_v[number], new_v[number])
            for text in dangerous:
                add(text, True)
            for text in ordinary:
                add(text)

    old_c, new_c = _consumers(before), _consumers(after)
    for key in sorted(new_c.keys() - old_c.keys()):
        c = new_c[key]
        add(f"{_kind(key[0])} {key[1]} added in {c['region']} on {_label(c)}")
    for key in sorted(old_c.keys() - new_c.keys()):
        add(f"{_kind(key[0])} {key[1]} removed (was on {_label(old_c[key])})")
    for key in sorted(old_c.keys() & new_c.keys()):
        a, b = old_c[key], new_c[key]
        if (a["imageName"], a["at"], a["follows"]) != (b["imageName"], b["at"], b["follows"]):
            add(f"{_kind(key[0])} {key[1]} moves from {_label(a)} to {_label(b)}")
        if a.get("capacity") != b.get("capacity"):
            add(f"{_kind(key[0])} {key[1]} capacity {a.get('capacity')} -> {b.get('capacity')}")
        if a.get("region") != b.get("region"):
            add(f"{_kind(key[0])} {key[1]} moves from {a.get('region')} to {b.get('region')}")
    # Dangerous first, so a reviewer cannot miss them.
    return sorted(out, key=lambda c: not c.dangerous)


# Rendering


def render(changes: Mapping[str, list[Change] | str], fmt: str, base: str, head: str) -> str:
    """`changes`: stack -> its changes, or an error text when a side does not plan."""
    if fmt == "json":
        return json.dumps(
            {
                "base": base,
                "head": head,
                "stacks": {
                    s: {"error": v} if isinstance(v, str) else {"changes": [asdict(c) for c in v]}
                    for s, v in changes.items()
                },
            },
            indent=2,
            sort_keys=True,
        )
    if fmt == "markdown":
        out = [f"## Image plan diff `{base}` → `{head}`", ""]
        for stack, found in changes.items():
            out.append(f"### Stack `{stack}`")
            if isinstance(found, str):
                out += ["", "```", found, "```", ""]
                continue
            danger = sum(c.dangerous for c in found)
            if danger:
                out.append(
                    f"\n> [!WARNING]\n> {danger} change(s) would replace a published resource."
                )
            out.append("")
            out += [
                f"- **DANGEROUS**: {c.text}" if c.dangerous else f"- {c.text}" for c in found
            ] or ["No image-level changes."]
            out.append("")
        out.append("_Offline plan under Pulumi mocks: no credentials, no `pulumi preview`._")
        return "\n".join(out)
    lines = [f"plan diff {base} -> {head}"]
    for stack, found in changes.items():
        if isinstance(found, str):
            lines += [f"stack {stack}: does not plan", *("  " + x for x in found.splitlines())]
            continue
        lines.append(f"stack {stack}: " + (f"{len(found)} change(s)" if found else "no changes"))
        lines += [f"  {c.line()}" for c in found]
    return "\n".join(lines)


# Git plumbing


class PlanError(Exception):
    """A revision could not be exported or planned."""


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
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def stacks_in(tree: Path) -> list[str]:
    return sorted(p.name.split(".")[1] for p in tree.glob("Pulumi.*.yaml"))


def plan_tree(tree: Path, stack: str) -> dict[str, Any]:
    """The tree's own offline plan of `stack`, run with this interpreter, cwd = the tree."""
    if stack not in stacks_in(tree):
        return {**EMPTY_PLAN, "stack": stack}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "offline.plan", stack, "--format", "json"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PlanError((done.stderr or done.stdout).strip())
    text = done.stdout
    start = text.find("{")  # tolerate anything printed before the JSON document
    try:
        plan: dict[str, Any] = json.JSONDecoder().raw_decode(text[start:])[0]
    except (ValueError, json.JSONDecodeError) as err:
        raise PlanError(f"no JSON plan from {tree}: {err}") from None
    return plan


def diff_revisions(
    base: str, head: str, stacks: Sequence[str] | None = None, repo: Path = PROJECT_DIR
) -> dict[str, list[Change] | str]:
    """Per stack, the changes from `base` to `head`, or the error text if a side fails."""
    with tempfile.TemporaryDirectory(prefix="plandiff-") as tmp:
        trees = {
            rev: export(rev, Path(tmp) / side, repo) for side, rev in (("a", base), ("b", head))
        }
        names = (
            list(stacks)
            if stacks
            else sorted(set(stacks_in(trees[base])) | set(stacks_in(trees[head])))
        )

        def one(stack: str) -> list[Change] | str:
            plans = []
            for rev in (base, head):
                try:
                    plans.append(plan_tree(trees[rev], stack))
                except PlanError as err:
                    return f"{rev}: {err}"
            return diff_plans(plans[0], plans[1], stack)

        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return dict(zip(names, pool.map(one, names), strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.plan diff",
        description="Compare the offline plans of two git revisions, image by image.",
    )
    parser.add_argument("base", help="base revision (e.g. origin/main)")
    parser.add_argument("head", help="head revision (e.g. HEAD)")
    parser.add_argument("--stack", default="all", help="stack name or 'all' (default)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        changes = diff_revisions(
            args.base, args.head, None if args.stack == "all" else [args.stack]
        )
    except PlanError as err:
        print(f"plan diff: {err}", file=sys.stderr)
        return 2
    print(render(changes, args.format, args.base, args.head))
    return 1 if any(isinstance(v, str) for v in changes.values()) else 0
