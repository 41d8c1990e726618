"""Stack config -> one frozen, typed settings object, checked against Azure's rules.

Every bad value is reported at once, each naming its config key, the value and what is
allowed, before any resource is registered. Structure and single values are checked by
pydantic; the rules that relate values (duplicates, regions, references) run afterwards
over every part that parsed, so one typo does not hide the other mistakes.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import posixpath
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from imagefactory import audit as image_audit
from imagefactory import autoscale, chain, naming, preflight, regions, rules, userdata
from imagefactory import facts as azure_facts

NAMESPACE = "imagefactory"
SCRIPTS_DIR = userdata.SCRIPTS_DIR
SECRETS_KEY = "userDataSecrets"
"""The one key whose values are Pulumi secrets: the values user data templates may use."""

OsType = Literal["linux", "windows"]
Generation = Literal["V1", "V2"]
Architecture = Literal["x64", "Arm64"]
# The definition's SecurityType feature: what VMs created from it may or must use.
DefinitionSecurity = Literal[
    "Standard",
    "TrustedLaunchSupported",
    "TrustedLaunch",
    "ConfidentialVmSupported",
    "TrustedLaunchAndConfidentialVmSupported",
]
BuilderSecurity = Literal["Standard", "TrustedLaunch"]
StorageType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS"]
OsDiskType = Literal[
    "Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS"
]
ReplicationMode = Literal["Full", "Shallow"]
BuilderState = Literal["active", "retired"]
UpgradeMode = Literal["Rolling", "Automatic", "Manual"]
PrincipalType = Literal["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"]
Protection = Literal["protect", "retainOnDelete", "none"]
Weekday = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
LATEST = "latest"

_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_VM_SIZE = re.compile(r"^(Standard|Basic)_[A-Za-z0-9_-]+$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

DEFAULT_BASE_IMAGES: dict[str, dict[str, str]] = {
    # Ubuntu 24.04 LTS, Gen2 ("server"; the Gen1 SKU is "server-gen1").
    "linux": {
        "publisher": "Canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    },
    # Windows Server 2022 Datacenter, Gen2.
    "windows": {
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter-g2",
        "version": "latest",
    },
}
SCRIPT_SUFFIX = {"linux": ".sh", "windows": ".ps1"}


class ConfigError(Exception):
    """Stack config that breaks Azure's rules; ``problems`` holds one line per bad value."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in stack config:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


_key = rules.config_key


def parse_version(text: str) -> tuple[int, int, int]:
    """'1.2.3' -> (1, 2, 3); raises ValueError naming the rule."""
    match = _VERSION.match(text)
    if not match or any(int(p) > naming.INT32_MAX for p in match.groups()):
        raise ValueError(
            f"{text!r} is not a gallery image version; expected MAJOR.MINOR.PATCH, "
            f"each part an integer from 0 to {naming.INT32_MAX}"
        )
    major, minor, patch = (int(p) for p in match.groups())
    return major, minor, patch


def _as_str(value: Any) -> Any:
    # Stack files may hold 1.0 or 2024-01-01 unquoted; YAML then hands us a float or a date.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


Str = Annotated[str, BeforeValidator(_as_str)]


def _version_text(value: Any) -> Any:
    # An unquoted `version: 1.10` is the YAML number 1.1: the text the user wrote is gone,
    # so say what happened instead of quoting a value they never typed.
    if isinstance(value, float):
        raise ValueError(numeric_version_message(value))
    return _as_str(value)


VersionStr = Annotated[str, BeforeValidator(_version_text)]


def _secret_text(value: Any) -> Any:
    # A stack file read offline holds `{secure: <ciphertext>}`, which only the Pulumi CLI
    # decrypts: a secret all the same. Never echo a value here: it is a secret.
    if isinstance(value, dict) and set(value) == {"secure"}:
        return userdata.OFFLINE_SECRET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(
            "a secret value is one piece of text; a mapping or list was given (its value is "
            "not shown)"
        )
    return value


SecretValue = Annotated[SecretStr, BeforeValidator(_secret_text)]


def numeric_version_message(value: float) -> str:
    return (
        f"{value!r} is a YAML number, not a version: unquoted, 1.10 reads as 1.1; quote the "
        f'version and give all three parts, e.g. "{value!r}.0"'
    )


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )


# --- single values ---------------------------------------------------------------------


def _check_region(value: str) -> str:
    if not regions.is_region(value):
        hint = regions.suggest(value)
        hint_text = f" (did you mean {hint!r}?)" if hint else ""
        raise ValueError(
            f"{value!r} is not an Azure region{hint_text}; use a programmatic region name "
            "such as 'eastus' or 'westeurope' (az account list-locations -o table)"
        )
    return value


def _check_slug(value: str, what: str, limit: int) -> str:
    if not naming.SLUG.match(value) or len(value) > limit:
        raise ValueError(
            f"{value!r} is not a valid {what}; use 1-{limit} lower-case letters, digits and "
            "single hyphens, starting with a letter"
        )
    return value


def _check_vm_size(value: str) -> str:
    if not _VM_SIZE.match(value):
        hint = ""
        if re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", value) and not value.lower().startswith(
            ("standard", "basic")
        ):
            hint = f" (did you mean {'Standard_' + value!r}?)"
        raise ValueError(
            f"{value!r} is not a VM size name{hint}; Azure's size names start with "
            "'Standard_' or 'Basic_', e.g. 'Standard_D2s_v5' (az vm list-sizes --location "
            "eastus -o table)"
        )
    return value


def _check_consumer_name(value: str, what: str, limit: int) -> str:
    # Azure allows upper case in VM, NIC and scale set names; the computer names derived
    # from them are cut and cleaned by naming.Names.
    if not naming.CONSUMER_NAME.match(value) or len(value) > limit:
        raise ValueError(
            f"{value!r} is not a valid {what}; use 1-{limit} letters, digits and single "
            "hyphens, starting with a letter"
        )
    return value


def _check_eol(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        dt.date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"{value!r} is not a date; use YYYY-MM-DD") from None
    return value[:10]


class PurchasePlan(_Model):
    """A Marketplace image's purchase plan, as `az vm image show` prints it (all required)."""

    name: Str
    product: Str
    publisher: Str


class BaseImage(_Model):
    """Where a builder starts, one of three kinds: a Marketplace image (publisher, offer, sku,
    version, and its plan if it is sold with one), another image of this stack (image,
    version), or a version of another gallery (id, and plan if its root image has one)."""

    publisher: Str | None = None
    offer: Str | None = None
    sku: Str | None = None
    version: VersionStr | None = None
    """Marketplace: an image version or 'latest'; image of this stack: one of its versions or
    'latest' (its newest version not excluded from latest). Default 'latest'."""
    plan: PurchasePlan | None = None
    """Required for images sold through a Marketplace plan; default none."""
    image: Str | None = None
    """An image of this stack to build on (a changeable base: see chain.py); default none."""
    id: Str | None = None
    """A gallery image version id of another gallery; default none."""

    @model_validator(mode="after")
    def _one_kind(self) -> BaseImage:
        marketplace = [f for f in ("publisher", "offer", "sku") if getattr(self, f) is not None]
        kinds = [
            name
            for name, given in (
                ("publisher/offer/sku", bool(marketplace)),
                ("image", self.image is not None),
                ("id", self.id is not None),
            )
            if given
        ]
        allowed = (
            "a Marketplace image (publisher, offer, sku), an image of this stack (image) or a "
            "gallery image version of another gallery (id)"
        )
        if len(kinds) > 1:
            raise ValueError(f"{' and '.join(kinds)} are two kinds of base; give one: {allowed}")
        if not kinds:
            raise ValueError(f"no base given; give {allowed}")
        missing = [f for f in ("publisher", "offer", "sku") if getattr(self, f) is None]
        if marketplace and missing:
            raise ValueError(
                f"a Marketplace image needs publisher, offer and sku; missing: {', '.join(missing)}"
            )
        if self.id is not None and self.version is not None:
            raise ValueError("version is part of the id (.../versions/1.2.3); remove version")
        if self.image is not None and self.plan is not None:
            raise ValueError(
                "plan: an image of this stack carries its own base's plan already; remove plan"
            )
        return self

    @property
    def kind(self) -> Literal["marketplace", "image", "id"]:
        if self.image is not None:
            return "image"
        if self.id is not None:
            return "id"
        return "marketplace"

    def urn(self) -> str:
        """publisher:offer:sku:version of a Marketplace base."""
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version or LATEST}"


