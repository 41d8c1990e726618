"""settings.load: the real stacks load; every rule rejects a bad value with its exact message.

Each failing case starts from the real prod config, breaks one thing and expects exactly
one problem, so a rule that fires for the wrong reason (or drags echoes along) shows up.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from typing import Any

import pulumi
import pytest
from pydantic import ValidationError

from imagefactory.settings import ConfigError, load, parse_version
from offline import engine

V = "imagefactory:images[0].versions[1]"
VERSION_RULE = "expected MAJOR.MINOR.PATCH, each part an integer from 0 to 2147483647"
REGION_HINT = (
    "use a programmatic region name such as 'eastus' or 'westeurope' "
    "(az account list-locations -o table)"
)
IDENT_RULE = "letters, digits, '.', '_' and '-', starting and ending with a letter or digit"
PREFIX_RULE = "use 1-20 lower-case letters, digits and single hyphens, starting with a letter"
GALLERY_RULE = (
    "use 1-80 letters, digits, '_' and '.', starting and ending with a letter or digit (no '-')"
)
PRIVATE = "use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
TOP_KEYS = (
    "location, namePrefix, protection, tags, network, builder, capture, validation, "
    "replicationTimeoutMinutes, gallery, images, scaleSets, vmGroups, userDataSecrets, audit"
)


PROD_WEB = engine.stack_config("prod")["imagefactory:images"][0]


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(raw)
    return caught.value.problems


def put(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set raw['a'][0]['b'] = value for path 'a.0.b'."""
    *parents, last = path.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return raw


# --- good path -----------------------------------------------------------------------------


def test_prod_loads_with_its_values_and_defaults(prod_raw: dict[str, Any]) -> None:
    s = load(prod_raw)
    web, iis, _hardened, _webapp = s.images
    assert (s.location, s.name_prefix, s.protection) == ("eastus", "imgf-prod", "protect")
    assert s.tags == {"environment": "prod", "owner": "platform-team", "cost-center": "4711"}
    assert [v.version for v in web.versions] == ["1.0.0", "1.1.0"]
    assert web.versions[1].regions[0].replicas == 2
    assert [(t.name, t.replicas, t.storage) for t in iis.versions[0].regions] == [
        ("eastus", 2, "Standard_ZRS"),
        ("westeurope", 1, "Standard_LRS"),
    ]
    assert web.versions[0].builder == "retired"
    assert web.versions[1].builder == "active"
    assert iis.versions[0].end_of_life_date == "2027-12-31"
    assert web.newest() is web.versions[1]
    assert web.find("1.0.0") is web.versions[0]
    # Defaults the stack file leaves out.
    assert s.builder.admin_username == "azureuser"
    assert s.builder.public_ip is False
    assert s.capture.poll_seconds == 15
    assert s.capture.max_tries == 8
    assert s.network.builder_subnet == "10.42.1.0/24"
    assert web.base.urn() == "Canonical:ubuntu-24_04-lts:server:latest"
    assert iis.base.urn() == "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest"
    assert web.script_paths == (
        "linux/provision/10-base.sh",
        "linux/provision/20-webserver.sh",
        "linux/provision/90-manifest.sh",
    )
    assert iis.script_paths == ("windows/provision/10-iis.ps1", "windows/provision/90-manifest.ps1")
    assert s.gallery.sharing[0].principal_type == "ServicePrincipal"
    assert [c.name for c in s.consumers()] == ["web-us", "web-eu", "iis-us"]
    assert s.builder_for(iis).vm_size == "Standard_D4s_v5"
    assert s.builder_for(iis).security_type == "TrustedLaunch"
    assert s.builder_for(web).vm_size == "Standard_D2s_v5"
    assert s.builder_for(web).os_disk_type == "Premium_LRS"
    assert s.builder_for(web).security_type == "Standard"


