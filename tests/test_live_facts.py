"""The live pre-flight path: the real Azure SDK clients against an HTTPS stub on 127.0.0.1.

The stub answers in Azure's response shapes (Resource SKUs list, Virtual Machine Images
list/get, Marketplace agreements get; see the REST references in imagefactory/facts/
live.py) and records each request, so the tests see the API versions and the bearer
token the SDK sends. No other network is touched.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_settings import put

from imagefactory import facts as azure_facts
from imagefactory.facts import Plan, live
from imagefactory.facts import __main__ as refresh_cli
from imagefactory.settings import ConfigError, check

SUB = "11111111-2222-3333-4444-555555555555"
IMAGES = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/publishers"


def _sku(name: str, caps: dict[str, str], restrictions: list[Any] | None = None) -> dict:
    return {
        "resourceType": "virtualMachines",
        "name": name,
        "tier": "Standard",
        "size": name.removeprefix("Standard_"),
        "family": "standardDSv5Family",
        "locations": ["eastus"],
        "locationInfo": [{"location": "eastus", "zones": ["1", "2", "3"]}],
        "capabilities": [{"name": k, "value": v} for k, v in caps.items()],
        "restrictions": restrictions or [],
    }


X64 = {"HyperVGenerations": "V1,V2", "CpuArchitectureType": "x64", "PremiumIO": "True"}
SKUS = {
    "value": [
        _sku("Standard_D2s_v5", {**X64, "vCPUs": "2", "MemoryGB": "8"}),
        _sku("Standard_D4s_v5", X64),
        _sku("Standard_D2as_v5", X64),
        _sku("Standard_B1s", X64),
        _sku("Standard_D2_v3", {**X64, "HyperVGenerations": "V1", "PremiumIO": "False"}),
        _sku(
            "Standard_D8s_v5",
            X64,
            [
                {
                    "type": "Location",
                    "values": ["eastus"],
                    "restrictionInfo": {"locations": ["eastus"]},
                    "reasonCode": "NotAvailableForSubscription",
                }
            ],
        ),
        {"resourceType": "disks", "name": "Premium_LRS", "locations": ["eastus"]},
    ]
}


def _image(version: str, os: str, gen: str, size: int, plan: dict | None = None) -> dict:
    return {
        "name": version,
        "location": "eastus",
        "id": f"{IMAGES}/x/artifacttypes/vmimage/offers/x/skus/x/versions/{version}",
        "properties": {
            "osDiskImage": {"operatingSystem": os, "sizeInBytes": size << 30, "sizeInGb": size},
            "dataDiskImages": [],
            "hyperVGeneration": gen,
            "architecture": "x64",
            "plan": plan,
            "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
        },
    }


ROCKY_PLAN = {"name": "9-base", "product": "rockylinux-x86_64", "publisher": "resf"}
ROUTES: dict[str, tuple[int, Any]] = {
    f"/subscriptions/{SUB}/providers/Microsoft.Compute/skus": (200, SKUS),
    f"{IMAGES}/Canonical/artifacttypes/vmimage/offers/ubuntu-24_04-lts/skus/server/versions": (
        200,
        [
            {"name": "24.04.202409120", "location": "eastus", "id": "a"},
            {"name": "24.04.202411030", "location": "eastus", "id": "b"},
            {"name": "24.04.202410100", "location": "eastus", "id": "c"},
        ],
    ),
    f"{IMAGES}/Canonical/artifacttypes/vmimage/offers/ubuntu-24_04-lts/skus/server/versions/"
    "24.04.202411030": (200, _image("24.04.202411030", "Linux", "V2", 30)),
    f"{IMAGES}/MicrosoftWindowsServer/artifacttypes/vmimage/offers/WindowsServer/skus/"
    "2022-datacenter-g2/versions": (200, [{"name": "20348.2849.241106", "location": "eastus"}]),
    f"{IMAGES}/MicrosoftWindowsServer/artifacttypes/vmimage/offers/WindowsServer/skus/"
    "2022-datacenter-g2/versions/20348.2849.241106": (
        200,
        _image("20348.2849.241106", "Windows", "V2", 127),
    ),
    f"{IMAGES}/resf/artifacttypes/vmimage/offers/rockylinux-x86_64/skus/9-base/versions": (
        200,
        [{"name": "9.5.20241118", "location": "eastus"}],
    ),
    f"{IMAGES}/resf/artifacttypes/vmimage/offers/rockylinux-x86_64/skus/9-base/versions/"
    "9.5.20241118": (200, _image("9.5.20241118", "Linux", "V2", 10, ROCKY_PLAN)),
    f"/subscriptions/{SUB}/providers/Microsoft.MarketplaceOrdering/offerTypes/virtualmachine/"
    "publishers/resf/offers/rockylinux-x86_64/plans/9-base/agreements/current": (
        200,
        {
            "id": "agreement",
            "name": "9-base",
            "type": "Microsoft.MarketplaceOrdering/offertypes",
            "properties": {
                "publisher": "resf",
                "product": "rockylinux-x86_64",
                "plan": "9-base",
                "accepted": False,
                "retrieveDatetime": "2026-11-29T10:00:00Z",
            },
        },
    ),
}
# prod's retired webserver 1.0.0 is in its gallery (GalleryImageVersions get).
ROUTES[
    f"/subscriptions/{SUB}/resourceGroups/imgf-prod-images-rg/providers/Microsoft.Compute/"
    "galleries/imgf_prod_gallery/images/webserver/versions/1.0.0"
] = (200, {"name": "1.0.0", "location": "eastus", "properties": {"provisioningState": "Succeeded"}})
NOT_FOUND = {"error": {"code": "NotFound", "message": "Artifact: VMImage was not found."}}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.seen.append(  # type: ignore[attr-defined]
            (url.path, dict(urllib.parse.parse_qsl(url.query)), self.headers["Authorization"])
        )
        status, body = self.server.routes.get(url.path, (404, NOT_FOUND))  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "stub.pem", directory / "stub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Stub:
    def __init__(self, url: str, cert: Path, server: ThreadingHTTPServer) -> None:
        self.url, self.cert, self.server = url, cert, server

    @property
    def seen(self) -> list[tuple[str, dict[str, str], str]]:
        return self.server.seen  # type: ignore[attr-defined]

    def facts(self) -> live.LiveFacts:
        return live.LiveFacts(
            StaticToken(), SUB, base_url=self.url, connection_verify=str(self.cert)
        )


class StaticToken:
    """A credential as azure-core calls it; the stub only checks it is sent."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        assert scopes == ("https://management.azure.com/.default",)
        return AccessToken("stub-token", int(time.time()) + 3600)


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[Stub]:
    cert, key = _certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.routes = dict(ROUTES)  # type: ignore[attr-defined]
    server.seen = []  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield Stub(f"https://127.0.0.1:{server.server_address[1]}", cert, server)
    finally:
        server.shutdown()
        server.server_close()


