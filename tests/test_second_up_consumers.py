"""The second `pulumi up` for issue 13's features, as test_second_up does for the builds:
one edit of the prod stack file, and what the engine does to each resource, what Azure
refuses, and how the change reaches running machines (ROLLOUT)."""

from __future__ import annotations

import dataclasses
from typing import Any

from test_second_up import (
    HARDENED_STEPS,
    WEBAPP_STEPS,
    Config,
    _base,
    _by_name,
    _new_build,
    _rebuilt,
    _run,
    image,
    outcome,
    refused,
)

from offline import changes, refusals

CUSTOM_DATA = "[https://learn.microsoft.com/azure/virtual-machines/custom-data]"
ZONES_DOC = (
    "[https://learn.microsoft.com/azure/virtual-machine-scale-sets/"
    "virtual-machine-scale-sets-use-availability-zones]"
)


def rollout(resource: str, change: str, note: str) -> str:
    return refusals.Finding(refusals.ROLLOUT, resource, change, note=note).line()


def scale_set(c: Config, name: str) -> dict[str, Any]:
    return next(s for s in c["imagefactory:scaleSets"] if s["name"] == name)


def _reimage(how: str) -> str:
    return (
        "new instances get it at once; running instances keep theirs until they are reimaged "
        f"(az vmss reimage, a batch at a time; {how}) {CUSTOM_DATA}"
    )


REBUILT_VM = (
    "Azure sets both only when a VM is created: the VM is deleted and created anew under its "
    f"name, with a new OS disk {CUSTOM_DATA}"
)


# --- user data ---------------------------------------------------------------------------


def test_new_user_data_for_a_scale_set_on_latest_reaches_instances_when_reimaged() -> None:
    def edit(c: Config) -> None:
        scale_set(c, "web-us")["userData"]["values"]["apiUrl"] = "https://api2.contoso.example"

    actions, findings = outcome("prod", edit)
    assert actions == ["update scaleset-web-us-vmss: virtualMachineProfile.osProfile.customData"]
    assert findings == [
        rollout(
            "scaleset-web-us-vmss",
            "user data (custom data) changed",
            _reimage("or the next automatic OS image upgrade, which reimages them batch by batch"),
        )
    ]


def test_a_rolling_upgrade_does_not_bring_new_user_data() -> None:
    # Custom data FAQ: "Existing instances in the scale set that are upgraded won't get the
    # updated custom data."
    def edit(c: Config) -> None:
        scale_set(c, "web-eu")["userData"] = {
            "file": "linux/userdata/webserver.yaml",
            "values": {"environment": "prod", "apiUrl": "https://eu.contoso.example"},
        }

    actions, findings = outcome("prod", edit)
    assert actions == ["update scaleset-web-eu-vmss: virtualMachineProfile.osProfile.customData"]
    assert findings == [
        rollout(
            "scaleset-web-eu-vmss",
            "user data (custom data) changed",
            _reimage("its Rolling upgrade policy does not apply it"),
        )
    ]


def test_new_user_data_rebuilds_a_vm_group_and_runs_its_first_boot_again() -> None:
    def edit(c: Config) -> None:
        c["imagefactory:vmGroups"][0]["userData"]["values"]["environment"] = "production"

    actions, findings = outcome("prod", edit)
    assert actions == [
        "replace vmgroup-iis-us-000 (replace_on_changes osProfile.customData)",
        "replace vmgroup-iis-us-001 (replace_on_changes osProfile.customData)",
        "replace vmgroup-iis-us-000-firstboot (replace_with vmgroup-iis-us-000)",
        "replace vmgroup-iis-us-001-firstboot (replace_with vmgroup-iis-us-001)",
    ]
    assert findings == [
        rollout(f"vmgroup-iis-us-00{n}", "rebuilt for its user data or zone", REBUILT_VM)
        for n in (0, 1)
    ]


