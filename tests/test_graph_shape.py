"""The registered graph has no needless waiting: prod and a generated fleet.

Images build independently, a version replicates to all its regions in one resource, a
consumer waits only for the version it uses, sharing never sits on the build path, and the
estimated `pulumi up` at the recommended --parallel is within 5% of the lower bound.
"""

from __future__ import annotations

import re

import pytest

from bench.fleet import FLEET_REGIONS, fleet_config, fleet_run
from offline import engine, schedule

CONSUMER_TYPES = {schedule.SCALE_SET_T, schedule.VM_T}
FLEET_IMAGES, FLEET_REGION_COUNT = 20, 5


@pytest.fixture(scope="module", params=["prod", "fleet"])
def case(request: pytest.FixtureRequest) -> tuple[engine.Run, schedule.Graph, dict]:
    if request.param == "prod":
        config = engine.stack_config("prod")
        run = engine.run("prod")
    else:
        config = fleet_config(FLEET_IMAGES, FLEET_REGION_COUNT)
        run = fleet_run(FLEET_IMAGES, FLEET_REGION_COUNT)
    return run, schedule.graph(run), config


def _ancestors(g: schedule.Graph, urn: str) -> set[str]:
    seen: set[str] = set()
    stack = [urn]
    while stack:
        for p in g.preds[stack.pop()]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def _temporary(res: engine.Registered) -> bool:
    """Tagged temporary: builders, test VMs and the staging gallery's resources, which go
    with the build resource group."""
    return (res.inputs.get("tags") or {}).get("imagefactory-lifecycle") == "temporary"


def _is_consumer(g: schedule.Graph, run: engine.Run, urn: str) -> bool:
    res = run.by_urn(urn)
    return res.type in CONSUMER_TYPES and not _temporary(res)


def _published(run: engine.Run) -> list[engine.Registered]:
    """The stack gallery's versions, without the staging versions Trusted Launch builds wait
    in for validation."""
    return [v for v in run.of_type(schedule.VERSION_T) if not _temporary(v)]


def _staging(run: engine.Run) -> list[engine.Registered]:
    return [v for v in run.of_type(schedule.VERSION_T) if _temporary(v)]


def _key(res: engine.Registered) -> tuple[str, str]:
    return (res.inputs["galleryImageName"], res.inputs["galleryImageVersionName"])


def test_fleet_config_is_what_was_asked() -> None:
    config = fleet_config(FLEET_IMAGES, FLEET_REGION_COUNT)
    images = config["imagefactory:images"]
    assert len(images) == 20
    assert len({i["name"] for i in images}) == 20
    assert len({i["identifier"]["sku"] for i in images}) == 20
    assert {i["os"] for i in images} == {"linux", "windows"}
    for image in images:
        assert [r["name"] for r in image["versions"][0]["regions"]] == list(FLEET_REGIONS[:5])
    assert len(config["imagefactory:scaleSets"]) == 40


def _bases(config: dict, image: str) -> set[str]:
    """The images of the stack `image` is built on, directly or through others."""
    found: set[str] = set()
    specs = {i["name"]: i for i in config["imagefactory:images"]}
    while (base := (specs[image].get("baseImage") or {}).get("image")) and base not in found:
        found.add(base)
        image = base
    return found


def test_images_build_independently(case) -> None:
    """Except on the images they are built on: those versions come first."""
    _run, g, config = case
    images = {n.image for n in g.nodes.values() if n.image}
    assert len(images) >= 2
    for urn, node in g.nodes.items():
        if not node.image:
            continue
        others = {g.nodes[a].image for a in _ancestors(g, urn)} - {None, node.image}
        assert others <= _bases(config, node.image), (
            f"{node.name} ({node.image}) waits for images {others}"
        )


def test_each_version_replicates_to_all_its_regions_in_one_resource(case) -> None:
    run, _g, config = case
    versions = _published(run)
    wanted = {
        (image["name"], v["version"]): [r["name"] for r in v["regions"]]
        for image in config["imagefactory:images"]
        for v in image["versions"]
    }
    assert sorted(_key(v) for v in versions) == sorted(wanted)
    for v in versions:
        targets = v.inputs["publishingProfile"]["targetRegions"]
        assert [t["name"] for t in targets] == wanted[_key(v)]


