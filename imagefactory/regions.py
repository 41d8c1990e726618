"""Azure public-cloud regions and which of them have availability zones.

Pure data and lookups, no Pulumi: config validation uses it to reject a
misspelt target region before any resource is planned, and to refuse
``Standard_ZRS`` replicas in a region without availability zones (zone-redundant
storage, and so ZRS gallery image version replicas, only exist where a region
has zones).

Source: "Azure regions list",
https://learn.microsoft.com/azure/reliability/regions-list (page dated
2025-09-23; checked 2026-11-26). Names are the page's "Programmatic name"
column. Kept to physical public-cloud regions: no ``*euap`` canary regions, no
``*stage`` regions, no logical-only names (``global``, geographies such as
``unitedstates`` or ``europe``), no sovereign clouds.
Access-restricted regions (for example ``germanynorth``, ``norwaywest``) are
real regions and are included; subscriptions need an access request to use
them. Regions the page marks "coming soon" (``denmarkeast``) are left out until
they open. The list grows: when Azure opens a region, add it here.
"""

from __future__ import annotations

import difflib

# Regions the page marks with availability zone support.
ZONE_REGIONS: frozenset[str] = frozenset(
    {
        "australiaeast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "canadacentral",
        "centralindia",
        "centralus",
        "chilecentral",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northeurope",
        "norwayeast",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "spaincentral",
        "swedencentral",
        "switzerlandnorth",
        "uaenorth",
        "uksouth",
        "westeurope",
        "westus2",
        "westus3",
    }
)

# Regions the page lists without availability zones.
_REGIONS_WITHOUT_ZONES: frozenset[str] = frozenset(
    {
        "australiacentral",
        "australiacentral2",
        "australiasoutheast",
        "brazilsoutheast",
        "canadaeast",
        "francesouth",
        "germanynorth",
        "koreasouth",
        "northcentralus",
        "norwaywest",
        "southafricawest",
        "southindia",
        # Named on the page only as swedencentral's (restricted) paired region;
        # no zone support is stated for it, so it is treated as having none.
        "swedensouth",
        "switzerlandwest",
        "uaecentral",
        "ukwest",
        "westcentralus",
        "westindia",
        "westus",
    }
)

REGIONS: frozenset[str] = ZONE_REGIONS | _REGIONS_WITHOUT_ZONES


def is_region(name: str) -> bool:
    """True if ``name`` is a known region's programmatic name.

    Exact match only: programmatic names are lower case without spaces, so
    ``"West Europe"`` and ``"WestEurope"`` are not accepted. Callers decide how
    to report a miss (``suggest`` offers the closest name).
    """
    return name in REGIONS


def has_zones(name: str) -> bool:
    """True if the region has availability zones (so ``Standard_ZRS`` is possible)."""
    return name in ZONE_REGIONS


def suggest(name: str) -> str | None:
    """The known region closest to ``name`` (a likely typo), or None if nothing is close.

    Input is lower-cased and stripped of spaces first, so ``"West Europe"``
    suggests ``"westeurope"``.
    """
    candidate = name.replace(" ", "").lower()
    matches = difflib.get_close_matches(candidate, sorted(REGIONS), n=1, cutoff=0.8)
    return matches[0] if matches else None
