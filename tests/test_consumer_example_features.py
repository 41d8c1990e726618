"""examples/consumer with issue 13's features: the security type comes from the factory's
output contract, and the instances get this stack's per-environment user data."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml
from pulumi.runtime import config as runtime_config
from test_consumer_example import VMSS_T, consumer_config, factory_outputs, run_consumer

from examples.consumer import selection
from imagefactory import contract, userdata

TRUSTED_LAUNCH = {
    "securityType": "TrustedLaunch",
    "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
}


def _outputs_with(image: str, **changes: Any) -> dict[str, Any]:
    outputs = copy.deepcopy(factory_outputs())
    outputs[contract.IMAGES][image].update(changes)
    return outputs


def _profile(outputs: dict[str, Any], **config: Any) -> dict[str, Any]:
    (vmss,) = run_consumer(outputs, consumer_config(**config)).of_type(VMSS_T)
    return vmss.inputs["virtualMachineProfile"]


@pytest.mark.parametrize(
    ("security_type", "expected"),
    [
        ("TrustedLaunchSupported", TRUSTED_LAUNCH),
        ("TrustedLaunch", TRUSTED_LAUNCH),
        ("TrustedLaunchAndConfidentialVmSupported", TRUSTED_LAUNCH),
        ("Standard", None),
        ("ConfidentialVmSupported", None),
    ],
)
def test_the_security_profile_follows_the_definitions_security_type(
    security_type: str, expected: dict[str, Any] | None
) -> None:
    profile = _profile(_outputs_with("webserver", securityType=security_type))
    assert profile.get("securityProfile") == expected


def test_a_factory_without_security_types_is_refused_by_name() -> None:
    outputs = copy.deepcopy(factory_outputs())
    del outputs[contract.IMAGES]["webserver"][contract.SECURITY_TYPE]
    with pytest.raises(selection.SelectionError) as err:
        selection.select(
            outputs, stack="org/imagefactory/prod", image="webserver", version="latest",
            region="westeurope",
        )  # fmt: skip
    assert str(err.value) == (
        "imagefactory-consumer:imagefactoryStack: stack 'org/imagefactory/prod' does not export "
        "images.webserver.securityType, so the VM security type its image needs is unknown (run "
        "pulumi up in the factory stack); allowed: an imagefactory stack whose images export "
        "securityType"
    )


def test_linux_instances_get_this_environments_cloud_init() -> None:
    profile = _profile(factory_outputs())
    text = base64.b64decode(profile["osProfile"]["customData"]).decode()
    (env,) = yaml.safe_load(text)["write_files"]
    assert env["path"] == "/etc/app/environment"
    assert env["content"] == (
        "ENVIRONMENT=prod\nAPI_URL=https://api.contoso.example\nAPI_TOKEN=''\n"
    )
    assert profile.get("extensionProfile") is None


def test_windows_instances_run_their_first_boot_script_with_the_extension() -> None:
    profile = _profile(factory_outputs(), image="iis", version="1.0.0", environment="test")
    text = base64.b64decode(profile["osProfile"]["customData"]).decode()
    assert "('ENVIRONMENT=' + 'test')," in text
    (ext,) = profile["extensionProfile"]["extensions"]
    loader = (userdata.SCRIPTS_DIR / userdata.WINDOWS_FIRST_BOOT_LOADER).read_text()
    assert ext["type"] == "CustomScriptExtension"
    assert ext["settings"] == userdata.first_boot_extension_settings(loader)


def test_a_secret_token_makes_the_whole_os_profile_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    real = runtime_config.set_all_config

    def with_secret_keys(config: dict[str, str], secret_keys: list[str] | None = None) -> None:
        real(config, ["imagefactory-consumer:apiToken"])

    monkeypatch.setattr(runtime_config, "set_all_config", with_secret_keys)
    profile = _profile(factory_outputs(), apiToken="tok-3b1f")
    assert set(profile["osProfile"]) == {"secret"}
    text = base64.b64decode(profile["osProfile"]["secret"]["customData"]).decode()
    assert "API_TOKEN=tok-3b1f\n" in text
