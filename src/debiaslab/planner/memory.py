# long by design: parameter counts and memory estimates per family; split planned in issue 14 point
# 3.
"""Will it fit? Parameter counts and a training-memory estimate per preset and machine, offline.

Design:
    Nothing here downloads anything. :func:`config_for` builds a transformers config from a
    preset's ``arch`` (the checkpoint's ``config.json`` values, kept in ``configs/models.yaml``),
    from :mod:`debiaslab.tiny` for the tiny presets, or from a local directory. The model is
    then instantiated on PyTorch's ``meta`` device, where tensors have shapes but no storage,
    so a 3B model costs milliseconds and no memory. Its modules give every count the estimate
    needs: parameters (tied ones once, as ``model.num_parameters()`` counts them), the
    ``Linear``/``Conv1D`` weights bitsandbytes would quantize, and the ``in + out`` sizes of the
    layers LoRA adapts. A preset whose checkpoint has an untied LM head (FLAN-T5) gets one on the
    meta model too: transformers 5 always ties T5's embeddings in ``from_config`` and unties them
    only when it loads a checkpoint that stores both.

    :func:`estimate_memory` adds up the bytes of one training step on one device
    (:class:`MemoryEstimate`); :func:`plan` asks, for each method (full, LoRA, QLoRA), whether a
    preset's settings from ``models.yaml`` fit a machine of :data:`HARDWARE` and what the
    largest power-of-two batch is, with and without gradient checkpointing;
    :func:`format_plan` prints the rows as a Markdown table and :func:`verdict_table` does so
    for all presets (``python -m debiaslab.planner t4x2``).

The estimate (bytes; P = parameters, T = trainable parameters, E = 2 for float16 mixed
precision or 4 for float32), modelled on how ``transformers.Trainer`` trains:
    weights
        full: 4P (float32 weights, which mixed precision keeps as the master copy). LoRA: E per
        frozen parameter + 4T for the float32 adapters. Quantized (LoRA on an 8-bit base,
        QLoRA on NF4): the ``Linear``/``Conv1D`` weights of the blocks take 1 byte (8-bit, plus
        a float32 scale per output row) or 0.5 byte + 1/64 byte of 8-bit block scales +
        4/(64·256) byte of their float32 scales (NF4, block size 64, double quantization);
        embeddings, norms, biases and the LM head are not quantized (bitsandbytes skips the
        output layer) and stay 16-bit, but ``peft.prepare_model_for_kbit_training`` (the usual
        QLoRA recipe) upcasts them to float32, which is what is counted by default. With a
        large vocabulary and a small model this eats the saving: QLoRA of bloomz-560m needs no
        less than LoRA.
    weight copies
        Autocast's float16 copies of float32 matmul weights, kept by autograd for the backward
        pass: 2 bytes per ``Linear``/``Conv1D`` weight for full fine-tuning without
        checkpointing, and for the float32 LM head of an upcast quantized model.
    gradients
        4T (float32, like the parameters they belong to), present through the backward pass
        under gradient accumulation; data parallel (DDP) adds its gradient buckets, another 4T.
    optimizer
        AdamW: 8T (two float32 moments); ``adamw_8bit``: 2T; ``sgd`` (no momentum): 0. Its
        step makes float32 temporaries of about 4T (``foreach`` implementation).
    activations
        Per transformer layer, after Korthikanti et al. 2022, "Reducing Activation
        Recomputation in Large Transformer Models" (arXiv:2205.05198, §4.1), who count
        ``s·b·h·(34 + 5·a·s/h)`` bytes per GPT layer in pure 16-bit with dropout (s tokens, b
        sequences, h hidden size, a heads). Here each saved tensor is counted at the dtype it
        has under autocast, with the model's real widths: a norm keeps its input in float32 (4
        bytes/element; a Python RMSNorm E more); attention keeps the Q/K/V input, Q, K, V, the
        output-projection input and either, *eager* (BLOOM's ALiBi), the ``a·s²·b`` float32
        softmax output + its E-byte cast (+ 1-byte dropout mask), or, with PyTorch's fused SDPA
        kernels, their output and a float32 log-sum-exp (+ T5's ``a·s²·b`` bias mask, which
        transformers 5 passes to SDPA); the MLP keeps its input and 2 tensors of its inner
        width f (4 for a gated MLP: T5's gated-GELU, SwiGLU), 12 bytes more per inner element
        for the tanh-GELU that GPT-2 and T5 compute as a chain of Python ops (``gelu_new``);
        each dropout adds a 1-byte mask. When LoRA adapts only attention projections, frozen
        layers keep no input (``torch.mm`` saves an input only for a weight's gradient).
        Seq2seq decoder layers add cross-attention over the encoder's s tokens. Gradient
        checkpointing (per layer, as transformers does it) keeps only each layer's input,
        E·s·b·h, plus one layer's activations while it is recomputed.
    logits
        12 bytes per logit, b·s·V of them (V the vocabulary): the loss's float32 log-softmax,
        and in the backward pass its gradient and the gradient of its input. For BLOOM's
        250,880-token vocabulary this is the largest term: 2.9 GiB at b = 4, s = 256.
    overhead
        0.5 GiB: CUDA context and cuBLAS workspace, which PyTorch's allocator does not see.

    Peak = weights + gradients + optimizer + max(weight copies + activations + logits,
    optimizer step temporaries) + overhead: the forward/backward pass or the optimizer step.

Accuracy: checked against ``torch.cuda.max_memory_allocated`` of two accumulated training
steps of randomly initialised models (``tests/test_planner.py``, run on an H100 with torch 2.11,
transformers 5.17, peft 0.21, bitsandbytes 0.50): GPT-2, BERT, RoBERTa, BLOOMZ, FLAN-T5, Llama
3.2 and Qwen2.5, full/LoRA/QLoRA, with and without checkpointing, the estimate fell within
-5% to +10% of the measured peak (+30% for QLoRA of a float32 FLAN-T5). It is still an
estimate: it ignores the allocator's fragmentation (reserved exceeds allocated), other kernels
(T4 and P100 run different attention kernels than an H100), masks and position tensors; and
``from_pretrained`` with bitsandbytes can briefly need more than training (3.3 GiB to load
and quantize flan-t5-large's float32 checkpoint, then 1.6 GiB to train). Treat a row within
~10% of the card's memory as "try it" rather than "fits".

Example:
    >>> count_parameters(config_for("gpt2")).total
    124439808
    >>> full = estimate_memory("gpt2", method="full", batch_size=8, seq_len=256)
    >>> lora = estimate_memory("gpt2", method="lora", batch_size=8, seq_len=256)
    >>> lora.total < full.total
    True
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debiaslab import tiny
from debiaslab.config import (
    FAMILIES,
    HARDWARE,
    METHOD_QUANTIZATIONS,
    METHODS,
    Hardware,
    HardwareSettings,
    ModelPreset,
    get_preset,
    presets,
)
from debiaslab.errors import ConfigError
from debiaslab.models import detect_family

if TYPE_CHECKING:
    from transformers import PretrainedConfig

__all__ = [
    "BATCH_SIZES",
    "DEFAULT_LORA_TARGETS",
    "GIB",
    "HARDWARE",
    "MemoryEstimate",
    "ParameterCount",
    "PlanRow",
    "config_for",
    "count_parameters",
    "estimate_memory",
    "format_plan",
    "plan",
    "plan_all",
    "verdict_table",
]

GIB = 1024**3
CUDA_OVERHEAD = GIB // 2
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
OPTIMIZER_BYTES = {"adamw": 8, "adamw_8bit": 2, "sgd": 0}
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit values + 8-bit block scales + their scales
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
_POSITION_BIAS_TYPES = frozenset({"t5", "mt5", "umt5", "longt5"})
_GATE_NAMES = ("gate_proj", "wi_0", "w1", "gate_up_proj")
# Attention projections: LoRA on these alone leaves the MLP and output projection frozen.
_QKV_NAMES = frozenset(
    {"c_attn", "query", "key", "value", "query_key_value", "q", "k", "v"}
    | {"q_proj", "k_proj", "v_proj", "qkv_proj", "Wqkv"}
)
_ACT_KEYS = ("activation_function", "hidden_act", "dense_act_fn")


# --------------------------------------------------------------------------- configs


@cache
def _tiny_config(family: str) -> PretrainedConfig:

    model, _ = tiny.build_tiny(family, seed=0)
    return model.config


def _as_preset(source: Any) -> ModelPreset | None:
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
    preset = _as_preset(source)
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


def _family_of(source: Any, config: PretrainedConfig, family: str | None) -> str:
    if family is not None:
        if family not in FAMILIES:
            raise ConfigError(f"unknown family {family!r}; expected one of {FAMILIES}")
        return family
    preset = _as_preset(source)
    if preset is not None:
        return preset.family

    return detect_family(config)


def _head_untied(config: PretrainedConfig) -> bool:
    """Whether the checkpoint has its own LM head (transformers 5 hides it for T5 v1.1)."""
    if getattr(config, "tie_word_embeddings", True) is False:
        return True
    return getattr(config, "scale_decoder_outputs", True) is False


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class _Shape:
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


_SHAPES: dict[tuple[str, str, bool], _Shape] = {}


def _shape(config: PretrainedConfig, family: str) -> _Shape:
    """The :class:`_Shape` of ``config``, memoised by its JSON (meta models cost ~0.1 s)."""
    key = (config.to_json_string(use_diff=False), family, _head_untied(config))
    if key not in _SHAPES:
        _SHAPES[key] = _shape_of(config, family)
    return _SHAPES[key]


def _shape_of(config: PretrainedConfig, family: str) -> _Shape:
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
        attention = "fused_bias" if config.model_type in _POSITION_BIAS_TYPES else "fused"
    norms = {type(m).__name__ for m in model.modules()}
    acts = {str(getattr(config, k, "")) for k in _ACT_KEYS}
    return _Shape(
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
        ffn_dropout=bool(dropout and config.model_type in _POSITION_BIAS_TYPES),
        attention=attention,
        rms_norm=any(n.endswith("RMSNorm") or n == "T5LayerNorm" for n in norms),
        gelu_chain="gelu_new" in acts,
    )


# --------------------------------------------------------------------------- parameters


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


def _lora_params(shape: _Shape, targets: tuple[str, ...], rank: int) -> int:
    """Parameters of LoRA: ``rank × (in + out)`` per adapted layer (A is r × in, B out × r)."""
    fan = {leaf: total for leaf, total, _ in shape.lora_fan}
    missing = [t for t in targets if t not in fan]
    if missing:
        raise ConfigError(
            f"LoRA targets {missing} match no Linear/Conv1D layer of this {shape.model_type} "
            f"model; its layer names are {sorted(fan)}"
        )
    return rank * sum(fan[t] for t in targets)


def _targets(shape: _Shape, source: Any, targets: Any) -> tuple[str, ...]:
    if targets is not None:
        return tuple(targets)
    preset = _as_preset(source)
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
    fam = _family_of(config, cfg, family)
    shape = _shape(cfg, fam)
    lora = None
    if lora_targets is not None or _as_preset(config) is not None:
        lora = _lora_params(shape, _targets(shape, config, lora_targets), lora_rank)
    return ParameterCount(shape.n_params, shape.n_quantizable, lora, lora_rank)


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one training step on one device, in bytes, by part.

    ``weights``, ``gradients`` and ``optimizer`` live through the step; ``weight_copies``
    (autocast's float16 copies), ``activations`` and ``logits`` only through the forward and
    backward pass, ``optimizer_step`` (the optimizer's temporaries) only through its step, so
    ``total`` is weights + gradients + optimizer + max(weight_copies + activations + logits,
    optimizer_step) + overhead. See the module docstring for the formulas.
    """

    weights: int
    gradients: int
    optimizer: int
    weight_copies: int
    activations: int
    logits: int
    optimizer_step: int
    overhead: int

    @property
    def total(self) -> int:
        """Estimated peak bytes."""
        states = self.weights + self.gradients + self.optimizer
        passes = self.weight_copies + self.activations + self.logits
        return states + max(passes, self.optimizer_step) + self.overhead

    @property
    def total_gib(self) -> float:
        """:attr:`total` in GiB."""
        return self.total / GIB

    def as_gib(self) -> dict[str, float]:
        """Every part and the total in GiB, rounded to 2 decimals."""
        parts = {f.name: getattr(self, f.name) / GIB for f in fields(self)}
        return {k: round(v, 2) for k, v in {**parts, "total": self.total_gib}.items()}


