"""What the memory estimate knows of an architecture, built offline: config, shape, parameters.

:func:`config_for` builds a transformers config from a preset's ``arch`` (``configs/models.yaml``),
a tiny preset or a local directory; the model is built on the ``meta`` device (shapes, no
storage) and :func:`count_parameters` counts it as ``model.num_parameters()`` and peft do.
Nothing here downloads anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debiaslab.config import FAMILIES, ModelPreset, get_preset
from debiaslab.errors import ConfigError
from debiaslab.models import detect_family
from debiaslab.tiny.build import build_tiny

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# peft's default LoRA targets (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING).
DEFAULT_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "bloom": ("query_key_value",),
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "llama": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
}
# Models with a learned relative position bias: under SDPA it becomes a float mask per layer.
POSITION_BIAS_TYPES = frozenset({"t5", "mt5", "umt5", "longt5"})
_GATE_NAMES = ("gate_proj", "wi_0", "w1", "gate_up_proj")
_ACT_KEYS = ("activation_function", "hidden_act", "dense_act_fn")


@cache
def _tiny_config(family: str) -> PretrainedConfig:
    model, _ = build_tiny(family, seed=0)
    return model.config


def as_preset(source: Any) -> ModelPreset | None:
    """The :class:`ModelPreset` ``source`` is or names; None for anything else."""
    if isinstance(source, ModelPreset):
        return source
    if isinstance(source, str):
        return get_preset(source)
    return None


def config_for(source: Any) -> PretrainedConfig:
    """A transformers config built offline.

    Args:
        source: a :class:`ModelPreset` or preset name (built from its ``arch``, or by
            :mod:`debiaslab.tiny` for tiny presets), a local model directory holding a
            ``config.json``, or a transformers config (returned as it is).

    Raises:
        ConfigError: a hub id or missing path (the planner does not download), or a preset
            with neither ``arch`` nor ``tiny``.

    Example:
        >>> c = config_for("flan-t5-base")
        >>> c.model_type, c.d_model, c.num_layers, c.feed_forward_proj
        ('t5', 768, 12, 'gated-gelu')
    """
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(source, PretrainedConfig):
        return source
    preset = as_preset(source)
    if preset is not None:
        if preset.tiny:
            return _tiny_config(preset.tiny)
        if not preset.arch:
            raise ConfigError(f"preset {preset.name!r} has no arch in configs/models.yaml")
        kwargs = dict(preset.arch)
        return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    if isinstance(source, (str, Path)) and (Path(source) / "config.json").is_file():
        return AutoConfig.from_pretrained(str(source), local_files_only=True)
    raise ConfigError(
        f"cannot build a config offline from {source!r}: give a preset (debiaslab models), a "
        "local model directory or a transformers config"
    )


def family_of(source: Any, config: PretrainedConfig, family: str | None) -> str:
    """``family`` checked, else the preset's family, else the one ``config`` implies."""
    if family is not None:
        if family not in FAMILIES:
            raise ConfigError(f"unknown family {family!r}; expected one of {FAMILIES}")
        return family
    preset = as_preset(source)
    if preset is not None:
        return preset.family

    return detect_family(config)


def _head_untied(config: PretrainedConfig) -> bool:
    """Whether the checkpoint has its own LM head (transformers 5 hides it for T5 v1.1)."""
    if getattr(config, "tie_word_embeddings", True) is False:
        return True
    return getattr(config, "scale_decoder_outputs", True) is False


@dataclass(frozen=True)
class Shape:
    """What the estimate needs to know of an architecture (read off a meta model)."""

    model_type: str
    n_params: int
    n_quantizable: int  # weights bitsandbytes quantizes (block Linear/Conv1D)
    n_quant_rows: int  # their output rows (8-bit keeps a float32 scale per row)
    n_matmul: int  # all Linear/Conv1D weights (autocast copies them to float16)
    lora_fan: tuple[tuple[str, int, int], ...]  # (module leaf name, sum of in+out, count)
    hidden: int
    n_layers: int
    n_decoder_layers: int
    n_heads: int
    q_dim: int
    kv_dim: int
    ffn: int
    gated: bool
    vocab: int
    attn_dropout: bool
    hidden_dropout: bool
    ffn_dropout: bool  # dropout inside the MLP (T5)
    attention: str  # "fused" (SDPA), "fused_bias" (SDPA + a float bias mask) or "eager"
    rms_norm: bool  # RMSNorm written in Python (Llama, Qwen2, T5) rather than nn.LayerNorm
    gelu_chain: bool  # "gelu_new": tanh-GELU written as a chain of Python ops (GPT-2, T5 v1.1)


