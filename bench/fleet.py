"""A generated fleet: N images x R regions, 2 consumers each, derived from the prod stack.

    .venv/bin/python -m bench.fleet [IMAGES] [REGIONS] [--parallel N]

prints the fleet's offline plan with its timing section. The graph-shape tests and the
benchmark use `fleet_config` to stress the program with a realistic, valid config.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from typing import Any

FLEET_REGIONS = (
    "eastus",
    "westeurope",
    "westus2",
    "northeurope",
    "southeastasia",
    "australiaeast",
    "japaneast",
    "uksouth",
    "canadacentral",
    "centralus",
)
"""Regions with availability zones, so ZRS replicas stay valid; the first is prod's location."""
NS = "imagefactory:"


def fleet_config(images: int, regions: int = 5) -> dict[str, Any]:
    """Full stack config (namespaced keys): prod's settings with `images` built images.

    Images alternate between prod's Linux and Windows templates; each has one version
    replicated to `regions` regions and two consumers (a scale set in the build region
    and one in the last target region).
    """
    from offline import engine as offline_engine

    if not 1 <= regions <= len(FLEET_REGIONS):
        raise ValueError(f"regions must be 1-{len(FLEET_REGIONS)}")
    config = copy.deepcopy(offline_engine.stack_config("prod"))
    templates = config[NS + "images"]
    linux = next(i for i in templates if i["os"] == "linux")
    windows = next(i for i in templates if i["os"] == "windows")
    targets = FLEET_REGIONS[:regions]
    made, consumers = [], []
    for n in range(images):
        image = copy.deepcopy(linux if n % 2 == 0 else windows)
        name = f"{image['os'][:3]}{n:03d}"
        image["name"] = name
        image["identifier"] = {**image["identifier"], "sku": f"{image['identifier']['sku']}-{n}"}
        image["versions"] = [
            {
                "version": "1.0.0",
                "regions": [
                    {"name": r, "replicas": 2 if r == targets[0] else 1, "storage": "Standard_ZRS"}
                    for r in targets
                ],
            }
        ]
        made.append(image)
        for suffix, region in (("a", targets[0]), ("b", targets[-1])):
            consumers.append(
                {
                    "name": f"s{n:03d}{suffix}",
                    "region": region,
                    "image": name,
                    "version": "latest" if suffix == "a" else "1.0.0",
                    "sku": "Standard_D2s_v5",
                    "capacity": 2,
                    "upgradePolicy": "Rolling",
                }
            )
    config[NS + "images"] = made
    config[NS + "scaleSets"] = consumers
    config[NS + "vmGroups"] = []
    return config


def fleet_run(images: int, regions: int = 5) -> Any:
    """offline.run of the generated fleet (stack name 'fleet')."""
    from offline import engine as offline_engine

    return offline_engine.run("fleet", fleet_config(images, regions))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("images", nargs="?", type=int, default=20)
    parser.add_argument("regions", nargs="?", type=int, default=5)
    parser.add_argument("--parallel", type=int, metavar="N")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    args = parser.parse_args(argv)
    from offline import plan, schedule

    run = fleet_run(args.images, args.regions)
    shown = plan.build_plan(run)
    shown["timing"] = schedule.timing(run, args.parallel)
    print(plan.render(shown, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