def test_dev_loads_with_its_values(dev_raw: dict[str, Any]) -> None:
    s = load(dev_raw)
    (web,) = s.images
    assert (s.name_prefix, s.protection, s.replication_timeout_minutes) == ("imgf-dev", "none", 60)
    assert web.versions[0].replication_mode == "Shallow"
    assert s.scale_sets[0].upgrade_policy == "Automatic"
    assert s.capture.stop_timeout_seconds == 900
    assert s.vm_groups == ()


def test_unquoted_yaml_dates_and_timestamps_become_dates(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "images.1.versions.0.endOfLifeDate", dt.date(2027, 12, 31))
    put(prod_raw, "images.1.endOfLifeDate", "2028-06-30T00:00:00Z")
    iis = load(prod_raw).images[1]
    assert iis.versions[0].end_of_life_date == "2027-12-31"
    assert iis.end_of_life_date == "2028-06-30"


def test_settings_are_frozen(prod_raw: dict[str, Any]) -> None:
    s = load(prod_raw)
    with pytest.raises(ValidationError, match="frozen"):
        s.location = "westus"
    with pytest.raises(ValidationError, match="frozen"):
        s.images[0].versions[0].regions[0].replicas = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.names.prefix = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "parts"),
    [("0.0.0", (0, 0, 0)), ("2147483647.0.0", (2147483647, 0, 0)), ("1.10.200", (1, 10, 200))],
)
def test_version_edges_accepted(prod_raw: dict[str, Any], text: str, parts: tuple) -> None:
    assert parse_version(text) == parts
    put(prod_raw, "images.0.versions.1.version", text)
    assert load(prod_raw).images[0].versions[1].version == text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("01.0.0", "'01.0.0'"),
        ("2147483648.0.0", "'2147483648.0.0'"),
        ("1.0.2147483648", "'1.0.2147483648'"),
        ("1.0", "'1.0'"),
        ("1.0.0.0", "'1.0.0.0'"),
        ("v1.0.0", "'v1.0.0'"),
        ("-1.0.0", "'-1.0.0'"),
        (1, "'1'"),
    ],
)
def test_version_edges_rejected(prod_raw: dict[str, Any], value: Any, shown: str) -> None:
    put(prod_raw, "images.0.versions.1.version", value)
    assert problems(prod_raw) == [
        f"{V}.version: {shown} is not a gallery image version; {VERSION_RULE}"
    ]


# --- one rule each -------------------------------------------------------------------------

