"""Benchmarks; run from the repository top: python -m bench.failover (see README.md)."""
