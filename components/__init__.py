"""One ComponentResource per lifecycle stage of an image, each with its own type token."""

from components.options import protection_options

__all__ = ["protection_options"]
