"""Add a patch version to an image in a stack file, for scheduled security rebuilds.

    python -m offline.bump STACK [IMAGE ...] [--dry-run]

For each image (default: every image in the stack), the newest version N is copied as
N+0.0.1 with the same regions and replication mode, and a fresh builder; N's builder is
retired in the same change, since its version is published and its source is no longer
needed. `pulumi up` then builds the new version from the current base image, which is
how the images pick up security patches. Consumers following `latest` move to it; pinned
ones stay where they are until someone moves them.

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

from imagefactory.settings import NAMESPACE, ConfigError, load, parse_version

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


def bump_file(path: Path, images: Sequence[str] = ()) -> tuple[str, list[str]]:
    """The bumped text of a stack file and one 'image old -> new' line per image."""
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    chosen = list(images) or [i["name"] for i in data.get("config", {}).get(IMAGES_KEY, [])]
    done = []
    for image in chosen:
        text, number = bump_text(text, image)
        done.append(f"{image} -> {number}")
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
