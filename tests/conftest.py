"""Shared fixtures: each stack's raw config as `settings.load` takes it, a fresh copy per test."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from imagefactory.settings import NAMESPACE
from offline import engine


def _raw_config(stack: str) -> dict[str, Any]:
    """The stack file's config with the `imagefactory:` prefix stripped, deep-copied."""
    prefix = NAMESPACE + ":"
    full = engine.stack_config(stack)
    return copy.deepcopy({k.removeprefix(prefix): v for k, v in full.items()})


@pytest.fixture
def prod_raw() -> dict[str, Any]:
    return _raw_config("prod")


@pytest.fixture
def dev_raw() -> dict[str, Any]:
    return _raw_config("dev")
