"""The offline plan as people read it: the tree, the markdown table, and the CLI's errors."""

from __future__ import annotations

import pytest

from offline import engine, plan


def test_dev_tree() -> None:
    text = plan.render_text(plan.build_plan(engine.run("dev")))
    assert text.splitlines() == [
        "stack dev: 24 resources",
        "gallery imgf_dev_gallery (imgf-dev-images-rg, eastus)",
        "└── image webserver (Linux, V2, TrustedLaunchSupported) "
        "contoso-platform/webserver/ubuntu-24_04-dev",
        "    └── version 0.1.0  [latest]",
        "        ├── build: VM imgf-dev-bld-webserver-0-1-0 "
        "(Standard_B2s, Canonical:ubuntu-24_04-lts:server:latest)",
        "        ├── steps: 01-10-base -> 02-20-webserver -> 03-90-manifest -> 04-audit -> "
        "05-generalize -> deallocate+generalize -> managed image imgf-dev-webserver-0.1.0",
        "        ├── replication (Shallow): eastus x1 Standard_LRS",
        "        └── consumer: scale set web-dev (eastus, latest by automatic OS image upgrade); "
        "user data by cloud-init: #cloud-config, 852 bytes",
    ]


def test_prod_tree_marks_retired_protected_eol_and_trusted_launch() -> None:
    lines = plan.render_text(plan.build_plan(engine.run("prod"))).splitlines()
    assert lines[:2] == [
        "stack prod: 73 resources",
        "gallery imgf_prod_gallery (imgf-prod-images-rg, eastus), shared with 2 principal(s)",
    ]
    assert "│   └── version 1.0.0  [latest, protected, EOL 2027-12-31]" in lines
    assert (
        "│       ├── steps: 01-10-iis -> 02-90-manifest -> 03-audit -> 04-generalize -> "
        "deallocate+generalize -> from the VM (Trusted Launch)"
    ) in lines
    assert "    ├── version 1.0.0  [protected]" in lines
    assert "    │   ├── build: retired (published version kept, builder removed)" in lines
    assert "    │   └── consumer: scale set web-eu (westeurope, pinned)" in lines
    assert "    └── version 1.1.0  [latest, protected]" in lines


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
