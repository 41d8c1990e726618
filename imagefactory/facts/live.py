"""Facts from Azure itself, through the Azure SDK for Python.

The same questions the snapshot answers, asked of the subscription the deployment uses:

- VM sizes: Resource SKUs, `GET /subscriptions/{id}/providers/Microsoft.Compute/skus?
  $filter=location eq '{region}'` (`ComputeManagementClient.resource_skus.list`, api-version
  2021-07-01), once per region; a size missing there is not offered in that region, and a
  `Location` restriction names why this subscription cannot use it.
- Marketplace images: Virtual Machine Images `list` (to resolve `latest` to the highest
  version) and `get` (`virtual_machine_images`, api-version 2026-04-01 in
  azure-mgmt-compute 39).
- Purchase plan terms: Marketplace Ordering `marketplace_agreements.get` with offer type
  `virtualmachine` (api-version 2021-01-01): `accepted` is per subscription.

When Azure cannot be asked (no credentials, no subscription, a failed call) the checks fall
back to the snapshot and say so once (`Source.notes`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from imagefactory.facts import (
    Facts,
    GalleryImageFacts,
    ImageFacts,
    Plan,
    SizeFacts,
    Snapshot,
    Source,
    documented_os_support,
    gallery_image_from_response,
    image_from_response,
    size_from_sku,
    snapshot,
)

Mode = Literal["auto", "live", "snapshot"]
MODE_VARIABLE = "IMAGEFACTORY_FACTS"
T = TypeVar("T")


class LiveUnavailable(Exception):
    """Azure could not be asked; the message says why, for the one fallback note."""


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in text.split("."))


class LiveFacts:
    """Resource SKUs, marketplace images and plan terms from one subscription."""

    def __init__(
        self,
        credential: Any,
        subscription_id: str,
        *,
        base_url: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.marketplaceordering import MarketplaceOrderingAgreements

        self.compute = ComputeManagementClient(
            credential, subscription_id, base_url=base_url, **client_kwargs
        )
        self._client_args = (credential, base_url, client_kwargs)
        self._subscription_id = subscription_id
        self._gallery_images: dict[str, GalleryImageFacts] = {}
        self.marketplace = MarketplaceOrderingAgreements(
            credential, subscription_id, base_url=base_url, **client_kwargs
        )
        self._source = Source(f"Azure (subscription {subscription_id})")
        self._os_support = documented_os_support()
        self._sizes: dict[str, dict[str, SizeFacts]] = {}
        self._images: dict[tuple[str, str], ImageFacts] = {}
        self._terms: dict[Plan, bool] = {}

    @property
    def source(self) -> Source:
        return self._source

    def _call(self, what: str, call: Callable[[], T]) -> T:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        try:
            return call()
        except ResourceNotFoundError:
            raise  # an answer: no such image
        except ClientAuthenticationError as err:
            raise LiveUnavailable(f"no Azure token ({_first_line(err)})") from err
        except HttpResponseError as err:
            raise LiveUnavailable(f"{what}: HTTP {err.status_code} {_first_line(err)}") from err

    def skus(self, region: str) -> list[dict[str, Any]]:
        """The region's virtual machine SKUs as Azure returns them (plain JSON)."""
        pages = self._call(
            f"Resource SKUs for {region}",
            lambda: list(self.compute.resource_skus.list(filter=f"location eq '{region}'")),
        )
        return [
            sku.as_dict() for sku in pages if getattr(sku, "resource_type", "") == "virtualMachines"
        ]

    def size(self, name: str, region: str) -> SizeFacts | None:
        if region not in self._sizes:
            self._sizes[region] = {
                str(s["name"]).lower(): size_from_sku(s, region, self._os_support)
                for s in self.skus(region)
            }
        found = self._sizes[region].get(name.lower())
        return found if found is not None else SizeFacts(name=name, offered=False)

    def image_response(self, urn: str, region: str) -> dict[str, Any] | None:
        """The image version's GET response (latest resolved); None when Azure has none."""
        from azure.core.exceptions import ResourceNotFoundError

        publisher, offer, sku, version = urn.split(":")
        images = self.compute.virtual_machine_images
        try:
            if version.lower() == "latest":
                listed = self._call(
                    f"image versions of {urn}",
                    lambda: images.list(region, publisher, offer, sku),
                )
                if not listed:
                    return None
                version = max((str(v.name) for v in listed), key=_version_key)
            chosen = version
            found = self._call(
                f"image {urn}", lambda: images.get(region, publisher, offer, sku, chosen)
            )
        except ResourceNotFoundError:
            return None
        return dict(found.as_dict())

    def image(self, urn: str, region: str) -> ImageFacts | None:
        key = (urn.lower(), region)
        if key not in self._images:
            body = self.image_response(urn, region)
            self._images[key] = (
                image_from_response(urn, body)
                if body is not None
                else ImageFacts(urn=urn, exists=False)
            )
        return self._images[key]

    def terms_accepted(self, plan: Plan) -> bool | None:
        if plan not in self._terms:
            terms = self._call(
                f"Marketplace terms of {plan.publisher}:{plan.product}:{plan.name}",
                lambda: self.marketplace.marketplace_agreements.get(
                    offer_type="virtualmachine",
                    publisher_id=plan.publisher,
                    offer_id=plan.product,
                    plan_id=plan.name,
                ),
            )
            self._terms[plan] = bool(terms.accepted)
        return self._terms[plan]

    def gallery_image_response(self, version_id: str, region: str) -> dict[str, Any] | None:
        """The definition of another gallery's image version (GalleryImages get for an ARM
        id, in the id's subscription; SharedGalleryImages or CommunityGalleryImages get for
        the other two kinds); None when Azure has none."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.mgmt.compute import ComputeManagementClient

        parts = version_id.strip("/").split("/")
        found: Any
        try:
            if parts[0].lower() == "subscriptions":
                subscription, group, gallery, image = parts[1], parts[3], parts[7], parts[9]
                compute = self.compute
                if subscription.lower() != self._subscription_id.lower():
                    credential, base_url, kwargs = self._client_args
                    compute = ComputeManagementClient(
                        credential, subscription, base_url=base_url, **kwargs
                    )
                found = self._call(
                    f"gallery image {image}",
                    lambda: compute.gallery_images.get(group, gallery, image),
                )
            elif parts[0].lower() == "sharedgalleries":
                found = self._call(
                    f"shared gallery image {parts[3]}",
                    lambda: self.compute.shared_gallery_images.get(region, parts[1], parts[3]),
                )
            else:
                found = self._call(
                    f"community gallery image {parts[3]}",
                    lambda: self.compute.community_gallery_images.get(region, parts[1], parts[3]),
                )
        except ResourceNotFoundError:
            return None
        return dict(found.as_dict())

    def gallery_image(self, version_id: str, region: str) -> GalleryImageFacts | None:
        if version_id not in self._gallery_images:
            body = self.gallery_image_response(version_id, region)
            self._gallery_images[version_id] = (
                gallery_image_from_response(version_id, body)
                if body is not None
                else GalleryImageFacts(id=version_id, exists=False)
            )
        return self._gallery_images[version_id]

    def version_published(
        self, resource_group: str, gallery: str, image: str, version: str
    ) -> bool | None:
        """GalleryImageVersions get in this subscription: False when Azure has no such
        version (or gallery, or group)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._call(
                f"gallery image version {image} {version}",
                lambda: self.compute.gallery_image_versions.get(
                    resource_group, gallery, image, version
                ),
            )
        except ResourceNotFoundError:
            return False
        return True


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "message", "") or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class Fallback:
    """Live facts until Azure fails once; then the snapshot, with one note saying so."""

    def __init__(self, live: Facts, fallback: Snapshot) -> None:
        self.live: Facts | None = live
        self.fallback = fallback
        self._source = Source(live.source.label)

    @property
    def source(self) -> Source:
        return self._source

    def _ask(self, question: Callable[[Facts], T]) -> T:
        if self.live is not None:
            try:
                return question(self.live)
            except LiveUnavailable as err:
                self.live = None
                self._source.label = self.fallback.source.label
                self._source.notes.append(
                    f"pre-flight checks: Azure did not answer ({err}); checked against "
                    f"{self.fallback.source.label} instead"
                )
        return question(self.fallback)

    def size(self, name: str, region: str) -> SizeFacts | None:
        return self._ask(lambda f: f.size(name, region))

    def image(self, urn: str, region: str) -> ImageFacts | None:
        return self._ask(lambda f: f.image(urn, region))

    def terms_accepted(self, plan: Plan) -> bool | None:
        return self._ask(lambda f: f.terms_accepted(plan))

    def gallery_image(self, version_id: str, region: str) -> GalleryImageFacts | None:
        return self._ask(lambda f: f.gallery_image(version_id, region))

    def version_published(
        self, resource_group: str, gallery: str, image: str, version: str
    ) -> bool | None:
        return self._ask(lambda f: f.version_published(resource_group, gallery, image, version))


