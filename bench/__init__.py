"""Benchmarks: each prints its numbers and writes bench/results/<name>.json. Run with `make bench`."""
