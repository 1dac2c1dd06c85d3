"""Benchmarks: speed and quality targets live here, never in timed tests."""
