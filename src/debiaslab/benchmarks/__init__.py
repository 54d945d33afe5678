"""Benchmark scorers: one metric family per module, plain functions returning flat dicts of floats.

Each module's docstring is its card (what it measures, inputs, outputs, range, direction,
citation); ``higher_is_better`` sits beside each metric.
"""
