"""Through the real program under the mock engine: every refusal comes before the first
registration, purchase plans reach the builder, the definition and the consumers, and the
stack file's own mistakes are one line naming the file and the line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import test_preflight
import test_settings

from imagefactory import stackfile
from imagefactory.settings import ConfigError
from offline import engine

NS = "imagefactory:"
ROCKY = {"name": "9-base", "product": "rockylinux-x86_64", "publisher": "resf"}


def _full(raw: dict[str, Any]) -> dict[str, Any]:
    return {NS + k: v for k, v in raw.items()}


def _prod() -> dict[str, Any]:
    return copy.deepcopy({k.removeprefix(NS): v for k, v in engine.stack_config("prod").items()})


def _bad_configs() -> list[tuple[str, dict[str, Any], list[str]]]:
    out = []
    for name, path, value, expected in test_settings.CASES:
        raw = _prod()
        test_settings.put(raw, path, value)
        out.append((name, raw, [expected]))
    for name, edits, problems in test_preflight.CASES:
        raw = _prod()
        for path, value in edits:
            test_settings.put(raw, path, value)
        out.append((name, raw, problems))
    return out


BAD = _bad_configs()


@pytest.mark.parametrize(("raw", "problems"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_no_refusal_comes_after_the_first_registration(
    raw: dict[str, Any], problems: list[str]
) -> None:
    """Every bad config the settings tests know fails in the program before it registers
    anything (the monitor would hold it), with the same problems: no traceback."""
    monitor = engine.RecordingMonitor(engine.AzureMocks())
    with pytest.raises(pulumi.RunError) as caught:
        engine.run("prod", config=_full(raw), monitor=monitor)
    assert str(caught.value) == ConfigError(problems).render()
    assert monitor.registered == []


def test_a_purchase_plan_reaches_the_builder_the_definition_and_every_consumer() -> None:
    raw = _prod()
    raw["images"][0]["baseImage"] = {
        "publisher": "resf",
        "offer": "rockylinux-x86_64",
        "sku": "9-base",
        "plan": ROCKY,
    }
    run = engine.run("prod", config=_full(raw))
    builder = run.named("build-webserver-1.1.0-builder-vm")
    assert builder.inputs["plan"] == ROCKY
    assert builder.inputs["storageProfile"]["imageReference"] == {
        "publisher": "resf",
        "offer": "rockylinux-x86_64",
        "sku": "9-base",
        "version": "latest",
    }
    assert run.named("gallery-webserver").inputs["purchasePlan"] == ROCKY
    assert "purchasePlan" not in run.named("gallery-iis").inputs
    for scale_set in ("scaleset-web-us-vmss", "scaleset-web-eu-vmss"):
        assert run.named(scale_set).inputs["plan"] == ROCKY
    # The Windows image has no plan: neither its builder nor its VMs name one.
    assert "plan" not in run.named("build-iis-1.0.0-builder-vm").inputs
    assert "plan" not in run.named("vmgroup-iis-us-000").inputs


def test_a_misspelled_namespace_is_refused_not_ignored() -> None:
    config = engine.stack_config("dev")
    config["imagefactroy:scaleSets"] = config.pop(NS + "scaleSets")
    with pytest.raises(pulumi.RunError) as caught:
        engine.run("dev", config=config)
    assert str(caught.value) == (
        "1 problem in stack config:\n"
        "  - imagefactroy:scaleSets: unknown namespace 'imagefactroy' (did you mean "
        "'imagefactory:scaleSets'?); the program reads only imagefactory:* keys, so this value "
        "would be ignored"
    )


def test_an_unquoted_version_is_refused_with_what_yaml_made_of_it() -> None:
    config = engine.stack_config("dev")
    config[NS + "images"][0]["versions"][0]["version"] = 0.1
    with pytest.raises(pulumi.RunError) as caught:
        engine.run("dev", config=config)
    assert str(caught.value) == (
        "1 problem in stack config:\n"
        "  - imagefactory:images[0].versions[0].version: 0.1 is a YAML number, not a version: "
        'unquoted, 1.10 reads as 1.1; quote the version and give all three parts, e.g. "0.1.0"'
    )


# --- the stack file, with lines -----------------------------------------------------------------

STACK = """\
config:
  imagefactory:location: eastus
  imagefactroy:scaleSets:
    - name: web
      version: 1.10
  azure-native:location: eastus
  imagefactory:images:
    - name: web
      versions:
        - version: 1.10
        - version: "1.2.0"
"""


def test_namespace_and_numeric_versions_are_placed_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(STACK)
    keys = ["imagefactory:location", "imagefactroy:scaleSets", "azure-native:location"]
    assert stackfile.misspelled_namespaces(keys, path) == [
        "Pulumi.prod.yaml:3: imagefactroy:scaleSets: unknown namespace 'imagefactroy' (did you "
        "mean 'imagefactory:scaleSets'?); the program reads only imagefactory:* keys, so this "
        "value would be ignored"
    ]
    problem = (
        "imagefactory:images[0].versions[0].version: 1.1 is a YAML number, not a version: "
        'unquoted, 1.10 reads as 1.1; quote the version and give all three parts, e.g. "1.1.0"'
    )
    assert stackfile.locate_numeric_versions([problem, "imagefactory:x: other"], path) == [
        "Pulumi.prod.yaml:10: imagefactory:images[0].versions[0].version: 1.10 is unquoted, so "
        "YAML reads it as the number 1.1; quote the version and give all three parts, e.g. "
        'version: "1.10.0"',
        "imagefactory:x: other",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "config:\n  imagefactory:gallery:\n    name: x\n     description: y\n",
            "Pulumi.broken.yaml:4:17: YAML syntax error: mapping values are not allowed here; "
            "a value that contains ': ' needs quotes, or the line is indented deeper than its key",
        ),
        (
            "config:\n  imagefactory:location: eastus\n\timagefactory:namePrefix: x\n",
            "Pulumi.broken.yaml:3:1: YAML syntax error: found character '\\t' that cannot start "
            "any token; YAML indents with spaces, never tabs",
        ),
        (
            'config:\n  imagefactory:location: "eastus\n',
            "Pulumi.broken.yaml:3:1: YAML syntax error: found unexpected end of stream; a quote "
            "is not closed",
        ),
    ],
    ids=["indentation", "tab", "open quote"],
)
def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: imagefactory\nruntime: python\n")
    (tmp_path / "Pulumi.broken.yaml").write_text(text)
    with pytest.raises(pulumi.RunError) as caught:  # the plan reports it and exits 1
        engine.stack_config("broken", tmp_path)
    assert str(caught.value) == expected
