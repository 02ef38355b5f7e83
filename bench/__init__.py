"""Benchmarks: ``python bench/ingest.py --help``."""
