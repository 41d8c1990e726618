"""The same tree gives the same plan, byte for byte, whatever the hash seed and the run.

Two things used to vary between runs of `python -m offline.plan`: the iteration order of
sets of URNs (it follows PYTHONHASHSEED) and the order in which the program's
registrations reach the engine (it follows the order in which outputs resolve).
offline/schedule.py now breaks every tie by URN; these tests hold it to that.

The seed is fixed when an interpreter starts, so each seed gets its own interpreter, and
the three run at once. Each runs `python -m offline.plan` for every case in turn, the way
`python -m` does (runpy, as `__main__`), starting with a different case: one interpreter
per seed instead of one per case and seed keeps this test at a few seconds, and each case
is compared between a first run of the program and later ones.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import subprocess
import sys
from typing import Any

import pytest

from offline import engine, schedule
from offline.latency import Estimate

SEEDS = ("1", "2", "3")
CASES = [
    ["prod", "--format", "json"],
    ["prod", "--format", "text"],
    ["prod", "--format", "markdown"],
    ["dev", "--format", "json"],
    ["dev", "--format", "text"],
]

DRIVER = """\
import contextlib, io, json, runpy, sys

results = {}
for argv in json.loads(sys.argv[1]):
    sys.argv = ["offline.plan", *argv]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("offline.plan", run_name="__main__", alter_sys=True)
        except SystemExit as done:
            code = done.code
    results[" ".join(argv)] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
json.dump(results, sys.stdout)
"""


def _plans_per_seed() -> dict[str, dict[str, Any]]:
    """Per seed, per case: the plan's exit code, stdout and stderr."""
    procs = {}
    for i, seed in enumerate(SEEDS):
        rotated = CASES[i:] + CASES[:i]  # each seed starts cold with another case
        procs[seed] = subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps(rotated)],
            cwd=engine.PROJECT_DIR,
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    results = {}
    for seed, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"PYTHONHASHSEED={seed}: {err.decode()}"
        results[seed] = json.loads(out)
    return results


# Three interpreters, each planning both stacks in every format: about a minute of CPU on
# two cores, so it runs in `./run test` and CI, not in the `-m "not slow"` loop; the
# tie-break tests below keep the rule itself in the fast loop.
@pytest.mark.slow
def test_every_plan_is_byte_identical_for_every_hash_seed() -> None:
    plans = _plans_per_seed()
    first, *others = SEEDS
    problems: list[str] = []
    for argv in CASES:
        case = " ".join(argv)
        runs = {seed: plans[seed][case] for seed in SEEDS}
        for seed, result in runs.items():
            if (result["code"], result["stderr"]) != (0, ""):
                problems.append(
                    f"PYTHONHASHSEED={seed} {case}: exit {result['code']}, "
                    f"stderr {result['stderr']!r}"
                )
        expected = runs[first]["stdout"]
        assert expected, case
        differing = [s for s in others if runs[s]["stdout"].encode() != expected.encode()]
        if not differing:
            continue
        diff = difflib.unified_diff(
            expected.splitlines(),
            runs[differing[0]]["stdout"].splitlines(),
            f"PYTHONHASHSEED={first}",
            f"PYTHONHASHSEED={differing[0]}",
            lineterm="",
        )
        problems.append(f"python -m offline.plan {case}:\n" + "\n".join(list(diff)[:40]))
    assert not problems, "\n\n".join(problems)


def test_the_timing_does_not_depend_on_the_order_of_registration() -> None:
    run = engine.run("prod")
    shuffled = list(run.resources)
    random.Random(7).shuffle(shuffled)
    reordered = [
        engine.Run(run.stack, resources, run.outputs, run.logs)
        for resources in (list(reversed(run.resources)), shuffled)
    ]
    expected = json.dumps(schedule.timing(run, 2), sort_keys=True)
    for other in reordered:
        assert json.dumps(schedule.timing(other, 2), sort_keys=True) == expected
        assert schedule.graph(other).order == schedule.graph(run).order


# -- The tie-break itself, on a graph small enough to read ------------------------------------
#
#   root (1 s) -> a (10 s) -> end (5 s)
#   root (1 s) -> b (10 s) -> end (5 s)
#
# a and b are ready together and finish together. Built twice: registered and inserted into
# the sets in one order, then in the other, so neither order can decide.

URN = "urn:pulumi:test::p::t::"
ROOT, A, B, END = (URN + n for n in ("root", "a", "b", "end"))
DIAMOND = {ROOT: 1.0, A: 10.0, B: 10.0, END: 5.0}
EDGES = [(ROOT, A), (ROOT, B), (A, END), (B, END)]


def _graph(registration: list[str], edges: list[tuple[str, str]]) -> schedule.Graph:
    nodes = {
        u: schedule.Node(u, u.removeprefix(URN), "t", Estimate(DIAMOND[u], DIAMOND[u]), None)
        for u in registration
    }
    preds: dict[str, set[str]] = {u: set() for u in registration}
    succs: dict[str, set[str]] = {u: set() for u in registration}
    for p, s in edges:
        preds[s].add(p)
        succs[p].add(s)
    return schedule.Graph(nodes, list(registration), preds, succs)


DIAMONDS = {
    "a registered first": _graph([ROOT, A, B, END], EDGES),
    "b registered first": _graph([ROOT, B, A, END], EDGES[::-1]),
}


@pytest.mark.parametrize("g", DIAMONDS.values(), ids=DIAMONDS.keys())
def test_of_two_predecessors_finishing_together_the_path_takes_the_first_urn(
    g: schedule.Graph,
) -> None:
    finish, via = schedule.longest_paths(g)
    assert finish[A] == finish[B] == 11
    assert via[END] == A
    assert schedule.critical_path(g) == (16, [ROOT, A, END])


@pytest.mark.parametrize("g", DIAMONDS.values(), ids=DIAMONDS.keys())
def test_of_two_resources_ready_together_the_first_urn_starts_first(g: schedule.Graph) -> None:
    one = schedule.simulate(g, 1)
    assert one.start == {ROOT: 0, A: 1, B: 11, END: 21}
    assert one.makespan == 26
    two = schedule.simulate(g, 2)
    assert two.start == {ROOT: 0, A: 1, B: 1, END: 11}
    assert schedule.recommend_parallel(g) == 2


@pytest.mark.parametrize("g", DIAMONDS.values(), ids=DIAMONDS.keys())
def test_of_two_chains_equally_long_the_path_ends_in_the_first_urn(g: schedule.Graph) -> None:
    assert schedule.critical_path(g, among=[B, A]) == (11, [ROOT, A])
    assert schedule.critical_path(g, among={B, A}) == (11, [ROOT, A])
