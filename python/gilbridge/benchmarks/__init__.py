"""Benchmarks that time Bridge beside the stdlib in the same run (ratios, not absolutes)."""
