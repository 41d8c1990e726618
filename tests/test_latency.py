"""The latency model's figures, the scheduler on small graphs, and the plan's timing section."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from offline import engine, latency, plan, schedule
from offline.latency import Estimate


def test_run_command_uses_the_scripts_own_estimate() -> None:
    script = "#!/bin/bash\n# imagefactory-estimate-seconds: 240\necho hi\n"
    assert latency.run_command(script) == Estimate(240, 480)


def test_run_command_never_below_the_agent_minimum() -> None:
    script = "# imagefactory-estimate-seconds: 3\n"
    assert latency.run_command(script) == Estimate(20, 40)


def test_run_command_falls_back_to_the_default_for_its_file() -> None:
    rendered = "#!/bin/bash\n# imagefactory: scripts/windows/generalize.ps1 sha256:ab\nx\n"
    assert latency.run_command(rendered) == Estimate(300, 600)
    assert latency.run_command("echo unknown\n") == Estimate(120, 240)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("linux/validate.sh", Estimate(30, 60)),
        ("linux/validate/20-webserver.sh", Estimate(20, 40)),
        ("windows/validate.ps1", Estimate(30, 60)),
        ("windows/validate/10-iis.ps1", Estimate(20, 40)),
    ],
)
def test_validation_scripts_have_their_own_estimates(path: str, expected: Estimate) -> None:
    rendered = f"#!/bin/bash\n# imagefactory: scripts/{path} sha256:ab\nx\n"
    assert latency.run_command(rendered) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"regions": 1, "max_replicas": 1, "mode": "Full", "disk_gb": 64}, Estimate(460, 900)),
        ({"regions": 5, "max_replicas": 1, "mode": "Full", "disk_gb": 30}, Estimate(940, 1860)),
        ({"regions": 1, "max_replicas": 3, "mode": "Full", "disk_gb": 30}, Estimate(490, 1020)),
        ({"regions": 1, "max_replicas": 1, "mode": "Full", "disk_gb": 127}, Estimate(920, 1800)),
        ({"regions": 1, "max_replicas": 1, "mode": "Shallow", "disk_gb": 30}, Estimate(60, 180)),
    ],
)
def test_image_version_by_regions_replicas_size_and_mode(kwargs, expected) -> None:
    assert latency.image_version(os="linux", **kwargs) == expected


def test_image_version_default_disk_by_os() -> None:
    one: dict[str, Any] = {"regions": 1, "max_replicas": 1, "mode": "Full", "disk_gb": None}
    assert latency.image_version(os="linux", **one) == Estimate(460, 900)
    assert latency.image_version(os="windows", **one) == Estimate(920, 1800)


def test_vm_deallocate_scale_set_and_polling() -> None:
    assert latency.vm("linux") == Estimate(50, 120)
    assert latency.vm("windows") == Estimate(90, 300)
    assert latency.capture("windows") == Estimate(46, 122)
    assert latency.scale_set(10) == Estimate(95, 250)
    assert latency.polled(schedule.SCALE_SET_T, Estimate(95, 250)) == Estimate(100, 250)
    assert latency.polled(schedule.COMMAND_T, Estimate(46, 122)) == Estimate(46, 122)


def _graph(durations: dict[str, float], edges: list[tuple[str, str]]) -> schedule.Graph:
    nodes = {u: schedule.Node(u, u, "t", Estimate(d, 2 * d), None) for u, d in durations.items()}
    preds: dict[str, set[str]] = {u: set() for u in durations}
    succs: dict[str, set[str]] = {u: set() for u in durations}
    for a, b in edges:
        preds[b].add(a)
        succs[a].add(b)
    return schedule.Graph(nodes, list(durations), preds, succs)


def test_schedule_of_two_independent_chains() -> None:
    g = _graph({"a1": 10, "a2": 30, "b1": 5, "b2": 5, "c": 1}, [("a1", "a2"), ("b1", "b2")])
    assert schedule.critical_path(g) == (40, ["a1", "a2"])
    assert schedule.simulate(g, 1).makespan == 51
    assert schedule.simulate(g, 2).makespan == 40
    assert schedule.simulate(g, 100).makespan == 40
    assert schedule.simulate(g, 2, p90=True).makespan == 80
    assert schedule.recommend_parallel(g) == 2


def test_schedule_is_first_ready_first_started() -> None:
    # x and y are ready together and x's URN sorts first: with one slot it delays the chain.
    g = _graph({"x": 10, "y": 1, "z": 50}, [("y", "z")])
    start = schedule.simulate(g, 1).start
    assert start == {"x": 0, "y": 10, "z": 11}


def test_component_dependencies_expand_to_their_custom_resources() -> None:
    run = engine.run("prod")
    g = schedule.graph(run)
    version = next(u for u, n in g.nodes.items() if n.name == "version-iis-1.0.0-version")
    # The version waits for its validation's results, a command inside the Validation
    # component, and no longer for the capture (which the results wait for in turn).
    assert sorted(g.nodes[u].name for u in g.preds[version]) == [
        "build-iis-1.0.0-validate-results",
        "gallery-gallery",
        "gallery-iis",
        "groups-images",
    ]
    assert all(u in g.nodes for u in g.preds[version])


def _node(g: schedule.Graph, name: str) -> schedule.Node:
    return next(n for n in g.nodes.values() if n.name == name)


def test_validation_resources_have_their_own_estimates() -> None:
    """prod's iis build (Windows, Trusted Launch, 127 GB): each validation resource has an
    estimate of its own, none the unknown default."""
    g = schedule.graph(engine.run("prod"))
    estimates = {
        name: _node(g, name).duration
        for name in (
            "build-iis-1.0.0-staging",
            "build-iis-1.0.0-validate-nic",
            "build-iis-1.0.0-validate-password",
            "build-iis-1.0.0-validate-vm",
            "build-iis-1.0.0-validate-validate",
            "build-iis-1.0.0-validate-check-10-iis",
            "build-iis-1.0.0-validate-results",
        )
    }
    assert estimates == {
        # One region, one replica of a 127 GB disk: two 64 GB steps of the first region.
        "build-iis-1.0.0-staging": Estimate(920, 1800),
        "build-iis-1.0.0-validate-nic": latency.NETWORK,
        "build-iis-1.0.0-validate-password": latency.LOCAL,
        "build-iis-1.0.0-validate-vm": latency.VM["windows"],
        "build-iis-1.0.0-validate-validate": Estimate(30, 60),
        "build-iis-1.0.0-validate-check-10-iis": Estimate(20, 40),
        # Reading the checks' results, then deallocating a running Windows VM.
        "build-iis-1.0.0-validate-results": Estimate(47, 130),
    }
    assert latency.UNKNOWN not in estimates.values()
    # The published version is copied from the staging version: two regions, two replicas.
    assert _node(g, "version-iis-1.0.0-version").duration == Estimate(1060, 2100)
    # Linux: the base layer's and the hardened image's own checks are estimated too.
    assert _node(g, "build-hardened-1.0.0-validate-check-10-base").duration == Estimate(20, 40)
    assert _node(g, "build-hardened-1.0.0-validate-check-listening-ports").duration == (
        Estimate(20, 40)
    )
    assert _node(g, "build-hardened-1.0.0-validate-results").duration == Estimate(17, 70)


def test_a_test_vm_is_no_builder() -> None:
    """A version's estimate reads its builder's disk: the test VM, tagged with the same
    image and version (and without the disk size), must not stand in for it."""
    config = engine.stack_config("prod")
    iis = next(i for i in config["imagefactory:images"] if i["name"] == "iis")
    iis["builder"]["osDiskSizeGb"] = 256
    g = schedule.graph(engine.run("prod", config=config))
    # Four 64 GB steps of the first region; the default 127 GB would be two.
    assert _node(g, "build-iis-1.0.0-staging").duration == Estimate(1840, 3600)
    assert _node(g, "version-iis-1.0.0-version").duration == Estimate(1980, 3900)


@pytest.fixture(scope="module")
def timings() -> dict[str, dict]:
    return {s: schedule.timing(engine.run(s)) for s in ("dev", "prod")}


def test_dev_is_a_fraction_of_prod(timings) -> None:
    dev, prod = timings["dev"], timings["prod"]
    assert dev["estimateSeconds"] < 0.5 * prod["estimateSeconds"]
    assert dev["lowerBoundSeconds"] <= dev["estimateSeconds"] <= dev["p90Seconds"]


def test_prod_critical_path_is_the_windows_build_and_its_replication(timings) -> None:
    path = [row["name"] for row in timings["prod"]["criticalPath"]]
    assert "build-iis-1.0.0-builder-vm" in path
    # The VM group's VM, then its first-boot script (the Custom Script Extension).
    assert path[-3] == "version-iis-1.0.0-version"
    assert path[-2] in {"vmgroup-iis-us-000", "vmgroup-iis-us-001"}
    assert path[-1] == f"{path[-2]}-firstboot"
    # The Trusted Launch build waits in its staging version while its test VM validates it.
    at = path.index("build-iis-1.0.0-staging")
    assert path[at - 1 : at + 6] == [
        "build-iis-1.0.0-generalize-capture",
        "build-iis-1.0.0-staging",
        "build-iis-1.0.0-validate-vm",
        "build-iis-1.0.0-validate-validate",
        "build-iis-1.0.0-validate-check-10-iis",
        "build-iis-1.0.0-validate-results",
        "version-iis-1.0.0-version",
    ]
    assert set(timings["prod"]["images"]) == {"iis", "webserver", "hardened", "webapp"}
    # The retired 1.0.0 webserver version was published earlier and costs nothing.
    assert "version-webserver-1.0.0-version" not in path


def test_plan_prints_timing_and_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["dev", "--compare", "prod", "--parallel", "1"]) == 0
    out = capsys.readouterr().out
    assert "estimated pulumi up: " in out
    assert "at --parallel 1" in out
    assert "critical path: groups-" in out
    assert "lower bound (unlimited parallelism)" in out
    assert "compared with stack prod: " in out
    assert "image webserver: ready after" in out


def test_plan_recommends_parallel_when_the_given_one_serializes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert plan.main(["prod", "--parallel", "1", "--format", "json"]) == 0
    timing = json.loads(capsys.readouterr().out)["timing"]
    assert timing["parallel"] == 1
    assert timing["recommendedParallel"] > 1
    assert timing["estimateSeconds"] == timing["serializedSeconds"]
    lines = schedule.render_lines(timing)
    assert any(line.startswith("--parallel 1 serializes") for line in lines)


@pytest.mark.parametrize("value", ["-3", "0", "x", "2.5", ""])
def test_parallel_must_be_a_whole_number_of_at_least_1(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as done:
        plan.main(["prod", f"--parallel={value}"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "python -m offline.plan: error: argument --parallel: "
        f"must be a whole number of at least 1, got '{value}'"
    )


def test_a_negative_parallel_after_a_space_is_its_value_not_an_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        plan.main(["prod", "--parallel", "-3"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "python -m offline.plan: error: argument --parallel: "
        "must be a whole number of at least 1, got '-3'"
    )


def test_parallel_takes_whole_numbers() -> None:
    assert schedule.parallel_arg("1") == 1
    assert schedule.parallel_arg("16") == 16


def test_the_dev_plan_compares_itself_with_prod_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert plan.main(["dev"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("compared with stack prod: ")
    assert plan.main(["dev", "--compare", "none"]) == 0
    assert "compared with" not in capsys.readouterr().out


def test_a_broken_comparison_stack_does_not_fail_the_plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = engine.run

    def refuse_prod(stack: str, *args: Any, **kwargs: Any) -> engine.Run:
        if stack == "prod":
            raise pulumi.RunError("1 problem in stack config:\n  - imagefactory:location: ...")
        return real_run(stack, *args, **kwargs)

    monkeypatch.setattr(engine, "run", refuse_prod)
    assert plan.main(["dev"]) == 0
    out = capsys.readouterr()
    assert "compared with" not in out.out
    assert out.err == (
        "stack prod (comparison skipped): 1 problem in stack config:\n"
        "  - imagefactory:location: ...\n"
    )
