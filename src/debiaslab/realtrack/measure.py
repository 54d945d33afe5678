"""Real-track measurements (to be written)."""

from __future__ import annotations

from pathlib import Path


def crows_pairs(track) -> list[Path]:
    raise NotImplementedError


def stereoset(track) -> list[Path]:
    raise NotImplementedError


def stereoset_mc(track) -> list[Path]:
    raise NotImplementedError


def bold_honest(track) -> list[Path]:
    raise NotImplementedError