def _positive(config: PretrainedConfig, *names: str) -> float:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return 0.0


def _meta_model(config: PretrainedConfig, family: str):
    import torch
    import transformers

    auto = {
        "causal": transformers.AutoModelForCausalLM,
        "masked": transformers.AutoModelForMaskedLM,
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
    }[family]
    with torch.device("meta"):
        model = auto.from_config(config)
        if _head_untied(config):
            _untie_head(model)
    return model


def _untie_head(model) -> None:
    """Give ``model`` its own LM head if it shares the input embeddings' matrix."""
    import torch

    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is not None and inp is not None and out.weight is inp.weight:
        out.weight = torch.nn.Parameter(torch.empty_like(out.weight))


def _linear_dims(module) -> tuple[int, int] | None:
    """(in, out) features of a ``Linear`` or GPT-2 ``Conv1D`` (weight stored as in × out)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]
    return None


_SHAPES: dict[tuple[str, str, bool], Shape] = {}


def shape_of(config: PretrainedConfig, family: str) -> Shape:
    """The :class:`Shape` of ``config``, memoised by its JSON (meta models cost ~0.1 s)."""
    key = (config.to_json_string(use_diff=False), family, _head_untied(config))
    if key not in _SHAPES:
        _SHAPES[key] = _measure_shape(config, family)
    return _SHAPES[key]


def _measure_shape(config: PretrainedConfig, family: str) -> Shape:
    """Read an architecture's :class:`Shape` off its model built on the ``meta`` device.

    :func:`config_for` builds a transformers config from a preset's ``arch`` (the checkpoint's
    ``config.json`` values, kept in ``configs/models.yaml``), from :mod:`debiaslab.tiny` for the
    tiny presets, or from a local directory. The model is then instantiated on PyTorch's
    ``meta`` device, where tensors have shapes but no storage,
    so a 3B model costs milliseconds and no memory. Its modules give every count the estimate
    needs: parameters (tied ones once, as ``model.num_parameters()`` counts them), the
    ``Linear``/``Conv1D`` weights bitsandbytes would quantize, and the ``in + out`` sizes of the
    layers LoRA adapts. A preset whose checkpoint has an untied LM head (FLAN-T5) gets one on the
    meta model too: transformers 5 always ties T5's embeddings in ``from_config`` and unties them
    only when it loads a checkpoint that stores both.
    """
    model = _meta_model(config, family)
    unique = {id(p): p for p in model.parameters()}
    output = model.get_output_embeddings()
    fan: dict[str, list[int]] = {}
    n_quant = n_rows = n_matmul = 0
    gated = False
    for name, module in model.named_modules():
        dims = _linear_dims(module)
        if dims is None:
            continue
        leaf = name.rsplit(".", 1)[-1]
        gated = gated or leaf in _GATE_NAMES
        fan.setdefault(leaf, [0, 0])
        fan[leaf][0] += dims[0] + dims[1]
        fan[leaf][1] += 1
        n_matmul += dims[0] * dims[1]
        if module is not output:
            n_quant += dims[0] * dims[1]
            n_rows += dims[1]
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    ffn = int(_positive(config, "intermediate_size", "d_ff", "n_inner", "ffn_dim") or 4 * hidden)
    encdec = bool(getattr(config, "is_encoder_decoder", False))
    dropout = _positive(config, "dropout_rate")
    if not getattr(model, "_supports_sdpa", False):
        attention = "eager"
    else:
        attention = "fused_bias" if config.model_type in POSITION_BIAS_TYPES else "fused"
    norms = {type(m).__name__ for m in model.modules()}
    acts = {str(getattr(config, k, "")) for k in _ACT_KEYS}
    return Shape(
        model_type=config.model_type,
        n_params=sum(p.numel() for p in unique.values()),
        n_quantizable=n_quant,
        n_quant_rows=n_rows,
        n_matmul=n_matmul,
        lora_fan=tuple((k, v[0], v[1]) for k, v in sorted(fan.items())),
        hidden=hidden,
        n_layers=int(config.num_hidden_layers),
        n_decoder_layers=int(getattr(config, "num_decoder_layers", 0) or 0) if encdec else 0,
        n_heads=heads,
        q_dim=heads * head_dim,
        kv_dim=kv_heads * head_dim,
        ffn=ffn,
        gated=gated or bool(getattr(config, "is_gated_act", False)),
        vocab=int(config.vocab_size),
        attn_dropout=bool(
            dropout
            or _positive(config, "attention_probs_dropout_prob", "attn_pdrop", "attention_dropout")
        ),
        hidden_dropout=bool(
            dropout or _positive(config, "hidden_dropout_prob", "resid_pdrop", "hidden_dropout")
        ),
        ffn_dropout=bool(dropout and config.model_type in POSITION_BIAS_TYPES),
        attention=attention,
        rms_norm=any(n.endswith("RMSNorm") or n == "T5LayerNorm" for n in norms),
        gelu_chain="gelu_new" in acts,
    )


@dataclass(frozen=True)
class ParameterCount:
    """Parameter counts of an architecture.

    Attributes:
        total: all parameters, tied ones counted once (``model.num_parameters()``).
        quantizable: ``Linear``/``Conv1D`` weights that bitsandbytes quantizes (all but the
            LM head); embeddings, norms and biases stay in 16 or 32 bits.
        lora: trainable parameters of LoRA at rank ``lora_rank`` on ``lora_targets``
            (``None`` when no targets were asked for).
        lora_rank: the rank ``lora`` was counted at.
    """

    total: int
    quantizable: int
    lora: int | None = None
    lora_rank: int = 8

    @property
    def lora_percent(self) -> float | None:
        """LoRA's trainable share of ``total``, in percent."""
        return None if self.lora is None else 100.0 * self.lora / self.total


