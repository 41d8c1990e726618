"""Read this project's stack config from the Pulumi runtime and turn it into Settings."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from imagefactory.settings import NAMESPACE, ConfigError, Settings, load


def _decode(value: Any) -> Any:
    # The engine hands every value over as a string; objects and lists arrive as JSON.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def raw_config() -> dict[str, Any]:
    """Every `imagefactory:*` key the stack sets, so unknown keys are reported too."""
    keys = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = NAMESPACE + ":"
    return {
        key[len(prefix) :]: _decode(runtime_config.get_config(key))
        for key in sorted(keys)
        if key.startswith(prefix)
    }


def settings() -> Settings:
    """The stack's Settings; on bad config, every problem at once and no stack trace."""
    try:
        return load(raw_config())
    except ConfigError as err:
        raise pulumi.RunError(err.render()) from None