def _dtype_bytes(dtype: str) -> int:
    names = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2}
    if dtype not in names:
        raise ConfigError(f"unknown dtype {dtype!r}; use {', '.join(names)}")
    return names[dtype]


def _norm(s: _Shape, e: int, frozen: bool) -> int:
    """Bytes per element a norm keeps.

    nn.LayerNorm runs in float32 under autocast and keeps its float32 input; a Python RMSNorm
    keeps a float32 copy, and its E-byte normalised output if its weight trains.
    """
    return 4 + (e if s.rms_norm and not frozen else 0)


def _attention(s: _Shape, q: int, kv: int, b: int, e: int, frozen: bool) -> float:
    """Bytes one attention block keeps for the backward pass (q queries over kv keys)."""
    x = q * b * s.hidden * (_norm(s, e, frozen) + e)  # norm input, Q/K/V projection input
    if s.attention == "eager":
        x += q * b * s.q_dim * e + 2 * kv * b * s.kv_dim * e  # Q, K, V
        # Softmax output (float32: autocast, or BLOOM's explicit upcast), dropout mask and the
        # E-byte probabilities the product with V keeps.
        per_score = 4 + (1 if s.attn_dropout else 0) + (e if s.attn_dropout or e == 2 else 0)
        x += s.n_heads * q * kv * b * per_score
    else:
        # Q, K, V (K, V repeated to all heads for grouped-query attention with a padding
        # mask), the fused kernel's output and its float32 log-sum-exp.
        x += (q + 2 * kv) * b * s.q_dim * e + q * b * s.q_dim * e + s.n_heads * q * b * 4
        if s.attention == "fused_bias":
            x += s.n_heads * q * kv * b * e  # the bias + padding mask the kernel keeps
    x += 0 if frozen else q * b * s.q_dim * e  # output projection input
    x += q * b * s.hidden if s.hidden_dropout else 0
    return x


