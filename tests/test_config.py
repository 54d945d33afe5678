"""debiaslab.config: the shipped presets load, and a bad field names its preset and field."""

from __future__ import annotations

import pytest

from debiaslab.config import (
    HARDWARE,
    HardwareSettings,
    ModelPreset,
    get_preset,
    parse_presets,
    presets,
)
from debiaslab.errors import ConfigError

GOOD = """
m:
  hub_id: org/m
  family: causal
  arch: {model_type: gpt2, n_layer: 2}
  dtype: float16
  lora_targets: [c_attn]
  hardware:
    t4x2: {method: lora, batch_size: 4, grad_accum: 2, seq_len: 128, fp16: true}
"""


def test_shipped_presets_load():
    all_presets = presets()
    assert {"gpt2", "flan-t5-xl", "tiny-t5"} <= set(all_presets)
    gpt2 = get_preset("gpt2")
    assert gpt2.hub_id == "openai-community/gpt2" and gpt2.arch["n_embd"] == 768
    assert get_preset("tiny-gpt2").tiny == "causal"
    assert get_preset("openai-community/gpt2") is None
    assert hash(gpt2) == hash(get_preset("gpt2"))  # still hashable with mapping fields


def test_old_style_construction_still_works():
    preset = ModelPreset("x", "causal", "org/x", None)
    assert preset.arch is None and preset.dtype == "float32" and preset.fp16_ok
    assert preset.lora_targets == () and dict(preset.hardware) == {}


def test_parse_full_entry():
    (preset,) = parse_presets(GOOD).values()
    settings = preset.settings("t4x2")
    assert settings == HardwareSettings("lora", 4, 2, 128, None, False, True)
    assert settings.effective_batch(HARDWARE["t4x2"].n_gpus) == 16
    assert preset.lora_targets == ("c_attn",)
    with pytest.raises(ConfigError, match="no settings for hardware 'p100'"):
        preset.settings("p100")
    with pytest.raises(ConfigError, match="unknown hardware 'a100'"):
        preset.settings("a100")


def test_qlora_defaults_to_4bit():
    text = GOOD.replace("method: lora", "method: qlora")
    assert parse_presets(text)["m"].settings("t4x2").quantization == "4bit"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("family: causal", "family: decoder", "'family'"),
        ("dtype: float16", "dtype: float8", "'dtype'"),
        ("hub_id: org/m", "tiny: causal", "'arch'"),  # tiny presets have no arch
        ("hub_id: org/m", "color: red\n  hub_id: org/m", "'color'"),
        ("arch: {model_type: gpt2, n_layer: 2}", "arch: {n_layer: 2}", "'arch'"),
        ("lora_targets: [c_attn]", "lora_targets: c_attn", "'lora_targets'"),
        ("t4x2: {", "a100: {", "'hardware.a100'"),
        ("method: lora", "method: prune", "'hardware.t4x2.method'"),
        ("batch_size: 4", "batch_size: 0", "'hardware.t4x2.batch_size'"),
        ("grad_accum: 2", "grad_accum: two", "'hardware.t4x2.grad_accum'"),
        ("fp16: true", "fp16: yes please", "'hardware.t4x2.fp16'"),
        ("seq_len: 128", "seq_len: 128, quantization: 4bit", "'hardware.t4x2.quantization'"),
        ("method: lora", "method: full, quantization: 8bit", "'hardware.t4x2.quantization'"),
        ("seq_len: 128", "seq_len: 128, lr: 0.1", "'hardware.t4x2.lr'"),
        ("dtype: float16", "dtype: float16\n  fp16_ok: false", "'hardware.t4x2.fp16'"),
    ],
)
def test_bad_fields_name_preset_and_field(old, new, field):
    assert old in GOOD
    with pytest.raises(ConfigError, match=f"preset 'm', field {field}"):
        parse_presets(GOOD.replace(old, new, 1))


def test_fp16_refused_on_cpu():
    text = GOOD.replace("t4x2: {", "cpu-ci: {")
    with pytest.raises(ConfigError, match="cpu-ci has no GPU"):
        parse_presets(text)
