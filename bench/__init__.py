"""Benchmarks of the platform; `make bench` runs them and prints ratios against a baseline."""
