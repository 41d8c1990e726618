"""Read this project's stack config from the Pulumi runtime and turn it into Settings."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings

from imagefactory import stackfile
from imagefactory.facts import Facts, live
from imagefactory.settings import NAMESPACE, Checked, ConfigError, Settings, check


def _decode(value: Any) -> Any:
    # The engine hands every value over as a string; objects and lists arrive as JSON.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _all_keys() -> list[str]:
    return sorted({**runtime_config.get_config_env(), **runtime_config.CONFIG.get()})


def raw_config() -> dict[str, Any]:
    """Every `imagefactory:*` key the stack sets, so unknown keys are reported too."""
    prefix = NAMESPACE + ":"
    return {
        key[len(prefix) :]: _decode(runtime_config.get_config(key))
        for key in _all_keys()
        if key.startswith(prefix)
    }


def secret_keys() -> list[str]:
    """`imagefactory:*` keys Pulumi marks secret (without the namespace). The engine marks a
    whole key when any value inside it is secret (pulumi/pulumi, sdk/go/common/resource/config
    object.go, `Secure`), and hands the list over as PULUMI_CONFIG_SECRET_KEYS."""
    prefix = NAMESPACE + ":"
    return [
        key[len(prefix) :]
        for key in _all_keys()
        if key.startswith(prefix) and runtime_config.is_config_secret(key)
    ]


def _under_mocks() -> bool:
    from pulumi.runtime.mocks import MockMonitor

    return isinstance(runtime_settings.SETTINGS.monitor, MockMonitor)


def facts_for_this_run() -> Facts:
    """Azure's answers when credentials exist (never under the offline mocks unless asked)."""
    return live.for_this_run(
        under_mocks=_under_mocks(),
        configured_subscription=runtime_config.get_config("azure-native:subscriptionId"),
    )


def checked(facts: Facts | None = None) -> Checked:
    """Every check at once, with the stack file's own mistakes placed by file and line."""
    path = stackfile.path_for(pulumi.get_stack())
    problems = stackfile.misspelled_namespaces(_all_keys(), path)
    facts = facts or facts_for_this_run()
    try:
        result = check(raw_config(), facts, secret_keys())
    except ConfigError as err:
        problems += stackfile.locate_numeric_versions(err.problems, path)
        raise ConfigError(problems) from None
    finally:
        for note in facts.source.notes:
            pulumi.log.warn(note)
    if problems:
        raise ConfigError(problems)
    return result


def settings() -> Settings:
    """The stack's Settings; on bad config, every problem at once and no stack trace."""
    try:
        result = checked()
    except ConfigError as err:
        raise pulumi.RunError(err.render()) from None
    for warning in result.warnings:
        pulumi.log.warn(warning)
    return result.settings
