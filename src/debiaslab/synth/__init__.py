"""Synthetic debiasing data: ask a language model for low-bias training text (in progress)."""
