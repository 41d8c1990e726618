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
import base64
import json
import os
import re
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
AUTOSCALE_T = "azure-native:monitor:AutoscaleSetting"
EXTENSION_T = "azure-native:compute:VirtualMachineExtension"
# imagefactory.naming's role tag of a validation test VM, spelled out: a plan diff records
# each side with this tooling, and a side from before validation has no such constant.
ROLE_TAG = "imagefactory-role"
TEST_VM_ROLE = "test-vm"


def _tag(res: engine.Registered, key: str) -> str | None:
    value = (res.inputs.get("tags") or {}).get(key)
    return str(value) if value is not None else None


def _published(run: engine.Run, token: str) -> list[engine.Registered]:
    """The stack's gallery resources of a type, without the staging gallery's (temporary)."""
    return [r for r in run.of_type(token) if _tag(r, "imagefactory-lifecycle") != "temporary"]


def _test_vm(res: engine.Registered) -> bool:
    return _tag(res, ROLE_TAG) == TEST_VM_ROLE


def _image_ref(vm: engine.Registered) -> dict[str, Any]:
    return dict((vm.inputs.get("storageProfile") or {}).get("imageReference") or {})


def build_plan(run: engine.Run) -> dict[str, Any]:
    """The graph as plain data: the shape the renderers and the plan diff read."""
    galleries = _published(run, GALLERY_T)
    gallery = galleries[0] if galleries else None
    by_urn = {r.urn: r for r in run.resources}
    versions = _published(run, VERSION_T)
    consumers: dict[str, list[dict[str, Any]]] = {v.urn: [] for v in versions}
    numbers = {v.urn: str(v.inputs["galleryImageVersionName"]) for v in versions}
    scaling = {str(a.inputs.get("targetResourceUri")): a for a in run.of_type(AUTOSCALE_T)}
    first_boot = {str(e.inputs.get("vmName")) for e in run.of_type(EXTENSION_T)}
    for res in run.resources:
        auto_upgrade = False
        if res.type == SCALE_SET_T:
            kind, capacity = "scaleSet", (res.inputs.get("sku") or {}).get("capacity")
            policy = (res.inputs.get("upgradePolicy") or {}).get("automaticOSUpgradePolicy")
            auto_upgrade = bool((policy or {}).get("enableAutomaticOSUpgrade"))
            profile = res.inputs.get("virtualMachineProfile") or {}
            os_profile = profile.get("osProfile") or {}
            extensions = (profile.get("extensionProfile") or {}).get("extensions") or []
            extension = any(e.get("type") == "CustomScriptExtension" for e in extensions)
            setting = scaling.get(res.id)
        elif res.type == VM_T and _tag(res, "imagefactory-lifecycle") != "temporary":
            kind, capacity = "vm", 1
            os_profile = res.inputs.get("osProfile") or {}
            extension = str(res.inputs.get("vmName")) in first_boot
            setting = None
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
                        "zones": list(res.inputs.get("zones") or []),
                        "zoneBalance": res.inputs.get("zoneBalance"),
                        "autoscale": _autoscale(setting) if setting else None,
                        "userData": _user_data(os_profile.get("customData"), extension),
                    }
                )

    def run_commands(vm: engine.Registered) -> list[str]:
        return [
            r.inputs["runCommandName"]
            for r in run.of_type(RUN_COMMAND_T)
            if r.inputs.get("vmName") == vm.inputs["vmName"]
        ]

    tests: dict[tuple[str, str], dict[str, Any]] = {}
    for vm in run.of_type(VM_T):
        if _test_vm(vm):
            key = (_tag(vm, "imagefactory-image") or "", _tag(vm, "imagefactory-version") or "")
            tests[key] = {
                "vm": vm.inputs["vmName"],
                "size": vm.inputs["hardwareProfile"]["vmSize"],
                "image": _image_label(str(_image_ref(vm).get("id") or "")),
                "checks": run_commands(vm),
                # Size, disk, checks and timeout: a change replaces the test VM.
                "fingerprint": vm.replacement_trigger,
            }
    builders: dict[tuple[str, str], dict[str, Any]] = {}
    for vm in run.of_type(VM_T):
        if _tag(vm, "imagefactory-lifecycle") != "temporary" or _test_vm(vm):
            continue
        key = (_tag(vm, "imagefactory-image") or "", _tag(vm, "imagefactory-version") or "")
        ref = _image_ref(vm)
        base = _gallery_base(ref, versions)
        steps = run_commands(vm)
        builders[key] = {
            "vm": vm.inputs["vmName"],
            "size": vm.inputs["hardwareProfile"]["vmSize"],
            "base": base or ":".join(ref[k] for k in ("publisher", "offer", "sku", "version")),
            "trustedLaunch": (vm.inputs.get("securityProfile") or {}).get("securityType")
            == "TrustedLaunch",
            "steps": steps,
            "fingerprint": vm.replacement_trigger,
            # None: validation is off for the stack (imagefactory:validation.enabled).
            "validation": tests.get(key),
        }
    managed = {
        (_tag(i, "imagefactory-image"), _tag(i, "imagefactory-version")): i.inputs["imageName"]
        for i in run.of_type(IMAGE_T)
    }

    images: dict[str, dict[str, Any]] = {}
    for definition in _published(run, DEFINITION_T):
        ident = definition.inputs["identifier"]
        features = {f["name"]: f["value"] for f in definition.inputs.get("features") or []}
        images[definition.inputs["galleryImageName"]] = {
            "os": definition.inputs["osType"],
            "generation": definition.inputs.get("hyperVGeneration"),
            "architecture": definition.inputs.get("architecture"),
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
            "sourceKind": _source_kind(source),
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
                # Registration order varies between runs; the plan must not.
                for r in sorted(run.of_type(ROLE_T), key=lambda r: str(r.inputs["principalId"]))
            ],
        },
        "images": images,
    }


