"""The real program's consumers and chained builds under the mock engine: user data, zones,
autoscale, images built on images, and secrets that stay secret end to end."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pulumi.runtime import config as runtime_config

from imagefactory import userdata
from offline import changes, engine, plan, plandiff, refusals
from offline.engine import Registered, Run

VERSION = "azure-native:compute:GalleryImageVersion"
RUN_COMMAND = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
AUTOSCALE = "azure-native:monitor:AutoscaleSetting"
EXTENSION = "azure-native:compute:VirtualMachineExtension"
SECRET = "S3cret-9f2c-appPool"
OTHER_GALLERY = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/platform-rg/providers/"
    "Microsoft.Compute/galleries/platform_gallery/images/ubuntu-hardened/versions/2.3.0"
)


@pytest.fixture(scope="module")
def prod() -> Run:
    return engine.run("prod")


def version_of(run: Run, image: str, number: str) -> Registered:
    (found,) = [
        r
        for r in run.of_type(VERSION)
        if r.inputs["galleryImageName"] == image and r.inputs["galleryImageVersionName"] == number
    ]
    return found


def decoded(custom_data: Any) -> str:
    return base64.b64decode(str(custom_data)).decode()


# --- scale sets: zones, autoscale, user data ----------------------------------------------


def test_web_us_spreads_over_three_zones_and_may_grow_past_100(prod: Run) -> None:
    vmss = prod.named("scaleset-web-us-vmss")
    assert vmss.inputs["zones"] == ["1", "2", "3"]
    assert vmss.inputs["zoneBalance"] is False
    for scale_set in prod.of_type("azure-native:compute:VirtualMachineScaleSet"):
        assert scale_set.inputs["singlePlacementGroup"] is False
    eu = prod.named("scaleset-web-eu-vmss")
    assert "zones" not in eu.inputs and "zoneBalance" not in eu.inputs


def test_autoscale_owns_the_instance_count(prod: Run) -> None:
    vmss = prod.named("scaleset-web-us-vmss")
    # Created with autoscale's default, then never set again by the program.
    assert vmss.inputs["sku"] == {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": 3.0}
    assert vmss.ignore_changes == ["sku.capacity"]
    assert prod.named("scaleset-web-eu-vmss").ignore_changes == []


def test_the_autoscale_setting_targets_the_scale_set_with_its_profiles(prod: Run) -> None:
    (setting,) = prod.of_type(AUTOSCALE)
    vmss = prod.named("scaleset-web-us-vmss")
    assert setting.name == "scaleset-web-us-autoscale"
    assert setting.parent == prod.named("scaleset-web-us").urn
    assert setting.inputs["autoscaleSettingName"] == "web-us-autoscale"
    assert setting.inputs["targetResourceUri"] == vmss.id
    assert setting.inputs["targetResourceLocation"] == setting.inputs["location"] == "eastus"
    assert setting.inputs["enabled"] is True
    assert vmss.urn in setting.property_dependencies["targetResourceUri"]

    def cpu(operator: str, threshold: float, direction: str) -> dict[str, Any]:
        return {
            "metricTrigger": {
                "metricName": "Percentage CPU",
                "metricNamespace": "microsoft.compute/virtualmachinescalesets",
                "metricResourceUri": vmss.id,
                "timeGrain": "PT1M",
                "statistic": "Average",
                "timeWindow": "PT10M",
                "timeAggregation": "Average",
                "operator": operator,
                "threshold": threshold,
            },
            "scaleAction": {
                "direction": direction,
                "type": "ChangeCount",
                "value": "1",
                "cooldown": "PT5M",
            },
        }

    rules = [cpu("GreaterThan", 70.0, "Increase"), cpu("LessThan", 30.0, "Decrease")]
    weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

    def at(hour: int) -> dict[str, Any]:
        return {
            "frequency": "Week",
            "schedule": {
                "days": weekdays,
                "hours": [hour],
                "minutes": [0],
                "timeZone": "Eastern Standard Time",
            },
        }

    assert setting.inputs["profiles"] == [
        {
            "name": "default",
            "capacity": {"minimum": "2", "maximum": "12", "default": "3"},
            "rules": rules,
        },
        {
            "name": "business-hours",
            "capacity": {"minimum": "4", "maximum": "12", "default": "4"},
            "rules": rules,
            "recurrence": at(7),
        },
        {
            "name": "business-hours-end",
            "capacity": {"minimum": "2", "maximum": "12", "default": "3"},
            "rules": rules,
            "recurrence": at(19),
        },
    ]


def test_web_us_gets_prods_cloud_init_in_its_model(prod: Run) -> None:
    profile = prod.named("scaleset-web-us-vmss").inputs["virtualMachineProfile"]
    text = decoded(profile["osProfile"]["customData"])
    assert text.startswith("#cloud-config\n")
    files = {f["path"]: f["content"] for f in yaml.safe_load(text)["write_files"]}
    assert files["/etc/imagefactory/environment"] == (
        "ENVIRONMENT=prod\nAPI_URL=https://api.contoso.example\n"
    )
    # cloud-init runs it on Linux: no extension beside the health one.
    (health,) = profile["extensionProfile"]["extensions"]
    assert health["name"] == "health" and "provisionAfterExtensions" not in health
    assert (
        "customData"
        not in prod.named("scaleset-web-eu-vmss").inputs["virtualMachineProfile"]["osProfile"]
    )


# --- VM groups: zones in turn, a Windows first boot with a secret -----------------------------


def test_vm_group_vms_take_the_zones_in_turn(prod: Run) -> None:
    assert prod.named("vmgroup-iis-us-000").inputs["zones"] == ["1"]
    assert prod.named("vmgroup-iis-us-001").inputs["zones"] == ["2"]


def test_windows_vms_run_their_custom_data_with_the_custom_script_extension(prod: Run) -> None:
    loader = (userdata.SCRIPTS_DIR / userdata.WINDOWS_FIRST_BOOT_LOADER).read_text()
    group = prod.named("vmgroup-iis-us")
    for n in (0, 1):
        vm = prod.named(f"vmgroup-iis-us-00{n}")
        # The template takes a secret (appPoolPassword): the whole custom data is one.
        assert set(vm.inputs["osProfile"]["customData"]) == {"secret"}
        ext = prod.named(f"vmgroup-iis-us-00{n}-firstboot")
        assert ext.parent == group.urn
        assert ext.inputs["vmName"] == vm.inputs["vmName"]
        assert ext.inputs["vmExtensionName"] == "firstboot"
        assert (ext.inputs["publisher"], ext.inputs["type"], ext.inputs["typeHandlerVersion"]) == (
            "Microsoft.Compute",
            "CustomScriptExtension",
            "1.10",
        )
        assert ext.inputs["settings"] == userdata.first_boot_extension_settings(loader)
        assert "protectedSettings" not in ext.inputs
        assert ext.replace_with == [vm.urn]
        assert ext.deleted_with == vm.urn


def test_the_iis_script_gets_prods_values(prod: Run) -> None:
    vm = prod.named("vmgroup-iis-us-000")
    text = decoded(vm.inputs["osProfile"]["customData"]["secret"])
    assert "$environment = 'prod'" in text
    # Offline, the stack file's ciphertext cannot be decrypted: a placeholder, still secret.
    assert f"$appPoolPassword = '{userdata.OFFLINE_SECRET}'" in text


def test_a_windows_scale_set_runs_its_first_boot_before_it_reports_healthy() -> None:
    config = copy.deepcopy(engine.stack_config("prod"))
    config["imagefactory:scaleSets"].append(
        {
            "name": "iis-eu",
            "region": "westeurope",
            "image": "iis",
            "version": "latest",
            "userData": {"file": "windows/firstboot/iis.ps1", "values": {"environment": "prod"}},
        }
    )
    run = engine.run("prod", config=config)
    profile = run.named("scaleset-iis-eu-vmss").inputs["virtualMachineProfile"]
    first, health = profile["extensionProfile"]["extensions"]
    assert first["name"] == "firstboot" and first["type"] == "CustomScriptExtension"
    assert health["provisionAfterExtensions"] == ["firstboot"]
    assert set(profile["osProfile"]["customData"]) == {"secret"}
    # Automatic OS image upgrades (it follows latest) need in-place patching off.
    assert profile["osProfile"]["windowsConfiguration"]["enableAutomaticUpdates"] is False


# --- images built on images ------------------------------------------------------------------


def test_the_chained_build_starts_from_its_base_version_and_waits_for_it(prod: Run) -> None:
    base = version_of(prod, "hardened", "1.0.0")
    vm = prod.named("build-webapp-1.0.0-builder-vm")
    assert vm.inputs["storageProfile"]["imageReference"] == {"id": base.id}
    assert base.urn in vm.property_dependencies["storageProfile"]
    assert base.urn in vm.dependencies
    # The manifest records what it was built on: the gallery image and its version.
    manifest = prod.named("build-webapp-1.0.0-provision-90-manifest")
    assert (
        "export BASE_IMAGE=imgf_prod_gallery/hardened/1.0.0\n"
        in (manifest.inputs["source"]["script"])
    )
    # The base's own builder starts from the Marketplace.
    hardened = prod.named("build-hardened-1.0.0-builder-vm")
    assert hardened.inputs["storageProfile"]["imageReference"]["publisher"] == "Canonical"


def test_a_new_base_version_rebuilds_the_builds_on_its_latest(prod: Run) -> None:
    config = copy.deepcopy(engine.stack_config("prod"))
    hardened = next(i for i in config["imagefactory:images"] if i["name"] == "hardened")
    hardened["versions"].append(
        {"version": "1.1.0", "regions": [{"name": "eastus", "storage": "Standard_ZRS"}]}
    )
    run = engine.run("prod", config=config)
    before = prod.named("build-webapp-1.0.0-builder-vm")
    after = run.named("build-webapp-1.0.0-builder-vm")
    assert before.replacement_trigger != after.replacement_trigger
    assert after.inputs["storageProfile"]["imageReference"] == {
        "id": version_of(run, "hardened", "1.1.0").id
    }
    # Pinned to 1.0.0, nothing moves.
    next(i for i in config["imagefactory:images"] if i["name"] == "webapp")["baseImage"][
        "version"
    ] = "1.0.0"
    pinned = engine.run("prod", config=config).named("build-webapp-1.0.0-builder-vm")
    assert pinned.replacement_trigger == before.replacement_trigger


@pytest.mark.parametrize(
    ("image_id", "field"),
    [
        (OTHER_GALLERY, "id"),
        (
            "/SharedGalleries/abc-platform/Images/ubuntu-hardened/Versions/2.3.0",
            "sharedGalleryImageId",
        ),
        (
            "/CommunityGalleries/platform-4d2a/Images/ubuntu-hardened/Versions/2.3.0",
            "communityGalleryImageId",
        ),
    ],
)
def test_another_gallerys_version_goes_where_azure_takes_it(image_id: str, field: str) -> None:
    config = copy.deepcopy(engine.stack_config("prod"))
    next(i for i in config["imagefactory:images"] if i["name"] == "webapp")["baseImage"] = {
        "id": image_id
    }
    vm = engine.run("prod", config=config).named("build-webapp-1.0.0-builder-vm")
    assert vm.inputs["storageProfile"]["imageReference"] == {field: image_id}


# --- the plan reads it back --------------------------------------------------------------


def test_the_plan_shows_zones_autoscale_and_user_data(prod: Run) -> None:
    lines = plan.render_text(plan.build_plan(prod)).splitlines()
    assert (
        "        └── consumer: scale set web-us (eastus, zones 1, 2, 3 with best-effort balance, "
        "latest by automatic OS image upgrade); autoscale 2-12 (default 3), CPU > 70% +1 / < 30% "
        "-1 over 10 min, business-hours Mon-Fri 07:00-19:00 Eastern Standard Time: 4-12; user "
        "data by cloud-init: #cloud-config, 850 bytes"
    ) in lines
    assert (
        "│       ├── consumer: vm iis-us-000 (eastus, zone 1, pinned); user data by Custom Script "
        "Extension: [secret]"
    ) in lines
    assert (
        "│       ├── build: VM imgf-prod-bld-webapp-1-0-0 (Standard_D2s_v5, gallery image "
        "hardened 1.0.0)"
    ) in lines


# --- secrets end to end -----------------------------------------------------------------------


@pytest.fixture
def secret_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Runs prod as the Pulumi CLI would hand it a decrypted secret: the value, and the key in
    the secret keys (PULUMI_CONFIG_SECRET_KEYS)."""
    real = runtime_config.set_all_config

    def with_secret_keys(config: dict[str, str], secret_keys: list[str] | None = None) -> None:
        real(config, ["imagefactory:userDataSecrets"])

    monkeypatch.setattr(runtime_config, "set_all_config", with_secret_keys)

    def run(value: str) -> Run:
        config = copy.deepcopy(engine.stack_config("prod"))
        config["imagefactory:userDataSecrets"] = {"appPoolPassword": value}
        return engine.run("prod", config=config)

    yield run


