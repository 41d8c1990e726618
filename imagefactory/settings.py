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
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from imagefactory import facts as azure_facts
from imagefactory import naming, preflight, regions, rules

NAMESPACE = "imagefactory"
SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"

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
    """A marketplace image: publisher:offer:sku:version, and its plan if it is sold with one."""

    publisher: Str
    offer: Str
    sku: Str
    version: Str = "latest"
    plan: PurchasePlan | None = None
    """Required for images sold through a Marketplace plan; default none."""

    def urn(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


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

    @property
    def base(self) -> BaseImage:
        return self.base_image or BaseImage.model_validate(DEFAULT_BASE_IMAGES[self.os])

    @property
    def script_paths(self) -> tuple[str, ...]:
        """Provisioning scripts relative to scripts/; default: all of the OS's provision/."""
        if self.scripts is not None:
            return self.scripts
        folder = SCRIPTS_DIR / self.os / "provision"
        suffix = SCRIPT_SUFFIX[self.os]
        return tuple(str(p.relative_to(SCRIPTS_DIR)) for p in sorted(folder.glob(f"*{suffix}")))

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


class _Consumer(_Model):
    """What every consumer names: itself, its region, and the image version it runs."""

    _WHAT: typing.ClassVar[str]
    _NAME_MAX: typing.ClassVar[int]

    name: Str
    region: Str
    image: Str
    version: VersionStr = LATEST

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
    capacity: int = Field(default=2, ge=0, le=1000)
    upgrade_policy: UpgradeMode = "Rolling"
    health_port: int = Field(default=80, ge=1, le=65535)
    health_path: Str = "/"

    @field_validator("sku")
    @classmethod
    def _sku(cls, value: str) -> str:
        return _check_vm_size(value)


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
    replication_timeout_minutes: int = Field(default=240, ge=10, le=1440)
    gallery: Gallery
    images: tuple[Image, ...] = Field(min_length=1)
    scale_sets: tuple[ScaleSet, ...] = ()
    vm_groups: tuple[VmGroup, ...] = ()

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
    suffix = SCRIPT_SUFFIX[image.os]
    for j, script in enumerate(image.script_paths):
        key = _key((*at, "scripts", j))
        if not script.endswith(suffix):
            problems.append(
                f"{key}: {script!r} is not a {image.os} script; {image.os} images run "
                f"{suffix} files"
            )
        elif not (SCRIPTS_DIR / script).is_file():
            problems.append(f"{key}: {script!r} does not exist under scripts/")
    if not image.script_paths:
        problems.append(
            f"{_key((*at, 'scripts'))}: no provisioning scripts; add files to "
            f"scripts/{image.os}/provision/ or list them here"
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


def _network_rules(network: Network, builders: int, consumers: Mapping[str, int]) -> list[str]:
    """CIDRs: private IPv4, subnet inside its space, at least a /29, room for every NIC.

    `builders`: active builder VMs (one NIC each, in the build subnet); `consumers`: VMs
    per region (each region's network uses the same consumer subnet).
    """
    problems: list[str] = []
    busiest = max(consumers.items(), key=lambda kv: kv[1], default=("", 0))
    need = {
        "builderSubnet": (builders, f"{builders} active builder(s)"),
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

    problems: list[str] = []
    for dupe in _duplicates(img.name for _, img in images):
        problems.append(f"{_key(('images',))}: image {dupe!r} is defined more than once")
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
    active = sum(v.builder == "active" for _, img in images for v in img.versions)
    per_region: dict[str, int] = {}
    for _, ss in scale_sets:
        per_region[ss.region] = per_region.get(ss.region, 0) + ss.capacity
    for _, group in vm_groups:
        per_region[group.region] = per_region.get(group.region, 0) + group.count
    if network is not None:
        problems.extend(_network_rules(network, active, per_region))
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
    found.problems[:0] = problems
    return found


def _encloses(loc: tuple[str | int, ...], errors: Iterable[Mapping[str, Any]]) -> bool:
    """True when another error sits inside ``loc`` (a deeper key of the same list)."""
    return any(len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors)


@dataclass(frozen=True)
class Checked:
    """Settings that passed every check, and what could not be checked (warnings)."""

    settings: Settings
    warnings: tuple[str, ...]


def load(raw: Mapping[str, Any], facts: azure_facts.Facts | None = None) -> Settings:
    """Turn raw stack config (keys without the namespace) into Settings or raise ConfigError."""
    return check(raw, facts).settings


def check(raw: Mapping[str, Any], facts: azure_facts.Facts | None = None) -> Checked:
    """Every check at once against `facts` (default: the snapshot); ConfigError lists all."""
    problems: list[str] = []
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
        )
    found = _rules(raw, parsed, facts or azure_facts.snapshot())
    problems.extend(found.problems)
    if problems:
        raise ConfigError(problems)
    assert parsed is not None
    return Checked(parsed, tuple(found.warnings))
