"""Mistakes in the stack file itself, reported as `Pulumi.<stack>.yaml:LINE: ...` lines.

Two kinds YAML lets through: a misspelled namespace (`imagefactroy:scaleSets` would be
silently ignored) and an unquoted version such as `version: 1.10`, which YAML reads as the
number 1.1. (A syntax error never reaches the program: the Pulumi CLI, or offline the mock
engine's `stack_config`, reports it with the file and line.)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from imagefactory.rules import NAMESPACE, config_key

PROJECT_DIR = Path(__file__).resolve().parent.parent


def path_for(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


# --- where keys are --------------------------------------------------------------------------


def _compose(path: Path) -> yaml.Node | None:
    try:
        return yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _config_entries(root: yaml.Node | None) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    config = _get(root, "config")
    if isinstance(config, yaml.MappingNode):
        for k, v in config.value:
            if isinstance(k, yaml.ScalarNode):
                yield k, v


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


_FLOAT_TAG = "tag:yaml.org,2002:float"


def numeric_versions(path: Path) -> dict[str, tuple[int, str, float]]:
    """Versions written as unquoted numbers: config key -> (line, text as written, value)."""
    found: dict[str, tuple[int, str, float]] = {}
    entries = dict((k.value, v) for k, v in _config_entries(_compose(path)))

    def note(key: str, node: yaml.Node | None) -> None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _FLOAT_TAG:
            found[key] = (node.start_mark.line + 1, node.value, float(node.value))

    for i, image in enumerate(_items(entries.get(f"{NAMESPACE}:images"))):
        for j, version in enumerate(_items(_get(image, "versions"))):
            note(config_key(("images", i, "versions", j, "version")), _get(version, "version"))
    for kind in ("scaleSets", "vmGroups"):
        for n, consumer in enumerate(_items(entries.get(f"{NAMESPACE}:{kind}"))):
            note(config_key((kind, n, "version")), _get(consumer, "version"))
    return found


def key_lines(path: Path) -> dict[str, int]:
    """Top-level config keys of the file -> their line."""
    return {k.value: k.start_mark.line + 1 for k, _ in _config_entries(_compose(path))}


# --- checks ----------------------------------------------------------------------------------


def misspelled_namespaces(keys: Iterable[str], path: Path | None) -> list[str]:
    """Keys whose namespace looks like ours but is not: the program would never read them."""
    lines = key_lines(path) if path is not None and path.is_file() else {}
    problems = []
    for key in sorted(keys):
        namespace, sep, rest = key.partition(":")
        if not sep or namespace == NAMESPACE:
            continue
        close = difflib.SequenceMatcher(None, namespace.lower(), NAMESPACE).ratio() >= 0.75
        if not close:
            continue  # another provider's or project's namespace, e.g. azure-native:location
        where = f"{path.name}:{lines[key]}: " if key in lines and path is not None else ""
        problems.append(
            f"{where}{key}: unknown namespace {namespace!r} (did you mean "
            f"'{NAMESPACE}:{rest}'?); the program reads only {NAMESPACE}:* keys, so this value "
            "would be ignored"
        )
    return problems


def locate_numeric_versions(problems: list[str], path: Path) -> list[str]:
    """Replace 'is a YAML number' problems with the file, line and text the user wrote."""
    if not path.is_file():
        return problems
    numbers = numeric_versions(path)
    out = []
    for line in problems:
        key = line.split(": ", 1)[0]
        hit = numbers.get(key)
        if hit is not None and f": {hit[2]!r} is a YAML number, not a version" in line:
            row, text, value = hit
            line = (
                f"{path.name}:{row}: {key}: {text} is unquoted, so YAML reads it as the number "
                f'{value!r}; quote the version and give all three parts, e.g. version: "{text}.0"'
            )
        out.append(line)
    return out