# --- credentials and subscription, as the azure-native provider finds them -------------------


def credential_from_environment(env: Mapping[str, str]) -> tuple[Any, str] | None:
    """A credential and how it was found, or None when nothing points at Azure.

    Service principal or workload identity variables (AZURE_* or the provider's ARM_*
    names) first, then an `az login` when the az CLI is installed; never a managed
    identity probe, which would stall outside Azure.
    """
    from azure.identity import (
        AzureCliCredential,
        ClientSecretCredential,
        WorkloadIdentityCredential,
    )

    client = env.get("AZURE_CLIENT_ID") or env.get("ARM_CLIENT_ID")
    tenant = env.get("AZURE_TENANT_ID") or env.get("ARM_TENANT_ID")
    secret = env.get("AZURE_CLIENT_SECRET") or env.get("ARM_CLIENT_SECRET")
    token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
    if client and tenant and secret:
        return ClientSecretCredential(tenant, client, secret), "a client secret"
    if client and tenant and token_file:
        return (
            WorkloadIdentityCredential(
                tenant_id=tenant, client_id=client, token_file_path=token_file
            ),
            "workload identity",
        )
    if shutil.which("az", path=env.get("PATH")):
        return AzureCliCredential(tenant_id=tenant or "", process_timeout=20), "the az CLI login"
    return None


