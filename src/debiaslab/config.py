"""Model presets shipped inside the package (``configs/models.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from debiaslab.errors import ConfigError

FAMILIES = ("causal", "masked", "seq2seq")


@dataclass(frozen=True)
class ModelPreset:
    name: str
    family: str
    hub_id: str | None = None
    tiny: str | None = None  # family of an offline tiny model built by debiaslab.tiny


@cache
def presets() -> dict[str, ModelPreset]:
    """All shipped presets by name."""
    text = resources.files("debiaslab").joinpath("configs/models.yaml").read_text("utf-8")
    out = {}
    for name, spec in yaml.safe_load(text).items():
        if spec.get("family") not in FAMILIES:
            raise ConfigError(f"configs/models.yaml: preset {name!r}: bad family {spec!r}")
        out[name] = ModelPreset(name=name, **spec)
    return out


def get_preset(name: str) -> ModelPreset | None:
    """The preset called ``name``, or ``None`` if it is a hub id or a path instead."""
    return presets().get(name)
