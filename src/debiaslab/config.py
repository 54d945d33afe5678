"""Model presets shipped inside the package (``configs/models.yaml``).

A preset (:class:`ModelPreset`) says what debiaslab needs to know about a model without a hub:
its family, where the weights come from, its architecture, dtype, LoRA targets and fine-tuning
settings per target machine of :data:`HARDWARE`. Everything is validated when the file is
loaded (a :class:`ConfigError` names the preset and the field). Entry points:
:func:`get_preset`, :func:`presets`.

Example:
    >>> p = get_preset("gpt2")
    >>> p.family, p.arch["model_type"], p.lora_targets
    ('causal', 'gpt2', ('c_attn',))
    >>> p.settings("t4x2").method
    'full'
    >>> get_preset("openai-community/gpt2") is None  # a hub id, not a preset
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from debiaslab.errors import ConfigError

FAMILIES = ("causal", "masked", "seq2seq")
METHODS = ("full", "lora", "qlora")
DTYPES = ("float32", "float16", "bfloat16")
OFFLINE_SOURCES = ("smollm2",)  # debiaslab.smollm2: the registry wheel's GGUF, dequantized
# Which bitsandbytes quantizations go with which fine-tuning method.
METHOD_QUANTIZATIONS: dict[str, tuple[str | None, ...]] = {
    "full": (None,),
    "lora": (None, "8bit"),
    "qlora": ("4bit",),
}


@dataclass(frozen=True)
class Hardware:
    """A machine debiaslab fine-tunes on.

    Attributes:
        name: key in :data:`HARDWARE`.
        memory_gib: memory one device can use, in GiB (``None``: not checked, e.g. CPU CI).
        n_gpus: GPUs used with data parallelism; each holds a whole replica of the model.
        bf16: whether the device computes in bfloat16.
        note: what to know about it.
    """

    name: str
    memory_gib: float | None
    n_gpus: int
    bf16: bool
    note: str


HARDWARE: dict[str, Hardware] = {
    "t4x2": Hardware(
        "t4x2",
        15.0,
        2,
        False,
        "Kaggle 'GPU T4 x2': two 16 GB T4s, 15 GiB usable each, compute capability 7.5 "
        "(float16, no bfloat16); data parallel, so each GPU holds a whole replica.",
    ),
    "p100": Hardware(
        "p100",
        16.0,
        1,
        False,
        "Kaggle 'GPU P100': one 16 GB P100, compute capability 6.0 (no bfloat16, float16 "
        "without tensor cores); Kaggle's cu128 torch has no sm_60 kernels, so the notebooks' "
        "bootstrap installs the CUDA 12.6 build (debiaslab.gpucheck).",
    ),
    "cpu-ci": Hardware(
        "cpu-ci",
        None,
        0,
        False,
        "CPU-only CI runner: tiny presets only; memory is not checked.",
    ),
}


@dataclass(frozen=True)
class HardwareSettings:
    """Fine-tuning settings of one preset on one machine of :data:`HARDWARE`.

    Attributes:
        method: ``full`` fine-tuning, ``lora`` adapters, or ``qlora`` (LoRA on a 4-bit base).
        batch_size: sequences per device per step (micro-batch).
        grad_accum: micro-batches accumulated per optimizer step.
        seq_len: padded sequence length in tokens (input length for seq2seq).
        quantization: bitsandbytes quantization of the frozen base: ``None``, ``8bit``
            (with ``lora``) or ``4bit`` (``qlora``).
        gradient_checkpointing: recompute activations in the backward pass.
        fp16: float16 mixed precision (``False``: float32).

    Example:
        >>> s = HardwareSettings("lora", batch_size=8, grad_accum=4, seq_len=256)
        >>> s.effective_batch(n_gpus=2)
        64
    """

    method: str
    batch_size: int
    grad_accum: int = 1
    seq_len: int = 128
    quantization: str | None = None
    gradient_checkpointing: bool = False
    fp16: bool = False

    def effective_batch(self, n_gpus: int = 1) -> int:
        """Sequences per optimizer step over ``n_gpus`` data-parallel devices."""
        return self.batch_size * self.grad_accum * max(n_gpus, 1)


@dataclass(frozen=True)
class ModelPreset:
    """A shipped model preset.

    * ``family`` (``causal``, ``masked``, ``seq2seq``) and where the weights come from:
      ``hub_id``, or ``tiny`` for an offline tiny model built by :mod:`debiaslab.tiny`;
      ``offline`` names where a Hub preset's weights come from when the Hub is off and the
      release is not in the Hugging Face cache (``smollm2``: :mod:`debiaslab.smollm2`).
    * ``arch``: the architecture hyperparameters as transformers config keyword arguments,
      ``model_type`` included, copied from the checkpoint's ``config.json``. With them
      :mod:`debiaslab.planner` builds the config, counts parameters and estimates memory
      offline. Tiny presets have none: their config comes from :mod:`debiaslab.tiny`.
    * ``dtype``: the dtype the checkpoint is stored in, and ``fp16_ok``: whether float16 mixed
      precision is safe (FLAN-T5 was trained in bfloat16 and overflows in float16, so its
      presets say ``false``: on a T4 or P100, which have no bfloat16, train it in float32).
    * ``lora_targets``: the module names LoRA adapts (peft's defaults for the architecture).
    * ``hardware``: fine-tuning settings per target machine of :data:`HARDWARE` (method, batch
      size, sequence length, quantization, ...), chosen with the planner so that they fit.
    """

    name: str
    family: str
    hub_id: str | None = None
    tiny: str | None = None  # family of an offline tiny model built by debiaslab.tiny
    offline: str | None = None  # the source used when the Hub is off: "smollm2" (its GGUF)
    arch: Mapping[str, Any] | None = field(default=None, hash=False)
    dtype: str = "float32"
    fp16_ok: bool = True
    lora_targets: tuple[str, ...] = ()
    hardware: Mapping[str, HardwareSettings] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def settings(self, hardware: str) -> HardwareSettings:
        """This preset's settings for ``hardware``.

        Raises:
            ConfigError: unknown hardware, or none given for this preset.
        """
        if hardware not in HARDWARE:
            raise ConfigError(
                f"unknown hardware {hardware!r}; expected one of {', '.join(HARDWARE)}"
            )
        if hardware not in self.hardware:
            known = ", ".join(self.hardware) or "none"
            raise ConfigError(
                f"preset {self.name!r} has no settings for hardware {hardware!r} (it has: {known})"
            )
        return self.hardware[hardware]


# --------------------------------------------------------------------------- loading


def _fail(preset: str, fld: str, message: str) -> ConfigError:
    return ConfigError(f"configs/models.yaml: preset {preset!r}, field {fld!r}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_settings(preset: str, hw: str, spec: Any, fp16_ok: bool) -> HardwareSettings:
    where = f"hardware.{hw}"
    if not isinstance(spec, Mapping):
        raise _fail(preset, where, f"expected a mapping, got {spec!r}")
    known = {f.name for f in fields(HardwareSettings)}
    for key in spec:
        if key not in known:
            raise _fail(preset, f"{where}.{key}", f"unknown field; expected {sorted(known)}")
    for key in ("method", "batch_size"):
        if key not in spec:
            raise _fail(preset, f"{where}.{key}", "missing")
    method = spec["method"]
    if method not in METHODS:
        raise _fail(preset, f"{where}.method", f"{method!r} is not one of {METHODS}")
    for key in ("batch_size", "grad_accum", "seq_len"):
        if key in spec and not (_is_int(spec[key]) and spec[key] >= 1):
            message = f"expected a positive integer, got {spec[key]!r}"
            raise _fail(preset, f"{where}.{key}", message)
    for key in ("gradient_checkpointing", "fp16"):
        if key in spec and not isinstance(spec[key], bool):
            raise _fail(preset, f"{where}.{key}", f"expected true or false, got {spec[key]!r}")
    quantization = spec.get("quantization", "4bit" if method == "qlora" else None)
    if quantization not in METHOD_QUANTIZATIONS[method]:
        allowed = ", ".join(str(q).replace("None", "null") for q in METHOD_QUANTIZATIONS[method])
        message = f"{quantization!r} with method {method!r}: use {allowed}"
        raise _fail(preset, f"{where}.quantization", message)
    if spec.get("fp16") and not fp16_ok:
        raise _fail(preset, f"{where}.fp16", "fp16 is on but the preset says fp16_ok: false")
    if spec.get("fp16") and HARDWARE[hw].n_gpus == 0:
        raise _fail(preset, f"{where}.fp16", f"{hw} has no GPU: train in float32")
    return HardwareSettings(**{**spec, "quantization": quantization})


def _parse_preset(name: str, spec: Any) -> ModelPreset:
    """Validate one YAML entry and build its :class:`ModelPreset`."""
    if not isinstance(spec, Mapping):
        raise _fail(name, "*", f"expected a mapping, got {spec!r}")
    known = {f.name for f in fields(ModelPreset)} - {"name"}
    for key in spec:
        if key not in known:
            raise _fail(name, key, f"unknown field; expected {sorted(known)}")
    family = spec.get("family")
    if family not in FAMILIES:
        raise _fail(name, "family", f"{family!r} is not one of {FAMILIES}")
    hub_id, tiny = spec.get("hub_id"), spec.get("tiny")
    if (hub_id is None) == (tiny is None):
        raise _fail(name, "hub_id", "give exactly one of hub_id and tiny")
    if tiny is not None and tiny not in FAMILIES:
        raise _fail(name, "tiny", f"{tiny!r} is not one of {FAMILIES}")
    offline = spec.get("offline")
    if offline is not None and (offline not in OFFLINE_SOURCES or hub_id is None):
        raise _fail(name, "offline", f"expected one of {OFFLINE_SOURCES} beside a hub_id")
    arch = spec.get("arch")
    if arch is not None:
        if tiny is not None:
            raise _fail(name, "arch", "tiny presets take their architecture from debiaslab.tiny")
        if not isinstance(arch, Mapping) or not isinstance(arch.get("model_type"), str):
            raise _fail(name, "arch", "expected a mapping of config kwargs with a model_type")
        arch = MappingProxyType(dict(arch))
    dtype = spec.get("dtype", "float32")
    if dtype not in DTYPES:
        raise _fail(name, "dtype", f"{dtype!r} is not one of {DTYPES}")
    fp16_ok = spec.get("fp16_ok", True)
    if not isinstance(fp16_ok, bool):
        raise _fail(name, "fp16_ok", f"expected true or false, got {fp16_ok!r}")
    targets = spec.get("lora_targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
        raise _fail(name, "lora_targets", f"expected a list of module names, got {targets!r}")
    hardware = spec.get("hardware", {})
    if not isinstance(hardware, Mapping):
        raise _fail(name, "hardware", f"expected a mapping, got {hardware!r}")
    settings = {}
    for hw, hw_spec in hardware.items():
        if hw not in HARDWARE:
            raise _fail(name, f"hardware.{hw}", f"unknown hardware; expected {list(HARDWARE)}")
        settings[hw] = _parse_settings(name, hw, hw_spec, fp16_ok)
    return ModelPreset(
        name=name,
        family=family,
        hub_id=hub_id,
        tiny=tiny,
        offline=offline,
        arch=arch,
        dtype=dtype,
        fp16_ok=fp16_ok,
        lora_targets=tuple(targets),
        hardware=MappingProxyType(settings),
    )


def parse_presets(text: str) -> dict[str, ModelPreset]:
    """Parse and validate a ``models.yaml`` text.

    Raises:
        ConfigError: a preset or field is invalid; the message names both.

    Example:
        >>> parse_presets("x: {hub_id: org/x, family: causal, dtype: float8}")
        Traceback (most recent call last):
        ...
        debiaslab.errors.ConfigError: configs/models.yaml: preset 'x', field 'dtype': ...
    """
    data = yaml.safe_load(text) or {}
    if not isinstance(data, Mapping):
        raise ConfigError("configs/models.yaml: expected a mapping of preset name to preset")
    return {str(name): _parse_preset(str(name), spec) for name, spec in data.items()}


@cache
def presets() -> dict[str, ModelPreset]:
    """All shipped presets by name."""
    text = resources.files("debiaslab").joinpath("configs/models.yaml").read_text("utf-8")
    return parse_presets(text)


def get_preset(name: str) -> ModelPreset | None:
    """The preset called ``name``, or ``None`` if it is a hub id or a path instead."""
    return presets().get(name)
