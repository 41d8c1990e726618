"""Estimated `pulumi up` wall time: a list-scheduling simulation over the registered DAG.

Nodes are the custom resources the program registered, each with a duration from
offline.latency. Edges are their `dependencies` (explicit `depends_on` plus the
resources their inputs came from). Component resources are transparent: the SDK turns a
dependency on a component into dependencies on the custom resources under it (so
`Registered.dependencies` already lists those), and we expand any component URN left
the same way. A custom parent also orders its children: the engine registers a child
only after its parent's create returns.

The engine starts a resource as soon as its dependencies are done, at most `--parallel`
at a time: the simulation does the same (first ready, first started). The critical path
is the longest chain of durations, the wall time with unlimited parallelism, so it is
the lower bound of any schedule.

Ties are broken by URN, the one name of a resource that is the same in every run. Not by
registration order: the order in which RegisterResource calls reach the engine follows
the order in which outputs resolve, which varies between runs. Not by set order either:
a set of strings iterates in an order that changes with PYTHONHASHSEED. So:

- of resources ready at the same moment, the one whose URN sorts first starts first;
- of predecessors that finish at the same moment, the one whose URN sorts first is the
  one the critical path goes through;
- of chains equally long, the critical path is the one ending in the URN that sorts first.

The same program and config therefore give the same estimate, path and plan, byte for byte.

The estimate is for creating every resource, except gallery versions whose builder is
retired: those were published by an earlier `pulumi up` and are left untouched.
"""

from __future__ import annotations

import argparse
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from offline import engine, latency

VERSION_T = "azure-native:compute:GalleryImageVersion"
DEFINITION_T = "azure-native:compute:GalleryImage"
VM_T = "azure-native:compute:VirtualMachine"
RUN_COMMAND_T = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
COMMAND_T = "command:local:Command"
SCALE_SET_T = "azure-native:compute:VirtualMachineScaleSet"
RECOMMEND_SLACK = 1.02
"""Recommend the smallest --parallel whose estimate is within 2% of the lower bound."""

_FIXED: dict[str, latency.Estimate] = {
    "azure-native:resources:ResourceGroup": latency.NETWORK,
    "azure-native:network:VirtualNetwork": latency.NETWORK,
    "azure-native:network:Subnet": latency.NETWORK,
    "azure-native:network:NetworkSecurityGroup": latency.NETWORK,
    "azure-native:network:NetworkInterface": latency.NETWORK,
    "azure-native:network:PublicIPAddress": latency.NETWORK,
    "azure-native:compute:Gallery": latency.GALLERY,
    DEFINITION_T: latency.GALLERY,
    "azure-native:compute:Image": latency.MANAGED_IMAGE,
    "azure-native:authorization:RoleAssignment": latency.ROLE_ASSIGNMENT,
    # An autoscale setting is one ARM write, like a role assignment [assumed].
    "azure-native:monitor:AutoscaleSetting": latency.ROLE_ASSIGNMENT,
    # The Custom Script Extension that runs a Windows VM's first-boot script.
    "azure-native:compute:VirtualMachineExtension": latency.FIRST_BOOT_EXTENSION,
    "tls:index/privateKey:PrivateKey": latency.LOCAL,
    "random:index/randomPassword:RandomPassword": latency.LOCAL,
}


@dataclass(frozen=True)
class Node:
    urn: str
    name: str
    type: str
    duration: latency.Estimate
    image: str | None
    """The gallery image this resource builds or publishes (its imagefactory-image tag)."""


@dataclass
class Graph:
    nodes: dict[str, Node]
    """By URN."""
    order: list[str]
    """Topological; of resources free to go at once, the URN that sorts first goes first."""
    preds: dict[str, set[str]] = field(default_factory=dict)
    succs: dict[str, set[str]] = field(default_factory=dict)
    """Sets, for membership: whatever reads them in order sorts them (or keys a heap by URN)."""


def _tag(res: engine.Registered, key: str) -> str | None:
    value = (res.inputs.get("tags") or {}).get(key)
    return str(value) if value is not None else None