def subscription_from_environment(env: Mapping[str, str], configured: str | None) -> str | None:
    """ARM_SUBSCRIPTION_ID/AZURE_SUBSCRIPTION_ID, azure-native:subscriptionId, or az's."""
    found = env.get("ARM_SUBSCRIPTION_ID") or env.get("AZURE_SUBSCRIPTION_ID") or configured
    if found:
        return found
    az = shutil.which("az", path=env.get("PATH"))
    if az is None:
        return None
    try:
        done = subprocess.run(
            [az, "account", "show", "--query", "id", "-o", "tsv"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def mode_from_environment(env: Mapping[str, str]) -> Mode:
    value = env.get(MODE_VARIABLE, "auto").strip().lower()
    return value if value in ("live", "snapshot") else "auto"  # type: ignore[return-value]


def for_this_run(
    *,
    under_mocks: bool,
    configured_subscription: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Facts:
    """The facts a run uses: Azure when it can be asked, else the snapshot (said once).

    Under Pulumi's mocks (the offline plan, the tests) there is no Azure unless asked for
    with IMAGEFACTORY_FACTS=live (`python -m offline.plan --online`).
    """
    env = os.environ if env is None else env
    mode = mode_from_environment(env)
    base = snapshot()
    if mode == "snapshot" or (mode == "auto" and under_mocks):
        return base
    quiet = Source(base.source.label)
    found = credential_from_environment(env)
    subscription = subscription_from_environment(env, configured_subscription) if found else None
    if found is None or subscription is None:
        why = "no Azure credentials found" if found is None else "no subscription id found"
        quiet.notes.append(
            f"pre-flight checks: {why} (ARM_CLIENT_ID/ARM_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE "
            f"or az login; ARM_SUBSCRIPTION_ID); checked against {base.source.label} instead"
        )
        return Snapshot(base.recorded, base.sizes, base.images, quiet)
    credential, _how = found
    return Fallback(LiveFacts(credential, subscription), base)
