"""Settings for issue 13's features: user data and its secrets, autoscale, zones, and images
built on images. The real prod config loads with each of them; every rule rejects a bad
value with its exact message, one problem per mistake, and the program refuses it before it
registers anything."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest
import yaml
from test_settings import problems, put

from imagefactory import userdata
from imagefactory.chain import BaseRef
from imagefactory.settings import ConfigError, check, load
from offline import engine

AS = "imagefactory:scaleSets[0].autoscale"
SCHEDULE = f"{AS}.schedules[0]"
UD = "imagefactory:scaleSets[0].userData"
SECRETS = "imagefactory:userDataSecrets"
OTHER_GALLERY = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/platform-rg/providers/"
    "Microsoft.Compute/galleries/platform_gallery/images/ubuntu-hardened/versions/2.3.0"
)
KINDS = (
    "a Marketplace image (publisher, offer, sku), an image of this stack (image) or a gallery "
    "image version of another gallery (id)"
)
IN_CLEAR = (
    "holds a Pulumi secret, but the program uses this key's values in clear (names, sizes, tags "
    "and values become resource properties anyone with Reader sees); keep secret values in "
    "imagefactory:userDataSecrets and use them in a user data template"
)


# --- the real stacks -------------------------------------------------------------------


def _files(cloud_config: str) -> dict[str, str]:
    return {f["path"]: f["content"] for f in yaml.safe_load(cloud_config)["write_files"]}


def test_prod_loads_every_feature(prod_raw: dict[str, Any]) -> None:
    s = load(prod_raw)
    web_us, web_eu = s.scale_sets
    assert web_us.zones == ("1", "2", "3") and web_us.zone_balance is False
    assert web_eu.zones == () and web_eu.autoscale is None
    scaling = web_us.autoscale
    assert scaling is not None
    assert (scaling.minimum, scaling.default, scaling.maximum) == (2, 3, 12)
    assert (scaling.cpu.scale_out_above, scaling.cpu.scale_in_below) == (70, 30)
    assert (scaling.cpu.minutes, scaling.cpu.step, scaling.cpu.cooldown_minutes) == (10, 1, 5)
    (hours,) = scaling.schedules
    assert hours.days == ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
    assert (hours.start, hours.end, hours.time_zone) == ("07:00", "19:00", "Eastern Standard Time")
    assert (web_us.initial_capacity, web_us.most_instances) == (3, 12)
    (iis_us,) = s.vm_groups
    assert iis_us.zones == ("1", "2")
    # The stack file's ciphertext: a secret the offline engine cannot decrypt.
    assert s.user_data_secrets["appPoolPassword"].get_secret_value() == userdata.OFFLINE_SECRET
    assert repr(s.user_data_secrets["appPoolPassword"]) == "SecretStr('**********')"


def test_prod_user_data_renders_with_prods_values(prod_raw: dict[str, Any]) -> None:
    s = load(prod_raw)
    web_us = s.user_data_for(s.scale_sets[0])
    assert web_us is not None and web_us.secrets == ()
    assert _files(web_us.text)["/etc/imagefactory/environment"] == (
        "ENVIRONMENT=prod\nAPI_URL=https://api.contoso.example\n"
    )
    iis_us = s.user_data_for(s.vm_groups[0])
    assert iis_us is not None and iis_us.secrets == ("appPoolPassword",)
    assert f"$appPoolPassword = '{userdata.OFFLINE_SECRET}'" in iis_us.text
    assert s.user_data_for(s.scale_sets[1]) is None


def test_dev_renders_the_same_template_with_devs_values(dev_raw: dict[str, Any]) -> None:
    s = load(dev_raw)
    rendered = s.user_data_for(s.scale_sets[0])
    assert rendered is not None and rendered.path == "linux/userdata/webserver.yaml"
    assert _files(rendered.text)["/etc/imagefactory/environment"] == (
        "ENVIRONMENT=dev\nAPI_URL=https://api.dev.contoso.example\n"
    )


def test_webapp_is_built_on_the_newest_hardened_version(prod_raw: dict[str, Any]) -> None:
    s = load(prod_raw)
    _web, _iis, hardened, webapp = s.images
    assert s.base_of(webapp) == BaseRef(
        "image",
        "imgf_prod_gallery/hardened/1.0.0",
        image="hardened",
        version="1.0.0",
        follows_latest=True,
    )
    assert s.base_of(hardened) == BaseRef("marketplace", "Canonical:ubuntu-24_04-lts:server:latest")
    # Bases first, otherwise config order.
    assert [i.name for i in s.build_order()] == ["webserver", "iis", "hardened", "webapp"]
    # A new hardened version moves webapp's base (and so its builder's fingerprint).
    put(prod_raw, "images.2.versions", [*prod_raw["images"][2]["versions"], {
        "version": "1.1.0", "regions": [{"name": "eastus", "storage": "Standard_ZRS"}]
    }])  # fmt: skip
    assert load(prod_raw).base_of(load(prod_raw).images[3]).version == "1.1.0"


def test_a_chained_image_inherits_its_roots_purchase_plan(prod_raw: dict[str, Any]) -> None:
    plan = {"name": "9-base", "product": "rockylinux-x86_64", "publisher": "resf"}
    put(prod_raw, "images.2.baseImage", {
        "publisher": "resf", "offer": "rockylinux-x86_64", "sku": "9-base", "plan": plan
    })  # fmt: skip
    s = load(prod_raw)
    webapp = s.images[3]
    assert webapp.base.kind == "image"
    assert webapp.base.plan is not None
    assert webapp.base.plan.model_dump() == plan


def test_another_gallerys_version_loads_with_a_warning(prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "images.3.baseImage", {"id": OTHER_GALLERY})
    checked = check(prod_raw)
    assert checked.settings.base_of(checked.settings.images[3]) == BaseRef(
        "id", OTHER_GALLERY, id=OTHER_GALLERY
    )
    assert (
        "imagefactory:images[3].baseImage.id: the OS, generation, architecture and security "
        "type of another gallery's image were not checked; Azure refuses a mismatch when it "
        "creates the builder VM"
    ) in checked.warnings


# --- one rule each ---------------------------------------------------------------------

CASES: list[tuple[str, list[tuple[str, Any]], str]] = [
    # zones
    (
        "zone listed twice",
        [("scaleSets.0.zones", ["1", "1", "2"])],
        "imagefactory:scaleSets[0].zones: zone '1' is listed more than once",
    ),
    (
        "zone 4",
        [("scaleSets.0.zones", ["4"])],
        "imagefactory:scaleSets[0].zones[0]: '4' is not allowed; allowed values: '1', '2' or '3'",
    ),
    (
        "strict zone balance in one zone",
        [("scaleSets.0.zones", ["2"]), ("scaleSets.0.zoneBalance", True)],
        "imagefactory:scaleSets[0].zoneBalance: true needs at least two zones; strict zone "
        "balance spreads instances over several zones, and 'web-us' has 1",
    ),
    (
        "zones in a region without zones",
        [
            ("images.0.versions.0.regions.1", {"name": "westus", "storage": "Standard_LRS"}),
            ("scaleSets.1.region", "westus"),
            ("scaleSets.1.zones", ["1", "2"]),
        ],
        "imagefactory:scaleSets[1].zones: 'westus' has no availability zones, so a scale set "
        "there cannot be placed in zones; remove zones, or deploy in a region with zones "
        "(https://learn.microsoft.com/azure/reliability/regions-list)",
    ),
    # autoscale
    (
        "capacity beside autoscale",
        [("scaleSets.0.capacity", 3)],
        "imagefactory:scaleSets[0].capacity: 3 with autoscale; the scale set is created with "
        "autoscale.default instances and autoscale owns the count from then on, so remove "
        "capacity",
    ),
    (
        "default below minimum",
        [("scaleSets.0.autoscale.default", 1)],
        f"{AS}: minimum 2, default 1, maximum 12; autoscale needs minimum <= default <= maximum "
        "(the default is the count used when metrics are missing)",
    ),
    (
        "no margin between the CPU thresholds",
        [("scaleSets.0.autoscale.cpu.scaleInBelow", 70)],
        f"{AS}.cpu: scaleInBelow 70 is not below scaleOutAbove 70; with no margin between them "
        "every scale-in would be followed by a scale-out (Azure then skips the scale-in: "
        "'flapping'); leave a margin, e.g. scaleOutAbove: 70 and scaleInBelow: 30",
    ),
    (
        "CPU window under Azure's 5 minutes",
        [("scaleSets.0.autoscale.cpu.minutes", 3)],
        f"{AS}.cpu.minutes: 3 is out of range; allowed: 5 to 720",
    ),
    (
        "cooldown over Azure's week",
        [("scaleSets.0.autoscale.cpu.cooldownMinutes", 10081)],
        f"{AS}.cpu.cooldownMinutes: 10081 is out of range; allowed: 1 to 10080",
    ),
    (
        "more than a scale set's 1,000 instances",
        [("scaleSets.0.autoscale.maximum", 1001)],
        f"{AS}.maximum: 1001 is out of range; allowed: 1 to 1000",
    ),
    (
        "a time without its leading zero",
        [("scaleSets.0.autoscale.schedules.0.start", "7:00")],
        f"{SCHEDULE}.start: '7:00' is not a time of day; use HH:MM on the 24-hour clock, e.g. "
        "'08:00' (quote it: YAML reads 08:00 unquoted as a number)",
    ),
    (
        "an end before the start",
        [("scaleSets.0.autoscale.schedules.0.end", "06:00")],
        f"{SCHEDULE}.end: '06:00' is not after start '07:00'; a schedule runs within one day "
        "(split an overnight window into two schedules)",
    ),
    (
        "a time zone autoscale does not know",
        [("scaleSets.0.autoscale.schedules.0.timeZone", "Eastern Time")],
        f"{SCHEDULE}.timeZone: 'Eastern Time' is not a time zone autoscale knows (did you mean "
        "'Eastern Standard Time'?); use a Windows time zone name such as 'UTC', 'W. Europe "
        "Standard Time' or 'Eastern Standard Time' (az monitor autoscale profile list-timezones)",
    ),
    (
        "a schedule named like the default profile",
        [("scaleSets.0.autoscale.schedules.0.name", "default")],
        f"{SCHEDULE}.name: 'default' is not a schedule name; use 1-40 letters, digits, '-' and "
        "'_', starting and ending with a letter or digit, other than 'default'",
    ),
    (
        "a day's short name",
        [("scaleSets.0.autoscale.schedules.0.days", ["Mon"])],
        f"{SCHEDULE}.days[0]: 'Mon' is not allowed; allowed values: 'Monday', 'Tuesday', "
        "'Wednesday', 'Thursday', 'Friday', 'Saturday' or 'Sunday'",
    ),
    (
        "schedule limits out of order",
        [("scaleSets.0.autoscale.schedules.0.default", 13)],
        f"{SCHEDULE}: minimum 4, default 13, maximum 12; autoscale needs minimum <= default <= "
        "maximum (the default is the count used when metrics are missing)",
    ),
    # user data
    (
        "a template that does not exist",
        [("scaleSets.0.userData.file", "linux/userdata/web.yaml")],
        f"{UD}.file: 'linux/userdata/web.yaml' does not exist under scripts/; templates live in "
        "scripts/linux/userdata/ (paths are relative to scripts/)",
    ),
    (
        "a placeholder without a value",
        [("scaleSets.0.userData.values", {"environment": "prod"})],
        f"{UD}.values: linux/userdata/webserver.yaml line 13 uses {{{{ apiUrl }}}}, which has no "
        f"value; give it under values, or as {SECRETS}.apiUrl if it is a secret (given: "
        f"environment, {SECRETS}.appPoolPassword)",
    ),
    (
        "a value no placeholder uses",
        [("scaleSets.0.userData.values.enviroment", "prod")],
        f"{UD}.values.enviroment: not used by linux/userdata/webserver.yaml (did you mean "
        "'environment'?); its placeholders: environment, apiUrl",
    ),
    (
        "a cloud-init file for a Windows group",
        [("vmGroups.0.userData.file", "linux/userdata/webserver.yaml")],
        "imagefactory:vmGroups[0].userData.file: 'linux/userdata/webserver.yaml' is not a "
        "PowerShell script; a windows consumer runs its first-boot script with the Custom Script "
        "Extension, so the file must end in .ps1",
    ),
    (
        "an unknown user data key",
        [("scaleSets.0.userData.template", "x")],
        f"{UD}.template: unknown key; allowed keys: file, values",
    ),
    # secrets
    (
        "a secret written in clear",
        [("userDataSecrets.appPoolPassword", "Passw0rd!")],
        f"{SECRETS}.appPoolPassword: is not a Pulumi secret, so its value sits in clear in the "
        "stack file (not shown here); set it with: pulumi config set --secret --path "
        "'imagefactory:userDataSecrets.appPoolPassword' <value>",
    ),
    (
        "a secret that is not text",
        [("userDataSecrets.appPoolPassword", {"value": "Passw0rd!"})],
        f"{SECRETS}.appPoolPassword: a secret value is one piece of text; a mapping or list was "
        "given (its value is not shown)",
    ),
    (
        "a secret name a template cannot write",
        [("userDataSecrets.app-pw", {"secure": "AAABAC0="})],
        f"{SECRETS}.app-pw: not a placeholder name; names are letters, digits and '_', not "
        "starting with a digit, as a template writes them",
    ),
    (
        "a secret inside the tags",
        [("tags.team", {"secure": "AAABAC0="})],
        f"imagefactory:tags: {IN_CLEAR}",
    ),
    # images built on images
    (
        "a base image that is not in the stack",
        [("images.3.baseImage.image", "hardend")],
        "imagefactory:images[3].baseImage.image: 'hardend' is not an image of this stack (did "
        "you mean 'hardened'?); known images: hardened, iis, webapp, webserver",
    ),
    (
        "an image built on itself",
        [("images.3.baseImage.image", "webapp")],
        "imagefactory:images[3].baseImage.image: 'webapp' is this image itself; an image starts "
        "from another image, a Marketplace image or a gallery image version",
    ),
    (
        "two images built on each other",
        [("images.2.baseImage", {"image": "webapp"})],
        "imagefactory:images[2].baseImage.image: images hardened -> webapp -> hardened are built "
        "on each other; one of them must start from a Marketplace image or a gallery image "
        "version id",
    ),
    (
        "a base version that does not exist",
        [("images.3.baseImage.version", "2.0.0")],
        "imagefactory:images[3].baseImage.version: '2.0.0' is not a version of image 'hardened' "
        "(known: 1.0.0); 'webapp' is built on it",
    ),
    (
        "latest of a base with nothing in latest",
        [("images.2.versions.0.excludeFromLatest", True)],
        "imagefactory:images[3].baseImage.version: 'latest' of image 'hardened' resolves to no "
        "version: every version is excluded from latest; 'webapp' is built on it, so keep at "
        "least one version in latest or pin one",
    ),
    (
        "two kinds of base",
        [("images.3.baseImage", {"image": "hardened", "publisher": "Canonical"})],
        "imagefactory:images[3].baseImage: publisher/offer/sku and image are two kinds of base; "
        f"give one: {KINDS}",
    ),
    (
        "no base at all",
        [("images.3.baseImage", {})],
        f"imagefactory:images[3].baseImage: no base given; give {KINDS}",
    ),
    (
        "half a Marketplace image",
        [("images.3.baseImage", {"publisher": "Canonical"})],
        "imagefactory:images[3].baseImage: a Marketplace image needs publisher, offer and sku; "
        "missing: offer, sku",
    ),
    (
        "a plan on an image of the stack",
        [("images.3.baseImage.plan", {"name": "a", "product": "b", "publisher": "c"})],
        "imagefactory:images[3].baseImage: plan: an image of this stack carries its own base's "
        "plan already; remove plan",
    ),
    (
        "a definition id instead of a version id",
        [("images.3.baseImage", {"id": OTHER_GALLERY.rsplit("/versions/", 1)[0]})],
        f"imagefactory:images[3].baseImage.id: {OTHER_GALLERY.rsplit('/versions/', 1)[0]!r} is "
        "not a gallery image version id; expected /subscriptions/<subscription>/resourceGroups/"
        "<group>/providers/Microsoft.Compute/galleries/<gallery>/images/<image>/versions/"
        "<MAJOR.MINOR.PATCH> (or a /SharedGalleries/... or /CommunityGalleries/... version id); "
        "a definition id would mean its latest version at build time",
    ),
    (
        "a version beside an id",
        [("images.3.baseImage", {"id": OTHER_GALLERY, "version": "2.3.0"})],
        "imagefactory:images[3].baseImage: version is part of the id (.../versions/1.2.3); "
        "remove version",
    ),
    (
        "another architecture than the base",
        [
            ("images.3.architecture", "Arm64"),
            ("images.3.builder", {"vmSize": "Standard_D2ps_v5"}),
            ("images.3.validation", {"vmSize": "Standard_D2ps_v5"}),
        ],
        "imagefactory:images[3].architecture: 'Arm64' does not match its base 'hardened', which "
        "is 'x64'; a VM boots what its base is, so use architecture: x64",
    ),
    (
        "another generation than the base",
        [("images.3.generation", "V1"), ("images.3.securityType", "Standard")],
        "imagefactory:images[3].generation: 'V1' does not match its base 'hardened', which is "
        "'V2'; a VM boots what its base is, so use generation: V2",
    ),
    (
        "another OS than the base",
        [("images.3.os", "windows"), ("images.3.scripts", ["windows/provision/90-manifest.ps1"])],
        "imagefactory:images[3].os: 'windows' does not match its base 'hardened', which is "
        "'linux'; a VM boots what its base is, so use os: linux",
    ),
    (
        "more security than the base supports",
        [("images.2.securityType", "Standard")],
        "imagefactory:images[3].securityType: 'TrustedLaunchSupported' promises TrustedLaunch "
        "VMs, which its base 'hardened' ('Standard') does not support; an image supports at most "
        "what its base does (allowed: 'Standard')",
    ),
    (
        "an OS disk smaller than the base's",
        [("images.2.builder", {"osDiskSizeGb": 64}), ("images.3.builder", {"osDiskSizeGb": 40})],
        "imagefactory:images[3].builder.osDiskSizeGb: 40 GiB is smaller than the 64 GiB OS disk "
        "of its base 'hardened'; a disk cannot be smaller than its image: use at least 64, or "
        "leave it out to take the base's size",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_mistake_one_exact_problem(
    prod_raw: dict[str, Any], edits: list[tuple[str, Any]], expected: str
) -> None:
    for path, value in edits:
        put(prod_raw, path, value)
    assert problems(prod_raw) == [expected]


def test_a_standard_builder_cannot_start_from_a_trusted_launch_only_base(
    prod_raw: dict[str, Any],
) -> None:
    put(prod_raw, "images.2.securityType", "TrustedLaunch")
    put(prod_raw, "images.2.builder", {"securityType": "TrustedLaunch"})
    assert problems(prod_raw) == [
        "imagefactory:images[3].builder.securityType: 'Standard' cannot start from its base "
        "'hardened', whose definition is 'TrustedLaunch' (Azure creates only TrustedLaunch VMs "
        "from it); allowed: TrustedLaunch",
        "imagefactory:images[3].securityType: 'TrustedLaunchSupported' promises Standard VMs, "
        "which its base 'hardened' ('TrustedLaunch') does not support; an image supports at most "
        "what its base does (allowed: 'TrustedLaunch')",
    ]
    # Both fixed: a Trusted Launch builder publishing into a TrustedLaunch definition.
    put(prod_raw, "images.3.securityType", "TrustedLaunch")
    put(prod_raw, "images.3.builder", {"securityType": "TrustedLaunch"})
    assert load(prod_raw).builder_for(load(prod_raw).images[3]).security_type == "TrustedLaunch"


def test_overlapping_and_too_many_schedules(prod_raw: dict[str, Any]) -> None:
    schedules = prod_raw["scaleSets"][0]["autoscale"]["schedules"]
    schedules.append(
        {
            "name": "lunch",
            "days": ["Friday", "Saturday"],
            "start": "11:00",
            "end": "14:00",
            "timeZone": "Eastern Standard Time",
            "minimum": 6,
            "maximum": 12,
            "default": 6,
        }
    )
    assert problems(prod_raw) == [
        f"{AS}.schedules[1]: 'lunch' (11:00-14:00) overlaps 'business-hours' (07:00-19:00) on "
        "Friday; one profile runs at a time, so schedules must not overlap"
    ]
    prod_raw["scaleSets"][0]["autoscale"]["schedules"] = [
        {
            "name": f"s{n}",
            "days": ["Sunday"],
            "start": f"{n:02d}:00",
            "end": f"{n:02d}:30",
            "minimum": 1,
            "maximum": 2,
            "default": 1,
        }
        for n in range(10)
    ]
    assert problems(prod_raw) == [
        f"{AS}.schedules: 10 schedules need 21 autoscale profiles (the default, and a start and "
        "an end profile per schedule); Azure allows 20 per autoscale setting, so at most 9 "
        "schedules"
    ]
    prod_raw["scaleSets"][0]["autoscale"]["schedules"].pop()
    assert len(load(prod_raw).scale_sets[0].autoscale.schedules) == 9  # type: ignore[union-attr]


def test_autoscale_maximum_sizes_the_subnet(prod_raw: dict[str, Any]) -> None:
    # 12 scale set instances at most and 2 VMs in eastus: a /28 (11 usable) is too small.
    put(prod_raw, "network", {"consumerSubnet": "10.60.1.0/28"})
    assert problems(prod_raw) == [
        "imagefactory:network.consumerSubnet: '10.60.1.0/28' has 11 usable addresses (Azure "
        "reserves 5), but the scale set instances and VMs in 'eastus' need 14; use a larger "
        "subnet"
    ]


# --- secrets: as Pulumi marks them ------------------------------------------------------


def test_pulumi_marked_secrets_are_secret_and_other_secret_keys_are_refused(
    prod_raw: dict[str, Any],
) -> None:
    prod_raw["userDataSecrets"] = {"appPoolPassword": "S3cret-from-the-CLI"}
    s = load(prod_raw, secret_keys=["userDataSecrets"])
    rendered = s.user_data_for(s.vm_groups[0])
    assert rendered is not None
    assert "$appPoolPassword = 'S3cret-from-the-CLI'" in rendered.text
    assert rendered.secrets == ("appPoolPassword",)
    # The CLI marks a whole key secret when anything inside it is: names and sizes in
    # scaleSets would then reach Azure (and every plan) in clear.
    with pytest.raises(ConfigError) as err:
        load(prod_raw, secret_keys=["userDataSecrets", "scaleSets"])
    assert err.value.problems == [f"imagefactory:scaleSets: {IN_CLEAR}"]


def test_a_secret_with_a_line_break_is_refused_without_showing_it(
    prod_raw: dict[str, Any],
) -> None:
    prod_raw["userDataSecrets"] = {"appPoolPassword": "first\nsecond"}
    with pytest.raises(ConfigError) as err:
        load(prod_raw, secret_keys=["userDataSecrets"])
    assert err.value.problems == [
        f"{SECRETS}.appPoolPassword: holds a line break or control character (its value is not "
        "shown); a value is one line of text"
    ]
    assert "first" not in err.value.render()


def test_the_program_refuses_a_bad_feature_before_registering_anything() -> None:
    monitor = engine.RecordingMonitor(engine.AzureMocks())
    config = copy.deepcopy(engine.stack_config("prod"))
    config["imagefactory:scaleSets"][0]["autoscale"]["default"] = 20
    config["imagefactory:images"][3]["baseImage"]["image"] = "hardend"
    with pytest.raises(pulumi.RunError) as caught:
        engine.run("prod", config=config, monitor=monitor)
    assert str(caught.value) == (
        "2 problems in stack config:\n"
        "  - imagefactory:images[3].baseImage.image: 'hardend' is not an image of this stack "
        "(did you mean 'hardened'?); known images: hardened, iis, webapp, webserver\n"
        f"  - {AS}: minimum 2, default 20, maximum 12; autoscale needs minimum <= default <= "
        "maximum (the default is the count used when metrics are missing)"
    )
    assert monitor.registered == []