def _duration(res: engine.Registered, run_index: dict[str, Any]) -> latency.Estimate:
    token = res.type
    if token in _FIXED:
        return _FIXED[token]
    if token == VM_T:
        return latency.vm(latency.os_of_vm(res.inputs))
    if token == RUN_COMMAND_T:
        return latency.run_command(str((res.inputs.get("source") or {}).get("script") or ""))
    if token == COMMAND_T:
        vms = [run_index["urns"][d] for d in sorted(res.dependencies) if d in run_index["urns"]]
        os: latency.OsKind = next(
            (latency.os_of_vm(v.inputs) for v in vms if v.type == VM_T), "linux"
        )
        if " collect " in str(res.inputs.get("create") or ""):
            return latency.collect(os)
        return latency.capture(os)
    if token == SCALE_SET_T:
        return latency.scale_set(int((res.inputs.get("sku") or {}).get("capacity") or 0))
    if token == VERSION_T:
        key = (_tag(res, "imagefactory-image"), _tag(res, "imagefactory-version"))
        builder = run_index["builders"].get(key)
        if builder is None:  # retired builder: published earlier, nothing to do
            return latency.Estimate(0, 0)
        # A staging version (a Trusted Launch build waiting for validation) is one replica in
        # the source region, like any version of one region.
        profile = res.inputs.get("publishingProfile") or {}
        regions = profile.get("targetRegions") or []
        disk = ((builder.inputs.get("storageProfile") or {}).get("osDisk") or {}).get("diskSizeGB")
        return latency.image_version(
            regions=len(regions),
            max_replicas=max((int(t.get("regionalReplicaCount", 1)) for t in regions), default=1),
            mode=str(profile.get("replicationMode") or "Full"),
            disk_gb=int(disk) if disk else None,
            os=latency.os_of_vm(builder.inputs),
        )
    return latency.UNKNOWN


def graph(run: engine.Run) -> Graph:
    """The DAG of custom resources with their estimated durations."""
    # By URN, not in registration order: that order varies between runs (see the top).
    resources = sorted(run.resources, key=lambda r: r.urn)
    urns = {r.urn: r for r in resources}
    children: dict[str, list[str]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r.urn)
    builders = {
        (_tag(r, "imagefactory-image"), _tag(r, "imagefactory-version")): r
        for r in resources
        if r.type == VM_T
        and _tag(r, "imagefactory-lifecycle") == "temporary"
        and _tag(r, "imagefactory-role") is None  # a validation test VM is no builder
    }
    index = {"urns": urns, "builders": builders}

    expanded: dict[str, set[str]] = {}

    def custom_under(urn: str) -> set[str]:
        if urn not in expanded:
            found: set[str] = set()
            for child in children.get(urn, ()):
                if urns[child].custom:
                    found.add(child)
                else:
                    found |= custom_under(child)
            expanded[urn] = found
        return expanded[urn]

    nodes: dict[str, Node] = {}
    preds: dict[str, set[str]] = {}
    for r in resources:
        if not r.custom:
            continue
        nodes[r.urn] = Node(
            r.urn,
            r.name,
            r.type,
            latency.polled(r.type, _duration(r, index)),
            _tag(r, "imagefactory-image"),
        )
        deps: set[str] = set()
        wanted = [*r.dependencies, *(u for us in r.property_dependencies.values() for u in us)]
        if r.parent in urns and urns[r.parent].custom:
            wanted.append(r.parent)
        for dep in wanted:
            if dep not in urns:
                continue
            deps |= {dep} if urns[dep].custom else custom_under(dep)
        deps.discard(r.urn)
        preds[r.urn] = deps
    succs: dict[str, set[str]] = {u: set() for u in nodes}
    for u, ps in preds.items():
        for p in ps:
            succs[p].add(u)
    return Graph(nodes, _topological(preds, succs), preds, succs)