class Identifier(_Model):
    """The definition's publisher/offer/sku triple (unique within the gallery)."""

    publisher: Str
    offer: Str
    sku: Str

    @field_validator("publisher", "offer", "sku")
    @classmethod
    def _part(cls, value: str, info: Any) -> str:
        limit = {
            "publisher": naming.IDENTIFIER_PUBLISHER_MAX,
            "offer": naming.IDENTIFIER_OFFER_MAX,
            "sku": naming.IDENTIFIER_SKU_MAX,
        }[info.field_name]
        if not naming.IDENTIFIER_PART.match(value) or len(value) > limit:
            raise ValueError(
                f"{value!r} is not a valid {info.field_name}; use 1-{limit} letters, digits, "
                "'.', '_' and '-', starting and ending with a letter or digit"
            )
        return value


class Builder(_Model):
    """How the builder VM is made. Defaults: the stack-wide `builder` key."""

    vm_size: Str | None = None
    os_disk_type: OsDiskType | None = None
    os_disk_size_gb: int | None = Field(default=None, ge=30, le=4095)
    security_type: BuilderSecurity | None = None

    @field_validator("vm_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        return None if value is None else _check_vm_size(value)


class TargetRegion(_Model):
    """One replication target of a version."""

    name: Str
    replicas: int = Field(default=1, ge=1, le=100)
    storage: StorageType = "Standard_LRS"

    @field_validator("name")
    @classmethod
    def _region(cls, value: str) -> str:
        return _check_region(value)


class Version(_Model):
    """One gallery image version, immutable once published."""

    version: VersionStr
    regions: tuple[TargetRegion, ...] = Field(min_length=1)
    exclude_from_latest: bool = False
    end_of_life_date: Str | None = None
    replication_mode: ReplicationMode = "Full"
    allow_deletion_of_replicated_locations: bool = False
    builder: BuilderState = "active"

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        parse_version(value)
        return value

    @field_validator("end_of_life_date")
    @classmethod
    def _eol(cls, value: str | None) -> str | None:
        return _check_eol(value)

    @property
    def key(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    def replicated_to(self, region: str) -> bool:
        return any(t.name == region for t in self.regions)


class ImageValidation(_Model):
    """How one image's new versions are validated on a test VM before they are published."""

    vm_size: Str | None = None
    """The test VM's size; default: the image's builder size."""
    scripts: tuple[Str, ...] = ()
    """Extra check scripts under scripts/, run after the common checks and the image's own
    (scripts/<os>/validate/ files named like its provision scripts); default none."""

    @field_validator("vm_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        return None if value is None else _check_vm_size(value)


class Image(_Model):
    """One gallery image definition and the versions published from it."""

    name: Str
    os: OsType
    generation: Generation = "V2"
    architecture: Architecture = "x64"
    security_type: DefinitionSecurity = "TrustedLaunchSupported"
    identifier: Identifier
    description: Str | None = None
    end_of_life_date: Str | None = None
    base_image: BaseImage | None = None
    builder: Builder = Builder()
    scripts: tuple[Str, ...] | None = None
    validation: ImageValidation = ImageValidation()
    versions: tuple[Version, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not naming.DEFINITION_NAME.match(value) or len(value) > naming.DEFINITION_MAX:
            raise ValueError(
                f"{value!r} is not a valid image definition name; use 1-"
                f"{naming.DEFINITION_MAX} letters, digits, '.', '_' and '-', starting and "
                "ending with a letter or digit"
            )
        return value

    @field_validator("end_of_life_date")
    @classmethod
    def _eol(cls, value: str | None) -> str | None:
        return _check_eol(value)

    _base: BaseImage | None = PrivateAttr(default=None)
    """The base with the plan of the chain's root, set by Settings for an image built on
    another image of the stack (its VMs and definition must name that plan)."""

    @property
    def base(self) -> BaseImage:
        """The base as configured (the default Marketplace image when none is), carrying the
        purchase plan every VM of the image must name."""
        return (
            self._base or self.base_image or BaseImage.model_validate(DEFAULT_BASE_IMAGES[self.os])
        )

    @property
    def script_paths(self) -> tuple[str, ...]:
        """Provisioning scripts relative to scripts/; default: all of the OS's provision/."""
        if self.scripts is not None:
            return self.scripts
        folder = SCRIPTS_DIR / self.os / "provision"
        suffix = SCRIPT_SUFFIX[self.os]
        return tuple(str(p.relative_to(SCRIPTS_DIR)) for p in sorted(folder.glob(f"*{suffix}")))

    @property
    def validation_paths(self) -> tuple[str, ...]:
        """The image's own checks, relative to scripts/: each provision script's namesake in
        scripts/<os>/validate/ (provision/20-webserver.sh -> validate/20-webserver.sh), in
        provisioning order, then `validation.scripts`."""
        own = []
        for path in self.script_paths:
            namesake = SCRIPTS_DIR / self.os / "validate" / path.rsplit("/", 1)[-1]
            if namesake.is_file():
                own.append(str(namesake.relative_to(SCRIPTS_DIR)))
        return (*own, *(p for p in self.validation.scripts if p not in own))

    def newest(self) -> Version | None:
        """The version 'latest' resolves to: the highest one not excluded from latest."""
        eligible = [v for v in self.versions if not v.exclude_from_latest]
        return max(eligible, key=lambda v: v.key) if eligible else None

    def find(self, version: str) -> Version | None:
        if version == LATEST:
            return self.newest()
        return next((v for v in self.versions if v.version == version), None)


class Sharing(_Model):
    """A principal given Reader on the gallery (e.g. another subscription's deployer)."""

    principal_id: Str
    principal_type: PrincipalType
    description: Str | None = None

    @field_validator("principal_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not _GUID.match(value):
            raise ValueError(f"{value!r} is not an object id; expected a GUID")
        return value.lower()


class Gallery(_Model):
    """The Azure Compute Gallery holding every image."""

    name: Str
    description: Str = "Custom VM images built by the image factory"
    sharing: tuple[Sharing, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not naming.GALLERY_NAME.match(value) or len(value) > naming.GALLERY_MAX:
            raise ValueError(
                f"{value!r} is not a valid gallery name; use 1-{naming.GALLERY_MAX} letters, "
                "digits, '_' and '.', starting and ending with a letter or digit (no '-')"
            )
        return value


class BuilderDefaults(_Model):
    """Stack-wide builder settings; an image's own `builder` overrides them."""

    vm_size: Str = "Standard_D2s_v5"
    windows_vm_size: Str = "Standard_D4s_v5"
    os_disk_type: OsDiskType = "StandardSSD_LRS"
    os_disk_size_gb: int | None = Field(default=None, ge=30, le=4095)
    admin_username: Str = "azureuser"
    public_ip: bool = False
    run_command_timeout_minutes: int = Field(default=60, ge=1, le=1440)

    @field_validator("vm_size", "windows_vm_size")
    @classmethod
    def _size(cls, value: str) -> str:
        return _check_vm_size(value)


class Validation(_Model):
    """The stack's validation stage: a test VM from each new image, checked before the
    version is published (scripts/<os>/validate.*)."""

    enabled: bool = True
    """False skips the test VMs: versions publish straight after capture; default true."""

    @field_validator("enabled", mode="before")
    @classmethod
    def _exactly_true_or_false(cls, value: Any) -> Any:
        # The gate before anything is published: 0, 'no' or 'off' must not quietly turn it
        # off. `pulumi config set --path` writes text, so 'true' and 'false' count too.
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"{value!r} is not true or false; allowed: true or false")


class Capture(_Model):
    """Limits of the deallocate + generalize command (scripts/azure/capture.sh)."""

    stop_timeout_seconds: int = Field(default=1800, ge=60, le=86400)
    poll_seconds: int = Field(default=15, ge=1, le=600)
    max_tries: int = Field(default=6, ge=1, le=50)
    backoff_seconds: int = Field(default=10, ge=1, le=600)


class Network(_Model):
    """Address spaces; the builder subnet has no inbound rule from the Internet."""

    builder_address_space: Str = "10.42.0.0/16"
    builder_subnet: Str = "10.42.1.0/24"
    consumer_address_space: Str = "10.60.0.0/16"
    consumer_subnet: Str = "10.60.1.0/24"


Zone = Annotated[Literal["1", "2", "3"], BeforeValidator(_as_str)]


class UserData(_Model):
    """Per-environment configuration applied at first boot: a template under scripts/ (Linux:
    cloud-init user data; Windows: a PowerShell script) and the values for its placeholders."""

    file: Str
    """Path under scripts/, e.g. linux/userdata/webserver.yaml; required."""
    values: dict[str, Str] = Field(default_factory=dict)
    """Plain values for the template's placeholders; secrets come from the stack-wide
    userDataSecrets. Default none."""


class CpuRule(_Model):
    """Scale on the instances' average CPU ('Percentage CPU', a host metric)."""

    scale_out_above: int = Field(default=70, ge=1, le=99)
    """Add instances while the average CPU is above this percentage; default 70."""
    scale_in_below: int = Field(default=30, ge=1, le=99)
    """Remove instances while it is below this percentage; default 30."""
    minutes: int = Field(default=10, ge=5, le=720)
    """The averaging window (Azure: 5 minutes to 12 hours); default 10."""
    step: int = Field(default=1, ge=1, le=100)
    """Instances added or removed per action; default 1."""
    cooldown_minutes: int = Field(default=5, ge=1, le=10080)
    """Wait after an action before the next (Azure: 1 minute to 1 week); default 5."""


class AutoscaleSchedule(_Model):
    """Other instance limits on some days at some hours (a recurring autoscale profile)."""

    name: Str
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: Str
    """HH:MM, 24-hour clock, in time_zone."""
    end: Str
    """HH:MM, after start: the default limits come back then."""
    time_zone: Str = "UTC"
    """A Windows time zone name; default UTC."""
    minimum: int = Field(ge=0, le=autoscale.MAX_INSTANCES)
    maximum: int = Field(ge=1, le=autoscale.MAX_INSTANCES)
    default: int = Field(ge=0, le=autoscale.MAX_INSTANCES)


class Autoscale(_Model):
    """Azure Monitor autoscale of a scale set: instance limits, a CPU rule, schedules."""

    minimum: int = Field(ge=0, le=autoscale.MAX_INSTANCES)
    maximum: int = Field(ge=1, le=autoscale.MAX_INSTANCES)
    default: int = Field(ge=0, le=autoscale.MAX_INSTANCES)
    """The count the scale set is created with, and the one autoscale falls back to when
    metrics are missing."""
    cpu: CpuRule = CpuRule()
    schedules: tuple[AutoscaleSchedule, ...] = ()

    @property
    def capacity(self) -> autoscale.Capacity:
        return autoscale.Capacity(self.minimum, self.maximum, self.default)

    @property
    def cpu_rule(self) -> autoscale.Cpu:
        c = self.cpu
        return autoscale.Cpu(
            c.scale_out_above, c.scale_in_below, c.minutes, c.step, c.cooldown_minutes
        )

    @property
    def windows(self) -> tuple[autoscale.Window, ...]:
        return tuple(
            autoscale.Window(
                s.name,
                s.days,
                s.start,
                s.end,
                s.time_zone,
                autoscale.Capacity(s.minimum, s.maximum, s.default),
            )
            for s in self.schedules
        )


class _Consumer(_Model):
    """What every consumer names: itself, its region, and the image version it runs."""

    _WHAT: typing.ClassVar[str]
    _NAME_MAX: typing.ClassVar[int]

    name: Str
    region: Str
    image: Str
    version: VersionStr = LATEST
    zones: tuple[Zone, ...] = ()
    """Availability zones of the region to spread over; default none (regional)."""
    user_data: UserData | None = None
    """First-boot configuration; default none."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_consumer_name(value, cls._WHAT, cls._NAME_MAX)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _check_region(value)


class ScaleSet(_Consumer):
    """A scale set deployed from a gallery image."""

    _WHAT = "scale set name"
    _NAME_MAX = naming.LINUX_SCALE_SET_MAX

    sku: Str = "Standard_B2s"
    capacity: int = Field(default=2, ge=0, le=autoscale.MAX_INSTANCES)
    upgrade_policy: UpgradeMode = "Rolling"
    health_port: int = Field(default=80, ge=1, le=65535)
    health_path: Str = "/"
    zone_balance: bool = False
    """Azure's strict zone balance: refuse to scale when the zones would become uneven.
    Default false: Azure spreads instances evenly across the zones, best effort."""
    autoscale: Autoscale | None = None
    """Instance count driven by Azure Monitor autoscale; default none (fixed capacity)."""

    @field_validator("sku")
    @classmethod
    def _sku(cls, value: str) -> str:
        return _check_vm_size(value)

    @property
    def initial_capacity(self) -> int:
        """The instance count the scale set is created with."""
        return self.autoscale.default if self.autoscale else self.capacity

    @property
    def most_instances(self) -> int:
        """The most instances it can have (subnet sizing)."""
        if self.autoscale is None:
            return self.capacity
        return autoscale.most_instances(self.autoscale.capacity, self.autoscale.windows)


class VmGroup(_Consumer):
    """`count` identical VMs with unique names (like `az vm create --count`)."""

    _WHAT = "VM group name"
    _NAME_MAX = 40

    size: Str = "Standard_B2s"
    count: int = Field(default=1, ge=1, le=100)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        return _check_vm_size(value)


class Settings(_Model):
    """Everything the program needs from one stack's config."""

    location: Str
    name_prefix: Str
    protection: Protection = "protect"
    tags: dict[str, Str] = Field(default_factory=dict)
    network: Network = Network()
    builder: BuilderDefaults = BuilderDefaults()
    capture: Capture = Capture()
    validation: Validation = Validation()
    replication_timeout_minutes: int = Field(default=240, ge=10, le=1440)
    gallery: Gallery
    images: tuple[Image, ...] = Field(min_length=1)
    scale_sets: tuple[ScaleSet, ...] = ()
    vm_groups: tuple[VmGroup, ...] = ()
    user_data_secrets: dict[str, SecretValue] = Field(default_factory=dict)
    """Secret values for user data templates, each a Pulumi secret; default none."""
    audit: image_audit.Audit = image_audit.Audit()
    """The secret audit's allowlist (`audit.allowlist`: path and reason); default none."""

    def model_post_init(self, context: Any, /) -> None:
        # An image built on another image of the stack takes the plan of its chain's root:
        # its builder, definition and consumers must all name it (marketplace-images).
        by_name = {i.name: i for i in self.images}
        for image in self.images:
            if image.base_image is not None and image.base_image.kind == "image":
                root = chain.inherited_plan(image, by_name)
                plan = root.plan if root is not None else None
                image._base = image.base_image.model_copy(update={"plan": plan})

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        return _check_region(value)

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _check_slug(value, "name prefix", 20)

    def image(self, name: str) -> Image:
        return next(i for i in self.images if i.name == name)

    @property
    def names(self) -> naming.Names:
        return naming.Names(self.name_prefix)

    def builder_for(self, image: Image) -> Builder:
        """The image's builder settings with the stack-wide defaults filled in.

        Built from values `load` already checked, without validating again: nothing the
        program derives from settings may raise once resources are being registered.
        """
        spec = build_spec(self.images.index(image), image, self.builder)
        return Builder.model_construct(
            vm_size=spec.vm_size,
            os_disk_type=spec.os_disk_type,
            os_disk_size_gb=spec.os_disk_size_gb,
            security_type="TrustedLaunch" if spec.trusted_launch else "Standard",
        )

    def consumers(self) -> tuple[ScaleSet | VmGroup, ...]:
        return (*self.scale_sets, *self.vm_groups)

    def base_of(self, image: Image) -> chain.BaseRef:
        """What `image`'s builder starts from, resolved (latest of a stack image included)."""
        return chain.resolve(image, {i.name: i for i in self.images}, self.gallery.name)

    def build_order(self) -> list[Image]:
        """The images with every base before the images built on it."""
        return chain.order(self.images)

    def user_data_for(self, consumer: ScaleSet | VmGroup) -> userdata.Rendered | None:
        """The consumer's first-boot configuration with its values in (checked by `check`)."""
        spec = consumer.user_data
        if spec is None:
            return None
        template = userdata.load(spec.file)
        assert template is not None
        secrets = {k: v.get_secret_value() for k, v in self.user_data_secrets.items()}
        return userdata.render(template, spec.values, secrets)


def build_spec(index: int, image: Image, defaults: BuilderDefaults | None) -> preflight.BuildSpec:
    """An image's builder from its own settings and the stack-wide ones, with the key each
    value came from. `defaults` None: the stack-wide `builder` did not parse."""
    own = image.builder
    base = defaults or BuilderDefaults.model_construct()
    at = ("images", index, "builder")
    stack_size = "windowsVmSize" if image.os == "windows" else "vmSize"
    return preflight.BuildSpec(
        vm_size=own.vm_size or (base.windows_vm_size if image.os == "windows" else base.vm_size),
        vm_size_key=_key((*at, "vmSize")) if own.vm_size else _key(("builder", stack_size)),
        os_disk_type=own.os_disk_type or base.os_disk_type,
        os_disk_type_key=_key((*at, "osDiskType"))
        if own.os_disk_type
        else _key(("builder", "osDiskType")),
        os_disk_size_gb=own.os_disk_size_gb or base.os_disk_size_gb,
        os_disk_size_key=_key((*at, "osDiskSizeGb"))
        if own.os_disk_size_gb
        else _key(("builder", "osDiskSizeGb")),
        trusted_launch=own.security_type == "TrustedLaunch",
        security_key=_key((*at, "securityType")),
        test_vm_size=image.validation.vm_size,
        test_vm_size_key=_key(("images", index, "validation", "vmSize")),
    )


# --- pydantic errors -> config-key messages ---------------------------------------------


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose key sits at ``loc`` (for 'unknown key' hints)."""
    current: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """tuple[X, ...] / X | None / Annotated[X, ...] -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated or origin in (tuple, list):
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = _field_names(parent) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{_key(loc)}: unknown key{hint}; allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return f"{_key(loc)}: required key is missing"
    if kind == "too_short":
        # pydantic's own text ("tuple ... after validation") speaks of its internals.
        least = error.get("ctx", {}).get("min_length", 1)
        return f"{_key(loc)}: list at least {least} entry here; got none"
    value = error.get("input")
    if kind == "value_error":
        return f"{_key(loc)}: {str(error['msg']).removeprefix('Value error, ')}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{_key(loc)}: {value!r} is not allowed; allowed values: {expected}"
    # pydantic's own texts speak of its internals ("input should be ..."); say it in the
    # stack file's terms: what the value is not, and what is allowed.
    low, high = _bounds(loc)
    span = (
        f"; allowed: {low} to {high}"
        if low is not None and high is not None
        else f"; allowed: {low} or more"
        if low is not None
        else ""
    )
    if kind in ("greater_than_equal", "less_than_equal"):
        # Top-level numbers reach the program as text ('5'): show them as the user wrote them.
        shown = value if isinstance(value, str) and value.lstrip("-").isdigit() else repr(value)
        return f"{_key(loc)}: {shown} is out of range{span}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{_key(loc)}: {value!r} is not a whole number{span}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{_key(loc)}: {value!r} is not a boolean; allowed: true or false"
    if kind in ("list_type", "tuple_type"):
        return f"{_key(loc)}: {value!r} is not a list; write one '- ' entry per line"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{_key(loc)}: {value!r} is not a mapping; write 'key: value' lines under it"
    if kind == "string_type":
        return f"{_key(loc)}: {value!r} is not text; write a string"
    return f"{_key(loc)}: {value!r} is not a valid value here"


def _bounds(loc: tuple[str | int, ...]) -> tuple[Any, Any]:
    """The ge/le limits of the number field at ``loc``, for 'allowed: 1 to 100'."""
    model = _model_at(loc[:-1])
    if model is None:
        return None, None
    name = loc[-1]
    field = next((f for n, f in model.model_fields.items() if name in (n, f.alias)), None)
    low = high = None
    for meta in field.metadata if field else []:
        low = getattr(meta, "ge", low)
        high = getattr(meta, "le", high)
    return low, high


# --- rules that relate values ------------------------------------------------------------


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for v in values:
        if v in seen and v not in dupes:
            dupes.append(v)
        seen.add(v)
    return dupes


# The in-guest steps the program adds after an image's provisioning scripts, and the common
# checks every test VM runs first (imagefactory/scripts.py, imagefactory/validation.py).
_STEP_NAMES = ("audit", "generalize")
COMMON_CHECK: dict[OsType, str] = {"linux": "linux/validate.sh", "windows": "windows/validate.ps1"}


def _plain(path: str) -> bool:
    """A path relative to scripts/ as written, inside it."""
    return posixpath.normpath(path) == path and not path.startswith(("/", "../")) and path != ".."


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _script_names(
    at: tuple[str | int, ...],
    field: tuple[str, ...],
    paths: Sequence[str],
    *,
    reserved: Sequence[str] = (),
    taken: Sequence[str] = (),
    common: str | None = None,
) -> list[str]:
    """Script paths: relative, inside scripts/, written plainly; and distinct file names,
    since each step's Run Command and resource are named after its file name."""
    problems: list[str] = []
    seen = {_stem(p): p for p in taken}
    for j, path in enumerate(paths):
        key = _key((*at, *field, j))
        plain = posixpath.normpath(path)
        if path.startswith("/") or plain == ".." or plain.startswith("../"):
            problems.append(
                f"{key}: {path!r} is outside scripts/; allowed: a path relative to scripts/, "
                "e.g. 'linux/validate/20-webserver.sh'"
            )
            continue
        if plain != path:
            problems.append(f"{key}: {path!r} is not written plainly; write it as {plain!r}")
            continue
        if path == common:
            problems.append(
                f"{key}: {path!r} is the common check every test VM runs first; list only "
                "the image's own checks"
            )
            continue
        stem = _stem(path)
        if stem in reserved:
            problems.append(
                f"{key}: {path!r} has the name of the program's own {stem!r} step; rename the file"
                if common is None
                else f"{key}: {path!r} is the program's own {stem!r} step, not a check; "
                "allowed: a script that only reads, e.g. under scripts/<os>/validate/"
            )
        elif stem in seen and seen[stem] != path:
            problems.append(
                f"{key}: {path!r} has the same file name as {seen[stem]!r}, and each step is "
                "named after its file name; rename one of them"
            )
        seen.setdefault(stem, path)
    return problems


def _retired_unpublished(parsed: Settings, facts: azure_facts.Facts) -> list[str]:
    """A retired build publishes nothing: its version must already be in the gallery.

    Otherwise the builder's managed image or staging version, which still exists until the
    update deletes it at its end, would become the version's source: a build that failed
    validation (its version never created) would be published untested by retiring it.
    Asked of Azure when credentials exist; offline it is not known.
    """
    problems: list[str] = []
    group = parsed.names.images_group
    for i, image in enumerate(parsed.images):
        for j, version in enumerate(image.versions):
            if version.builder != "retired":
                continue
            published = facts.version_published(
                group, parsed.gallery.name, image.name, version.version
            )
            if published is not False:  # there, or not known offline
                continue
            problems.append(
                f"{_key(('images', i, 'versions', j, 'builder'))}: 'retired', but version "
                f"{image.name} {version.version} is not in gallery {parsed.gallery.name!r} "
                f"({group}): a retired build publishes nothing (its build may have failed "
                "validation); publish it with builder: active, or remove the version"
            )
    return problems


def _script_files(
    at: tuple[str | int, ...],
    field: tuple[str, ...],
    paths: Sequence[str],
    os: OsType,
    *,
    in_guest_only: bool = False,
) -> list[str]:
    """Each plainly written path is a file of the image's OS under scripts/ (under
    scripts/<os>/ with `in_guest_only`: not, say, scripts/azure/, which runs on the host)."""
    problems: list[str] = []
    suffix = SCRIPT_SUFFIX[os]
    for j, script in enumerate(paths):
        key = _key((*at, *field, j))
        if not _plain(script):
            continue  # _script_names says why
        if not script.endswith(suffix):
            problems.append(
                f"{key}: {script!r} is not a {os} script; {os} images run {suffix} files"
            )
        elif in_guest_only and not script.startswith(f"{os}/"):
            problems.append(
                f"{key}: {script!r} is not under scripts/{os}/; checks run on the test VM: "
                f"allowed: a {os} script under scripts/{os}/"
            )
        elif not (SCRIPTS_DIR / script).is_file():
            problems.append(f"{key}: {script!r} does not exist under scripts/")
    return problems


def _image_rules(i: int, image: Image, location: str | None) -> list[str]:
    at = ("images", i)
    problems: list[str] = []
    builder_tl = image.builder.security_type == "TrustedLaunch"
    tl_definition = image.security_type != "Standard"
    if tl_definition and image.generation == "V1":
        problems.append(
            f"{_key((*at, 'securityType'))}: {image.security_type!r} needs generation 'V2'; "
            "Trusted Launch and confidential VMs do not support Gen1 (set generation: V2 or "
            "securityType: Standard)"
        )
    if builder_tl and image.generation == "V1":
        problems.append(
            f"{_key((*at, 'builder', 'securityType'))}: 'TrustedLaunch' needs generation 'V2'; "
            "a Gen1 VM cannot use Trusted Launch"
        )
    if builder_tl and image.security_type != "TrustedLaunch":
        # Azure takes a version straight from a VM only into a TrustedLaunch definition;
        # TrustedLaunchSupported accepts VHD, managed image and version sources only.
        problems.append(
            f"{_key((*at, 'securityType'))}: {image.security_type!r} cannot hold a version "
            "published from a Trusted Launch builder VM; allowed: 'TrustedLaunch' (or set "
            "builder.securityType: Standard to capture a managed image)"
        )
    problems.extend(_script_names(at, ("scripts",), image.script_paths, reserved=_STEP_NAMES))
    problems.extend(
        _script_names(
            at,
            ("validation", "scripts"),
            image.validation.scripts,
            taken=[p for p in image.validation_paths if p not in image.validation.scripts],
            common=COMMON_CHECK[image.os],
            # A check runs on the test VM: never the program's own in-guest steps (the
            # generalization would deprovision it mid-validation).
            reserved=_STEP_NAMES,
        )
    )
    problems.extend(_script_files(at, ("scripts",), image.script_paths, image.os))
    if not image.script_paths:
        problems.append(
            f"{_key((*at, 'scripts'))}: no provisioning scripts; add files to "
            f"scripts/{image.os}/provision/ or list them here"
        )
    problems.extend(
        _script_files(
            at, ("validation", "scripts"), image.validation.scripts, image.os, in_guest_only=True
        )
    )
    for dupe in _duplicates(image.validation.scripts):
        problems.append(
            f"{_key((*at, 'validation', 'scripts'))}: {dupe!r} is listed more than once"
        )
    for dupe in _duplicates(v.version for v in image.versions):
        problems.append(
            f"{_key((*at, 'versions'))}: version {dupe!r} is listed more than once; each "
            "version is published once and never changes"
        )
    for j, version in enumerate(image.versions):
        vat = (*at, "versions", j)
        for dupe in _duplicates(t.name for t in version.regions):
            problems.append(f"{_key((*vat, 'regions'))}: region {dupe!r} is listed more than once")
        if location is not None and not version.replicated_to(location):
            targets = ", ".join(t.name for t in version.regions)
            problems.append(
                f"{_key((*vat, 'regions'))}: the source region {location!r} (config key "
                f"{NAMESPACE}:location) must be one of the target regions; got {targets}"
            )
        for k, target in enumerate(version.regions):
            if (
                target.storage == "Standard_ZRS"
                and regions.is_region(target.name)
                and not regions.has_zones(target.name)
            ):
                problems.append(
                    f"{_key((*vat, 'regions', k, 'storage'))}: 'Standard_ZRS' is not "
                    f"available in {target.name!r}, which has no availability zones; "
                    "use 'Standard_LRS' or 'Premium_LRS' there"
                )
            if (
                version.replication_mode == "Shallow"
                and location is not None
                and target.name != location
            ):
                # A shallow version references its source instead of copying it, so it
                # exists in the source region only ("Shallow replication",
                # https://learn.microsoft.com/azure/virtual-machines/
                # azure-compute-gallery#shallow-replication).
                problems.append(
                    f"{_key((*vat, 'regions', k, 'name'))}: {target.name!r} with "
                    f"replicationMode 'Shallow'; a shallow version stays in its source region "
                    f"{location!r} (config key {NAMESPACE}:location); use replicationMode: "
                    "Full to replicate it"
                )
            if version.replication_mode == "Shallow" and target.replicas != 1:
                problems.append(
                    f"{_key((*vat, 'regions', k, 'replicas'))}: {target.replicas} replicas "
                    "with replicationMode 'Shallow'; shallow replication keeps exactly 1 "
                    "replica per region"
                )
    return problems


def _consumer_rules(
    kind: str, index: int, consumer: ScaleSet | VmGroup, images: Mapping[str, Image]
) -> list[str]:
    at = (kind, index)
    image = images.get(consumer.image)
    if image is None:
        known = ", ".join(sorted(images)) or "none"
        return [
            f"{_key((*at, 'image'))}: {consumer.image!r} is not an image of this stack; "
            f"known images: {known}"
        ]
    version = image.find(consumer.version)
    if version is None:
        if consumer.version == LATEST:
            return [
                f"{_key((*at, 'version'))}: 'latest' of image {image.name!r} resolves to no "
                f"version: every version is excluded from latest; {consumer.name!r} still "
                "uses it, so keep at least one version in latest"
            ]
        known = ", ".join(v.version for v in image.versions)
        return [
            f"{_key((*at, 'version'))}: {consumer.version!r} is not a version of image "
            f"{image.name!r} (known: {known}); {consumer.name!r} still pins it, so keep that "
            "version in config until no consumer uses it"
        ]
    if not version.replicated_to(consumer.region):
        targets = ", ".join(t.name for t in version.regions)
        return [
            f"{_key((*at, 'region'))}: {consumer.region!r} has no replica of {image.name} "
            f"{version.version} (replicated to: {targets}); add the region to that "
            "version's regions or deploy the consumer where the version is"
        ]
    if (
        isinstance(consumer, ScaleSet)
        and consumer.version == LATEST
        and consumer.upgrade_policy == "Manual"
    ):
        # Azure resolves "latest" when an instance is created; a scale set follows new
        # versions through automatic OS image upgrades, which roll instances in batches.
        # With a Manual policy the instances would keep the version they were created
        # with while the config says "latest".
        return [
            f"{_key((*at, 'upgradePolicy'))}: 'Manual' cannot follow 'latest': instances "
            f"would keep the version they were created from; use 'Rolling' or 'Automatic' "
            f"(automatic OS image upgrades move them to each new version), or pin "
            f"{consumer.name!r} to a version"
        ]
    return []


def _orphaned(kind: str, index: int, consumer: ScaleSet | VmGroup) -> str:
    """A consumer of an image whose last version was removed from config."""
    key = _key((kind, index, "version"))
    if consumer.version == LATEST:
        return (
            f"{key}: 'latest' of image {consumer.image!r} resolves to no version: the image "
            f"lists none; {consumer.name!r} still uses it, so keep at least one version in latest"
        )
    return (
        f"{key}: {consumer.version!r} is not a version of image {consumer.image!r} (known: "
        f"none); {consumer.name!r} still pins it, so keep that version in config until no "
        "consumer uses it"
    )


def _network_rules(
    network: Network, builders: int, consumers: Mapping[str, int], *, test_vms: bool = False
) -> list[str]:
    """CIDRs: private IPv4, subnet inside its space, at least a /29, room for every NIC.

    `builders`: active builder VMs (one NIC each, in the build subnet), each with a test
    VM when `test_vms`; `consumers`: VMs per region (each region's network uses the same
    consumer subnet).
    """
    problems: list[str] = []
    busiest = max(consumers.items(), key=lambda kv: kv[1], default=("", 0))
    build_nics = builders * 2 if test_vms else builders
    need = {
        "builderSubnet": (
            build_nics,
            f"{builders} active builder(s) and their test VM(s)"
            if test_vms
            else f"{builders} active builder(s)",
        ),
        "consumerSubnet": (busiest[1], f"the scale set instances and VMs in {busiest[0]!r}"),
    }
    pairs = (
        (
            ("builderAddressSpace", network.builder_address_space),
            ("builderSubnet", network.builder_subnet),
        ),
        (
            ("consumerAddressSpace", network.consumer_address_space),
            ("consumerSubnet", network.consumer_subnet),
        ),
    )
    for (space_key, space), (subnet_key, subnet) in pairs:
        parsed = []
        for key, value in ((space_key, space), (subnet_key, subnet)):
            try:
                net = ipaddress.ip_network(value)
            except ValueError:
                problems.append(
                    f"{_key(('network', key))}: {value!r} is not a CIDR block; "
                    "expected e.g. '10.42.0.0/16'"
                )
                continue
            if net.version != 4:
                problems.append(
                    f"{_key(('network', key))}: {value!r} is IPv6; Azure virtual networks "
                    "need an IPv4 range (e.g. '10.42.0.0/16')"
                )
                continue
            if not net.is_private:
                problems.append(
                    f"{_key(('network', key))}: {value!r} is not a private range; use "
                    "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
                )
            if key in need:
                assert isinstance(net, ipaddress.IPv4Network)
                count, what = need[key]
                problems.extend(rules.subnet(_key(("network", key)), net, count, what))
            parsed.append(net)
        if len(parsed) == 2 and not parsed[1].subnet_of(parsed[0]):
            problems.append(
                f"{_key(('network', subnet_key))}: {str(parsed[1])!r} is not inside "
                f"{NAMESPACE}:network.{space_key} {str(parsed[0])!r}"
            )
    return problems


def _partial(model: type[BaseModel], raw: Any) -> Any:
    """Validate one part on its own; None when it does not parse (its errors are known)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _rules(
    raw: Mapping[str, Any], parsed: Settings | None, facts: azure_facts.Facts
) -> preflight.Findings:
    """The relational rules and the fact-based checks, over every part that parsed."""
    # Images that are in config but did not parse: their own errors are reported, so a
    # consumer naming one must not also be told the image does not exist. None: the images
    # key itself is unusable, so no consumer's image can be checked.
    broken: set[Any] | None = set()
    emptied: set[Any] = set()  # images whose every version was removed from config
    if parsed is not None:
        location: str | None = parsed.location
        images = list(enumerate(parsed.images))
        scale_sets = list(enumerate(parsed.scale_sets))
        vm_groups = list(enumerate(parsed.vm_groups))
        network: Network | None = parsed.network
        defaults: BuilderDefaults | None = parsed.builder
        tags: Mapping[str, Any] = parsed.tags
        principals = [share.principal_id for share in parsed.gallery.sharing]
        secrets: Mapping[str, str] | None = {
            k: v.get_secret_value() for k, v in parsed.user_data_secrets.items()
        }
    else:
        location = raw.get("location") if isinstance(raw.get("location"), str) else None
        if location is not None and not regions.is_region(location):
            location = None

        def parts(key: str, model: type[BaseModel]) -> list[tuple[int, Any]]:
            items = raw.get(key)
            if not isinstance(items, list):
                return []
            return [(n, p) for n, item in enumerate(items) if (p := _partial(model, item))]

        images = parts("images", Image)
        raw_images = raw.get("images")
        if isinstance(raw_images, list):
            good = {n for n, _ in images}
            broken = {
                item.get("name")
                for n, item in enumerate(raw_images)
                if n not in good and isinstance(item, dict)
            }
            emptied = {
                item.get("name")
                for item in raw_images
                if isinstance(item, dict) and item.get("versions") == []
            }
        else:
            broken = None
        scale_sets = parts("scaleSets", ScaleSet)
        vm_groups = parts("vmGroups", VmGroup)
        network = _partial(Network, raw.get("network", {}))
        defaults = _partial(BuilderDefaults, raw.get("builder", {}))
        raw_tags = raw.get("tags")
        tags = raw_tags if isinstance(raw_tags, dict) else {}
        gallery = raw.get("gallery")
        sharing = gallery.get("sharing") if isinstance(gallery, dict) else None
        principals = [
            str(share.get("principalId")).lower()
            for share in (sharing if isinstance(sharing, list) else [])
            if isinstance(share, dict) and isinstance(share.get("principalId"), str)
        ]
        secrets = _partial_secrets(raw.get(SECRETS_KEY, {}))

    problems: list[str] = []
    if parsed is not None:
        problems.extend(image_audit.rules(parsed.audit))
    for dupe in _duplicates(img.name for _, img in images):
        problems.append(f"{_key(('images',))}: image {dupe!r} is defined more than once")
    # VM and NIC names take no '_' or '.', and Azure compares names case-insensitively: two
    # images whose names differ only there would build on one VM (naming.Names.builder_vm).
    slugs: dict[str, str] = {}
    for _, img in images:
        slug = re.sub(r"[_.]+", "-", img.name).lower()
        if slug in slugs and slugs[slug] != img.name:
            problems.append(
                f"{_key(('images',))}: images {slugs[slug]!r} and {img.name!r} differ only in "
                "'-', '_', '.' or case, which VM names cannot tell apart (their builders and "
                "test VMs would share one name); rename one"
            )
        slugs.setdefault(slug, img.name)
    identifiers = [
        (img.identifier.publisher, img.identifier.offer, img.identifier.sku) for _, img in images
    ]
    for dupe in _duplicates(":".join(t) for t in identifiers):
        problems.append(
            f"{_key(('images',))}: identifier {dupe!r} is used by more than one image; "
            "publisher/offer/sku must be unique within the gallery"
        )
    for i, image in images:
        problems.extend(_image_rules(i, image, location))
    by_name = {img.name: img for _, img in images}
    broken_names = None if broken is None else {str(b) for b in broken}
    chain_warnings: list[str] = []
    for i, image in images:
        problems.extend(
            chain.problems(
                i,
                image,
                by_name,
                broken_names,
                image.builder.security_type or "Standard",
                _disk_sizes(by_name, defaults, location, facts),
            )
        )
        base = image.base_image
        if base is not None and base.kind == "id":
            found_id = chain.id_problems(i, base)
            problems.extend(found_id)
            # Another gallery's image: Azure describes it when asked (live), else a warning.
            described = (
                facts.gallery_image(str(base.id), location or "")
                if not found_id and location is not None
                else None
            )
            builder_security = image.builder.security_type or "Standard"
            if described is not None:
                problems.extend(chain.external_problems(i, image, described, builder_security))
            elif not found_id and (warning := chain.unchecked_warning(i, base)) is not None:
                chain_warnings.append(warning)
    # Azure compares resource names case-insensitively: Web-US and web-us are one scale set.
    written = [c.name for _, c in scale_sets] + [c.name for _, c in vm_groups]
    for dupe in _duplicates(name.lower() for name in written):
        spellings = sorted({name for name in written if name.lower() == dupe})
        same = (
            f" ({' and '.join(repr(s) for s in spellings)} differ only in case, which Azure "
            "ignores)"
            if len(spellings) > 1
            else ""
        )
        problems.append(
            f"{_key(('scaleSets',))}: consumer {spellings[0]!r} is defined more than once "
            f"(names are shared by scaleSets and vmGroups){same}"
        )
    for kind, consumers in (("scaleSets", scale_sets), ("vmGroups", vm_groups)):
        for n, consumer in consumers:
            if consumer.image in emptied:
                problems.append(_orphaned(kind, n, consumer))
            elif broken is not None and consumer.image not in broken:
                problems.extend(_consumer_rules(kind, n, consumer, by_name))
            problems.extend(_placement_rules(kind, n, consumer))
            image_os = by_name[consumer.image].os if consumer.image in by_name else None
            problems.extend(_user_data_rules(kind, n, consumer, image_os, secrets))
    problems.extend(_secret_value_rules(secrets))
    active = sum(v.builder == "active" for _, img in images for v in img.versions)
    per_region: dict[str, int] = {}
    for _, ss in scale_sets:
        # Autoscale may grow a scale set to its largest maximum: the subnet must hold that.
        per_region[ss.region] = per_region.get(ss.region, 0) + ss.most_instances
    for _, group in vm_groups:
        per_region[group.region] = per_region.get(group.region, 0) + group.count
    validating = parsed.validation.enabled if parsed is not None else True
    if network is not None:
        # A validated build has a test VM beside its builder, in the same subnet.
        problems.extend(_network_rules(network, active, per_region, test_vms=validating))
    if all(isinstance(k, str) for k in tags):
        problems.extend(rules.tags(_key(("tags",)), {k: str(v) for k, v in tags.items()}))
    problems.extend(rules.duplicate_principals(_key(("gallery", "sharing")), principals))
    oses = sorted({img.os for _, img in images})
    if defaults is not None:
        problems.extend(
            rules.admin_username(_key(("builder", "adminUsername")), defaults.admin_username, oses)
        )

    # Facts: sizes against images, base images against definitions, disks, plans.
    with_builds = [
        (
            i,
            img,
            build_spec(i, img, defaults)
            if any(v.builder == "active" for v in img.versions)
            else None,
        )
        for i, img in images
    ]
    users = [
        (kind, n, consumer, by_name[consumer.image])
        for kind, consumers in (("scaleSets", scale_sets), ("vmGroups", vm_groups))
        for n, consumer in consumers
        if consumer.image in by_name
    ]
    found = preflight.check(facts, location, with_builds, users)
    if parsed is not None:
        problems.extend(_retired_unpublished(parsed, facts))
    found.problems[:0] = problems
    found.warnings.extend(chain_warnings)
    return found


# --- secrets, placement, user data -------------------------------------------------------


def _is_ciphertext(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _holds_ciphertext(value: Any) -> bool:
    if _is_ciphertext(value):
        return True
    if isinstance(value, dict):
        return any(_holds_ciphertext(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_ciphertext(v) for v in value)
    return False


def _secret_rules(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> list[str]:
    """Secrets only where the program keeps them secret, and no plain text where it expects
    secrets. A stack file read offline shows secrets as `{secure: ...}`; the Pulumi CLI
    decrypts them and names the keys holding one (PULUMI_CONFIG_SECRET_KEYS)."""
    problems: list[str] = []
    for key in sorted(raw):
        if key == SECRETS_KEY:
            continue
        if key in secret_keys or _holds_ciphertext(raw[key]):
            problems.append(
                f"{_key((key,))}: holds a Pulumi secret, but the program uses this key's "
                "values in clear (names, sizes, tags and values become resource properties "
                "anyone with Reader sees); keep secret values in "
                f"{_key((SECRETS_KEY,))} and use them in a user data template"
            )
    given = raw.get(SECRETS_KEY)
    if isinstance(given, dict) and SECRETS_KEY not in secret_keys:
        for name, value in given.items():
            # Text sitting in the file; anything else is refused as not text (_secret_text).
            if isinstance(value, str | int | float | bool):
                problems.append(
                    f"{_key((SECRETS_KEY,))}.{name}: is not a Pulumi secret, so its value "
                    "sits in clear in the stack file (not shown here); set it with: pulumi "
                    f"config set --secret --path '{NAMESPACE}:{SECRETS_KEY}.{name}' <value>"
                )
    return problems


def _partial_secrets(raw: Any) -> Mapping[str, str] | None:
    """The secret values when the whole config did not parse, or None when they do not."""
    if not isinstance(raw, dict):
        return None
    try:
        return {str(k): _secret_text(v) for k, v in raw.items()}
    except ValueError:
        return None


def _secret_value_rules(secrets: Mapping[str, str] | None) -> list[str]:
    problems: list[str] = []
    for name, value in (secrets or {}).items():
        where = f"{_key((SECRETS_KEY,))}.{name}"
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            problems.append(
                f"{where}: not a placeholder name; names are letters, digits and '_', not "
                "starting with a digit, as a template writes them"
            )
        elif not userdata.is_one_line(value):
            problems.append(
                f"{where}: holds a line break or control character (its value is not shown); "
                "a value is one line of text"
            )
    return problems


def _placement_rules(kind: str, index: int, consumer: ScaleSet | VmGroup) -> list[str]:
    """Zones where the region has them; a scale set's zone balance and autoscale."""
    at = (kind, index)
    problems: list[str] = []
    what = "a scale set" if kind == "scaleSets" else "a VM group"
    if (
        consumer.zones
        and regions.is_region(consumer.region)
        and not regions.has_zones(consumer.region)
    ):
        problems.append(
            f"{_key((*at, 'zones'))}: {consumer.region!r} has no availability zones, so "
            f"{what} there cannot be placed in zones; remove zones, or deploy in a region "
            "with zones (https://learn.microsoft.com/azure/reliability/regions-list)"
        )
    for dupe in _duplicates(consumer.zones):
        problems.append(f"{_key((*at, 'zones'))}: zone {dupe!r} is listed more than once")
    if not isinstance(consumer, ScaleSet):
        return problems
    if consumer.zone_balance and len(set(consumer.zones)) < 2:
        # REST VirtualMachineScaleSet.zoneBalance: "can only be set if the zones property of
        # the scale set contains more than one zone".
        problems.append(
            f"{_key((*at, 'zoneBalance'))}: true needs at least two zones; strict zone balance "
            f"spreads instances over several zones, and {consumer.name!r} has "
            f"{len(set(consumer.zones))}"
        )
    scaling = consumer.autoscale
    if scaling is None:
        return problems
    if "capacity" in consumer.model_fields_set:
        problems.append(
            f"{_key((*at, 'capacity'))}: {consumer.capacity} with autoscale; the scale set is "
            "created with autoscale.default instances and autoscale owns the count from then "
            "on, so remove capacity"
        )
    base = _key((*at, "autoscale"))
    problems += autoscale.capacity_problems(base, scaling.capacity)
    problems += autoscale.cpu_problems(f"{base}.cpu", scaling.cpu_rule)
    problems += autoscale.schedule_problems(f"{base}.schedules", scaling.windows)
    return problems


def _user_data_rules(
    kind: str,
    index: int,
    consumer: ScaleSet | VmGroup,
    os: str | None,
    secrets: Mapping[str, str] | None,
) -> list[str]:
    """The template exists, suits the image's OS, gets every value it uses and fits Azure."""
    spec = consumer.user_data
    if spec is None or os is None:
        return []
    key = _key((kind, index, "userData"))
    template = userdata.load(spec.file)
    problems = userdata.file_problems(key, spec.file, os, template)
    if problems or template is None or secrets is None:
        return problems
    problems = userdata.value_problems(key, template, spec.values, secrets, _key((SECRETS_KEY,)))
    if problems:
        return problems
    return userdata.rendered_problems(key, userdata.render(template, spec.values, secrets))


def _disk_sizes(
    by_name: Mapping[str, Image],
    defaults: BuilderDefaults | None,
    location: str | None,
    facts: azure_facts.Facts,
) -> typing.Callable[[Image], int | None]:
    """The OS disk size of an image's versions: its builder's, else its base's."""

    def size(image: Image, seen: frozenset[str] = frozenset()) -> int | None:
        own = image.builder.os_disk_size_gb or (defaults.os_disk_size_gb if defaults else None)
        if own is not None:
            return own
        base = image.base_image
        if base is not None and base.kind == "image":
            parent = by_name.get(str(base.image))
            if parent is None or parent.name in seen:
                return None
            return size(parent, seen | {image.name})
        if base is not None and base.kind == "id":
            return None
        looked = facts.image(image.base.urn(), location or "")
        return looked.os_disk_gb if looked is not None else None

    return size


def _encloses(loc: tuple[str | int, ...], errors: Iterable[Mapping[str, Any]]) -> bool:
    """True when another error sits inside ``loc`` (a deeper key of the same list)."""
    return any(len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors)


@dataclass(frozen=True)
class Checked:
    """Settings that passed every check, and what could not be checked (warnings)."""

    settings: Settings
    warnings: tuple[str, ...]


def load(
    raw: Mapping[str, Any],
    facts: azure_facts.Facts | None = None,
    secret_keys: Iterable[str] = (),
) -> Settings:
    """Turn raw stack config (keys without the namespace) into Settings or raise ConfigError."""
    return check(raw, facts, secret_keys).settings


def check(
    raw: Mapping[str, Any],
    facts: azure_facts.Facts | None = None,
    secret_keys: Iterable[str] = (),
) -> Checked:
    """Every check at once against `facts` (default: the snapshot); ConfigError lists all.

    `secret_keys`: the keys (without the namespace) Pulumi marks secret; a key holding a
    secret anywhere inside it is marked as a whole."""
    problems: list[str] = _secret_rules(raw, frozenset(secret_keys))
    parsed: Settings | None = None
    try:
        parsed = Settings.model_validate(dict(raw))
    except ValidationError as exc:
        errors = exc.errors()
        # pydantic checks a list's min_length on the items that validated, so one bad
        # item in a one-item list also reports "too short" for every enclosing list.
        # Keep only the error that names the bad value.
        problems.extend(
            _describe(e)
            for e in errors
            if not (e["type"] == "too_short" and _encloses(tuple(e["loc"]), errors))
            # A `{secure: ...}` where the program takes plain values: _secret_rules says so.
            and not _is_ciphertext(e.get("input"))
        )
    found = _rules(raw, parsed, facts or azure_facts.snapshot())
    problems.extend(found.problems)
    if problems:
        raise ConfigError(problems)
    assert parsed is not None
    return Checked(parsed, tuple(found.warnings))
