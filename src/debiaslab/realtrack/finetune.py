"""Real-track fine-tuning (to be written)."""

from __future__ import annotations

from pathlib import Path


def lora_and_post_eval(track) -> list[Path]:
    raise NotImplementedError