def _topological(preds: dict[str, set[str]], succs: dict[str, set[str]]) -> list[str]:
    """Kahn's algorithm; of the resources free to go, the URN that sorts first goes first."""
    waiting = {u: len(ps) for u, ps in preds.items()}
    ready = sorted(u for u, n in waiting.items() if not n)  # a sorted list is a heap
    out: list[str] = []
    while ready:
        u = heapq.heappop(ready)
        out.append(u)
        for v in sorted(succs[u]):
            waiting[v] -= 1
            if not waiting[v]:
                heapq.heappush(ready, v)
    if len(out) != len(preds):
        raise ValueError("the registered graph has a cycle")
    return out


def _seconds(g: Graph, p90: bool) -> dict[str, float]:
    return {u: (n.duration.p90 if p90 else n.duration.median) for u, n in g.nodes.items()}


@dataclass(frozen=True)
class Schedule:
    parallel: int
    start: dict[str, float]
    finish: dict[str, float]

    @property
    def makespan(self) -> float:
        return max(self.finish.values(), default=0.0)


def parallel_arg(text: str) -> int:
    """The argparse type of --parallel: a whole number of at least 1, like `pulumi up`'s."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def simulate(g: Graph, parallel: int, *, p90: bool = False) -> Schedule:
    """First-ready-first-started list scheduling with `parallel` slots.

    Resources ready at the same moment start in URN order; resources that finish at the
    same moment release their successors in URN order.
    """
    if parallel < 1:
        raise ValueError("--parallel must be at least 1")
    dur = _seconds(g, p90)
    waiting = {u: len(g.preds[u]) for u in g.nodes}
    # (ready since, urn) and (finishes at, urn): URNs are unique, so the heaps' order is
    # total and does not depend on the order things were pushed in.
    ready = sorted((0.0, u) for u in g.nodes if not waiting[u])
    running: list[tuple[float, str]] = []
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    now = 0.0
    while ready or running:
        while ready and len(running) < parallel and ready[0][0] <= now:
            _, u = heapq.heappop(ready)
            start[u], finish[u] = now, now + dur[u]
            heapq.heappush(running, (finish[u], u))
        upcoming = [running[0][0]] if running else []
        if ready and len(running) < parallel:
            upcoming.append(ready[0][0])
        now = min(upcoming)
        while running and running[0][0] <= now:
            done, u = heapq.heappop(running)
            for v in sorted(g.succs[u]):
                waiting[v] -= 1
                if not waiting[v]:
                    heapq.heappush(ready, (done, v))
    return Schedule(parallel, start, finish)


def longest_paths(g: Graph, *, p90: bool = False) -> tuple[dict[str, float], dict[str, str]]:
    """Earliest finish of each node with unlimited parallelism, and its slowest predecessor
    (of predecessors finishing at the same moment, the one whose URN sorts first)."""
    dur = _seconds(g, p90)
    finish: dict[str, float] = {}
    via: dict[str, str] = {}
    for u in g.order:
        best = min(g.preds[u], key=lambda p: (-finish[p], p), default=None)
        finish[u] = dur[u] + (finish[best] if best else 0.0)
        if best:
            via[u] = best
    return finish, via


def critical_path(g: Graph, among: Iterable[str] | None = None) -> tuple[float, list[str]]:
    """(length, urns from first to last) of the longest chain ending in `among` (or anywhere);
    of chains equally long, the one ending in the URN that sorts first."""
    finish, via = longest_paths(g)
    ends = list(among if among is not None else g.nodes)
    if not ends:
        return 0.0, []
    end = min(ends, key=lambda u: (-finish[u], u))
    path = [end]
    while path[-1] in via:
        path.append(via[path[-1]])
    return finish[end], path[::-1]


def recommend_parallel(g: Graph) -> int:
    """The smallest --parallel whose estimate is within RECOMMEND_SLACK of the lower bound."""
    bound = critical_path(g)[0] * RECOMMEND_SLACK
    low, high = 1, max(1, len(g.nodes))
    while low < high:
        mid = (low + high) // 2
        if simulate(g, mid).makespan <= bound:
            high = mid
        else:
            low = mid + 1
    return low


def image_members(g: Graph) -> dict[str, set[str]]:
    """Per gallery image: what builds and publishes it, and the consumers of its versions."""
    members: dict[str, set[str]] = {}
    for u, node in g.nodes.items():
        if node.image:
            members.setdefault(node.image, set()).add(u)
    for image, urns in members.items():
        stack = [u for u in urns if g.nodes[u].type == VERSION_T]
        while stack:
            for v in g.succs[stack.pop()]:
                # A build of another image on top of this one is that image's, not this
                # one's: "ready" stops at the consumers of this image's own versions.
                if g.nodes[v].image not in (None, image):
                    continue
                if v not in members[image]:
                    members[image].add(v)
                    stack.append(v)
    return members


def _path_rows(g: Graph, path: list[str]) -> list[dict[str, Any]]:
    return [
        {"name": g.nodes[u].name, "type": g.nodes[u].type, "seconds": g.nodes[u].duration.median}
        for u in path
        if g.nodes[u].duration.median > 0
    ]


def timing(run: engine.Run, parallel: int | None = None) -> dict[str, Any]:
    """The plan's timing section: estimate, critical path and lower bound, stack and images."""
    g = graph(run)
    slots = parallel or latency.PULUMI_DEFAULT_PARALLEL
    sched = simulate(g, slots)
    bound, path = critical_path(g)
    recommended = recommend_parallel(g)
    images = {}
    for image, urns in sorted(image_members(g).items()):
        length, ipath = critical_path(g, urns)
        images[image] = {
            "estimateSeconds": max(sched.finish[u] for u in urns),
            "lowerBoundSeconds": length,
            "criticalPath": _path_rows(g, ipath),
        }
    return {
        "parallel": parallel,
        "resources": len(g.nodes),
        "estimateSeconds": sched.makespan,
        "p90Seconds": simulate(g, slots, p90=True).makespan,
        "lowerBoundSeconds": bound,
        # fsum: exact, so the total does not depend on the order of the terms.
        "workSeconds": math.fsum(n.duration.median for n in g.nodes.values()),
        "criticalPath": _path_rows(g, path),
        "recommendedParallel": recommended,
        "serializedSeconds": simulate(g, 1).makespan,
        "images": images,
    }


