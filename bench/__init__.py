"""Measurement tooling: AWS call counts per operation and benchmarks (``make bench``)."""