CASES: list[tuple[str, str, Any, str]] = [
    (
        "unknown region with hint",
        "images.0.versions.1.regions.1.name",
        "westeuropa",
        f"{V}.regions[1].name: 'westeuropa' is not an Azure region "
        f"(did you mean 'westeurope'?); {REGION_HINT}",
    ),
    (
        "display name instead of programmatic name",
        "images.0.versions.1.regions.1.name",
        "West Europe",
        f"{V}.regions[1].name: 'West Europe' is not an Azure region "
        f"(did you mean 'westeurope'?); {REGION_HINT}",
    ),
    (
        "unknown location",
        "location",
        "mars",
        f"imagefactory:location: 'mars' is not an Azure region; {REGION_HINT}",
    ),
    (
        "duplicate target region",
        "images.0.versions.1.regions.1.name",
        "eastus",
        f"{V}.regions: region 'eastus' is listed more than once",
    ),
    (
        "duplicate version",
        "images.0.versions.1.version",
        "1.0.0",
        "imagefactory:images[0].versions: version '1.0.0' is listed more than once; "
        "each version is published once and never changes",
    ),
    (
        "replicas 0",
        "images.0.versions.1.regions.0.replicas",
        0,
        f"{V}.regions[0].replicas: 0 is out of range; allowed: 1 to 100",
    ),
    (
        "replicas 101",
        "images.0.versions.1.regions.0.replicas",
        101,
        f"{V}.regions[0].replicas: 101 is out of range; allowed: 1 to 100",
    ),
    (
        "replicas wrong type",
        "images.0.versions.1.regions.0.replicas",
        "two",
        f"{V}.regions[0].replicas: 'two' is not a whole number; allowed: 1 to 100",
    ),
    (
        "storage type",
        "images.0.versions.1.regions.0.storage",
        "Premium_ZRS",
        f"{V}.regions[0].storage: 'Premium_ZRS' is not allowed; allowed values: "
        "'Standard_LRS', 'Standard_ZRS' or 'Premium_LRS'",
    ),
    (
        "ZRS where the region has no zones",
        "images.0.versions.1.regions.1.name",
        "westus",
        f"{V}.regions[1].storage: 'Standard_ZRS' is not available in 'westus', which has "
        "no availability zones; use 'Standard_LRS' or 'Premium_LRS' there",
    ),
    (
        "Trusted Launch definition with Gen1",
        "images.0",
        {
            **PROD_WEB,
            "generation": "V1",
            "baseImage": {
                "publisher": "Canonical",
                "offer": "ubuntu-24_04-lts",
                "sku": "server-gen1",
            },
        },
        "imagefactory:images[0].securityType: 'TrustedLaunchSupported' needs generation "
        "'V2'; Trusted Launch and confidential VMs do not support Gen1 (set generation: V2 "
        "or securityType: Standard)",
    ),
    (
        "Trusted Launch builder with a Standard definition",
        "images.1.securityType",
        "Standard",
        "imagefactory:images[1].securityType: 'Standard' cannot hold a version published "
        "from a Trusted Launch builder VM; allowed: 'TrustedLaunch' (or set "
        "builder.securityType: Standard to capture a managed image)",
    ),
    (
        "Trusted Launch builder with a TrustedLaunchSupported definition",
        "images.1.securityType",
        "TrustedLaunchSupported",
        "imagefactory:images[1].securityType: 'TrustedLaunchSupported' cannot hold a version "
        "published from a Trusted Launch builder VM; allowed: 'TrustedLaunch' (or set "
        "builder.securityType: Standard to capture a managed image)",
    ),
    (
        "Windows image given a .sh script",
        "images.1.scripts",
        ["linux/provision/10-base.sh"],
        "imagefactory:images[1].scripts[0]: 'linux/provision/10-base.sh' is not a windows "
        "script; windows images run .ps1 files",
    ),
    (
        "Linux image given a .ps1 script",
        "images.0.scripts",
        ["linux/provision/10-base.sh", "windows/provision/10-iis.ps1"],
        "imagefactory:images[0].scripts[1]: 'windows/provision/10-iis.ps1' is not a linux "
        "script; linux images run .sh files",
    ),
    (
        "script that does not exist",
        "images.0.scripts",
        ["linux/provision/15-missing.sh"],
        "imagefactory:images[0].scripts[0]: 'linux/provision/15-missing.sh' does not exist "
        "under scripts/",
    ),
    (
        "no scripts",
        "images.0.scripts",
        [],
        "imagefactory:images[0].scripts: no provisioning scripts; add files to "
        "scripts/linux/provision/ or list them here",
    ),
    (
        "gallery name with a hyphen",
        "gallery.name",
        "imgf-prod-gallery",
        f"imagefactory:gallery.name: 'imgf-prod-gallery' is not a valid gallery name; "
        f"{GALLERY_RULE}",
    ),
    (
        "gallery name over 80",
        "gallery.name",
        "g" * 81,
        f"imagefactory:gallery.name: {'g' * 81!r} is not a valid gallery name; {GALLERY_RULE}",
    ),
    (
        "gallery name ending in a period",
        "gallery.name",
        "imgf.",
        f"imagefactory:gallery.name: 'imgf.' is not a valid gallery name; {GALLERY_RULE}",
    ),
    (
        "publisher over 128",
        "images.0.identifier.publisher",
        "p" * 129,
        f"imagefactory:images[0].identifier.publisher: {'p' * 129!r} is not a valid "
        f"publisher; use 1-128 {IDENT_RULE}",
    ),
    (
        "offer over 64",
        "images.0.identifier.offer",
        "o" * 65,
        f"imagefactory:images[0].identifier.offer: {'o' * 65!r} is not a valid offer; "
        f"use 1-64 {IDENT_RULE}",
    ),
    (
        "sku over 64",
        "images.0.identifier.sku",
        "s" * 65,
        f"imagefactory:images[0].identifier.sku: {'s' * 65!r} is not a valid sku; "
        f"use 1-64 {IDENT_RULE}",
    ),
    (
        "sku ending in a period",
        "images.0.identifier.sku",
        "ubuntu.",
        "imagefactory:images[0].identifier.sku: 'ubuntu.' is not a valid sku; "
        f"use 1-64 {IDENT_RULE}",
    ),
    (
        "scale set pointing at an unknown image",
        "scaleSets.0.image",
        "webservr",
        "imagefactory:scaleSets[0].image: 'webservr' is not an image of this stack; "
        "known images: hardened, iis, webapp, webserver",
    ),
    (
        "scale set pointing at an unknown version",
        "scaleSets.1.version",
        "0.9.0",
        "imagefactory:scaleSets[1].version: '0.9.0' is not a version of image 'webserver' "
        "(known: 1.0.0, 1.1.0); 'web-eu' still pins it, so keep that version in config "
        "until no consumer uses it",
    ),
    (
        "scale set in a region the version is not replicated to",
        "scaleSets.1.region",
        "westus",
        "imagefactory:scaleSets[1].region: 'westus' has no replica of webserver 1.0.0 "
        "(replicated to: eastus, westeurope); add the region to that version's regions or "
        "deploy the consumer where the version is",
    ),
    (
        "VM group in a region the version is not replicated to",
        "vmGroups.0.region",
        "northeurope",
        "imagefactory:vmGroups[0].region: 'northeurope' has no replica of iis 1.0.0 "
        "(replicated to: eastus, westeurope); add the region to that version's regions or "
        "deploy the consumer where the version is",
    ),
    (
        "os literal",
        "images.0.os",
        "Linux",
        "imagefactory:images[0].os: 'Linux' is not allowed; allowed values: 'linux' or 'windows'",
    ),
    (
        "generation literal",
        "images.0.generation",
        "Gen2",
        "imagefactory:images[0].generation: 'Gen2' is not allowed; allowed values: 'V1' or 'V2'",
    ),
    (
        "upgradePolicy literal",
        "scaleSets.0.upgradePolicy",
        "rolling",
        "imagefactory:scaleSets[0].upgradePolicy: 'rolling' is not allowed; allowed values: "
        "'Rolling', 'Automatic' or 'Manual'",
    ),
    (
        "principalType literal",
        "gallery.sharing.0.principalType",
        "App",
        "imagefactory:gallery.sharing[0].principalType: 'App' is not allowed; allowed "
        "values: 'User', 'Group', 'ServicePrincipal', 'ForeignGroup' or 'Device'",
    ),
    (
        "protection literal",
        "protection",
        "yes",
        "imagefactory:protection: 'yes' is not allowed; allowed values: 'protect', "
        "'retainOnDelete' or 'none'",
    ),
    (
        "principal id not a GUID",
        "gallery.sharing.0.principalId",
        "deployer",
        "imagefactory:gallery.sharing[0].principalId: 'deployer' is not an object id; "
        "expected a GUID",
    ),
    (
        "end-of-life date",
        "images.1.versions.0.endOfLifeDate",
        "2027-13-01",
        "imagefactory:images[1].versions[0].endOfLifeDate: '2027-13-01' is not a date; "
        "use YYYY-MM-DD",
    ),
    (
        "name prefix with capitals and underscore",
        "namePrefix",
        "Imgf_Prod",
        f"imagefactory:namePrefix: 'Imgf_Prod' is not a valid name prefix; {PREFIX_RULE}",
    ),
    (
        "name prefix over 20",
        "namePrefix",
        "a" * 21,
        f"imagefactory:namePrefix: {'a' * 21!r} is not a valid name prefix; {PREFIX_RULE}",
    ),
    (
        "name prefix with a double hyphen",
        "namePrefix",
        "imgf--prod",
        f"imagefactory:namePrefix: 'imgf--prod' is not a valid name prefix; {PREFIX_RULE}",
    ),
    (
        "vm size format",
        "images.0.builder",
        {"vmSize": "D2s_v5"},
        "imagefactory:images[0].builder.vmSize: 'D2s_v5' is not a VM size name (did you mean "
        "'Standard_D2s_v5'?); Azure's size names start with 'Standard_' or 'Basic_', e.g. "
        "'Standard_D2s_v5' (az vm list-sizes --location eastus -o table)",
    ),
    (
        "unknown top-level key",
        "namPrefix",
        "imgf-prod",
        "imagefactory:namPrefix: unknown key (did you mean 'namePrefix'?); allowed keys: "
        + TOP_KEYS,
    ),
    (
        "unknown nested key",
        "images.0.versions.0.regions.0.replica",
        2,
        "imagefactory:images[0].versions[0].regions[0].replica: unknown key (did you mean "
        "'replicas'?); allowed keys: name, replicas, storage",
    ),
    (
        "bool wrong type",
        "images.0.versions.0.excludeFromLatest",
        "maybe",
        "imagefactory:images[0].versions[0].excludeFromLatest: 'maybe' is not a boolean; "
        "allowed: true or false",
    ),
    (
        "images not a list",
        "images",
        "webserver",
        "imagefactory:images: 'webserver' is not a list; write one '- ' entry per line",
    ),
    (
        "a version with no regions",
        "images.0.versions.1.regions",
        [],
        f"{V}.regions: list at least 1 entry here; got none",
    ),
    (
        "duplicate consumer name across scaleSets and vmGroups",
        "vmGroups.0.name",
        "web-us",
        "imagefactory:scaleSets: consumer 'web-us' is defined more than once (names are "
        "shared by scaleSets and vmGroups)",
    ),
    (
        "duplicate identifier",
        "images.1.identifier",
        {"publisher": "contoso-platform", "offer": "webserver", "sku": "ubuntu-24_04"},
        "imagefactory:images: identifier 'contoso-platform:webserver:ubuntu-24_04' is used "
        "by more than one image; publisher/offer/sku must be unique within the gallery",
    ),
    (
        "bad CIDR",
        "network",
        {"builderAddressSpace": "10.42.0.0/33"},
        "imagefactory:network.builderAddressSpace: '10.42.0.0/33' is not a CIDR block; "
        "expected e.g. '10.42.0.0/16'",
    ),
    (
        "subnet outside its address space",
        "network",
        {"consumerSubnet": "10.61.1.0/24"},
        "imagefactory:network.consumerSubnet: '10.61.1.0/24' is not inside "
        "imagefactory:network.consumerAddressSpace '10.60.0.0/16'",
    ),
    (
        "capacity below 0",
        "scaleSets.0.capacity",
        -1,
        "imagefactory:scaleSets[0].capacity: -1 is out of range; allowed: 0 to 1000",
    ),
    (
        "capture stop timeout below a minute",
        "capture.stopTimeoutSeconds",
        30,
        "imagefactory:capture.stopTimeoutSeconds: 30 is out of range; allowed: 60 to 86400",
    ),
    (
        "OS disk smaller than the marketplace images",
        "builder.osDiskSizeGb",
        20,
        "imagefactory:builder.osDiskSizeGb: 20 is out of range; allowed: 30 to 4095",
    ),
    (
        "run command timeout of zero",
        "builder.runCommandTimeoutMinutes",
        0,
        "imagefactory:builder.runCommandTimeoutMinutes: 0 is out of range; allowed: 1 to 1440",
    ),
    (
        "replication timeout too short",
        "replicationTimeoutMinutes",
        5,
        "imagefactory:replicationTimeoutMinutes: 5 is out of range; allowed: 10 to 1440",
    ),
    (
        "scale-set-name",
        "scaleSets.0.name",
        "Web_US",
        "imagefactory:scaleSets[0].name: 'Web_US' is not a valid scale set name; use 1-64 "
        "letters, digits and single hyphens, starting with a letter",
    ),
    (
        "vm-group-name",
        "vmGroups.0.name",
        "iis-" + "x" * 40,
        f"imagefactory:vmGroups[0].name: 'iis-{'x' * 40}' is not a valid VM group name; use "
        "1-40 letters, digits and single hyphens, starting with a letter",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_one_broken_value_one_exact_problem(
    prod_raw: dict[str, Any], path: str, value: Any, expected: str
) -> None:
    put(prod_raw, path, value)
    assert problems(prod_raw) == [expected]


@pytest.mark.parametrize("name", ["web server", "-web", "web.", "w" * 81])
def test_definition_name_rules(prod_raw: dict[str, Any], name: str) -> None:
    put(prod_raw, "images.0.name", name)
    for consumer in prod_raw["scaleSets"]:
        consumer["image"] = name  # the consumers follow the rename
    assert problems(prod_raw) == [
        f"imagefactory:images[0].name: {name!r} is not a valid image definition name; "
        f"use 1-80 {IDENT_RULE}"
    ]


def test_definition_name_of_80_with_dots_and_hyphens_is_allowed(
    prod_raw: dict[str, Any],
) -> None:
    name = "Web_server.v2-" + "x" * 66
    put(prod_raw, "images.0.name", name)
    for consumer in prod_raw["scaleSets"]:
        consumer["image"] = name
    assert load(prod_raw).images[0].name == name


def test_gallery_name_of_80_is_allowed(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "gallery.name", "Imgf.prod_" + "g" * 70)
    assert load(prod_raw).gallery.name == "Imgf.prod_" + "g" * 70


def test_missing_required_top_level_key(prod_raw: dict[str, Any]) -> None:
    del prod_raw["location"]
    assert problems(prod_raw) == ["imagefactory:location: required key is missing"]


def test_missing_required_nested_key_does_not_echo_into_consumers(
    prod_raw: dict[str, Any],
) -> None:
    # The scale sets use this image; they must not also be told it does not exist.
    del prod_raw["images"][0]["identifier"]
    assert problems(prod_raw) == ["imagefactory:images[0].identifier: required key is missing"]


def test_one_bad_replica_in_a_one_version_stack_is_one_problem(dev_raw: dict[str, Any]) -> None:
    put(dev_raw, "images.0.versions.0.regions.0.replicas", 0)
    assert problems(dev_raw) == [
        "imagefactory:images[0].versions[0].regions[0].replicas: 0 is out of range; allowed: "
        "1 to 100"
    ]


def test_source_region_must_be_a_target(prod_raw: dict[str, Any]) -> None:
    # iis 1.0.0 only in westeurope: the gallery in eastus cannot publish it; the VM group in
    # eastus then has no replica either.
    prod_raw["images"][1]["versions"][0]["regions"].pop(0)
    assert problems(prod_raw) == [
        "imagefactory:images[1].versions[0].regions: the source region 'eastus' (config key "
        "imagefactory:location) must be one of the target regions; got westeurope",
        "imagefactory:vmGroups[0].region: 'eastus' has no replica of iis 1.0.0 (replicated "
        "to: westeurope); add the region to that version's regions or deploy the consumer "
        "where the version is",
    ]


def test_trusted_launch_builder_on_gen1(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "images.1.generation", "V1")
    assert problems(prod_raw) == [
        "imagefactory:images[1].securityType: 'TrustedLaunch' needs generation "
        "'V2'; Trusted Launch and confidential VMs do not support Gen1 (set generation: V2 "
        "or securityType: Standard)",
        "imagefactory:images[1].builder.securityType: 'TrustedLaunch' needs generation 'V2'; "
        "a Gen1 VM cannot use Trusted Launch",
        "imagefactory:images[1].generation: 'V1' does not match the default base image "
        "MicrosoftWindowsServer:WindowsServer:2022-datacenter-g2:latest, which is a V2 image "
        "(the managed image and definition would be labelled V1 while the VM boots V2); use "
        "generation: V2, or a V1 base image such as baseImage.sku: 2022-datacenter",
    ]


def test_public_ranges_are_refused(prod_raw: dict[str, Any]) -> None:
    prod_raw["network"] = {"builderAddressSpace": "8.8.0.0/16", "builderSubnet": "8.8.1.0/24"}
    assert problems(prod_raw) == [
        f"imagefactory:network.builderAddressSpace: '8.8.0.0/16' is not a private range; {PRIVATE}",
        f"imagefactory:network.builderSubnet: '8.8.1.0/24' is not a private range; {PRIVATE}",
    ]


def test_duplicate_image(prod_raw: dict[str, Any]) -> None:
    prod_raw["images"].append(copy.deepcopy(prod_raw["images"][0]))
    assert problems(prod_raw) == [
        "imagefactory:images: image 'webserver' is defined more than once",
        "imagefactory:images: identifier 'contoso-platform:webserver:ubuntu-24_04' is used "
        "by more than one image; publisher/offer/sku must be unique within the gallery",
    ]


def test_no_images(prod_raw: dict[str, Any]) -> None:
    prod_raw["images"] = []
    assert problems(prod_raw) == [
        "imagefactory:images: list at least 1 entry here; got none",
        "imagefactory:scaleSets[0].image: 'webserver' is not an image of this stack; "
        "known images: none",
        "imagefactory:scaleSets[1].image: 'webserver' is not an image of this stack; "
        "known images: none",
        "imagefactory:vmGroups[0].image: 'iis' is not an image of this stack; known images: none",
    ]


# --- in-use guard --------------------------------------------------------------------------


def test_removing_a_pinned_version_is_refused(prod_raw: dict[str, Any]) -> None:
    prod_raw["images"][0]["versions"].pop(0)  # web-eu pins webserver 1.0.0
    assert problems(prod_raw) == [
        "imagefactory:scaleSets[1].version: '1.0.0' is not a version of image 'webserver' "
        "(known: 1.1.0); 'web-eu' still pins it, so keep that version in config until no "
        "consumer uses it"
    ]


def test_removing_a_version_a_vm_group_pins_is_refused(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "images.1.versions.0.version", "1.0.1")
    assert problems(prod_raw) == [
        "imagefactory:vmGroups[0].version: '1.0.0' is not a version of image 'iis' (known: "
        "1.0.1); 'iis-us' still pins it, so keep that version in config until no consumer "
        "uses it"
    ]


def test_excluding_every_version_from_latest_is_refused(prod_raw: dict[str, Any]) -> None:
    for version in prod_raw["images"][0]["versions"]:
        version["excludeFromLatest"] = True
    assert problems(prod_raw) == [
        "imagefactory:scaleSets[0].version: 'latest' of image 'webserver' resolves to no "
        "version: every version is excluded from latest; 'web-us' still uses it, so keep at "
        "least one version in latest"
    ]


def test_removing_the_last_version_names_every_consumer(prod_raw: dict[str, Any]) -> None:
    prod_raw["images"][0]["versions"] = []
    assert problems(prod_raw) == [
        "imagefactory:images[0].versions: list at least 1 entry here; got none",
        "imagefactory:scaleSets[0].version: 'latest' of image 'webserver' resolves to no "
        "version: the image lists none; 'web-us' still uses it, so keep at least one version "
        "in latest",
        "imagefactory:scaleSets[1].version: '1.0.0' is not a version of image 'webserver' "
        "(known: none); 'web-eu' still pins it, so keep that version in config until no "
        "consumer uses it",
    ]


def test_excluding_the_newest_moves_latest_back(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "images.0.versions.1.excludeFromLatest", True)
    image = load(prod_raw).images[0]
    assert image.find("latest") is image.versions[0]


# --- all at once ---------------------------------------------------------------------------


def test_five_mistakes_in_different_places_are_all_reported(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "images.0.versions.0.regions.1.name", "westeuropa")
    put(prod_raw, "images.1.versions.0.regions.1.replicas", 0)
    put(prod_raw, "scaleSets.0.upgradePolicy", "Sometimes")
    put(prod_raw, "vmGroups.0.count", "two")
    put(prod_raw, "gallery.name", "imgf-prod")
    assert problems(prod_raw) == [
        "imagefactory:gallery.name: 'imgf-prod' is not a valid gallery name; " + GALLERY_RULE,
        "imagefactory:images[0].versions[0].regions[1].name: 'westeuropa' is not an Azure "
        f"region (did you mean 'westeurope'?); {REGION_HINT}",
        "imagefactory:images[1].versions[0].regions[1].replicas: 0 is out of range; allowed: "
        "1 to 100",
        "imagefactory:scaleSets[0].upgradePolicy: 'Sometimes' is not allowed; allowed "
        "values: 'Rolling', 'Automatic' or 'Manual'",
        "imagefactory:vmGroups[0].count: 'two' is not a whole number; allowed: 1 to 100",
    ]


def test_render_counts_and_lists_problems() -> None:
    err = ConfigError(["imagefactory:a: x", "imagefactory:b: y"])
    assert (
        err.render() == "2 problems in stack config:\n  - imagefactory:a: x\n  - imagefactory:b: y"
    )
    assert ConfigError(["imagefactory:a: x"]).render() == (
        "1 problem in stack config:\n  - imagefactory:a: x"
    )


# --- through the real program --------------------------------------------------------------


def test_program_refuses_bad_config_before_registering_anything() -> None:
    monitor = engine.RecordingMonitor(engine.AzureMocks())
    config = engine.stack_config("prod")
    config["imagefactory:namePrefix"] = "Imgf_Prod"
    config["imagefactory:images"][0]["versions"][0]["regions"][0]["replicas"] = 0
    with pytest.raises(pulumi.RunError) as caught:
        engine.run("prod", config=config, monitor=monitor)
    assert str(caught.value) == (
        "2 problems in stack config:\n"
        f"  - imagefactory:namePrefix: 'Imgf_Prod' is not a valid name prefix; {PREFIX_RULE}\n"
        "  - imagefactory:images[0].versions[0].regions[0].replicas: 0 is out of range; "
        "allowed: 1 to 100"
    )
    # Not one resource of the program (the monitor leaves out the engine's root stack).
    assert monitor.registered == []


def test_program_reports_unknown_keys_from_the_stack_file() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:replicationTimeout"] = 30
    with pytest.raises(pulumi.RunError) as caught:
        engine.run("dev", config=config)
    assert str(caught.value) == (
        "1 problem in stack config:\n"
        "  - imagefactory:replicationTimeout: unknown key (did you mean "
        f"'replicationTimeoutMinutes'?); allowed keys: {TOP_KEYS}"
    )


def test_principal_ids_are_compared_in_lower_case_and_values_trimmed(
    prod_raw: dict[str, Any],
) -> None:
    put(prod_raw, "gallery.sharing.0.principalId", "3F2A4C1E-8B7D-4E29-9A51-6C0D2E7F9B13")
    put(prod_raw, "scaleSets.1.region", " westeurope ")
    settings = load(prod_raw)
    assert settings.gallery.sharing[0].principal_id == "3f2a4c1e-8b7d-4e29-9a51-6c0d2e7f9b13"
    assert settings.scale_sets[1].region == "westeurope"


def test_builder_defaults_fill_what_an_image_leaves_out(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "builder.osDiskSizeGb", 128)
    settings = load(prod_raw)
    web, iis, _hardened, _webapp = settings.images
    assert settings.builder_for(web).vm_size == "Standard_D2s_v5"
    assert settings.builder_for(iis).vm_size == "Standard_D4s_v5"
    assert settings.builder_for(iis).os_disk_size_gb == 128
    assert settings.builder_for(iis).security_type == "TrustedLaunch"
    assert settings.builder_for(web).security_type == "Standard"