def test_a_trusted_launch_build_waits_in_one_staging_replica(case) -> None:
    """One staging version per active Trusted Launch builder: one replica in the build
    region, never latest, published from that builder, in the build resource group."""
    run, _g, config = case
    builders = {
        (vm.inputs["tags"]["imagefactory-image"], vm.inputs["tags"]["imagefactory-version"]): vm
        for vm in run.of_type(schedule.VM_T)
        if _temporary(vm)
        and "imagefactory-role" not in vm.inputs["tags"]
        and (vm.inputs.get("securityProfile") or {}).get("securityType") == "TrustedLaunch"
    }
    staging = {_key(v): v for v in _staging(run)}
    assert sorted(staging) == sorted(builders)
    assert staging  # prod's iis, the fleet's Windows images
    for key, v in staging.items():
        assert v.inputs["resourceGroupName"] == "imgf-prod-build-rg"
        assert v.inputs["storageProfile"]["source"] == {"virtualMachineId": builders[key].id}
        assert v.inputs["publishingProfile"] == {
            "targetRegions": [
                {
                    "name": config["imagefactory:location"],
                    "regionalReplicaCount": 1,
                    "storageAccountType": "Standard_LRS",
                }
            ],
            "excludeFromLatest": True,
        }


def _newest_in_latest(config: dict, image: str) -> str:
    """The version `latest` resolves to: the highest one not excluded from latest."""
    (spec,) = [i for i in config["imagefactory:images"] if i["name"] == image]
    eligible = [v["version"] for v in spec["versions"] if not v.get("excludeFromLatest")]
    return max(eligible, key=lambda v: tuple(int(p) for p in v.split(".")))


def test_a_consumer_depends_only_on_the_version_it_uses(case) -> None:
    run, g, config = case
    published = {v.urn for v in _published(run)}
    version_of = {_key(run.by_urn(u)): u for u in published}
    staging_of = {_key(v): v.urn for v in _staging(run)}
    consumers = [u for u in g.nodes if _is_consumer(g, run, u)]
    assert consumers
    for urn in consumers:
        tags = run.by_urn(urn).inputs["tags"]
        # '1.2.0', 'latest (1.2.0)', or 'latest' for a scale set that follows it by
        # automatic OS upgrade: it waits for the newest version.
        image, label = tags["imagefactory-image"], tags["imagefactory-version"]
        number = re.search(r"\d+\.\d+\.\d+", label)
        assert number or label == "latest", tags
        key = (image, number.group(0) if number else _newest_in_latest(config, image))
        ancestors = _ancestors(g, urn)
        assert ancestors & published == {version_of[key]}, g.nodes[urn].name
        # Through it, only its own build's staging version, if it had one.
        staged = {a for a in ancestors if g.nodes[a].type == schedule.VERSION_T} - published
        assert staged == ({staging_of[key]} if key in staging_of else set()), g.nodes[urn].name


def test_sharing_and_tags_never_sit_on_the_build_path(case) -> None:
    _run, g, _ = case
    # Tags are inputs of the resources themselves (no tag resources), so the sharing
    # role assignments are what could delay a build.
    assert not [n for n in g.nodes.values() if "Tag" in n.type.split(":")[-1]]
    off_path = {
        u for u, n in g.nodes.items() if n.type == "azure-native:authorization:RoleAssignment"
    }
    assert sorted(g.nodes[u].name for u in off_path) == [
        "gallery-reader-3f2a4c1e",
        "gallery-reader-9c1d7e52",
    ]
    for u in off_path:
        assert g.succs[u] == set(), f"{g.nodes[u].name} delays {g.succs[u]}"


def test_estimate_at_the_recommended_parallel_is_within_5_percent_of_the_lower_bound(
    case,
) -> None:
    _run, g, _ = case
    bound, _ = schedule.critical_path(g)
    parallel = schedule.recommend_parallel(g)
    assert schedule.simulate(g, parallel).makespan <= 1.05 * bound
    # The recommendation is needed: one fewer slot (if any) is slower than the target.
    if parallel > 1:
        assert schedule.simulate(g, parallel - 1).makespan > schedule.RECOMMEND_SLACK * bound
