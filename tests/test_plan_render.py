"""The offline plan as people read it: the tree, the markdown table, and the CLI's errors."""

from __future__ import annotations

import re

import pytest

from offline import engine, plan


def test_dev_tree() -> None:
    text = plan.render_text(plan.build_plan(engine.run("dev")))
    assert text.splitlines() == [
        "stack dev: 31 resources",
        "gallery imgf_dev_gallery (imgf-dev-images-rg, eastus)",
        "└── image webserver (Linux, V2, TrustedLaunchSupported) "
        "contoso-platform/webserver/ubuntu-24_04-dev",
        "    └── version 0.1.0  [latest]",
        "        ├── build: VM imgf-dev-bld-webserver-0-1-0 "
        "(Standard_B2s, Canonical:ubuntu-24_04-lts:server:latest)",
        "        ├── steps: 01-10-base -> 02-20-webserver -> 03-90-manifest -> 04-audit -> "
        "05-generalize -> deallocate+generalize -> managed image imgf-dev-webserver-0.1.0",
        "        ├── validation: test VM imgf-dev-tst-webserver-0-1-0 (Standard_B2s) -> "
        "01-validate -> 02-check-10-base -> 03-check-20-webserver -> results -> publish",
        "        ├── replication (Shallow): eastus x1 Standard_LRS",
        "        └── consumer: scale set web-dev (eastus, latest by automatic OS image upgrade); "
        "user data by cloud-init: #cloud-config, 852 bytes",
    ]


def test_validation_off_is_said_per_build() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:validation"] = {"enabled": False}
    text = plan.render_text(plan.build_plan(engine.run("dev", config=config)))
    # The test VM, its NIC and key, its three Run Commands and the results are gone.
    assert text.splitlines()[0] == "stack dev: 24 resources"
    assert text.splitlines()[5:8] == [
        "        ├── steps: 01-10-base -> 02-20-webserver -> 03-90-manifest -> 04-audit -> "
        "05-generalize -> deallocate+generalize -> managed image imgf-dev-webserver-0.1.0",
        "        ├── validation: OFF (imagefactory:validation.enabled false): published untested",
        "        ├── replication (Shallow): eastus x1 Standard_LRS",
    ]


def test_validation_off_still_publishes_trusted_launch_through_staging() -> None:
    config = engine.stack_config("prod")
    config["imagefactory:validation"] = {"enabled": False}
    lines = plan.render_text(plan.build_plan(engine.run("prod", config=config))).splitlines()
    # 102 less the 4 test VMs with their NIC, key or password, checks and results.
    assert lines[0] == "stack prod: 76 resources"
    at = lines.index(
        "│       ├── steps: 01-10-iis -> 02-90-manifest -> 03-audit -> 04-generalize -> "
        "deallocate+generalize -> staging version imgf_prod_staging/iis/1.0.0 (Trusted Launch)"
    )
    assert lines[at + 1] == (
        "│       ├── validation: OFF (imagefactory:validation.enabled false): published untested"
    )


def test_prod_tree_marks_retired_protected_eol_and_trusted_launch() -> None:
    lines = plan.render_text(plan.build_plan(engine.run("prod"))).splitlines()
    assert lines[:2] == [
        "stack prod: 102 resources",
        # The staging gallery (build resource group, temporary) is not the stack's gallery.
        "gallery imgf_prod_gallery (imgf-prod-images-rg, eastus), shared with 2 principal(s)",
    ]
    assert "│   └── version 1.0.0  [latest, protected, EOL 2027-12-31]" in lines
    # A Trusted Launch build goes to a staging version; its test VM boots from it and the
    # version is published (copied from it) once the checks pass.
    at = lines.index(
        "│       ├── steps: 01-10-iis -> 02-90-manifest -> 03-audit -> 04-generalize -> "
        "deallocate+generalize -> staging version imgf_prod_staging/iis/1.0.0 (Trusted Launch)"
    )
    assert lines[at + 1] == (
        "│       ├── validation: test VM tst876efb69f4 (Standard_D4s_v5) -> 01-validate -> "
        "02-check-10-iis -> results -> publish"
    )
    assert (
        "│       ├── validation: test VM imgf-prod-tst-webapp-1-0-0 (Standard_D2as_v5) -> "
        "01-validate -> 02-check-20-webserver -> results -> publish"
    ) in lines
    assert "    ├── version 1.0.0  [protected]" in lines
    assert "    │   ├── build: retired (published version kept, builder removed)" in lines
    assert "    │   └── consumer: scale set web-eu (westeurope, pinned)" in lines
    assert "    └── version 1.1.0  [latest, protected]" in lines


