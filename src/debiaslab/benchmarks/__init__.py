"""Benchmark scorers: one metric family per module, plain functions returning flat dicts of floats.

Each module's docstring is its card (what it measures, inputs, outputs, range, direction,
citation); the module that computes a metric declares it in ``METRICS``
(:class:`debiaslab.metrics.Metric`: direction, ideal, scale), and results read them from there.
"""
