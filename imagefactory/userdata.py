"""Per-environment configuration at first boot: templates in scripts/, rendered with a stack's
values, handed to each consumer VM as Azure custom data.

Pure: no Pulumi. `settings` renders every consumer's template once while it checks the
config (so a missing value, a bad file or an oversized result is a config error naming the
key), and the components render it again, identically, to build the resource input.

A template is a file under scripts/ (Linux: anything cloud-init reads, normally
`#cloud-config`; Windows: a PowerShell script). Placeholders are `{{ name }}`, optionally
with a quoting filter: `{{ name | json }}` (a JSON string, which is also a YAML
double-quoted scalar), `{{ name | sh }}` (a POSIX shell word), `{{ name | pwsh }}` (a
PowerShell single-quoted string). Only `{{ identifier }}` forms are placeholders: cloud-init's
own Jinja variables (`{{ v1.region }}`, `{{ ds.meta_data.x }}`) are dotted and left alone.

Azure's rules this module enforces (sources beside each constant):

- custom data is at most 65535 bytes once decoded;
- cloud-init ignores user data that does not start with one of its format headers;
- Windows stores custom data in %SYSTEMDRIVE%\\AzureData\\CustomData.bin and never runs it,
  so a Windows consumer runs it with the Custom Script Extension (`first_boot_extension`).
"""

from __future__ import annotations

import base64
import difflib
import json
import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"

# OSProfile.customData: "The maximum length of the binary array is 65535 bytes."
# (REST: virtual-machines/create-or-update#osprofile; the same words in the installed
# pulumi_azure_native.compute OSProfileArgs.custom_data docstring.)
CUSTOM_DATA_MAX_BYTES = 65535

# cloud-init's user-data formats, each recognised by how the data starts
# (https://cloudinit.readthedocs.io/en/latest/explanation/format.html); anything else is
# ignored without an error, so a template that starts otherwise would silently do nothing.
CLOUD_INIT_HEADERS = (
    "#cloud-config",
    "#!",
    "#include",
    "#cloud-boothook",
    "#part-handler",
    "#cloud-config-archive",
    "## template: jinja",
    "Content-Type: multipart/",
)

# The loader the Custom Script Extension runs on Windows consumers (a file, like every
# script the program hands to a VM).
WINDOWS_FIRST_BOOT_LOADER = "windows/run-first-boot.ps1"
# Custom Script Extension for Windows: publisher, type and handler version as documented
# (https://learn.microsoft.com/azure/virtual-machines/extensions/custom-script-windows).
FIRST_BOOT_EXTENSION = "firstboot"
CSE_PUBLISHER = "Microsoft.Compute"
CSE_TYPE = "CustomScriptExtension"
CSE_VERSION = "1.10"

FILTERS = ("json", "sh", "pwsh")
_BRACES = re.compile(r"\{\{(.*?)\}\}")
_OURS = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*(\S*)\s*)?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# PowerShell treats U+2018, U+2019, U+201A and U+201B as single quotes too (PowerShell
# language specification, 2.3.5.2 "single-quote-character"): each is doubled.
_PWSH_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")

OFFLINE_SECRET = "offline-placeholder-of-an-encrypted-config-value"
"""What a secret renders as when the offline engine reads a stack file's `secure:` value,
which only the Pulumi CLI can decrypt. The result is secret all the same."""


@dataclass(frozen=True)
class Placeholder:
    name: str
    filter: str | None
    line: int
    text: str
    """The placeholder as written, e.g. '{{ name | json }}'."""


@dataclass(frozen=True)
class Template:
    """A template file under scripts/, read once."""

    path: str
    text: str

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        found = []
        for n, line in enumerate(self.text.splitlines(), start=1):
            for match in _BRACES.finditer(line):
                inner = match.group(1)
                ours = _OURS.match(inner)
                if ours is None:
                    continue  # cloud-init's own Jinja ({{ v1.region }}) or not a placeholder
                found.append(Placeholder(ours.group(1), ours.group(2), n, match.group(0)))
        return tuple(found)

    @property
    def names(self) -> tuple[str, ...]:
        """Placeholder names in order of first use."""
        return tuple(dict.fromkeys(p.name for p in self.placeholders))


