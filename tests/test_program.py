"""The real __main__.py with each real stack file, under the mock engine: the graph itself."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest

from imagefactory import contract, scripts
from offline import engine
from offline.engine import Registered, Run

SUB = engine.MOCK_SUBSCRIPTION
VM = "azure-native:compute:VirtualMachine"
RUN_COMMAND = "azure-native:compute:VirtualMachineRunCommandByVirtualMachine"
COMMAND = "command:local:Command"
IMAGE = "azure-native:compute:Image"
VERSION = "azure-native:compute:GalleryImageVersion"
DEFINITION = "azure-native:compute:GalleryImage"
GALLERY = "azure-native:compute:Gallery"
SCALE_SET = "azure-native:compute:VirtualMachineScaleSet"
NIC = "azure-native:network:NetworkInterface"
NSG = "azure-native:network:NetworkSecurityGroup"
ROLE = "azure-native:authorization:RoleAssignment"


@pytest.fixture(scope="module")
def dev() -> Run:
    return engine.run("dev")


@pytest.fixture(scope="module")
def prod() -> Run:
    return engine.run("prod")


def explicit(res: Registered) -> set[str]:
    """Dependencies that no input refers to: the ones given with depends_on."""
    via_inputs = {u for urns in res.property_dependencies.values() for u in urns}
    return set(res.dependencies) - via_inputs


def tagged(run: Run, token: str, image: str, version: str) -> list[Registered]:
    return [
        r
        for r in run.of_type(token)
        if (r.inputs.get("tags") or {}).get("imagefactory-image") == image
        and (r.inputs.get("tags") or {}).get("imagefactory-version") == version
    ]


def version_of(run: Run, image: str, version: str) -> Registered:
    """The published version (not a Trusted Launch build's staging version)."""
    (found,) = [
        r
        for r in run.of_type(VERSION)
        if r.inputs["galleryImageName"] == image
        and r.inputs["galleryImageVersionName"] == version
        and r.inputs["tags"].get("imagefactory-lifecycle") != "temporary"
    ]
    return found


def walk(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
    elif isinstance(value, str):
        yield value


# --- components -----------------------------------------------------------------------


def test_one_component_per_stage_with_its_own_type_token(prod: Run) -> None:
    tokens = {r.type for r in prod.resources if not r.custom}
    assert tokens == {
        "imagefactory:core:ResourceGroups",
        "imagefactory:build:Network",
        "imagefactory:build:ImageBuild",
        "imagefactory:build:BuilderVm",
        "imagefactory:build:Provisioning",
        "imagefactory:build:Generalization",
        "imagefactory:build:ManagedImage",
        "imagefactory:build:StagingGallery",
        "imagefactory:build:Validation",
        "imagefactory:publish:Gallery",
        "imagefactory:publish:ImageVersion",
        "imagefactory:consume:Network",
        "imagefactory:consume:ScaleSet",
        "imagefactory:consume:VmGroup",
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_resource_is_parented_to_a_component(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(stack)
    components = {r.urn: r for r in run.resources if not r.custom}
    for res in run.resources:
        if res.custom:
            assert res.parent in components, f"{res.name} is not inside a component"
            # Child names derive from the component's own name, so two instances never collide.
            assert res.name.startswith(components[res.parent].name), res.name


# --- the build chain ----------------------------------------------------------------------


def test_dev_chain_vm_provision_generalize_capture_image_version_consumer(dev: Run) -> None:
    vm = dev.named("build-webserver-0.1.0-builder-vm")
    steps = [r for r in dev.of_type(RUN_COMMAND) if r.inputs["vmName"] == vm.inputs["vmName"]]
    names = [r.inputs["runCommandName"] for r in steps]
    assert names == ["01-10-base", "02-20-webserver", "03-90-manifest", "04-audit", "05-generalize"]
    # Each step waits for the one before; the first for the VM (it names it in vmName).
    assert steps[0].property_dependencies["vmName"] == [vm.urn]
    assert explicit(steps[0]) == set()
    for before, after in itertools.pairwise(steps):
        assert before.urn in explicit(after)
    expected = scripts.guest_steps(
        os="linux",
        provision=(
            "linux/provision/10-base.sh",
            "linux/provision/20-webserver.sh",
            "linux/provision/90-manifest.sh",
        ),
        image="webserver",
        version="0.1.0",
        base_image="Canonical:ubuntu-24_04-lts:server:latest",
        build_user="azureuser",
    )
    for step, want in zip(steps, expected, strict=True):
        # The VM runs exactly the rendered file; its tag names the file and its digest.
        assert step.inputs["source"] == {"script": want.source}
        assert step.inputs["tags"]["imagefactory-script"] == (
            f"{want.script.path}@{want.script.sha256[:12]}"
        )
        assert step.inputs["treatFailureAsDeploymentFailure"] is True
        assert step.inputs["asyncExecution"] is False
        assert step.inputs["timeoutInSeconds"] == 30 * 60
        assert step.custom_timeouts == {"create": "2400s", "update": "2400s"}
        assert step.replace_with == [vm.urn]
        # Deleted with the VM: Azure refuses extension changes on a generalized VM.
        assert step.deleted_with == vm.urn
        # And never deleted on their own, by any engine: Azure removes them with the VM.
        assert step.retain_on_delete is True

    capture = dev.named("build-webserver-0.1.0-generalize-capture")
    assert explicit(capture) == {steps[-1].urn}
    # Only a new VM instance captures again; an edited capture.sh is for the next builder.
    assert capture.inputs["triggers"] == [vm.outputs["vmId"]]
    assert capture.inputs["create"] == (
        "bash scripts/azure/capture.sh capture --resource-group imgf-dev-build-rg "
        f"--vm imgf-dev-bld-webserver-0-1-0 --subscription {SUB}"
    )
    assert capture.inputs["delete"] == (
        "bash scripts/azure/capture.sh delete --resource-group imgf-dev-build-rg "
        "--vm imgf-dev-bld-webserver-0-1-0"
    )
    assert capture.inputs["environment"] == {
        "CAPTURE_STOP_TIMEOUT_SECONDS": "900",
        "CAPTURE_POLL_SECONDS": "15",
        "CAPTURE_MAX_TRIES": "6",
        "CAPTURE_BACKOFF_SECONDS": "10",
    }

    image = dev.named("build-webserver-0.1.0-capture-image")
    assert explicit(image) == {capture.urn}
    assert image.inputs["sourceVirtualMachine"]["id"] == vm.id
    assert image.inputs["location"] == vm.inputs["location"] == "eastus"
    assert image.inputs["resourceGroupName"] == "imgf-dev-images-rg"

    # The test VM boots the managed image; its checks run in order; the results command
    # reads them; the version waits for the results, never for the image alone.
    test_vm = dev.named("build-webserver-0.1.0-validate-vm")
    assert test_vm.inputs["storageProfile"]["imageReference"] == {"id": image.id}
    assert test_vm.property_dependencies["storageProfile"] == [image.urn]
    assert test_vm.replace_with == [image.urn]
    checks = [
        r for r in dev.of_type(RUN_COMMAND) if r.inputs["vmName"] == "imgf-dev-tst-webserver-0-1-0"
    ]
    assert [c.inputs["runCommandName"] for c in checks] == [
        "01-validate",
        "02-check-10-base",
        "03-check-20-webserver",
    ]
    assert checks[0].property_dependencies["vmName"] == [test_vm.urn]
    for before, after in itertools.pairwise(checks):
        assert explicit(after) == {before.urn}
    results = dev.named("build-webserver-0.1.0-validate-results")
    assert explicit(results) == {checks[-1].urn}
    assert results.inputs["create"] == (
        "bash scripts/azure/capture.sh collect --resource-group imgf-dev-build-rg "
        "--vm imgf-dev-tst-webserver-0-1-0 --run-command 01-validate "
        "--run-command 02-check-10-base --run-command 03-check-20-webserver "
        f"--subscription {SUB}"
    )
    version = version_of(dev, "webserver", "0.1.0")
    # It waits for the results (depends_on), and its tags are made from what they read.
    assert results.urn in version.dependencies
    assert image.urn not in version.dependencies
    assert version.property_dependencies["tags"] == [results.urn]
    assert version.inputs["storageProfile"]["source"] == {"id": image.id}

    (vmss,) = dev.of_type(SCALE_SET)
    definition = dev.named("gallery-webserver")
    # "latest" follows the definition and waits explicitly for the newest version.
    assert vmss.inputs["virtualMachineProfile"]["storageProfile"]["imageReference"] == {
        "id": definition.id
    }
    assert version.urn in explicit(vmss)


def test_generations_match_from_definition_to_image(prod: Run, dev: Run) -> None:
    for run in (dev, prod):
        for image in run.of_type(IMAGE):
            name = image.inputs["tags"]["imagefactory-image"]
            definition = run.named(f"gallery-{name}")
            assert image.inputs["hyperVGeneration"] == definition.inputs["hyperVGeneration"] == "V2"


def test_trusted_launch_builder_publishes_from_the_vm_without_a_managed_image(prod: Run) -> None:
    vm = prod.named("build-iis-1.0.0-builder-vm")
    assert vm.inputs["securityProfile"] == {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }
    assert tagged(prod, IMAGE, "iis", "1.0.0") == []
    # Published first to the staging gallery of the build group, excluded from latest, in
    # the source region only; the test VM boots from it; the real version copies it.
    capture = prod.named("build-iis-1.0.0-generalize-capture")
    staging = prod.named("build-iis-1.0.0-staging")
    assert staging.inputs["storageProfile"]["source"] == {"virtualMachineId": vm.id}
    assert staging.inputs["galleryName"] == "imgf_prod_staging"
    assert staging.inputs["resourceGroupName"] == "imgf-prod-build-rg"
    assert staging.inputs["publishingProfile"] == {
        "targetRegions": [
            {"name": "eastus", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"}
        ],
        "excludeFromLatest": True,
    }
    assert explicit(staging) == {capture.urn}
    assert staging.replace_with == [vm.urn]
    staging_definition = prod.named("staging-iis")
    assert staging_definition.inputs["features"] == [
        {"name": "SecurityType", "value": "TrustedLaunch"}
    ]
    test_vm = prod.named("build-iis-1.0.0-validate-vm")
    assert test_vm.inputs["storageProfile"]["imageReference"] == {"id": staging.id}
    assert test_vm.inputs["securityProfile"] == vm.inputs["securityProfile"]
    results = prod.named("build-iis-1.0.0-validate-results")
    version = version_of(prod, "iis", "1.0.0")
    assert version.inputs["storageProfile"]["source"] == {"id": staging.id}
    assert results.urn in version.dependencies
    assert version.property_dependencies["tags"] == [results.urn]
    definition = prod.named("gallery-iis")
    assert definition.inputs["features"] == [{"name": "SecurityType", "value": "TrustedLaunch"}]
    assert prod.outputs["images"]["iis"]["versions"]["1.0.0"]["managedImageId"] is None


def test_managed_image_path_for_standard_builders(prod: Run) -> None:
    vm = prod.named("build-webserver-1.1.0-builder-vm")
    assert "securityProfile" not in vm.inputs
    image = prod.named("build-webserver-1.1.0-capture-image")
    assert image.inputs["imageName"] == "imgf-prod-webserver-1.1.0"
    assert image.replace_with == [vm.urn]
    assert image.delete_before_replace is True


# --- replication ------------------------------------------------------------------------


def test_prod_replication_targets_and_counts(prod: Run) -> None:
    version = version_of(prod, "webserver", "1.1.0")
    profile = version.inputs["publishingProfile"]
    assert profile["targetRegions"] == [
        {"name": "eastus", "regionalReplicaCount": 2.0, "storageAccountType": "Standard_ZRS"},
        {"name": "westeurope", "regionalReplicaCount": 1.0, "storageAccountType": "Standard_ZRS"},
    ]
    assert profile["replicationMode"] == "Full"
    assert profile["excludeFromLatest"] is False
    # The source region is among the targets.
    assert version.inputs["location"] == "eastus"
    assert version.custom_timeouts == {"create": "480m", "update": "480m", "delete": "480m"}
    iis = version_of(prod, "iis", "1.0.0").inputs["publishingProfile"]
    assert iis["targetRegions"][1] == {
        "name": "westeurope",
        "regionalReplicaCount": 1.0,
        "storageAccountType": "Standard_LRS",
    }
    assert iis["endOfLifeDate"] == "2027-12-31"


def test_dev_replicates_shallow_to_one_region_with_a_short_timeout(dev: Run) -> None:
    version = version_of(dev, "webserver", "0.1.0")
    profile = version.inputs["publishingProfile"]
    assert profile["targetRegions"] == [
        {"name": "eastus", "regionalReplicaCount": 1.0, "storageAccountType": "Standard_LRS"}
    ]
    assert profile["replicationMode"] == "Shallow"
    assert version.custom_timeouts == {"create": "60m", "update": "60m", "delete": "60m"}


# --- network and credentials ------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_builders_have_no_public_ip_and_no_inbound_rule(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(stack)
    assert run.of_type("azure-native:network:PublicIPAddress") == []
    for nic in run.of_type(NIC):
        for ipc in nic.inputs["ipConfigurations"]:
            assert "publicIPAddress" not in ipc
    build_nsg = run.named("build-network-nsg")
    assert build_nsg.inputs.get("securityRules", []) == []
    for nsg in run.of_type(NSG):
        for rule in nsg.inputs.get("securityRules", []):
            assert rule["sourceAddressPrefix"] in ("VirtualNetwork", "AzureLoadBalancer")


def test_linux_builder_logs_in_by_key_only(prod: Run) -> None:
    os_profile = prod.named("build-webserver-1.1.0-builder-vm").inputs["osProfile"]
    assert "adminPassword" not in os_profile
    linux = os_profile["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    (key,) = linux["ssh"]["publicKeys"]
    assert key["path"] == "/home/azureuser/.ssh/authorized_keys"
    assert key["keyData"].startswith("ssh-rsa ")


def test_generated_credentials_are_secrets_and_never_exported(prod: Run) -> None:
    for name in ("build-iis-1.0.0-builder-vm", "vmgroup-iis-us-000"):
        password = prod.named(name).inputs["osProfile"]["adminPassword"]
        assert set(password) == {"secret"}, f"{name} password is not a secret"
    assert "result" in prod.named("build-iis-1.0.0-builder-password").additional_secret_outputs
    assert (
        "privateKeyPem" in prod.named("build-webserver-1.1.0-builder-ssh").additional_secret_outputs
    )
    exported = json.dumps(prod.outputs)
    assert "Mock-" not in exported and "PRIVATE KEY" not in exported and "ssh-rsa" not in exported


def test_builder_size_disk_and_tags_come_from_config(prod: Run) -> None:
    vm = prod.named("build-webserver-1.1.0-builder-vm")
    assert vm.inputs["hardwareProfile"] == {"vmSize": "Standard_D2s_v5"}
    assert vm.inputs["storageProfile"]["osDisk"]["managedDisk"] == {
        "storageAccountType": "Premium_LRS"
    }
    assert vm.inputs["storageProfile"]["imageReference"] == {
        "publisher": "Canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    }
    tags = vm.inputs["tags"]
    assert tags["imagefactory-lifecycle"] == "temporary"
    assert tags["imagefactory-stack"] == "prod"
    assert tags["imagefactory-image"] == "webserver"
    assert tags["imagefactory-version"] == "1.1.0"
    assert tags["cost-center"] == "4711"
    windows = prod.named("build-iis-1.0.0-builder-vm").inputs
    assert windows["hardwareProfile"] == {"vmSize": "Standard_D4s_v5"}
    assert windows["osProfile"]["computerName"] == windows["vmName"]
    assert len(windows["vmName"]) <= 15


# --- groups, gallery, sharing, protection -----------------------------------------------


def test_assets_builds_and_consumers_live_in_separate_groups(prod: Run) -> None:
    assert prod.named("gallery-gallery").inputs["resourceGroupName"] == "imgf-prod-images-rg"
    assert prod.named("build-webserver-1.1.0-builder-vm").inputs["resourceGroupName"] == (
        "imgf-prod-build-rg"
    )
    assert prod.named("scaleset-web-eu-vmss").inputs["resourceGroupName"] == (
        "imgf-prod-consumers-westeurope-rg"
    )
    build_group = prod.named("groups-build")
    assert build_group.inputs["tags"]["imagefactory-lifecycle"] == "temporary"


def test_published_versions_pin_their_source(prod: Run, dev: Run) -> None:
    versions = [version_of(prod, i, v) for i, v in PROD_VERSIONS] + [
        version_of(dev, "webserver", "0.1.0")
    ]
    for version in versions:
        # What validation read is pinned with the source: both describe the published bits.
        assert version.ignore_changes == [
            "storageProfile.source",
            'tags["imagefactory-validation"]',
            'tags["imagefactory-os"]',
            'tags["imagefactory-built"]',
            'tags["imagefactory-base"]',
            'tags["imagefactory-packages"]',
            'tags["imagefactory-key-packages"]',
        ], version.name


PROD_VERSIONS = [
    ("webserver", "1.0.0"),
    ("webserver", "1.1.0"),
    ("iis", "1.0.0"),
    ("hardened", "1.0.0"),
    ("webapp", "1.0.0"),
]


def test_gallery_definitions_and_versions_are_protected_in_prod_only(prod: Run, dev: Run) -> None:
    def published(run: Run, token: str) -> list[Registered]:
        return [
            r for r in run.of_type(token) if r.inputs["resourceGroupName"].endswith("images-rg")
        ]

    counts = {GALLERY: (1, 1), DEFINITION: (4, 1), VERSION: (5, 1)}
    for token, (in_prod, in_dev) in counts.items():
        assert len(published(prod, token)) == in_prod, token
        assert len(published(dev, token)) == in_dev, token
        assert all(r.protect for r in published(prod, token)), token
        assert not any(r.protect or r.retain_on_delete for r in dev.of_type(token)), token
    # Temporary build resources are never protected: builders, test VMs, the staging gallery
    # of the Trusted Launch build (its gallery, definition and version).
    assert not any(r.protect for r in prod.of_type(VM))
    staging = [
        r.name
        for t in (GALLERY, DEFINITION, VERSION)
        for r in prod.of_type(t)
        if r not in published(prod, t)
    ]
    assert staging == ["staging-gallery", "staging-iis", "build-iis-1.0.0-staging"]
    assert not any(prod.named(n).protect or prod.named(n).retain_on_delete for n in staging)


def test_retain_on_delete_is_a_stack_choice() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:protection"] = "retainOnDelete"
    run = engine.run("dev", config=config)
    for token in (GALLERY, DEFINITION, VERSION):
        (res,) = run.of_type(token)
        assert res.retain_on_delete is True and res.protect is False


def test_definitions_carry_identifier_state_and_features(prod: Run) -> None:
    web = prod.named("gallery-webserver").inputs
    assert web["identifier"] == {
        "publisher": "contoso-platform",
        "offer": "webserver",
        "sku": "ubuntu-24_04",
    }
    assert web["osType"] == "Linux"
    assert web["osState"] == "Generalized"
    assert web["architecture"] == "x64"
    assert web["features"] == [{"name": "SecurityType", "value": "TrustedLaunchSupported"}]


def test_sharing_grants_reader_with_an_explicit_principal_type(prod: Run) -> None:
    gallery = prod.named("gallery-gallery")
    shares = sorted(prod.of_type(ROLE), key=lambda r: r.inputs["principalId"])
    assert [(s.inputs["principalId"], s.inputs["principalType"]) for s in shares] == [
        ("3f2a4c1e-8b7d-4e29-9a51-6c0d2e7f9b13", "ServicePrincipal"),
        ("9c1d7e52-4a3b-4f8e-b6d2-0e5a7c9f1b24", "Group"),
    ]
    for share in shares:
        assert share.inputs["scope"] == gallery.id
        assert share.inputs["roleDefinitionId"] == (
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
            "acdd72a7-3385-48ef-bd42-f606fba81ae7"
        )


# --- consumers ------------------------------------------------------------------------


def test_pinned_scale_set_uses_the_version_id_and_nothing_else(prod: Run) -> None:
    vmss = prod.named("scaleset-web-eu-vmss")
    pinned = version_of(prod, "webserver", "1.0.0")
    profile = vmss.inputs["virtualMachineProfile"]
    assert profile["storageProfile"]["imageReference"] == {"id": pinned.id}
    assert pinned.urn in vmss.property_dependencies["virtualMachineProfile"]
    other_versions = {r.urn for r in prod.of_type(VERSION)} - {pinned.urn}
    assert not other_versions & set(vmss.dependencies)
    assert vmss.inputs["location"] == "westeurope"
    assert vmss.inputs["sku"] == {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": 2.0}


def test_rolling_upgrades_come_with_a_health_extension(prod: Run) -> None:
    vmss = prod.named("scaleset-web-us-vmss")
    assert vmss.inputs["upgradePolicy"]["mode"] == "Rolling"
    assert vmss.inputs["upgradePolicy"]["rollingUpgradePolicy"]["maxBatchInstancePercent"] == 20
    (ext,) = vmss.inputs["virtualMachineProfile"]["extensionProfile"]["extensions"]
    assert ext["type"] == "ApplicationHealthLinux"
    assert ext["settings"] == {"protocol": "http", "port": 80.0, "requestPath": "/"}
    # latest -> definition id, waiting for the newest version (1.1.0).
    newest = version_of(prod, "webserver", "1.1.0")
    assert newest.urn in explicit(vmss)
    assert vmss.inputs["virtualMachineProfile"]["storageProfile"]["imageReference"] == {
        "id": prod.named("gallery-webserver").id
    }


def test_vm_group_makes_count_vms_with_unique_names(prod: Run) -> None:
    vms = [r for r in prod.of_type(VM) if r.parent.endswith("vmgroup-iis-us")]
    assert sorted(v.inputs["vmName"] for v in vms) == ["iis-us-000", "iis-us-001"]
    version = version_of(prod, "iis", "1.0.0")
    for vm in vms:
        assert vm.inputs["storageProfile"]["imageReference"] == {"id": version.id}
        assert vm.inputs["location"] == "eastus"
        assert version.urn in vm.property_dependencies["storageProfile"]


# --- retired builders and outputs -------------------------------------------------------


def test_retired_builder_has_no_build_resources_but_keeps_its_version(prod: Run) -> None:
    # The active version of the same image has every build resource; the retired one none.
    for token in (VM, NIC, RUN_COMMAND, IMAGE):
        assert tagged(prod, token, "webserver", "1.1.0") != [], token
        assert tagged(prod, token, "webserver", "1.0.0") == [], token
    commands = [r.name for r in prod.of_type(COMMAND)]
    assert sorted(commands) == [
        "build-hardened-1.0.0-generalize-capture",
        "build-hardened-1.0.0-validate-results",
        "build-iis-1.0.0-generalize-capture",
        "build-iis-1.0.0-validate-results",
        "build-webapp-1.0.0-generalize-capture",
        "build-webapp-1.0.0-validate-results",
        "build-webserver-1.1.0-generalize-capture",
        "build-webserver-1.1.0-validate-results",
    ]
    assert not [r for r in prod.resources if r.name.startswith("build-webserver-1.0.0")]
    version = version_of(prod, "webserver", "1.0.0")
    assert version.inputs["storageProfile"]["source"] == {
        "id": f"/subscriptions/{SUB}/resourceGroups/imgf-prod-images-rg/providers/"
        "Microsoft.Compute/images/imgf-prod-webserver-1.0.0"
    }
    assert explicit(version) == set()


def test_outputs_contract(prod: Run) -> None:
    assert set(prod.outputs) == set(contract.STACK_OUTPUTS)
    assert prod.outputs[contract.GALLERY_NAME] == "imgf_prod_gallery"
    assert prod.outputs[contract.GALLERY_RESOURCE_GROUP] == "imgf-prod-images-rg"
    assert prod.outputs[contract.GALLERY_ID] == prod.named("gallery-gallery").id
    web = prod.outputs[contract.IMAGES]["webserver"]
    assert set(web) == {
        "definitionId",
        "os",
        "generation",
        "securityType",
        "latestVersion",
        "versions",
    }
    assert web["securityType"] == "TrustedLaunchSupported"
    assert prod.outputs[contract.IMAGES]["iis"]["securityType"] == "TrustedLaunch"
    assert web["latestVersion"] == "1.1.0"
    assert web["definitionId"] == prod.named("gallery-webserver").id
    assert web["versions"]["1.1.0"] == {
        "id": version_of(prod, "webserver", "1.1.0").id,
        "regions": ["eastus", "westeurope"],
        "managedImageId": prod.named("build-webserver-1.1.0-capture-image").id,
        # Read back from the version's tags; the mock engine runs no command, so what the
        # checks read is unknown (a real run writes it, or fails before the version exists).
        "validation": {
            "result": "unknown",
            "os": "unknown",
            "built": "unknown",
            "base": "unknown",
            "packages": "unknown",
            "keyPackages": {},
        },
    }
    # Published before validation, by a builder now retired: no validation to show.
    assert web["versions"]["1.0.0"]["validation"] is None
    assert web["versions"]["1.0.0"]["managedImageId"] is None
    # Only ids, names and plain values: no resource objects slipped through.
    for value in walk(prod.outputs):
        assert not value.startswith("urn:pulumi:")


def test_pulumi_owns_every_nic_so_a_rebuilt_vm_never_points_at_a_deleted_one(prod: Run) -> None:
    vms = prod.of_type(VM)
    # 4 builders, their 4 test VMs, 2 VMs of the iis group.
    assert len(vms) == 10
    for vm in vms:
        (ref,) = vm.inputs["networkProfile"]["networkInterfaces"]
        assert ref["deleteOption"] == "Detach", vm.name
        assert vm.inputs["storageProfile"]["osDisk"]["deleteOption"] == "Delete", vm.name


def test_a_vm_group_moving_to_another_version_is_rebuilt_under_the_same_names(prod: Run) -> None:
    for name in ("vmgroup-iis-us-000", "vmgroup-iis-us-001"):
        vm = prod.named(name)
        assert vm.replace_on_changes == [
            "storageProfile.imageReference",
            "osProfile.adminUsername",
            "osProfile.customData",
            "zones",
        ]
        assert vm.delete_before_replace is True


def test_windows_build_steps_and_capture(prod: Run) -> None:
    vm = prod.named("build-iis-1.0.0-builder-vm")
    steps = [r for r in prod.of_type(RUN_COMMAND) if r.inputs["vmName"] == vm.inputs["vmName"]]
    assert [s.inputs["runCommandName"] for s in steps] == [
        "01-10-iis",
        "02-90-manifest",
        "03-audit",
        "04-generalize",
    ]
    assert (
        steps[-1]
        .inputs["source"]["script"]
        .startswith("# imagefactory: scripts/windows/generalize.ps1 sha256:")
    )
    assert "$env:IMAGE_NAME = 'iis'" in steps[0].inputs["source"]["script"]
    assert steps[0].custom_timeouts == {"create": "6000s", "update": "6000s"}
    capture = prod.named("build-iis-1.0.0-generalize-capture")
    assert capture.inputs["create"].endswith(f"--vm {vm.inputs['vmName']} --subscription {SUB}")
    assert capture.inputs["environment"]["CAPTURE_MAX_TRIES"] == "8"


# --- variants of the real stacks ----------------------------------------------------------


def test_a_public_ip_for_builders_only_when_asked() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:builder"]["publicIp"] = True
    config["imagefactory:builder"]["osDiskSizeGb"] = 64
    run = engine.run("dev", config=config)
    (pip,) = run.of_type("azure-native:network:PublicIPAddress")
    assert pip.inputs["sku"] == {"name": "Standard"}
    nic = run.named("build-webserver-0.1.0-builder-nic")
    assert nic.inputs["ipConfigurations"][0]["publicIPAddress"] == {"id": pip.id}
    vm = run.named("build-webserver-0.1.0-builder-vm")
    assert vm.inputs["storageProfile"]["osDisk"]["diskSizeGB"] == 64


def test_a_windows_scale_set_gets_the_windows_health_extension_and_a_short_prefix() -> None:
    config = engine.stack_config("prod")
    config["imagefactory:scaleSets"].append(
        {"name": "iis-frontend", "region": "westeurope", "image": "iis", "version": "1.0.0"}
    )
    run = engine.run("prod", config=config)
    vmss = run.named("scaleset-iis-frontend-vmss")
    profile = vmss.inputs["virtualMachineProfile"]
    (ext,) = profile["extensionProfile"]["extensions"]
    assert ext["type"] == "ApplicationHealthWindows"
    assert vmss.inputs["vmScaleSetName"] == "iis-frontend"
    prefix = profile["osProfile"]["computerNamePrefix"]
    assert len(prefix) <= 9 and prefix.startswith("iis-f")
    assert set(profile["osProfile"]["adminPassword"]) == {"secret"}
    assert profile["securityProfile"]["securityType"] == "TrustedLaunch"


def test_automatic_upgrades_have_no_rolling_policy(dev: Run) -> None:
    (vmss,) = dev.of_type(SCALE_SET)
    # web-dev follows latest: automatic OS image upgrades move it to each new version.
    assert vmss.inputs["upgradePolicy"] == {
        "mode": "Automatic",
        "automaticOSUpgradePolicy": {
            "enableAutomaticOSUpgrade": True,
            "disableAutomaticRollback": False,
        },
    }


def test_consumers_of_a_confidential_vm_definition_are_not_trusted_launch() -> None:
    config = engine.stack_config("dev")
    config["imagefactory:images"][0]["securityType"] = "ConfidentialVmSupported"
    run = engine.run("dev", config=config)
    (vmss,) = run.of_type(SCALE_SET)
    assert "securityProfile" not in vmss.inputs["virtualMachineProfile"]
    definition = run.named("gallery-webserver")
    assert definition.inputs["features"] == [
        {"name": "SecurityType", "value": "ConfidentialVmSupported"}
    ]


def test_the_offline_engine_refuses_a_duplicate_urn_like_pulumi(tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi\n"
        "pulumi.ComponentResource('t:x:Y', 'same')\n"
        "pulumi.ComponentResource('t:x:Y', 'same')\n"
    )
    with pytest.raises(pulumi.RunError) as err:
        engine.run_program(program, project="p", stack="s", config={})
    # The URN's parent part depends on whether a stack resource is registered first.
    assert re.fullmatch(
        r"Duplicate resource URN 'urn:pulumi:s::p::(pulumi:pulumi:Stack\$)?t:x:Y::same'",
        str(err.value),
    ), str(err.value)


def test_the_audit_allowlist_reaches_the_audit_and_generalize_steps(prod: Run) -> None:
    expected = (
        "export AUDIT_ALLOWLIST='/usr/share/doc/contoso-webapp/examples/\t"
        "documentation examples with dummy keys, used by no service'"
    )
    for step in ("provision-audit", "generalize-generalize"):
        source = prod.named(f"build-webserver-1.1.0-{step}").inputs["source"]["script"]
        assert expected in source.splitlines(), step
