"""debiaslab: measure, mitigate and re-measure social bias in language and text-to-image models."""

__version__ = "0.1.0"
