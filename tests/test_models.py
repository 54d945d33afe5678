"""Model loading: families, safe defaults, quantization on CPU, PEFT adapters."""

from __future__ import annotations

import pytest
import torch

from debiaslab.errors import ConfigError
from debiaslab.models import load_model
from debiaslab.scoring import sentence_token_logprobs
from debiaslab.tiny.build import build_tiny

TEXT = ["The nurse said that she was tired."]


@pytest.mark.parametrize("family", ["masked", "causal", "seq2seq"])
def test_local_path_loads_with_inferred_family(tiny_dirs, family):
    lm = load_model(str(tiny_dirs[family]), device="cpu")
    assert lm.family == family
    assert lm.info["n_parameters"] > 0 and lm.dtype is torch.float32
    assert not lm.model.training


def test_only_safetensors_by_default(tiny_dirs, tmp_path):
    model, tok = build_tiny("causal", seed=0)
    pickle_dir = tmp_path / "pickled"
    model.config.save_pretrained(pickle_dir)
    tok.save_pretrained(pickle_dir)
    torch.save(model.state_dict(), pickle_dir / "pytorch_model.bin")  # pickle weights only
    with pytest.raises((OSError, ConfigError)):
        load_model(str(pickle_dir))
    assert load_model(str(pickle_dir), use_safetensors=None).family == "causal"


def test_tiny_presets_build_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path))
    lm = load_model("tiny-gpt2")
    assert lm.family == "causal" and (tmp_path / "tiny" / "tiny-gpt2" / "config.json").is_file()


def test_bad_arguments_are_config_errors(tiny_dirs):
    with pytest.raises(ConfigError, match="unknown family"):
        load_model(str(tiny_dirs["causal"]), family="decoder")
    with pytest.raises(ConfigError, match="quantization"):
        load_model(str(tiny_dirs["causal"]), quantization="3bit")


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_bitsandbytes_quantization_on_cpu(tiny_dirs, quantization):
    pytest.importorskip("bitsandbytes")
    base = load_model(str(tiny_dirs["causal"]))
    quant = load_model(str(tiny_dirs["causal"]), quantization=quantization)
    linear_types = {type(m).__name__ for m in quant.model.modules()}
    assert (
        ("Linear8bitLt" in linear_types)
        if quantization == "8bit"
        else ("Linear4bit" in linear_types)
    )
    want = sentence_token_logprobs(base, TEXT, progress=False)[0].sum()
    got = sentence_token_logprobs(quant, TEXT, progress=False)[0].sum()
    assert got == pytest.approx(want, rel=0.05)  # quantization error, not a different model


def test_peft_adapter_from_path_changes_and_reproduces_scores(tiny_dirs, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_model(str(tiny_dirs["causal"]))
    peft_model = get_peft_model(
        base.model, LoraConfig(r=4, target_modules=["c_attn"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    with torch.inference_mode():
        ids = base.tokenizer(TEXT[0], return_tensors="pt")["input_ids"]
        want = peft_model(input_ids=ids).logits
    fresh_base = load_model(str(tiny_dirs["causal"]))
    adapted = load_model(str(tiny_dirs["causal"]), adapter=str(tmp_path / "adapter"))
    with torch.inference_mode():
        got = adapted.model(input_ids=ids).logits
        plain = fresh_base.model(input_ids=ids).logits
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)
    assert adapted.info["adapter"] == str(tmp_path / "adapter")
