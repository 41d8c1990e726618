"""Example projects that use this project's outputs (importable, so mypy sees one tree)."""