def _mlp(s: _Shape, t: int, b: int, e: int, frozen: bool) -> float:
    """Bytes one MLP block keeps for the backward pass."""
    x = t * b * s.hidden * (_norm(s, e, frozen) + (0 if frozen else e))  # norm, MLP input
    # Activation input and output (gated: also the up projection and the product); a Python
    # tanh-GELU keeps 12 more bytes per element (float32 pow input, tanh, 1 + tanh). A frozen
    # down projection does not keep its input.
    per_inner = e * (4 if s.gated else 2) + (12 if s.gelu_chain else 0) - (e if frozen else 0)
    x += t * b * s.ffn * per_inner
    x += t * b * s.ffn * (1 + e) if s.ffn_dropout else 0
    x += t * b * s.hidden if s.hidden_dropout else 0
    return x


def _activations(
    s: _Shape, b: int, seq: int, tgt: int, e: int, checkpointing: bool, frozen: bool
) -> int:
    enc_layer = _attention(s, seq, seq, b, e, frozen) + _mlp(s, seq, b, e, frozen)
    if s.n_decoder_layers:
        dec_layer = _attention(s, tgt, tgt, b, e, frozen) + _attention(s, tgt, seq, b, e, frozen)
        dec_layer += _mlp(s, tgt, b, e, frozen)
        n_dec, t_dec = s.n_decoder_layers, tgt
    else:
        dec_layer, n_dec, t_dec = 0.0, 0, 0
    # Embedding output, final norm input and the head's input (+ a dropout mask).
    edges = (seq + t_dec) * b * s.hidden * (3 * e + 1)
    if not checkpointing:
        return int(edges + s.n_layers * enc_layer + n_dec * dec_layer)
    inputs = (s.n_layers * seq + n_dec * t_dec) * b * s.hidden * e
    return int(edges + inputs + max(enc_layer, dec_layer))