# --- the SDK calls -------------------------------------------------------------------------


def test_sizes_come_from_resource_skus_once_per_region(stub: Stub) -> None:
    facts = stub.facts()
    d2s = facts.size("standard_d2s_v5", "eastus")
    assert d2s == azure_facts.SizeFacts(
        name="Standard_D2s_v5",
        generations=("V1", "V2"),
        architecture="x64",
        premium_io=True,
        zones=("1", "2", "3"),
    )
    assert facts.size("Standard_D2_v3", "eastus").generations == ("V1",)  # type: ignore[union-attr]
    restricted = facts.size("Standard_D8s_v5", "eastus")
    assert restricted is not None and restricted.restriction == "NotAvailableForSubscription"
    # Not in the region's list: not offered there (a typo is caught live, not warned about).
    assert facts.size("Standard_D2s_v9", "eastus") == azure_facts.SizeFacts(
        name="Standard_D2s_v9", offered=False
    )
    # One call for the region, with the location filter and the API version the SDK pins.
    assert stub.seen == [
        (
            f"/subscriptions/{SUB}/providers/Microsoft.Compute/skus",
            {"api-version": "2021-07-01", "$filter": "location eq 'eastus'"},
            "Bearer stub-token",
        )
    ]


def test_latest_resolves_to_the_highest_version_then_gets_it(stub: Stub) -> None:
    facts = stub.facts()
    found = facts.image("Canonical:ubuntu-24_04-lts:server:latest", "eastus")
    assert found == azure_facts.ImageFacts(
        urn="Canonical:ubuntu-24_04-lts:server:latest",
        os="linux",
        generation="V2",
        architecture="x64",
        os_disk_gb=30,
    )
    assert [path.rsplit("/", 1)[-1] for path, _, _ in stub.seen] == [
        "versions",
        "24.04.202411030",  # 202411030 > 202410100 > 202409120, compared as numbers
    ]
    assert {query["api-version"] for _, query, _ in stub.seen} == {"2026-04-01"}