def test_the_staging_gallery_is_no_published_image() -> None:
    """Its gallery, definition and version (tagged temporary, in the build group) are what a
    Trusted Launch build waits in; the plan's images are the stack gallery's alone, and the
    real iis version is copied from the staging version."""
    p = plan.build_plan(engine.run("prod"))
    assert (p["gallery"]["name"], p["gallery"]["resourceGroup"]) == (
        "imgf_prod_gallery",
        "imgf-prod-images-rg",
    )
    assert sorted(p["images"]) == ["hardened", "iis", "webapp", "webserver"]
    assert list(p["images"]["iis"]["versions"]) == ["1.0.0"]
    iis = p["images"]["iis"]["versions"]["1.0.0"]
    assert (iis["source"], iis["sourceKind"], iis["managedImage"]) == (
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/imgf-prod-build-rg"
        "/providers/Microsoft.Compute/galleries/imgf_prod_staging/images/iis/versions/1.0.0",
        "galleryVersion",
        None,
    )
    assert iis["dependsOn"] == [
        "build-iis-1.0.0-validate-results",
        "gallery-gallery",
        "gallery-iis",
        "groups-images",
    ]
    assert [r["name"] for r in iis["regions"]] == ["eastus", "westeurope"]
    # The test VM is no builder.
    assert iis["builder"]["vm"] == "bldf800c02ae6"
    test = dict(iis["builder"]["validation"])
    # The test VM's replacement trigger (size, disk, checks, timeout), like the builder's.
    assert re.fullmatch(r"[0-9a-f]{16}", test.pop("fingerprint"))
    assert test == {
        "vm": "tst876efb69f4",
        "size": "Standard_D4s_v5",
        "image": "staging version imgf_prod_staging/iis/1.0.0",
        "checks": ["01-validate", "02-check-10-iis"],
    }


def test_prod_markdown_table() -> None:
    md = plan.render_markdown(plan.build_plan(engine.run("prod")))
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows == [
        "| image | version | build | regions | consumers |",
        "| --- | --- | --- | --- | --- |",
        "| hardened | 1.0.0 (latest) | `imgf-prod-bld-hardened-1-0-0` | eastus x1 Standard_ZRS "
        "| — |",
        "| iis | 1.0.0 (latest) | `bldf800c02ae6` | eastus x2 Standard_ZRS<br>"
        "westeurope x1 Standard_LRS | iis-us-000 (eastus)<br>iis-us-001 (eastus) |",
        "| webapp | 1.0.0 (latest) | `imgf-prod-bld-webapp-1-0-0` | eastus x1 Standard_ZRS<br>"
        "westeurope x1 Standard_ZRS | — |",
        "| webserver | 1.0.0 | retired | eastus x2 Standard_ZRS<br>westeurope x1 Standard_ZRS "
        "| web-eu (westeurope) |",
        "| webserver | 1.1.0 (latest) | `imgf-prod-bld-webserver-1-1-0` | eastus x2 "
        "Standard_ZRS<br>westeurope x1 Standard_ZRS | web-us (eastus) |",
    ]


def test_unknown_stack_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        plan.main(["staging"])
    assert done.value.code == 2
    assert "error: unknown stack 'staging'; known: dev, prod" in capsys.readouterr().err


def test_bad_config_exits_1_with_the_problems(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = engine.stack_config("dev")
    config["imagefactory:location"] = "mars"
    monkeypatch.setattr(engine, "stack_config", lambda stack, project_dir=None: config)
    assert plan.main(["dev", "--compare", "none"]) == 1
    assert capsys.readouterr().err == (
        "stack dev: 1 problem in stack config:\n"
        "  - imagefactory:location: 'mars' is not an Azure region; use a programmatic region "
        "name such as 'eastus' or 'westeurope' (az account list-locations -o table)\n"
    )
