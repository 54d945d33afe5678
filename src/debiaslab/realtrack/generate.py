"""Real-track generation steps (to be written)."""

from __future__ import annotations

from pathlib import Path


def decoding_tradeoff(track) -> list[Path]:
    raise NotImplementedError


def synthetic(track) -> list[Path]:
    raise NotImplementedError


def precise_debias(track) -> list[Path]:
    raise NotImplementedError
