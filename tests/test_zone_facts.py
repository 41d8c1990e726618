"""Zones a VM size is offered in, from Azure's Resource SKUs: parsed from both response
shapes, and checked against each consumer's zones when Azure answers (never offline)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from imagefactory import facts as azure_facts
from imagefactory.facts import ImageFacts, Plan, SizeFacts, Source, size_from_sku
from imagefactory.settings import ConfigError, check


def _sku(**shape: Any) -> dict[str, Any]:
    return {
        "name": "Standard_D2s_v5",
        "resourceType": "virtualMachines",
        "capabilities": [],
        **shape,
    }


REST = _sku(
    locationInfo=[{"location": "eastus", "zones": ["3", "1", "2"]}],
    restrictions=[
        {
            "type": "Zone",
            "values": ["eastus"],
            "restrictionInfo": {"locations": ["eastus"], "zones": ["3"]},
            "reasonCode": "NotAvailableForSubscription",
        }
    ],
)
# What azure-mgmt-compute's ResourceSku.as_dict() gives for the same answer.
SDK = _sku(
    location_info=[{"location": "eastus", "zones": ["3", "1", "2"]}],
    restrictions=[
        {
            "type": "Zone",
            "values": ["eastus"],
            "restriction_info": {"locations": ["eastus"], "zones": ["3"]},
            "reason_code": "NotAvailableForSubscription",
        }
    ],
)


@pytest.mark.parametrize("sku", [REST, SDK], ids=["REST JSON", "SDK as_dict"])
def test_zones_are_the_locations_less_the_zone_restrictions(sku: dict[str, Any]) -> None:
    size = size_from_sku(sku, "eastus", {})
    assert size.zones == ("1", "2")
    # A Zone restriction does not make the whole region unusable.
    assert size.restriction is None


def test_a_snapshot_or_another_region_does_not_know_the_zones() -> None:
    assert size_from_sku(REST, None, {}).zones is None
    assert size_from_sku(REST, "westeurope", {}).zones is None


class _Azure:
    """The snapshot's answers, with the zones a live answer would add."""

    def __init__(self, zones: tuple[str, ...]) -> None:
        self.snapshot = azure_facts.snapshot()
        self.zones = zones
        self.source = Source("Azure (stub)")

    def size(self, name: str, region: str) -> SizeFacts | None:
        found = self.snapshot.size(name, region)
        return dataclasses.replace(found, zones=self.zones) if found else None

    def image(self, urn: str, region: str) -> ImageFacts | None:
        return self.snapshot.image(urn, region)

    def terms_accepted(self, plan: Plan) -> bool | None:
        return None


def test_a_zone_the_size_is_not_offered_in_is_refused(prod_raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        check(prod_raw, _Azure(("1", "2")))
    assert err.value.problems == [
        "imagefactory:scaleSets[0].zones: 'Standard_D2s_v5' cannot be placed in zone 3 of "
        "'eastus' by this subscription (Resource SKUs: zones 1, 2); allowed: zones 1, 2, or "
        "another size"
    ]
    # iis-us uses zones 1 and 2: offered. And with every zone offered, nothing to say.
    assert check(prod_raw, _Azure(("1", "2", "3"))).settings.scale_sets[0].zones == ("1", "2", "3")