def lora_parameters(shape: Shape, targets: tuple[str, ...], rank: int) -> int:
    """Parameters of LoRA: ``rank × (in + out)`` per adapted layer (A is r × in, B out × r)."""
    fan = {leaf: total for leaf, total, _ in shape.lora_fan}
    missing = [t for t in targets if t not in fan]
    if missing:
        raise ConfigError(
            f"LoRA targets {missing} match no Linear/Conv1D layer of this {shape.model_type} "
            f"model; its layer names are {sorted(fan)}"
        )
    return rank * sum(fan[t] for t in targets)


def lora_targets_for(shape: Shape, source: Any, targets: Any) -> tuple[str, ...]:
    """``targets`` if given, else the preset's LoRA targets, else peft's default for the type."""
    if targets is not None:
        return tuple(targets)
    preset = as_preset(source)
    if preset is not None and preset.lora_targets:
        return preset.lora_targets
    if shape.model_type in DEFAULT_LORA_TARGETS:
        return DEFAULT_LORA_TARGETS[shape.model_type]
    raise ConfigError(f"no default LoRA targets for model type {shape.model_type!r}: name them")


def count_parameters(
    config: Any,
    family: str | None = None,
    *,
    lora_targets: tuple[str, ...] | list[str] | None = None,
    lora_rank: int = 8,
) -> ParameterCount:
    """Count parameters on the meta device (no weights are allocated).

    Args:
        config: a transformers config, or anything :func:`config_for` takes.
        family: ``causal``, ``masked`` or ``seq2seq`` (default: the preset's, or inferred).
        lora_targets: module names LoRA adapts (default: the preset's, or peft's default for
            the model type); LoRA is counted only when given or ``config`` is a preset.
        lora_rank: LoRA rank r.

    Returns:
        A :class:`ParameterCount`. LoRA counts are what peft's
        ``print_trainable_parameters`` reports: ``r × (in + out)`` per targeted layer.

    Example:
        >>> c = count_parameters("bloomz-560m")
        >>> c.total, c.lora
        (559214592, 786432)
    """
    cfg = config_for(config)
    fam = family_of(config, cfg, family)
    shape = shape_of(cfg, fam)
    lora = None
    if lora_targets is not None or as_preset(config) is not None:
        lora = lora_parameters(shape, lora_targets_for(shape, config, lora_targets), lora_rank)
    return ParameterCount(shape.n_params, shape.n_quantizable, lora, lora_rank)
