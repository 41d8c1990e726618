"""imagefactory.regions: region names and availability zones, checked against
https://learn.microsoft.com/azure/reliability/regions-list (see the module docstring)."""

from __future__ import annotations

import pytest

from imagefactory import regions


@pytest.mark.parametrize(
    "name", ["eastus", "westeurope", "swedencentral", "northeurope", "uksouth"]
)
def test_zone_regions_have_zones(name: str) -> None:
    assert regions.is_region(name)
    assert regions.has_zones(name)


# Each of these is listed on the page without availability zone support.
@pytest.mark.parametrize(
    "name", ["westus", "northcentralus", "westcentralus", "ukwest", "canadaeast"]
)
def test_regions_without_zones(name: str) -> None:
    assert regions.is_region(name)
    assert not regions.has_zones(name)


def test_zone_regions_are_a_subset_of_regions() -> None:
    assert regions.ZONE_REGIONS < regions.REGIONS
    assert isinstance(regions.REGIONS, frozenset)
    assert isinstance(regions.ZONE_REGIONS, frozenset)


def test_names_are_programmatic_lower_case() -> None:
    for name in regions.REGIONS:
        assert name == name.lower()
        assert name.isalnum(), name


@pytest.mark.parametrize(
    "name",
    [
        "eastus2euap",
        "centraluseuap",
        "eastusstage",
        "global",
        "unitedstates",
        "europe",
        "denmarkeast",
    ],
)
def test_canary_stage_logical_and_unopened_names_are_excluded(name: str) -> None:
    assert not regions.is_region(name)
    assert not regions.has_zones(name)


@pytest.mark.parametrize("name", ["EastUS", "West Europe", "westeurope ", "WESTEUROPE", ""])
def test_is_region_is_exact_and_case_sensitive(name: str) -> None:
    assert not regions.is_region(name)


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("westeuroep", "westeurope"),
        ("West Europe", "westeurope"),
        ("swedencentrl", "swedencentral"),
        ("northcentrlus", "northcentralus"),
    ],
)
def test_suggest_returns_closest_region(typo: str, expected: str) -> None:
    assert regions.suggest(typo) == expected


def test_suggest_returns_none_when_nothing_is_close() -> None:
    assert regions.suggest("mars") is None
    assert regions.suggest("") is None


def test_suggest_of_a_known_region_is_itself() -> None:
    assert regions.suggest("westus3") == "westus3"
