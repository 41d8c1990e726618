"""One side of a plan diff: run a project tree's program offline and print what it registers.

    python -P -m offline.snapshot --project-dir DIR STACK [STACK ...]

prints one JSON document: {STACK: {"stack", "plan": the image-level plan, "resources":
every registered resource with its inputs and options} or {"error": the program's own
message when the stack does not plan}}. A stack DIR does not have is left out. All the
stacks of one tree run in one interpreter, one after the other.

`plandiff` runs it in a fresh interpreter per side with `PYTHONPATH` set so that this
package comes from the checkout doing the comparing and `imagefactory`/`components` come
from DIR: both sides of a comparison are recorded by the same tooling, each with its own
program, and two programs never share one interpreter's module cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
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
    parser.add_argument("stacks", nargs="+")
    args = parser.parse_args(argv)
    known = engine.stacks(args.project_dir)
    out: dict[str, object] = {}
    for stack in args.stacks:
        if stack not in known:
            continue
        try:
            out[stack] = snapshot(args.project_dir, stack)
        except pulumi.RunError as err:
            out[stack] = {"error": str(err)}
        except Exception as err:  # a program that crashes does not plan either
            where = traceback.extract_tb(err.__traceback__)[-1]
            out[stack] = {"error": f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})"}
    print(json.dumps(out, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
