"""One side of a plan diff: run a project tree's program offline and print what it registers.

    python -P -m offline.snapshot --project-dir DIR STACK

prints one JSON document: {"stack", "plan": the image-level plan, "resources": every
registered resource with its inputs and options}. It exits 1 with the program's own
message when the stack does not plan (bad config), and 2 when DIR has no such stack.

`plandiff` runs it in a fresh interpreter per side with `PYTHONPATH` set so that this
package comes from the checkout doing the comparing and `imagefactory`/`components` come
from DIR: both sides of a comparison are recorded by the same tooling, each with its own
program, and two programs never share one interpreter's module cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pulumi

from offline import changes, engine, plan


def snapshot(project_dir: Path, stack: str) -> dict[str, object]:
    run = engine.run(stack, project_dir=project_dir)
    return {
        "stack": stack,
        "plan": plan.build_plan(run),
        "resources": changes.dump(r for r in run.resources if r.custom),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.snapshot")
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    known = engine.stacks(args.project_dir)
    if args.stack not in known:
        print(f"no stack {args.stack!r} in {args.project_dir}; known: {', '.join(known)}")
        return 2
    try:
        data = snapshot(args.project_dir, args.stack)
    except pulumi.RunError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(json.dumps(data, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
