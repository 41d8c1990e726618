"""Zones a VM size is offered in, from Azure's Resource SKUs: parsed from both response
shapes, and checked against each consumer's zones when Azure answers (never offline)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from imagefactory import facts as azure_facts
from imagefactory.facts import (
    GalleryImageFacts,
    ImageFacts,
    Plan,
    SizeFacts,
    Source,
    size_from_sku,
)
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

    def gallery_image(self, version_id: str, region: str) -> GalleryImageFacts | None:
        return None

    def version_published(
        self, resource_group: str, gallery: str, image: str, version: str
    ) -> bool | None:
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


# --- another gallery's image, as Azure describes it --------------------------------------------

OTHER = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/platform-rg/providers/"
    "Microsoft.Compute/galleries/platform_gallery/images/ubuntu-hardened/versions/2.3.0"
)
DEFINITION: dict[str, Any] = {
    "name": "ubuntu-hardened",
    "properties": {
        "osType": "Linux",
        "osState": "Generalized",
        "hyperVGeneration": "V2",
        "architecture": "x64",
        "features": [{"name": "SecurityType", "value": "TrustedLaunch"}],
    },
}


def test_a_gallery_image_definition_from_either_shape() -> None:
    rest = azure_facts.gallery_image_from_response(OTHER, DEFINITION)
    sdk = azure_facts.gallery_image_from_response(
        OTHER,
        {
            "os_type": "Linux",
            "hyper_v_generation": "V2",
            "architecture": "x64",
            "features": [{"name": "SecurityType", "value": "TrustedLaunch"}],
        },
    )
    assert rest == sdk == GalleryImageFacts(OTHER, "linux", "V2", "x64", "TrustedLaunch")
    bare = azure_facts.gallery_image_from_response(OTHER, {"properties": {"osType": "Windows"}})
    assert (bare.security_type, bare.architecture) == ("Standard", "x64")


class _Described(_Azure):
    def __init__(self, image: GalleryImageFacts) -> None:
        super().__init__(("1", "2", "3"))
        self.described = image
        self.asked: list[tuple[str, str]] = []

    def gallery_image(self, version_id: str, region: str) -> GalleryImageFacts | None:
        self.asked.append((version_id, region))
        return self.described


def test_live_the_chain_is_checked_against_another_gallerys_definition(
    prod_raw: dict[str, Any],
) -> None:
    prod_raw["images"][3]["baseImage"] = {"id": OTHER}
    stub = _Described(GalleryImageFacts(OTHER, "linux", "V2", "x64", "TrustedLaunch"))
    with pytest.raises(ConfigError) as err:
        check(prod_raw, stub)
    assert stub.asked == [(OTHER, "eastus")]
    assert err.value.problems == [
        "imagefactory:images[3].builder.securityType: 'Standard' cannot start from its base "
        "(another gallery's image), whose definition is 'TrustedLaunch' (Azure creates only "
        "TrustedLaunch VMs from it); allowed: TrustedLaunch",
        "imagefactory:images[3].securityType: 'TrustedLaunchSupported' promises Standard VMs, "
        "which its base (another gallery's image) ('TrustedLaunch') does not support; an image "
        "supports at most what its base does (allowed: 'TrustedLaunch')",
    ]
    # A matching definition: no problem, and no "not checked" warning either.
    matching = _Described(GalleryImageFacts(OTHER, "linux", "V2", "x64", "TrustedLaunchSupported"))
    assert check(prod_raw, matching).warnings == ()


def test_live_an_image_azure_does_not_have_is_refused(prod_raw: dict[str, Any]) -> None:
    prod_raw["images"][3]["baseImage"] = {"id": OTHER}
    with pytest.raises(ConfigError) as err:
        check(prod_raw, _Described(GalleryImageFacts(OTHER, exists=False)))
    assert err.value.problems == [
        f"imagefactory:images[3].baseImage.id: Azure has no image {OTHER!r} that this "
        "subscription can read; check the id and that the deployer has Reader on that gallery "
        "(or that it is shared with this subscription)"
    ]


class _Found:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def as_dict(self) -> dict[str, Any]:
        return self.body


def test_live_facts_ask_the_right_gallery_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagefactory.facts.live import LiveFacts

    facts = LiveFacts(object(), "11111111-2222-3333-4444-555555555555")
    calls: list[tuple[str, tuple[str, ...]]] = []

    def answer(kind: str) -> Any:
        def get(*args: str) -> _Found:
            calls.append((kind, args))
            return _Found(DEFINITION["properties"])

        return get

    monkeypatch.setattr(facts.compute.gallery_images, "get", answer("gallery"))
    monkeypatch.setattr(facts.compute.shared_gallery_images, "get", answer("shared"))
    shared = "/SharedGalleries/abc-platform/Images/ubuntu-hardened/Versions/2.3.0"
    assert facts.gallery_image(OTHER, "eastus") == GalleryImageFacts(
        OTHER, "linux", "V2", "x64", "TrustedLaunch"
    )
    assert facts.gallery_image(shared, "westeurope") is not None
    facts.gallery_image(OTHER, "eastus")  # asked once
    assert calls == [
        ("gallery", ("platform-rg", "platform_gallery", "ubuntu-hardened")),
        ("shared", ("westeurope", "abc-platform", "ubuntu-hardened")),
    ]