def estimate_memory(
    config: Any,
    family: str | None = None,
    method: str = "full",
    batch_size: int = 8,
    seq_len: int = 128,
    dtype: str = "float16",
    quantization: str | None = None,
    gradient_checkpointing: bool = False,
    lora_rank: int = 8,
    optimizer: str = "adamw",
    *,
    lora_targets: tuple[str, ...] | list[str] | None = None,
    target_len: int | None = None,
    data_parallel: bool = False,
    upcast_unquantized: bool = True,
) -> MemoryEstimate:
    """Estimate the peak memory of one training step on one device.

    Args:
        config: a transformers config, or anything :func:`config_for` takes.
        family: ``causal``, ``masked`` or ``seq2seq`` (default: the preset's, or inferred).
        method: ``full``, ``lora`` or ``qlora``.
        batch_size: sequences per device per step.
        seq_len: padded tokens per sequence (the encoder's input for seq2seq).
        dtype: compute precision: ``float16``/``bfloat16`` (mixed precision) or ``float32``.
        quantization: ``None``, ``8bit`` (with ``lora``) or ``4bit`` (``qlora``; its default).
        gradient_checkpointing: recompute each layer's activations in the backward pass.
        lora_rank: LoRA rank r.
        optimizer: ``adamw``, ``adamw_8bit`` or ``sgd``.
        lora_targets: modules LoRA adapts (default: the preset's, or peft's default).
        target_len: decoder tokens for seq2seq (default: ``seq_len``).
        data_parallel: DDP over several GPUs (adds its gradient buckets).
        upcast_unquantized: with quantization, count the parameters bitsandbytes leaves
            unquantized (embeddings, norms, biases, LM head) at 4 bytes, as after peft's
            ``prepare_model_for_kbit_training``; ``False``: at 2 bytes, as loaded.

    Returns:
        A :class:`MemoryEstimate` (bytes).

    Raises:
        ConfigError: unknown method, dtype, optimizer, or a quantization the method does not
            take.

    Example:
        >>> m = estimate_memory("gpt2", method="full", batch_size=8, seq_len=256)
        >>> round(m.total_gib, 1), m.as_gib()["logits"]
        (5.3, 1.15)
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {METHODS}")
    if method == "qlora" and quantization is None:
        quantization = "4bit"
    if quantization not in METHOD_QUANTIZATIONS[method]:
        raise ConfigError(
            f"quantization {quantization!r} does not go with method {method!r}: "
            f"use {METHOD_QUANTIZATIONS[method]}"
        )
    if optimizer not in OPTIMIZER_BYTES:
        raise ConfigError(f"unknown optimizer {optimizer!r}; expected {list(OPTIMIZER_BYTES)}")
    if batch_size < 1 or seq_len < 1:
        raise ConfigError("batch_size and seq_len must be positive")
    e = _dtype_bytes(dtype)
    cfg = config_for(config)
    shape = _shape(cfg, _family_of(config, cfg, family))
    p = shape.n_params
    frozen = False  # whether only attention projections train (so other layers keep less)
    if method == "full":
        trainable = p
        weights = 4 * p
    else:
        targets = _targets(shape, config, lora_targets)
        frozen = set(targets) <= _QKV_NAMES
        trainable = _lora_params(shape, targets, lora_rank)
        if quantization is None:
            weights = e * p
        else:
            quantized = shape.n_quantizable
            per = 1.0 if quantization == "8bit" else NF4_BYTES
            rows = 4 * shape.n_quant_rows if quantization == "8bit" else 0
            rest = (4 if upcast_unquantized else 2) * (p - quantized)
            weights = int(per * quantized) + rows + rest
        weights += 4 * trainable
    gradients = 4 * trainable * (2 if data_parallel else 1)
    tgt = target_len or seq_len
    activations = _activations(shape, batch_size, seq_len, tgt, e, gradient_checkpointing, frozen)
    n_logits = batch_size * (tgt if shape.n_decoder_layers else seq_len) * shape.vocab
    copies = 0
    if e == 2 and method == "full" and not gradient_checkpointing:
        copies = 2 * shape.n_matmul  # float16 copies of every matmul weight
    elif e == 2 and quantization is not None and upcast_unquantized:
        copies = 2 * (shape.n_matmul - shape.n_quantizable)  # of the float32 LM head
    return MemoryEstimate(
        weights=int(weights),
        weight_copies=copies,
        gradients=gradients,
        optimizer=OPTIMIZER_BYTES[optimizer] * trainable,
        activations=activations,
        logits=12 * n_logits,
        optimizer_step=4 * trainable if optimizer != "sgd" else 0,
        overhead=CUDA_OVERHEAD,
    )


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlanRow:
    """One method of one preset on one machine.

    Attributes:
        preset: preset name.
        hardware: key of :data:`HARDWARE`.
        method: ``full``, ``lora`` or ``qlora``.
        quantization: bitsandbytes quantization of the base (``None``, ``8bit``, ``4bit``).
        precision: ``fp16`` (mixed) or ``fp32``.
        settings: the settings estimated (the preset's, with this row's method).
        estimate: the memory estimate at ``settings``.
        fits: whether ``estimate`` fits one device (always true where memory is unchecked).
        max_batch: the largest batch in :data:`BATCH_SIZES` that fits without gradient
            checkpointing (0: none).
        max_batch_checkpointing: the same with gradient checkpointing.
        chosen: whether this is the method ``models.yaml`` sets for this machine.
        note: caveats (precision, device).
    """

    preset: str
    hardware: str
    method: str
    quantization: str | None
    precision: str
    settings: HardwareSettings
    estimate: MemoryEstimate
    fits: bool
    max_batch: int
    max_batch_checkpointing: int
    chosen: bool
    note: str = ""


def _default_settings(preset: ModelPreset, hardware: str) -> HardwareSettings:
    gpu = HARDWARE[hardware].n_gpus > 0
    return HardwareSettings(
        "full", batch_size=8, seq_len=128, fp16=gpu and preset.fp16_ok, grad_accum=1
    )


def _fits(est: MemoryEstimate, memory_gib: float | None) -> bool:
    return memory_gib is None or est.total <= memory_gib * GIB


def _estimate_at(
    preset: ModelPreset, s: HardwareSettings, hw: Hardware, batch: int, checkpointing: bool
) -> MemoryEstimate:
    return estimate_memory(
        preset,
        method=s.method,
        batch_size=batch,
        seq_len=s.seq_len,
        dtype="float16" if s.fp16 else "float32",
        quantization=s.quantization,
        gradient_checkpointing=checkpointing,
        data_parallel=hw.n_gpus > 1,
    )


def plan(preset: str | ModelPreset, hardware: str) -> list[PlanRow]:
    """Whether full fine-tuning, LoRA and QLoRA of a preset fit a machine.

    Each method is estimated at the preset's settings for ``hardware`` (batch size, sequence
    length, checkpointing, precision; ``models.yaml``), and the largest batch of
    :data:`BATCH_SIZES` that fits is searched with checkpointing off and on.

    Args:
        preset: a preset name or :class:`ModelPreset`.
        hardware: a key of :data:`HARDWARE` (``t4x2``, ``p100``, ``cpu-ci``).

    Returns:
        One :class:`PlanRow` per method, in the order full, lora, qlora.

    Raises:
        ConfigError: unknown preset or hardware (the message lists the known ones).

    Example:
        >>> [(r.method, r.fits) for r in plan("bloomz-3b", "t4x2")]
        [('full', False), ('lora', True), ('qlora', True)]
    """
    if hardware not in HARDWARE:
        raise ConfigError(f"unknown hardware {hardware!r}; expected one of {', '.join(HARDWARE)}")
    found = _as_preset(preset)
    if found is None:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(presets())}")
    hw = HARDWARE[hardware]
    configured = found.hardware.get(hardware)
    base = configured or _default_settings(found, hardware)
    notes = []
    if configured is None:
        notes.append(f"no {hardware} settings in models.yaml: defaults")
    if not base.fp16 and hw.n_gpus and not found.fp16_ok:
        notes.append("fp32: fp16 overflows")
    if found.dtype == "bfloat16" and not hw.bf16 and hw.n_gpus:
        notes.append("bf16 checkpoint run in fp16" if base.fp16 else "bf16 checkpoint in fp32")
    rows = []
    for method in METHODS:
        if configured is not None and method == configured.method:
            quantization = configured.quantization
        else:
            quantization = METHOD_QUANTIZATIONS[method][-1] if method == "qlora" else None
        settings = HardwareSettings(
            **{**base.__dict__, "method": method, "quantization": quantization}
        )
        row_notes = list(notes)
        usable = hw.n_gpus > 0 or quantization is None
        if not usable:
            row_notes.append("bitsandbytes training needs a GPU")
        ok = {
            ckpt: [
                b
                for b in BATCH_SIZES
                if usable and _fits(_estimate_at(found, settings, hw, b, ckpt), hw.memory_gib)
            ]
            for ckpt in (False, True)
        }
        est = _estimate_at(
            found, settings, hw, settings.batch_size, settings.gradient_checkpointing
        )
        rows.append(
            PlanRow(
                preset=found.name,
                hardware=hardware,
                method=method,
                quantization=quantization,
                precision="fp16" if settings.fp16 else "fp32",
                settings=settings,
                estimate=est,
                fits=usable and _fits(est, hw.memory_gib),
                max_batch=max(ok[False], default=0),
                max_batch_checkpointing=max(ok[True], default=0),
                chosen=configured is not None and method == configured.method,
                note="; ".join(row_notes),
            )
        )
    return rows


def plan_all(hardware: str, *, include_tiny: bool = False) -> list[PlanRow]:
    """:func:`plan` rows of the shipped presets on ``hardware``.

    Tiny presets come only with ``include_tiny``; on a machine without GPU only the presets
    that have settings for it.
    """
    gpu = hardware in HARDWARE and HARDWARE[hardware].n_gpus > 0
    return [
        row
        for name, preset in presets().items()
        if (include_tiny or not preset.tiny) and (gpu or hardware in preset.hardware)
        for row in plan(name, hardware)
    ]


def format_plan(rows: list[PlanRow]) -> str:
    """A Markdown table of plan rows; ``*`` marks the method ``models.yaml`` chooses.

    Columns: preset, hardware, method (+ quantization), precision, seq_len, batch ×
    gradient accumulation, checkpointing, estimated GiB, whether it fits, the largest batch
    without and with gradient checkpointing (``-``: not even 1), notes.
    """
    head = [
        "preset",
        "hw",
        "method",
        "prec",
        "seq",
        "batch×acc",
        "ckpt",
        "est. GiB",
        "fits",
        "max batch",
        "max batch (ckpt)",
        "note",
    ]
    lines = [head]
    for r in rows:
        s = r.settings
        method = r.method + (f" ({r.quantization})" if r.quantization else "")
        lines.append(
            [
                r.preset,
                r.hardware,
                method + (" *" if r.chosen else ""),
                r.precision,
                str(s.seq_len),
                f"{s.batch_size}×{s.grad_accum}",
                "yes" if s.gradient_checkpointing else "no",
                f"{r.estimate.total_gib:.1f}",
                "yes" if r.fits else "no",
                str(r.max_batch or "-"),
                str(r.max_batch_checkpointing or "-"),
                r.note,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(lines[0]), rule, *(fmt(line) for line in lines[1:])])


def verdict_table(hardware: str = "t4x2", *, include_tiny: bool = False) -> str:
    """:func:`format_plan` of :func:`plan_all`: the README's verdict table for a machine."""
    hw = HARDWARE.get(hardware)
    if hw is None:
        raise ConfigError(f"unknown hardware {hardware!r}; expected one of {', '.join(HARDWARE)}")
    memory = "unchecked" if hw.memory_gib is None else f"{hw.memory_gib:g} GiB per device"
    title = f"Training memory plan for {hardware} ({memory}); * = the models.yaml setting."
    return title + "\n\n" + format_plan(plan_all(hardware, include_tiny=include_tiny))


if __name__ == "__main__":  # python -m debiaslab.planner [hardware ...]
    import sys

    for name in sys.argv[1:] or ["t4x2"]:
        print(verdict_table(name, include_tiny=name == "cpu-ci"), end="\n\n")
