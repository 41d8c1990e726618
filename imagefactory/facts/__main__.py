"""Refresh the facts snapshot from Azure: `python -m imagefactory.facts refresh WHAT`.

    .venv/bin/python -m imagefactory.facts refresh sizes --location eastus [--size NAME ...]
    .venv/bin/python -m imagefactory.facts refresh images --location eastus

Uses the same credentials as the live checks (ARM_*/AZURE_* variables or `az login`) and
the subscription from ARM_SUBSCRIPTION_ID or `az account show`. Rewrites the data file with
Azure's answers for the sizes (or images) it already lists plus any named, and stamps it
with today's date and the command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagefactory.facts import FACTS_DIR, IMAGES_FILE, SIZES_FILE, live, urn_of

# Capabilities the checks read, and a few a reader of the file wants beside them.
KEPT_CAPABILITIES = (
    "HyperVGenerations",
    "CpuArchitectureType",
    "PremiumIO",
    "TrustedLaunchDisabled",
    "ConfidentialComputingType",
    "vCPUs",
    "MemoryGB",
)


def refresh_sizes(
    facts: live.LiveFacts, location: str, extra: Sequence[str], directory: Path, today: str
) -> Path:
    path = directory / SIZES_FILE.name
    doc = json.loads(path.read_text())
    wanted = {str(s["name"]).lower() for s in doc["resourceSkus"]} | {e.lower() for e in extra}
    skus = []
    for sku in facts.skus(location):
        if str(sku["name"]).lower() not in wanted:
            continue
        skus.append(
            {
                "resourceType": sku["resourceType"],
                "name": sku["name"],
                "tier": sku.get("tier"),
                "size": sku.get("size"),
                "family": sku.get("family"),
                "locations": sku.get("locations"),
                "capabilities": [
                    c for c in sku.get("capabilities") or [] if c["name"] in KEPT_CAPABILITIES
                ],
                "restrictions": sku.get("restrictions") or [],
            }
        )
    doc["resourceSkus"] = sorted(skus, key=lambda s: str(s["name"]))
    doc["about"]["recorded"] = today
    doc["about"]["source"] = (
        f"Azure Resource SKUs API (ComputeManagementClient.resource_skus.list, "
        f"$filter=location eq '{location}'), recorded by the refresh command"
    )
    doc["about"]["refresh"] = (
        f".venv/bin/python -m imagefactory.facts refresh sizes --location {location}"
    )
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def refresh_images(facts: live.LiveFacts, location: str, directory: Path, today: str) -> Path:
    path = directory / IMAGES_FILE.name
    doc = json.loads(path.read_text())
    images: list[dict[str, Any]] = []
    for entry in doc["images"]:
        body = facts.image_response(urn_of(entry), location)
        if body is None:
            print(f"refresh: Azure has no image {urn_of(entry)} in {location}; dropped")
            continue
        props = body.get("properties") or {}
        images.append(
            {
                **{k: entry[k] for k in ("publisher", "offer", "sku", "version")},
                "location": location,
                "resolvedVersion": body.get("name"),
                "properties": {
                    k: props.get(k)
                    for k in ("osDiskImage", "hyperVGeneration", "architecture", "plan")
                },
                "source": "Azure Virtual Machine Images API (virtual_machine_images.get)",
            }
        )
    doc["images"] = images
    doc["about"]["recorded"] = today
    doc["about"]["refresh"] = (
        f".venv/bin/python -m imagefactory.facts refresh images --location {location}"
    )
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagefactory.facts")
    sub = parser.add_subparsers(dest="command", required=True)
    refresh = sub.add_parser("refresh", help="rewrite a data file with Azure's answers")
    refresh.add_argument("what", choices=("sizes", "images"))
    refresh.add_argument("--location", default="eastus")
    refresh.add_argument("--size", action="append", default=[], help="also record this size")
    args = parser.parse_args(argv)
    found = live.credential_from_environment(os.environ)
    subscription = live.subscription_from_environment(os.environ, None) if found else None
    if found is None or subscription is None:
        print(
            "refresh: no Azure credentials or subscription (az login, or ARM_CLIENT_ID/"
            "ARM_TENANT_ID and ARM_SUBSCRIPTION_ID)",
            file=sys.stderr,
        )
        return 2
    facts = live.LiveFacts(found[0], subscription)
    today = dt.date.today().isoformat()
    try:
        if args.what == "sizes":
            path = refresh_sizes(facts, args.location, args.size, FACTS_DIR, today)
        else:
            path = refresh_images(facts, args.location, FACTS_DIR, today)
    except live.LiveUnavailable as err:
        print(f"refresh: Azure did not answer: {err}", file=sys.stderr)
        return 1
    print(f"refresh: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