def _in_clear(value: Any, needle: str) -> bool:
    """Whether `needle` (or its base64) appears outside a {"secret": ...} wrapper."""
    if isinstance(value, dict):
        if set(value) == {"secret"}:
            return False
        return any(_in_clear(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_in_clear(v, needle) for v in value)
    text = str(value)
    return needle in text or any(needle in decoded_text for decoded_text in _decodings(text))


def _decodings(text: str) -> list[str]:
    try:
        return [base64.b64decode(text, validate=True).decode("utf-8", errors="ignore")]
    except ValueError:
        return []


def test_a_secret_reaches_the_vm_only_as_a_pulumi_secret(secret_run: Any) -> None:
    run = secret_run(SECRET)
    vm = run.named("vmgroup-iis-us-000")
    wrapped = vm.inputs["osProfile"]["customData"]
    assert set(wrapped) == {"secret"}
    assert f"$appPoolPassword = '{SECRET}'" in decoded(wrapped["secret"])
    for res in run.resources:
        assert not _in_clear(res.inputs, SECRET), f"{res.name} holds the secret in clear"
    assert SECRET not in json.dumps(run.outputs, default=str)
    built = plan.build_plan(run)
    assert SECRET not in json.dumps(built, default=str)
    assert SECRET not in plan.render_text(built)
    assert SECRET not in plan.render_markdown(built)


def test_a_changed_secret_shows_as_a_rebuild_never_as_a_value(secret_run: Any) -> None:
    before, after = secret_run(SECRET), secret_run("another-secret-77")
    d = changes.diff(before.resources, after.resources)
    lines = [a.line() for a in d.changed()]
    assert lines == [
        "replace vmgroup-iis-us-000 (replace_on_changes osProfile.customData)",
        "replace vmgroup-iis-us-001 (replace_on_changes osProfile.customData)",
        "replace vmgroup-iis-us-000-firstboot (replace_with vmgroup-iis-us-000)",
        "replace vmgroup-iis-us-001-firstboot (replace_with vmgroup-iis-us-001)",
    ]
    results = {
        "prod": plandiff.StackDiff([], d.changed(), refusals.check(d)),
    }
    for fmt in ("text", "markdown", "json"):
        text = plandiff.render(results, fmt, "before", "after")
        assert SECRET not in text and "another-secret-77" not in text
