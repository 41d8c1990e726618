"""One ComponentResource per lifecycle stage of an image, each with its own type token."""

from components.options import (
    KEPT_FROM_CREATION,
    drop_api_version_aliases,
    protection_options,
)

__all__ = ["KEPT_FROM_CREATION", "drop_api_version_aliases", "protection_options"]
