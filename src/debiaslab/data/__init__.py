"""Benchmark loaders: one schema per benchmark, clear errors for malformed files."""
