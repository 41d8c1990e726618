"""The offline plan: what `pulumi up` would build for a stack, with no cloud and no CLI.

    python -m offline.plan [STACK] [--format text|markdown|json] [--parallel N]
                                [--compare STACK|none]
    python -m offline.plan diff BASE HEAD [--stack STACK|all] [--format ...]

It runs the real `__main__.py` under the mock engine and reads the registered graph
back into images -> versions -> regions -> consumers. Everything shown comes from the
resources the program registered, not from the config, so the plan shows the program's
behaviour, not its intent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import pulumi

from offline import engine, schedule

VERSION_T = "azure-native:compute:GalleryImageVersion"
DEFINITION_T = "azure-native:compute:GalleryImage"
GALLERY_T = "azure-native:compute:Gallery"
VM_T = "azure-native:compute:VirtualMachine"
IMAGE_T = "azure-native:compute:Image"
RUN_COMMAND_T = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
COMMAND_T = "command:local:Command"
SCALE_SET_T = "azure-native:compute:VirtualMachineScaleSet"
ROLE_T = "azure-native:authorization:RoleAssignment"


def _tag(res: engine.Registered, key: str) -> str | None:
    value = (res.inputs.get("tags") or {}).get(key)
    return str(value) if value is not None else None


def build_plan(run: engine.Run) -> dict[str, Any]:
    """The graph as plain data: the shape the renderers and the plan diff read."""
    galleries = run.of_type(GALLERY_T)
    gallery = galleries[0] if galleries else None
    by_urn = {r.urn: r for r in run.resources}
    versions = run.of_type(VERSION_T)
    consumers: dict[str, list[dict[str, Any]]] = {v.urn: [] for v in versions}
    numbers = {v.urn: str(v.inputs["galleryImageVersionName"]) for v in versions}
    for res in run.resources:
        auto_upgrade = False
        if res.type == SCALE_SET_T:
            kind, capacity = "scaleSet", (res.inputs.get("sku") or {}).get("capacity")
            policy = (res.inputs.get("upgradePolicy") or {}).get("automaticOSUpgradePolicy")
            auto_upgrade = bool((policy or {}).get("enableAutomaticOSUpgrade"))
        elif res.type == VM_T and _tag(res, "imagefactory-lifecycle") != "temporary":
            kind, capacity = "vm", 1
        else:
            continue
        label = str(_tag(res, "imagefactory-version"))
        for dep in sorted(res.dependencies):
            if dep in consumers:
                consumers[dep].append(
                    {
                        "kind": kind,
                        "name": res.inputs.get("vmScaleSetName") or res.inputs.get("vmName"),
                        "region": res.inputs.get("location"),
                        "capacity": int(capacity) if capacity is not None else None,
                        # A scale set on latest says "latest"; the version it moves to
                        # is the newest one, which it waits for.
                        "image": f"latest ({numbers[dep]})" if label == "latest" else label,
                        "follows": "latest" if label.startswith("latest") else "pinned",
                        "upgrade": (res.inputs.get("upgradePolicy") or {}).get("mode"),
                        "automaticOsUpgrade": auto_upgrade,
                    }
                )

    builders: dict[tuple[str, str], dict[str, Any]] = {}
    for vm in run.of_type(VM_T):
        if _tag(vm, "imagefactory-lifecycle") != "temporary":
            continue
        key = (_tag(vm, "imagefactory-image") or "", _tag(vm, "imagefactory-version") or "")
        ref = vm.inputs["storageProfile"]["imageReference"]
        steps = [
            r.inputs["runCommandName"]
            for r in run.of_type(RUN_COMMAND_T)
            if r.inputs.get("vmName") == vm.inputs["vmName"]
        ]
        builders[key] = {
            "vm": vm.inputs["vmName"],
            "size": vm.inputs["hardwareProfile"]["vmSize"],
            "base": ":".join(ref[k] for k in ("publisher", "offer", "sku", "version")),
            "trustedLaunch": (vm.inputs.get("securityProfile") or {}).get("securityType")
            == "TrustedLaunch",
            "steps": steps,
            "fingerprint": vm.replacement_trigger,
        }
    managed = {
        (_tag(i, "imagefactory-image"), _tag(i, "imagefactory-version")): i.inputs["imageName"]
        for i in run.of_type(IMAGE_T)
    }

    images: dict[str, dict[str, Any]] = {}
    for definition in run.of_type(DEFINITION_T):
        ident = definition.inputs["identifier"]
        features = {f["name"]: f["value"] for f in definition.inputs.get("features") or []}
        images[definition.inputs["galleryImageName"]] = {
            "os": definition.inputs["osType"],
            "generation": definition.inputs.get("hyperVGeneration"),
            "securityType": features.get("SecurityType", "Standard"),
            "identifier": f"{ident['publisher']}/{ident['offer']}/{ident['sku']}",
            "protected": definition.protect,
            "versions": {},
        }
    for res in versions:
        image_name = res.inputs["galleryImageName"]
        number = res.inputs["galleryImageVersionName"]
        profile = res.inputs.get("publishingProfile") or {}
        source = res.inputs["storageProfile"]["source"]
        builder = builders.get((image_name, number))
        images.setdefault(image_name, {"versions": {}})["versions"][number] = {
            "regions": [
                {
                    "name": t["name"],
                    "replicas": int(t.get("regionalReplicaCount", 1)),
                    "storage": t.get("storageAccountType"),
                }
                for t in profile.get("targetRegions", [])
            ],
            "excludeFromLatest": bool(profile.get("excludeFromLatest", False)),
            "endOfLifeDate": profile.get("endOfLifeDate"),
            "replicationMode": profile.get("replicationMode", "Full"),
            "source": source.get("id") or source.get("virtualMachineId"),
            "sourceKind": "vm" if source.get("virtualMachineId") else "managedImage",
            "managedImage": managed.get((image_name, number)),
            "builder": builder,
            "protected": res.protect,
            "retainOnDelete": res.retain_on_delete,
            "timeouts": res.custom_timeouts,
            "ignoreChanges": sorted(res.ignore_changes),
            "consumers": sorted(consumers[res.urn], key=lambda c: str(c["name"])),
            "urn": res.urn,
            "dependsOn": sorted(
                by_urn[d].name for d in res.dependencies if d in by_urn and by_urn[d].custom
            ),
        }
    return {
        "stack": run.stack,
        "resources": sum(1 for r in run.resources if r.custom),
        "gallery": {
            "name": gallery.inputs["galleryName"] if gallery else None,
            "resourceGroup": gallery.inputs["resourceGroupName"] if gallery else None,
            "location": gallery.inputs.get("location") if gallery else None,
            "sharedWith": [
                {"principalId": r.inputs["principalId"], "type": r.inputs.get("principalType")}
                for r in run.of_type(ROLE_T)
            ],
        },
        "images": images,
    }


def _latest(image: dict[str, Any]) -> str | None:
    eligible = [v for v, spec in image["versions"].items() if not spec["excludeFromLatest"]]
    return max(eligible, key=lambda v: tuple(int(p) for p in v.split("."))) if eligible else None


def _version_lines(number: str, spec: dict[str, Any], latest: bool) -> list[str]:
    marks = []
    if latest:
        marks.append("latest")
    if spec["excludeFromLatest"]:
        marks.append("excluded from latest")
    if spec["protected"]:
        marks.append("protected")
    if spec["endOfLifeDate"]:
        marks.append(f"EOL {spec['endOfLifeDate']}")
    head = f"version {number}" + (f"  [{', '.join(marks)}]" if marks else "")
    builder = spec["builder"]
    if builder:
        source = (
            "from the VM (Trusted Launch)"
            if builder["trustedLaunch"]
            else (f"managed image {spec['managedImage']}")
        )
        build = [
            f"build: VM {builder['vm']} ({builder['size']}, {builder['base']})",
            f"steps: {' -> '.join(builder['steps'])} -> deallocate+generalize -> {source}",
        ]
    else:
        build = ["build: retired (published version kept, builder removed)"]
    regions = ", ".join(f"{r['name']} x{r['replicas']} {r['storage']}" for r in spec["regions"])
    rows = [
        *build,
        f"replication ({spec['replicationMode']}): {regions}",
    ]
    for c in spec["consumers"]:
        kind = "scale set" if c["kind"] == "scaleSet" else "vm"
        follows = c["follows"]
        if c.get("automaticOsUpgrade"):
            follows = "latest by automatic OS image upgrade"
        elif follows == "latest":
            follows = "latest, rebuilt when latest moves"
        rows.append(f"consumer: {kind} {c['name']} ({c['region']}, {follows})")
    return [head, *rows]


def render_text(plan: dict[str, Any]) -> str:
    g = plan["gallery"]
    lines = [
        f"stack {plan['stack']}: {plan['resources']} resources",
        f"gallery {g['name']} ({g['resourceGroup']}, {g['location']})"
        + (f", shared with {len(g['sharedWith'])} principal(s)" if g["sharedWith"] else ""),
    ]
    names = sorted(plan["images"])
    for i, name in enumerate(names):
        image = plan["images"][name]
        last_image = i == len(names) - 1
        lines.append(
            f"{'└── ' if last_image else '├── '}image {name} ({image['os']}, "
            f"{image['generation']}, {image['securityType']}) {image['identifier']}"
        )
        pad = "    " if last_image else "│   "
        latest = _latest(image)
        numbers = sorted(image["versions"], key=lambda v: tuple(int(p) for p in v.split(".")))
        for j, number in enumerate(numbers):
            head, *rows = _version_lines(number, image["versions"][number], number == latest)
            last_version = j == len(numbers) - 1
            lines.append(f"{pad}{'└── ' if last_version else '├── '}{head}")
            inner = pad + ("    " if last_version else "│   ")
            for k, row in enumerate(rows):
                lines.append(f"{inner}{'└── ' if k == len(rows) - 1 else '├── '}{row}")
    if plan.get("timing"):
        lines += ["", *schedule.render_lines(plan["timing"])]
    return "\n".join(lines)


def render_markdown(plan: dict[str, Any]) -> str:
    g = plan["gallery"]
    out = [
        f"### Stack `{plan['stack']}`: {plan['resources']} resources",
        "",
        f"Gallery `{g['name']}` in `{g['resourceGroup']}` ({g['location']})",
        "",
        "| image | version | build | regions | consumers |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in sorted(plan["images"]):
        image = plan["images"][name]
        latest = _latest(image)
        for number in sorted(image["versions"], key=lambda v: tuple(map(int, v.split(".")))):
            spec = image["versions"][number]
            build = f"`{spec['builder']['vm']}`" if spec["builder"] else "retired"
            regions = "<br>".join(
                f"{r['name']} x{r['replicas']} {r['storage']}" for r in spec["regions"]
            )
            users = "<br>".join(f"{c['name']} ({c['region']})" for c in spec["consumers"]) or "—"
            label = f"{number} (latest)" if number == latest else number
            out.append(f"| {name} | {label} | {build} | {regions} | {users} |")
    if plan.get("timing"):
        out += ["", *(f"- {line}" for line in schedule.render_lines(plan["timing"]))]
    return "\n".join(out)


def render(plan: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan, indent=2, sort_keys=True)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["diff"]:  # python -m offline.plan diff BASE HEAD [...]
        from offline import plandiff

        return plandiff.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m offline.plan",
        description="Show what `pulumi up` would build for a stack, offline.",
    )
    parser.add_argument("stack", nargs="?", default="dev", help="stack name (default: dev)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--parallel",
        type=schedule.parallel_arg,
        metavar="N",
        help="estimate at pulumi up --parallel N (a whole number, at least 1)",
    )
    parser.add_argument(
        "--compare",
        metavar="STACK",
        help="also estimate STACK and compare (default: prod, for any other stack; 'none' to skip)",
    )
    parser.add_argument(
        "--online",
        action="store_true",
        help="ask Azure (your az login or ARM_* credentials) for the pre-flight facts "
        "instead of the dated snapshot",
    )
    args = parser.parse_args(argv)
    if args.online:
        # Read by imagefactory.facts.live (MODE_VARIABLE) inside the program; named here
        # rather than imported, since a plan diff's sides bring their own imagefactory.
        os.environ["IMAGEFACTORY_FACTS"] = "live"
    known = engine.stacks()
    if args.stack not in known:
        parser.error(f"unknown stack {args.stack!r}; known: {', '.join(known)}")
    if args.compare is None and args.stack != "prod" and "prod" in known:
        # The dev loop's point is being a fraction of prod: show both.
        args.compare = "prod"
    if args.compare == "none":
        args.compare = None
    elif args.compare is not None and args.compare not in known:
        parser.error(f"unknown stack {args.compare!r}; known: {', '.join(known)}")
    try:
        run = engine.run(args.stack)
    except pulumi.RunError as err:
        print(f"stack {args.stack}: {err}", file=sys.stderr)
        return 1
    plan = build_plan(run)
    plan["timing"] = schedule.timing(run, args.parallel)
    if args.compare:
        try:
            other = schedule.timing(engine.run(args.compare), args.parallel)
        except pulumi.RunError as err:
            # The comparison is a courtesy: a broken other stack must not fail this plan.
            print(f"stack {args.compare} (comparison skipped): {err}", file=sys.stderr)
        else:
            plan["timing"]["compare"] = {"stack": args.compare, **other}
    print(render(plan, args.format))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other CLIs do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