def test_an_image_azure_does_not_have_is_an_answer_not_a_failure(stub: Stub) -> None:
    facts = stub.facts()
    assert facts.image("Canonical:ubuntu-24_04-lts:server-gen9:latest", "eastus") == (
        azure_facts.ImageFacts(urn="Canonical:ubuntu-24_04-lts:server-gen9:latest", exists=False)
    )


def test_plan_terms_are_read_from_marketplace_ordering(stub: Stub) -> None:
    facts = stub.facts()
    assert facts.terms_accepted(Plan("9-base", "rockylinux-x86_64", "resf")) is False
    assert stub.seen[-1][1] == {"api-version": "2021-01-01"}


# --- the checks, answered by Azure ------------------------------------------------------------


def test_live_answers_drive_the_same_checks(stub: Stub, prod_raw: dict[str, Any]) -> None:
    put(prod_raw, "builder.vmSize", "Standard_D8s_v5")
    put(prod_raw, "scaleSets.0.sku", "Standard_D2s_v9")
    with pytest.raises(ConfigError) as caught:
        check(prod_raw, stub.facts())
    assert caught.value.problems == [
        "imagefactory:builder.vmSize: 'Standard_D8s_v5' cannot be used in 'eastus' by this "
        "subscription (NotAvailableForSubscription); choose another size or region, or "
        "request access",
        "imagefactory:scaleSets[0].sku: 'Standard_D2s_v9' is not offered in 'eastus' (Azure's "
        "Resource SKUs for this subscription); list what is: az vm list-skus --location "
        "eastus --resource-type virtualMachines -o table",
    ]


def test_unaccepted_plan_terms_are_refused_with_the_command_that_accepts_them(
    stub: Stub, prod_raw: dict[str, Any]
) -> None:
    put(
        prod_raw,
        "images.0.baseImage",
        {"publisher": "resf", "offer": "rockylinux-x86_64", "sku": "9-base", "plan": ROCKY_PLAN},
    )
    with pytest.raises(ConfigError) as caught:
        check(prod_raw, stub.facts())
    assert caught.value.problems[-1] == (
        "imagefactory:images[0].baseImage.plan: the Marketplace terms of "
        "resf:rockylinux-x86_64:9-base:latest are not accepted in this subscription (Azure "
        f"(subscription {SUB})); accept them once: az vm image terms accept --urn "
        "resf:rockylinux-x86_64:9-base:latest"
    )


def test_a_failing_azure_falls_back_to_the_snapshot_and_says_so_once(
    stub: Stub, prod_raw: dict[str, Any]
) -> None:
    stub.server.routes[f"/subscriptions/{SUB}/providers/Microsoft.Compute/skus"] = (  # type: ignore[attr-defined]
        403,
        {"error": {"code": "AuthorizationFailed", "message": "no read on Microsoft.Compute/skus"}},
    )
    facts = live.Fallback(stub.facts(), azure_facts.snapshot())
    checked = check(prod_raw, facts)
    assert checked.settings.location == "eastus"
    assert facts.source.notes == [
        "pre-flight checks: Azure did not answer (Resource SKUs for eastus: HTTP 403 "
        "(AuthorizationFailed) no read on Microsoft.Compute/skus); checked against the facts "
        "snapshot of 2026-11-29 (imagefactory/facts/) instead"
    ]


# --- choosing the source ---------------------------------------------------------------------


def test_under_the_mocks_the_snapshot_answers_without_a_word() -> None:
    facts = live.for_this_run(under_mocks=True, env={"ARM_CLIENT_ID": "x", "PATH": ""})
    assert facts is azure_facts.snapshot()
    assert facts.source.notes == []