def test_without_replace_on_changes_new_custom_data_would_be_refused() -> None:
    """What the VM group's replace_on_changes prevents: Azure refuses a VM's custom data
    update ("This property cannot be updated after the VM is created")."""

    def edit(c: Config) -> None:
        c["imagefactory:vmGroups"][0]["userData"]["values"]["environment"] = "production"

    after = [
        dataclasses.replace(r, replace_on_changes=[]) if r.name == "vmgroup-iis-us-000" else r
        for r in _run("prod", edit)
    ]
    d = changes.diff(_base("prod"), after)
    assert [f.line() for f in refusals.check(d) if f.level == refusals.REFUSED] == [
        refused("vmgroup-iis-us-000", "update of osProfile.customData", "vm-custom-data")
    ]


# --- zones -------------------------------------------------------------------------------


def test_zones_added_to_a_regional_scale_set_take_new_instances_only() -> None:
    actions, findings = outcome("prod", lambda c: scale_set(c, "web-eu").update(zones=["1", "2"]))
    assert actions == ["update scaleset-web-eu-vmss: zoneBalance, zones"]
    assert findings == [
        rollout(
            "scaleset-web-eu-vmss",
            "zones 1, 2 added",
            "running instances stay where they are and new ones go to every zone: scale out, "
            f"then in, to spread them (Azure removes the old instances first) {ZONES_DOC}",
        )
    ]


def test_a_zone_cannot_leave_a_scale_set() -> None:
    actions, findings = outcome("prod", lambda c: scale_set(c, "web-us").update(zones=["1", "2"]))
    assert actions == ["update scaleset-web-us-vmss: zones"]
    assert findings == [refused("scaleset-web-us-vmss", "zones 1, 2, 3 -> 1, 2", "scale-set-zones")]


def test_a_vm_whose_zone_changes_is_rebuilt() -> None:
    # iis-us-000 stays in zone 1; iis-us-001 moves from zone 2 to zone 3.
    actions, findings = outcome(
        "prod", lambda c: c["imagefactory:vmGroups"][0].update(zones=["1", "3"])
    )
    assert actions == [
        "replace vmgroup-iis-us-001 (replace_on_changes zones)",
        "replace vmgroup-iis-us-001-firstboot (replace_with vmgroup-iis-us-001)",
    ]
    assert findings == [
        rollout("vmgroup-iis-us-001", "rebuilt for its user data or zone", REBUILT_VM)
    ]


# --- autoscale ----------------------------------------------------------------------------


def test_autoscale_limits_change_the_setting_alone() -> None:
    for edit in (
        lambda c: scale_set(c, "web-us")["autoscale"].update(maximum=20),
        # The default too: the scale set's own count is autoscale's from creation on.
        lambda c: scale_set(c, "web-us")["autoscale"].update(default=4),
    ):
        actions, findings = outcome("prod", edit)
        assert actions == ["update scaleset-web-us-autoscale: profiles"]
        assert findings == []


def test_removing_autoscale_sets_the_count_again() -> None:
    actions, findings = outcome("prod", lambda c: scale_set(c, "web-us").pop("autoscale"))
    assert actions == [
        "update scaleset-web-us-vmss: sku.capacity",
        "delete scaleset-web-us-autoscale",
    ]
    assert findings == [
        rollout(
            "scaleset-web-us-vmss",
            "autoscale removed",
            "the scale set is set to 2 instances, whatever count autoscale left it at; Azure "
            "adds or deletes instances to match",
        )
    ]


# --- images built on images -----------------------------------------------------------------


def test_a_new_base_version_rebuilds_the_image_on_its_latest_and_leaves_its_version() -> None:
    def publish(c: Config) -> None:
        image(c, "hardened")["versions"].append(
            {"version": "1.1.0", "regions": [{"name": "eastus", "storage": "Standard_ZRS"}]}
        )

    actions, findings = outcome("prod", publish)
    assert _by_name(actions) == _by_name(
        [
            # The new base version is built and validated on its own test VM.
            *_new_build("hardened", "1.1.0", HARDENED_STEPS),
            "create version-hardened-1.1.0-version",
            # webapp 1.0.0's builder starts from the new base, and its test VM boots the new
            # capture; its published version keeps its source: users get the rebuild with a
            # new webapp version (offline.bump).
            *_rebuilt("webapp", "1.0.0", WEBAPP_STEPS, managed_image=True),
        ]
    )
    assert findings == []