STAGED_SOURCE = re.compile(
    r"/galleries/(?P<gallery>[^/]+)/images/(?P<image>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
"""A version copied from another gallery's version: a Trusted Launch build's
staging version."""


def _source_kind(source: dict[str, Any]) -> str:
    """'vm' (a builder VM), 'galleryVersion' (a staging version) or 'managedImage'."""
    if source.get("virtualMachineId"):
        return "vm"
    if STAGED_SOURCE.search(str(source.get("id") or "")):
        return "galleryVersion"
    return "managedImage"


def _image_label(arm_id: str) -> str:
    """'staging version GALLERY/IMAGE/VERSION' or 'managed image NAME' for what a test VM
    boots from (the id itself for anything else)."""
    staged = STAGED_SOURCE.search(arm_id)
    if staged:
        return f"staging version {staged['gallery']}/{staged['image']}/{staged['version']}"
    managed = re.search(r"/Microsoft\.Compute/images/([^/]+)$", arm_id, re.IGNORECASE)
    return f"managed image {managed.group(1)}" if managed else arm_id


def _source_text(spec: dict[str, Any]) -> str:
    """Where a built version is published from, as the steps row ends."""
    kind, trusted = spec["sourceKind"], spec["builder"]["trustedLaunch"]
    tl = " (Trusted Launch)" if trusted else ""
    if kind == "vm":
        return f"from the VM{tl}"
    if kind == "galleryVersion":
        return f"{_image_label(str(spec['source']))}{tl}"
    return f"managed image {spec['managedImage']}"


def _gallery_base(ref: dict[str, Any], versions: list[engine.Registered]) -> str | None:
    """'gallery image hardened 1.0.0' for a builder that starts from a version of this
    gallery, the id for another gallery's version, None for a Marketplace image."""
    ref_id = ref.get("id") or ref.get("sharedGalleryImageId") or ref.get("communityGalleryImageId")
    if not ref_id:
        return None
    for v in versions:
        if v.id and v.id.lower() == str(ref_id).lower():
            return (
                f"gallery image {v.inputs['galleryImageName']} "
                f"{v.inputs['galleryImageVersionName']}"
            )
    return str(ref_id)


def _autoscale(setting: engine.Registered) -> dict[str, Any]:
    """The autoscale setting as the plan shows it: default limits, CPU rule, schedules."""
    profiles = setting.inputs.get("profiles") or []
    default = next((p for p in profiles if not p.get("recurrence")), profiles[0])

    def limits(p: dict[str, Any]) -> dict[str, int]:
        c = p.get("capacity") or {}
        return {k: int(c[k]) for k in ("minimum", "maximum", "default") if k in c}

    rules = default.get("rules") or []
    cpu: dict[str, Any] = {}
    for rule in rules:
        trigger, action = rule.get("metricTrigger") or {}, rule.get("scaleAction") or {}
        way = "out" if action.get("direction") == "Increase" else "in"
        cpu[way] = {
            "threshold": trigger.get("threshold"),
            "window": trigger.get("timeWindow"),
            "step": action.get("value"),
            "cooldown": action.get("cooldown"),
        }
    schedules = []
    starts = [p for p in profiles if p.get("recurrence")]
    ends = {str(p["name"]): p for p in starts}
    for p in starts:
        end = ends.get(f"{p['name']}-end")
        if end is None:
            continue  # an end profile itself
        when, until = p["recurrence"]["schedule"], end["recurrence"]["schedule"]
        schedules.append(
            {
                "name": p["name"],
                "days": list(when.get("days") or []),
                "start": _clock(when),
                "end": _clock(until),
                "timeZone": when.get("timeZone"),
                **limits(p),
            }
        )
    return {
        "name": setting.inputs.get("autoscaleSettingName"),
        "enabled": setting.inputs.get("enabled"),
        **limits(default),
        "cpu": cpu,
        "schedules": schedules,
    }


def _clock(schedule: dict[str, Any]) -> str:
    hours, minutes = schedule.get("hours") or [0], schedule.get("minutes") or [0]
    return f"{int(hours[0]):02d}:{int(minutes[0]):02d}"


def _user_data(custom_data: Any, extension: bool) -> dict[str, Any] | None:
    """What a consumer gets at first boot; a secret one is only named, never shown or sized."""
    if custom_data is None:
        return None
    if isinstance(custom_data, dict) and "secret" in custom_data:
        return {"secret": True, "runner": "Custom Script Extension" if extension else "cloud-init"}
    text = base64.b64decode(str(custom_data)).decode("utf-8", errors="replace")
    return {
        "secret": False,
        "runner": "Custom Script Extension" if extension else "cloud-init",
        "bytes": len(text.encode("utf-8")),
        "header": text.splitlines()[0] if text else "",
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
        test = builder.get("validation")
        build = [
            f"build: VM {builder['vm']} ({builder['size']}, {builder['base']})",
            f"steps: {' -> '.join(builder['steps'])} -> deallocate+generalize -> "
            f"{_source_text(spec)}",
            (
                f"validation: test VM {test['vm']} ({test['size']}) -> "
                f"{' -> '.join(test['checks'])} -> results -> publish"
                if test
                else "validation: OFF (imagefactory:validation.enabled false): published untested"
            ),
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
        where = c["region"] + _zones_text(c)
        rows.append(f"consumer: {kind} {c['name']} ({where}, {follows}){_details(c)}")
    return [head, *rows]


def _zones_text(c: dict[str, Any]) -> str:
    zones = c.get("zones") or []
    if not zones:
        return ""
    if c["kind"] != "scaleSet" or len(zones) == 1:
        return f", zone {zones[0]}"
    balance = "strict" if c.get("zoneBalance") else "best-effort"
    return f", zones {', '.join(zones)} with {balance} balance"


_WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _days(days: list[str]) -> str:
    """Mon-Fri for a run of three or more days, else Sat,Sun."""
    at = [_WEEK.index(d) for d in days if d in _WEEK]
    if len(at) == len(days) > 2 and at == list(range(at[0], at[0] + len(at))):
        return f"{days[0][:3]}-{days[-1][:3]}"
    return ",".join(d[:3] for d in days)


def _duration(iso: str | None) -> str:
    """PT10M -> 10 min, PT2H -> 2 h, P1D -> 1 d (the ISO 8601 durations autoscale takes)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", iso or "")
    if not match:
        return str(iso)
    units = zip(match.groups(), ("d", "h", "min"), strict=True)
    return " ".join(f"{n} {unit}" for n, unit in units if n)


def _details(c: dict[str, Any]) -> str:
    """'; autoscale ...; user data ...' for a consumer that has them."""
    parts = []
    scaling = c.get("autoscale")
    if scaling:
        text = f"autoscale {scaling['minimum']}-{scaling['maximum']} (default {scaling['default']})"
        out, into = scaling["cpu"].get("out"), scaling["cpu"].get("in")
        if out and into:
            text += (
                f", CPU > {out['threshold']:g}% +{out['step']} / < {into['threshold']:g}% "
                f"-{into['step']} over {_duration(out['window'])}"
            )
        for w in scaling["schedules"]:
            days = _days(w["days"])
            text += (
                f", {w['name']} {days} {w['start']}-{w['end']} {w['timeZone']}: "
                f"{w['minimum']}-{w['maximum']}"
            )
        parts.append(text)
    boot = c.get("userData")
    if boot:
        runner = boot["runner"]
        if boot["secret"]:
            parts.append(f"user data by {runner}: [secret]")
        else:
            parts.append(f"user data by {runner}: {boot['header']}, {boot['bytes']} bytes")
    return "".join(f"; {p}" for p in parts)


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
