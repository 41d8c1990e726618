"""Benchmarks of the program under the mock engine: `.venv/bin/python -m bench`."""