def test_without_credentials_the_snapshot_answers_and_says_so_once() -> None:
    facts = live.for_this_run(under_mocks=False, env={"PATH": "", "IMAGEFACTORY_FACTS": "live"})
    assert isinstance(facts, azure_facts.Snapshot)
    assert facts.source.notes == [
        "pre-flight checks: no Azure credentials found (ARM_CLIENT_ID/ARM_TENANT_ID, "
        "AZURE_FEDERATED_TOKEN_FILE or az login; ARM_SUBSCRIPTION_ID); checked against the "
        "facts snapshot of 2026-11-29 (imagefactory/facts/) instead"
    ]


def test_a_service_principal_in_the_environment_means_azure_is_asked() -> None:
    env = {
        "ARM_CLIENT_ID": "00000000-0000-0000-0000-0000000000c1",
        "ARM_TENANT_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "ARM_CLIENT_SECRET": "not-used",
        "ARM_SUBSCRIPTION_ID": SUB,
        "PATH": "",
    }
    facts = live.for_this_run(under_mocks=False, env=env)
    assert isinstance(facts, live.Fallback)
    assert facts.source.label == f"Azure (subscription {SUB})"
    assert live.mode_from_environment({"IMAGEFACTORY_FACTS": "Snapshot"}) == "snapshot"
    assert live.for_this_run(under_mocks=False, env={**env, "IMAGEFACTORY_FACTS": "snapshot"}) is (
        azure_facts.snapshot()
    )


# --- refreshing the snapshot -------------------------------------------------------------------


def test_refresh_writes_what_the_snapshot_reads(stub: Stub, tmp_path: Path) -> None:
    data = tmp_path / "facts"
    data.mkdir()
    for source in (azure_facts.SIZES_FILE, azure_facts.IMAGES_FILE):
        (data / source.name).write_text(source.read_text())
    facts = stub.facts()
    refresh_cli.refresh_sizes(facts, "eastus", ["Standard_D8s_v5"], data, "2026-12-01")
    refresh_cli.refresh_images(facts, "eastus", data, "2026-12-01")
    fresh = azure_facts.load_snapshot(data)
    assert fresh.recorded == "2026-12-01"
    # Azure's answer replaces the transcribed entries; sizes the stub does not list go.
    assert sorted(fresh.sizes) == [
        "standard_b1s",
        "standard_d2_v3",
        "standard_d2as_v5",
        "standard_d2s_v5",
        "standard_d4s_v5",
        "standard_d8s_v5",
    ]
    # Restrictions are per subscription: recorded in the file, applied only when live.
    assert fresh.sizes["standard_d8s_v5"].restriction is None
    doc = json.loads((data / "vm-sizes.json").read_text())
    d8s = next(s for s in doc["resourceSkus"] if s["name"] == "Standard_D8s_v5")
    assert d8s["restrictions"][0]["reasonCode"] == "NotAvailableForSubscription"
    assert fresh.image("resf:rockylinux-x86_64:9-base:latest", "eastus") == azure_facts.ImageFacts(
        urn="resf:rockylinux-x86_64:9-base:latest",
        os="linux",
        generation="V2",
        architecture="x64",
        os_disk_gb=10,
        plan=Plan("9-base", "rockylinux-x86_64", "resf"),
    )
    assert fresh.image("Canonical:ubuntu-24_04-lts:server-gen1:latest", "eastus") is None
    assert doc["about"]["refresh"] == (
        ".venv/bin/python -m imagefactory.facts refresh sizes --location eastus"
    )


def test_a_retired_version_azure_does_not_have_is_refused(
    stub: Stub, prod_raw: dict[str, Any]
) -> None:
    # 1.1.0's build failed (say, its validation): no version was created. Retiring it
    # would publish the failed build from the managed image it left behind.
    put(prod_raw, "images.0.versions.1.builder", "retired")
    with pytest.raises(ConfigError) as err:
        check(prod_raw, stub.facts())
    assert err.value.problems == [
        "imagefactory:images[0].versions[1].builder: 'retired', but version webserver 1.1.0 "
        "is not in gallery 'imgf_prod_gallery' (imgf-prod-images-rg): a retired build "
        "publishes nothing (its build may have failed validation); publish it with builder: "
        "active, or remove the version"
    ]
    asked = [path for path, _, _ in stub.seen if "/galleries/" in path]
    assert asked == [
        f"/subscriptions/{SUB}/resourceGroups/imgf-prod-images-rg/providers/Microsoft.Compute/"
        f"galleries/imgf_prod_gallery/images/webserver/versions/{v}"
        for v in ("1.0.0", "1.1.0")
    ]