@dataclass(frozen=True)
class Rendered:
    """A consumer's user data: the file, the text with values in, and which were secret."""

    path: str
    text: str
    secrets: tuple[str, ...]
    """Names of secret values the text holds; non-empty means the input is a Pulumi secret."""

    @property
    def custom_data(self) -> str:
        """Base64, as osProfile.customData takes it."""
        return base64.b64encode(self.text.encode("utf-8")).decode("ascii")

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


def quote(value: str, how: str | None) -> str:
    """`value` as the filter writes it into the template."""
    if how is None:
        return value
    if how == "json":
        return json.dumps(value)
    if how == "sh":
        return shlex.quote(value)
    if how == "pwsh":
        out = value
        for q in _PWSH_QUOTES:
            out = out.replace(q, q + q)
        return f"'{out}'"
    raise ValueError(f"unknown filter {how!r}")


def is_one_line(value: str) -> bool:
    """No line breaks or control characters (tabs are fine): a value fills one line."""
    return not any(unicodedata.category(c) == "Cc" and c != "\t" for c in value)


def load(path: str, scripts_dir: Path = SCRIPTS_DIR) -> Template | None:
    """The template at scripts/`path`, or None when there is no such file under scripts/."""
    root = scripts_dir.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    try:
        return Template(path, target.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return Template(path, "")


def file_problems(key: str, path: str, os: str, template: Template | None) -> list[str]:
    """The template file itself: exists, fits the consumer's OS, well-formed placeholders."""
    where = f"{key}.file"
    if template is None:
        folder = "linux/userdata" if os == "linux" else "windows/firstboot"
        return [
            f"{where}: {path!r} does not exist under scripts/; templates live in "
            f"scripts/{folder}/ (paths are relative to scripts/)"
        ]
    if not template.text:
        return [f"{where}: {path!r} is empty or not UTF-8 text"]
    problems: list[str] = []
    first = template.text.splitlines()[0] if template.text else ""
    if os == "windows" and not path.endswith(".ps1"):
        problems.append(
            f"{where}: {path!r} is not a PowerShell script; a windows consumer runs its "
            "first-boot script with the Custom Script Extension, so the file must end in .ps1"
        )
    if os == "linux" and not first.startswith(CLOUD_INIT_HEADERS):
        problems.append(
            f"{where}: {path!r} starts with {first[:40]!r}, which cloud-init does not "
            "recognise, so it would ignore the whole file; start it with '#cloud-config' "
            "(allowed: " + ", ".join(CLOUD_INIT_HEADERS) + ")"
        )
    for p in template.placeholders:
        if p.filter is not None and p.filter not in FILTERS:
            problems.append(
                f"{where}: {path} line {p.line}: {p.text} has the filter {p.filter!r}; "
                f"allowed: {', '.join(FILTERS)}, or none"
            )
    return problems


def render(
    template: Template,
    values: Mapping[str, str],
    secrets: Mapping[str, str],
) -> Rendered:
    """The template with every placeholder replaced; the caller checked `problems` first."""
    used: list[str] = []

    def fill(match: re.Match[str]) -> str:
        ours = _OURS.match(match.group(1))
        if ours is None:
            return match.group(0)
        name, how = ours.group(1), ours.group(2)
        if name in values:
            return quote(values[name], how)
        used.append(name)
        return quote(secrets[name], how)

    # `.` never matches a line break: a placeholder sits within one line.
    text = _BRACES.sub(fill, template.text)
    return Rendered(template.path, text, tuple(dict.fromkeys(used)))


def value_problems(
    key: str,
    template: Template,
    values: Mapping[str, str],
    secrets: Mapping[str, Any],
    secrets_key: str,
) -> list[str]:
    """Placeholders against the values given: each has exactly one, none is left over."""
    problems: list[str] = []
    names = template.names
    for name in values:
        if not _IDENT.match(name):
            problems.append(
                f"{key}.values.{name}: not a placeholder name; names are letters, digits "
                "and '_', not starting with a digit, as written in {{ name }}"
            )
        elif name in secrets:
            problems.append(
                f"{key}.values.{name}: also set in {secrets_key}; a placeholder takes one "
                f"value, so keep it in one place ({secrets_key} for secrets)"
            )
        elif name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            used = ", ".join(names) or "none"
            problems.append(
                f"{key}.values.{name}: not used by {template.path}{hint}; its placeholders: {used}"
            )
        elif not is_one_line(values[name]):
            problems.append(
                f"{key}.values.{name}: {values[name]!r} holds a line break or control "
                "character; a value is one line of text (put multi-line content in the "
                "template itself)"
            )
    given = sorted([*values, *(f"{secrets_key}.{s}" for s in secrets)])
    for name in names:
        if name in values or name in secrets:
            continue
        line = next(p.line for p in template.placeholders if p.name == name)
        problems.append(
            f"{key}.values: {template.path} line {line} uses {{{{ {name} }}}}, which has no "
            f"value; give it under values, or as {secrets_key}.{name} if it is a secret "
            f"(given: {', '.join(given) or 'none'})"
        )
    return problems


def rendered_problems(key: str, rendered: Rendered) -> list[str]:
    """What Azure and cloud-init need of the result: its size, and valid YAML for cloud-config."""
    where = f"{key}.file"
    problems: list[str] = []
    if rendered.size > CUSTOM_DATA_MAX_BYTES:
        problems.append(
            f"{where}: {rendered.path} renders to {rendered.size} bytes with this stack's "
            f"values; Azure takes at most {CUSTOM_DATA_MAX_BYTES} bytes of custom data "
            "(osProfile.customData)"
        )
    if rendered.text.startswith("#cloud-config"):
        try:
            loaded = yaml.safe_load(rendered.text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark is not None else ""
            # The parser's words can quote the text (an alias name, a character): with a
            # secret in the text, only the line.
            problem = getattr(err, "problem", None) or "not YAML"
            if rendered.secrets:
                problem = "not YAML"
            problems.append(
                f"{where}: {rendered.path} is not valid YAML once the values are in "
                f"({line}{problem}); quote inserted values with {{{{ name | json }}}}"
            )
        else:
            if loaded is not None and not isinstance(loaded, dict):
                problems.append(
                    f"{where}: {rendered.path} is #cloud-config but not a YAML mapping; "
                    "cloud-init expects keys such as write_files and runcmd at the top"
                )
    return problems


# --- Windows: the Custom Script Extension that runs the custom data --------------------------


def first_boot_command(loader: str) -> str:
    """The extension's commandToExecute: the loader as an encoded command, so no quoting of
    paths or braces can break on its way through cmd.exe (PowerShell's -EncodedCommand takes
    base64 of UTF-16LE text)."""
    encoded = base64.b64encode(loader.encode("utf-16-le")).decode("ascii")
    return (
        "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass "
        f"-EncodedCommand {encoded}"
    )


def first_boot_extension_settings(loader: str) -> dict[str, str]:
    """Public settings of the first-boot extension. The command holds no secret: the script
    with its values travels as custom data, which Azure never returns through its API."""
    return {"commandToExecute": first_boot_command(loader)}


def describe(rendered: Rendered | None) -> str:
    """One line for logs and plans: file, size and whether it is secret (never the text)."""
    if rendered is None:
        return "none"
    secret = f", secret ({', '.join(rendered.secrets)})" if rendered.secrets else ""
    return f"{rendered.path} ({rendered.size} bytes{secret})"
