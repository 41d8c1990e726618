"""Add a patch version to an image in a stack file, for scheduled security rebuilds.

    python -m offline.bump STACK [IMAGE ...] [--dry-run]

For each image (default: every image in the stack), the newest version N is copied as
N+0.0.1 with the same regions and replication mode, and a fresh builder; N's builder is
retired in the same change, since its version is published and its source is no longer
needed. `pulumi up` then builds the new version from the current base image, which is
how the images pick up security patches. Consumers following `latest` move to it; pinned
ones stay where they are until someone moves them.

Images built on another image of the stack follow the chain: bumping a base also bumps
every image built on its `latest` (directly or through others), after it, so the new base
version reaches them as a new version of theirs (a published version never changes its
source). Images built on a pinned base version stay; the output says so.

The edit is textual: PyYAML only locates the lines, and the new lines are copies of the
file's own, so every comment and the file's layout survive (a PyYAML round trip would
drop the comments; ruamel.yaml would add a dependency for one small edit). The result is
checked with the project's settings before it is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from imagefactory.settings import LATEST, NAMESPACE, ConfigError, load, parse_version

PROJECT_DIR = Path(__file__).resolve().parent.parent
IMAGES_KEY = f"{NAMESPACE}:images"
COPIED_KEYS = ("replicationMode", "regions")
"""Keys of the newest version that the new one copies; everything else is defaulted."""


class BumpError(Exception):
    """The stack file does not have what the bump needs; names the key."""


def _last_line(node: yaml.Node) -> int:
    """The last line holding a scalar of `node` (block end marks run into the next item)."""
    if isinstance(node, yaml.ScalarNode):
        return int(node.end_mark.line)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    return max((_last_line(c) for c in children), default=int(node.start_mark.line))


def _get(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return k, v
    return None


def bump_text(text: str, image: str) -> tuple[str, str]:
    """(new file text, new version number) with `image` bumped by one patch version."""
    root = yaml.compose(text)
    config = _get(root, "config") if root is not None else None
    images = _get(config[1], IMAGES_KEY) if config else None
    if images is None or not isinstance(images[1], yaml.SequenceNode):
        raise BumpError(f"{IMAGES_KEY}: the stack file has no list of images")
    found = [i for i in images[1].value if (n := _get(i, "name")) and n[1].value == image]
    if not found:
        names = [n[1].value for i in images[1].value if (n := _get(i, "name"))]
        raise BumpError(f"{IMAGES_KEY}: no image {image!r}; allowed: {', '.join(names)}")
    versions = _get(found[0], "versions")
    if versions is None or not isinstance(versions[1], yaml.SequenceNode) or not versions[1].value:
        raise BumpError(f"{IMAGES_KEY}[{image}].versions: no version to copy")
    items = versions[1].value
    numbered = {str(v[1].value): item for item in items if (v := _get(item, "version"))}
    newest_number = max(numbered, key=parse_version)
    newest = numbered[newest_number]
    major, minor, patch = parse_version(newest_number)
    number = f"{major}.{minor}.{patch + 1}"

    lines = text.splitlines(keepends=True)
    indent = " " * newest.start_mark.column
    dash = " " * (newest.start_mark.column - 2)
    new = [f"{dash}# Scheduled security rebuild of {newest_number} (offline.bump).\n"]
    new.append(f'{dash}- version: "{number}"\n')
    for key in COPIED_KEYS:
        pair = _get(newest, key)
        if pair is not None:
            new += lines[pair[0].start_mark.line : _last_line(pair[1]) + 1]
    # Later edits first, so the earlier line numbers stay valid.
    end = _last_line(items[-1]) + 1
    lines[end:end] = new
    builder = _get(newest, "builder")
    if builder is None:
        at = newest.start_mark.line + 1 if _get(newest, "version") else newest.start_mark.line
        lines.insert(at, f"{indent}builder: retired\n")
    elif builder[1].value != "retired":
        row = builder[1].start_mark.line
        col = builder[1].start_mark.column
        lines[row] = lines[row][:col] + "retired" + lines[row][builder[1].end_mark.column :]
    return "".join(lines), number


def _base_of(entry: dict) -> tuple[str | None, str]:
    """(base image of this stack or None, its version as written: 'latest' by default)."""
    base = entry.get("baseImage") or {}
    if not isinstance(base, dict) or "image" not in base:
        return None, LATEST
    return str(base["image"]), str(base.get("version") or LATEST)


def with_chain(entries: Sequence[dict], chosen: Sequence[str]) -> list[tuple[str, str | None]]:
    """The images to bump, bases first: the chosen ones and every image built on the latest
    of one of them, each once; with the base that brought it in (None: asked for)."""
    names = [str(e.get("name")) for e in entries]
    pending: dict[str, str | None] = {name: None for name in chosen}  # name -> its base
    changed = True
    while changed:
        changed = False
        for entry in entries:
            name = str(entry.get("name"))
            base, version = _base_of(entry)
            if base in pending and version == LATEST and name not in pending:
                pending[name] = base
                changed = True
    order: list[tuple[str, str | None]] = []
    placed: set[str] = set()
    while len(order) < len(pending):
        for name in names + [n for n in pending if n not in names]:
            if name not in pending or name in placed:
                continue
            entry = next((e for e in entries if e.get("name") == name), {})
            base, _ = _base_of(entry)
            if base in pending and base not in placed and base != name:
                continue
            order.append((name, pending[name]))
            placed.add(name)
            break
        else:  # a cycle, which the settings refuse: keep the rest in config order
            order += [(n, pending[n]) for n in pending if n not in placed]
    return order


def bump_file(path: Path, images: Sequence[str] = ()) -> tuple[str, list[str]]:
    """The bumped text of a stack file and one 'image old -> new' line per image (and one
    for each image left on a pinned version of a bumped base)."""
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    entries = [e for e in data.get("config", {}).get(IMAGES_KEY, []) if isinstance(e, dict)]
    chosen = list(images) or [str(e["name"]) for e in entries]
    done = []
    bumped: dict[str, str] = {}
    for image, because in with_chain(entries, chosen):
        text, number = bump_text(text, image)
        bumped[image] = number
        why = f" (built on {because} latest, now {bumped[because]})" if because else ""
        done.append(f"{image} -> {number}{why}")
    for entry in entries:
        base, version = _base_of(entry)
        if base in bumped and version != LATEST and entry.get("name") not in bumped:
            done.append(
                f"{entry.get('name')} stays on {base} {version} (pinned; set its "
                "baseImage.version to latest, or bump it after moving the pin)"
            )
    raw = yaml.safe_load(text)["config"]
    prefix = NAMESPACE + ":"
    load({k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)})
    return text, done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.bump",
        description="Add a patch version (a fresh build) to images in a stack file.",
    )
    parser.add_argument("stack", help="stack name: edits Pulumi.<stack>.yaml")
    parser.add_argument("images", nargs="*", help="image names (default: every image)")
    parser.add_argument("--dry-run", action="store_true", help="print the file, do not write")
    args = parser.parse_args(argv)
    path = PROJECT_DIR / f"Pulumi.{args.stack}.yaml"
    if not path.is_file():
        parser.error(f"no stack file {path.name}")
    try:
        text, done = bump_file(path, args.images)
    except BumpError as err:
        print(f"bump: {err}", file=sys.stderr)
        return 1
    except ConfigError as err:
        print(f"bump: the bumped file would not be valid:\n{err.render()}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(text, end="")
    else:
        path.write_text(text)
    for line in done:
        print(f"{args.stack}: {line}", file=sys.stderr if args.dry_run else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
