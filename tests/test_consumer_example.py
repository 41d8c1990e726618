"""examples/consumer, fed the outputs this project's own prod stack exports.

The factory's prod stack runs under the offline mocks; its outputs become the
StackReference state of the consumer's run, so the contract is tested end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import pulumi
import pytest
import yaml

from examples.consumer import selection
from imagefactory import contract
from offline import engine

CONSUMER_DIR = engine.PROJECT_DIR / "examples" / "consumer"
PROD = "organization/imagefactory/prod"
REF_T = "pulumi:pulumi:StackReference"
VMSS_T = "azure-native:compute:VirtualMachineScaleSet"


@cache
def factory_outputs() -> dict[str, Any]:
    return engine.run("prod").outputs


class _ConsumerMocks(engine.AzureMocks):
    """The factory's mocks, plus a StackReference that answers with given outputs."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self.outputs = dict(outputs)
        self.references: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if args.typ == REF_T:
            self.references.append(args.inputs["name"])
            return args.name, {"name": args.name, "outputs": self.outputs}
        return super().new_resource(args)


def consumer_config(**changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load((CONSUMER_DIR / "Pulumi.prod.yaml").read_text())
    values: dict[str, Any] = dict(doc["config"])
    values.update({f"{selection.NAMESPACE}:{k}": v for k, v in changes.items()})
    return values


def run_consumer(outputs: Mapping[str, Any], config: Mapping[str, Any]) -> engine.Run:
    """The consumer's program under mocks; its stack references land in `run.logs`."""
    mocks = _ConsumerMocks(outputs)
    run = engine.run_program(
        CONSUMER_DIR / "__main__.py",
        project=selection.NAMESPACE,
        stack="prod",
        config=config,
        monitor=engine.RecordingMonitor(mocks),
    )
    # StackReference is a read, which the recording monitor does not list; log it instead.
    run.logs.extend(("stackReference", name) for name in mocks.references)
    return run


def test_deploys_a_scale_set_from_the_prod_stacks_latest_webserver() -> None:
    outputs = factory_outputs()
    run = run_consumer(outputs, consumer_config())
    assert run.logs == [("stackReference", PROD)]
    webserver = outputs[contract.IMAGES]["webserver"]
    assert webserver[contract.LATEST_VERSION] == "1.1.0"
    (vmss,) = run.of_type(VMSS_T)
    profile = vmss.inputs["virtualMachineProfile"]
    assert (
        profile["storageProfile"]["imageReference"]["id"]
        == (webserver[contract.VERSIONS]["1.1.0"][contract.VERSION_ID])
    )
    assert vmss.inputs["location"] == "westeurope"
    assert vmss.inputs["sku"] == {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": 2}
    assert "linuxConfiguration" in profile["osProfile"]
    assert "adminPassword" not in profile["osProfile"]
    assert profile["securityProfile"]["securityType"] == "TrustedLaunch"
    assert run.outputs["imageVersion"] == "1.1.0"


def test_pinned_windows_version_gets_a_password_not_a_key() -> None:
    run = run_consumer(factory_outputs(), consumer_config(image="iis", version="1.0.0"))
    (vmss,) = run.of_type(VMSS_T)
    profile = vmss.inputs["virtualMachineProfile"]
    iis = factory_outputs()[contract.IMAGES]["iis"]
    assert (
        profile["storageProfile"]["imageReference"]["id"]
        == (iis[contract.VERSIONS]["1.0.0"][contract.VERSION_ID])
    )
    assert "windowsConfiguration" in profile["osProfile"]
    assert "linuxConfiguration" not in profile["osProfile"]


def _refused(outputs: Mapping[str, Any], **changes: Any) -> str:
    with pytest.raises(pulumi.RunError) as err:
        run_consumer(outputs, consumer_config(**changes))
    return str(err.value)


def test_missing_outputs_name_the_stack_key() -> None:
    outputs = {k: v for k, v in factory_outputs().items() if k != contract.IMAGES}
    assert _refused(outputs) == (
        "imagefactory-consumer:imagefactoryStack: stack 'organization/imagefactory/prod' "
        "does not export images (is it an imagefactory stack that has been deployed?); "
        "allowed: a deployed imagefactory stack exporting galleryId, galleryName, "
        "galleryResourceGroup, images"
    )


def test_unknown_image_lists_the_images() -> None:
    assert _refused(factory_outputs(), image="nginx") == (
        "imagefactory-consumer:image: stack 'organization/imagefactory/prod' has no image "
        "'nginx'; allowed: hardened, iis, webapp, webserver"
    )


def test_unknown_version_lists_the_versions() -> None:
    assert _refused(factory_outputs(), version="2.0.0") == (
        "imagefactory-consumer:version: image 'webserver' has no version '2.0.0'; "
        "allowed: latest, 1.0.0, 1.1.0"
    )


def test_region_without_a_replica_lists_the_regions() -> None:
    assert _refused(factory_outputs(), region="northeurope") == (
        "imagefactory-consumer:region: image webserver 1.1.0 (latest) is not replicated to "
        "'northeurope'; allowed: eastus, westeurope"
    )