def minutes(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def render_lines(t: dict[str, Any]) -> list[str]:
    """The timing section as text lines (shared by the text and markdown renderers)."""
    at = f"--parallel {t['parallel']}" if t["parallel"] else "default --parallel (unbounded)"
    lines = [
        f"estimated pulumi up: {minutes(t['estimateSeconds'])} at {at} "
        f"(p90 {minutes(t['p90Seconds'])}); lower bound (unlimited parallelism) "
        f"{minutes(t['lowerBoundSeconds'])}; one at a time {minutes(t['serializedSeconds'])}",
        "critical path: "
        + " -> ".join(f"{r['name']} {minutes(r['seconds'])}" for r in t["criticalPath"]),
    ]
    rec = t["recommendedParallel"]
    if t["parallel"] and t["parallel"] < rec:
        lines.append(
            f"--parallel {t['parallel']} serializes independent builds: use --parallel {rec} "
            f"(estimate within {round((RECOMMEND_SLACK - 1) * 100)}% of the lower bound)"
        )
    else:
        lines.append(
            f"recommended --parallel {rec}: the smallest that keeps the estimate within "
            f"{round((RECOMMEND_SLACK - 1) * 100)}% of the lower bound"
        )
    for name, image in t["images"].items():
        lines.append(
            f"image {name}: ready after {minutes(image['estimateSeconds'])} "
            f"(lower bound {minutes(image['lowerBoundSeconds'])})"
        )
    if t.get("compare"):
        c = t["compare"]
        ratio = t["estimateSeconds"] / c["estimateSeconds"] if c["estimateSeconds"] else 0.0
        lines.append(
            f"compared with stack {c['stack']}: {minutes(t['estimateSeconds'])} vs "
            f"{minutes(c['estimateSeconds'])} ({ratio:.0%} of {c['stack']})"
        )
    return lines
