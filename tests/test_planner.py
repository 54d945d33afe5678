"""debiaslab.planner: offline configs, meta-device parameter counts, memory estimates, plans.

Parameter counts are checked three ways: against real models instantiated from the same
config (full size where that is cheap, otherwise a two-layer copy with the same widths),
against the published sizes of the checkpoints, and (LoRA) against peft's own count. The
memory estimate is checked for its shape (monotone, ordered by method); where a CUDA GPU is
present, also against the peak PyTorch measures for a real training step.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from debiaslab.config import HARDWARE, get_preset, presets
from debiaslab.errors import ConfigError
from debiaslab.planner import (
    architecture,
    config_for,
    count_parameters,
    estimate_memory,
    format_plan,
    plan,
    verdict_table,
)
from debiaslab.tiny.build import build_tiny

AUTO = {
    "causal": transformers.AutoModelForCausalLM,
    "masked": transformers.AutoModelForMaskedLM,
    "seq2seq": transformers.AutoModelForSeq2SeqLM,
}
# Published sizes (model cards, ``model.num_parameters()`` of the loaded checkpoints).
PUBLISHED = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "bert-base-uncased": 109_514_298,  # BertForMaskedLM: no pooler, + MLM transform and bias
    "roberta-base": 124_697_433,  # RobertaForMaskedLM
    "bloomz-560m": 559_214_592,
    "bloomz-1b1": 1_065_314_304,
    "bloomz-1b7": 1_722_408_960,
    "bloomz-3b": 3_002_557_440,
    "flan-t5-small": 76_961_152,
    "flan-t5-base": 247_577_856,
    "flan-t5-large": 783_150_080,
    "flan-t5-xl": 2_849_757_184,
    "llama-3.2-1b": 1_235_814_400,
    "qwen2.5-0.5b-instruct": 494_032_768,
    "qwen2.5-1.5b-instruct": 1_543_714_304,
    "qwen2.5-7b-instruct": 7_615_616_512,
    "smollm2-135m-instruct": 134_515_008,  # the dequantized GGUF (debiaslab.smollm2), as loaded
}
HUB_PRESETS = [name for name, p in presets().items() if not p.tiny]
TINY_PRESETS = [name for name, p in presets().items() if p.tiny]
FULL_SIZE_REAL = ("gpt2", "bert-base-uncased", "flan-t5-small")  # cheap to build for real
LAYER_KEYS = ("n_layer", "num_hidden_layers", "num_layers", "num_decoder_layers")


def scaled_config(name: str, layers: int = 2, vocab: int = 1000):
    """The preset's config with ``layers`` layers and a ``vocab``-token vocabulary."""
    arch = dict(get_preset(name).arch)
    arch.update({k: layers for k in LAYER_KEYS if k in arch}, vocab_size=vocab)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if isinstance(arch.get(key), int) and arch[key] >= vocab:
            arch[key] = None
    return transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)


def real_model(config, family: str):
    """A real (CPU, randomly initialised) model, with the untied head the checkpoint has."""
    with torch.random.fork_rng(devices=[]):
        model = AUTO[family].from_config(config)
    if architecture._head_untied(config):
        architecture._untie_head(model)
    return model


def unique_numel(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# --------------------------------------------------------------------------- presets


def test_every_shipped_preset_is_complete():
    for name, preset in presets().items():
        assert preset.lora_targets, name
        assert "t4x2" in preset.hardware and "p100" in preset.hardware, name
        if preset.tiny:
            assert preset.arch is None and "cpu-ci" in preset.hardware, name
        else:
            assert preset.arch and preset.arch["model_type"], name
    assert set(PUBLISHED) == set(HUB_PRESETS)


def test_t5_presets_refuse_fp16():
    for name in HUB_PRESETS:
        preset = get_preset(name)
        assert preset.fp16_ok == (preset.arch["model_type"] != "t5"), name
        if not preset.fp16_ok:
            assert not any(s.fp16 for s in preset.hardware.values())


@pytest.mark.parametrize("name", HUB_PRESETS)
def test_config_for_builds_offline(name):
    config = config_for(name)
    assert config.model_type == get_preset(name).arch["model_type"]
    assert config_for(config) is config


def test_config_for_local_directory_and_errors(tiny_dirs):
    assert config_for(str(tiny_dirs["causal"])).model_type == "gpt2"
    with pytest.raises(ConfigError, match="offline"):
        config_for("openai-community/gpt2")


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name", HUB_PRESETS)
def test_meta_count_matches_published_size(name):
    count = count_parameters(name)
    assert count.total == pytest.approx(PUBLISHED[name], rel=0.005)
    assert 0 < count.quantizable < count.total
    assert 0 < count.lora < 0.01 * count.total


@pytest.mark.parametrize("name", HUB_PRESETS)
def test_meta_count_and_lora_match_a_real_model(name):
    """Two-layer copies with the real widths: meta count == real count, LoRA == peft's count."""
    from peft import LoraConfig, get_peft_model

    preset = get_preset(name)
    config = scaled_config(name)
    counted = count_parameters(config, preset.family, lora_targets=preset.lora_targets)
    model = real_model(config, preset.family)
    assert counted.total == unique_numel(model) == model.num_parameters()
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=list(preset.lora_targets)))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert counted.lora == trainable


@pytest.mark.parametrize("name", FULL_SIZE_REAL)
def test_meta_count_matches_a_full_size_real_model(name):
    model = real_model(config_for(name), get_preset(name).family)
    assert count_parameters(name).total == unique_numel(model) == PUBLISHED[name]


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_tiny_presets_count_and_lora(name):
    from peft import LoraConfig, get_peft_model

    preset = get_preset(name)
    model, _ = build_tiny(preset.tiny, seed=0)
    counted = count_parameters(name)
    assert counted.total == unique_numel(model)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=list(preset.lora_targets)))
    assert count_parameters(name, lora_rank=4).lora == peft_model.get_nb_trainable_parameters()[0]


def test_flan_t5_counts_its_untied_head():
    untied = count_parameters("flan-t5-small").total
    assert untied - PUBLISHED["flan-t5-small"] == 0
    tied = count_parameters(scaled_config("flan-t5-small", layers=8, vocab=32128)).total
    assert untied - tied in (0, 32128 * 512)  # the head, unless the config is read as tied


def test_lora_targets_must_exist():
    with pytest.raises(ConfigError, match="match no Linear"):
        count_parameters("gpt2", lora_targets=["q_proj"])


# --------------------------------------------------------------------------- memory estimate


def test_estimate_is_monotone_in_batch_and_length():
    for method in ("full", "lora", "qlora"):
        by_batch = [estimate_memory("gpt2", method=method, batch_size=b).total for b in (1, 4, 16)]
        by_len = [estimate_memory("gpt2", method=method, seq_len=s).total for s in (64, 256, 1024)]
        assert by_batch == sorted(by_batch) and len(set(by_batch)) == 3
        assert by_len == sorted(by_len) and len(set(by_len)) == 3


@pytest.mark.parametrize("name", HUB_PRESETS)
def test_checkpointing_reduces_activations(name):
    def acts(ckpt: bool) -> int:
        return estimate_memory(name, batch_size=8, seq_len=256, gradient_checkpointing=ckpt)

    assert acts(True).activations < acts(False).activations / 3
    assert acts(True).logits == acts(False).logits


@pytest.mark.parametrize("name", HUB_PRESETS)
def test_methods_are_ordered(name):
    def total(method: str, **kw) -> int:
        return estimate_memory(name, method=method, batch_size=4, seq_len=256, **kw).total

    assert total("qlora", upcast_unquantized=False) < total("lora") < total("full")
    assert total("lora", quantization="8bit", upcast_unquantized=False) < total("lora")
    # After prepare_model_for_kbit_training the unquantized embeddings are float32: QLoRA
    # then saves only where the blocks outweigh the vocabulary (measured on an H100: QLoRA of
    # bloomz-1b7 peaked at 6.55 GiB, LoRA at 6.31 GiB).
    if name in ("bloomz-3b", "flan-t5-large", "flan-t5-xl", "llama-3.2-1b"):
        assert total("qlora") < total("lora")
    if name in ("bloomz-560m", "bloomz-1b1", "bloomz-1b7"):
        assert total("qlora") > total("lora")


def test_estimate_parts_and_errors():
    full = estimate_memory("gpt2", method="full", batch_size=8, seq_len=256)
    p = PUBLISHED["gpt2"]
    assert full.gradients == 4 * p and full.optimizer == 8 * p
    ddp = estimate_memory("gpt2", method="full", batch_size=8, seq_len=256, data_parallel=True)
    assert ddp.gradients == 8 * p
    lora = estimate_memory("gpt2", method="lora", batch_size=8, seq_len=256)
    assert lora.optimizer == 8 * count_parameters("gpt2").lora
    assert set(full.as_gib()) >= {"weights", "activations", "logits", "total"}
    for kwargs, match in [
        ({"method": "prune"}, "unknown method"),
        ({"method": "full", "quantization": "4bit"}, "does not go with"),
        ({"method": "qlora", "quantization": "8bit"}, "does not go with"),
        ({"dtype": "int8"}, "unknown dtype"),
        ({"optimizer": "lion"}, "unknown optimizer"),
    ]:
        with pytest.raises(ConfigError, match=match):
            estimate_memory("gpt2", **kwargs)


def test_bloom_logits_dominate():
    est = estimate_memory("bloomz-560m", method="lora", batch_size=8, seq_len=256)
    assert est.logits > est.activations and est.logits > est.weights


# --------------------------------------------------------------------------- plans


def test_plan_rows_and_errors():
    rows = plan("bloomz-3b", "t4x2")
    assert [r.method for r in rows] == ["full", "lora", "qlora"]
    assert [r.fits for r in rows] == [False, True, True]
    assert sum(r.chosen for r in rows) == 1
    with pytest.raises(ConfigError, match="t4x2, p100, cpu-ci"):
        plan("gpt2", "a100")
    with pytest.raises(ConfigError, match="unknown preset"):
        plan("gpt5", "t4x2")


@pytest.mark.parametrize("hardware", ["t4x2", "p100", "cpu-ci"])
def test_every_preset_setting_fits(hardware):
    for name, preset in presets().items():
        if hardware not in preset.hardware:
            continue
        (chosen,) = [r for r in plan(name, hardware) if r.chosen]
        assert chosen.fits, f"{name} on {hardware}: {chosen.estimate.as_gib()}"
        limit = HARDWARE[hardware].memory_gib
        if limit is not None:  # and with a margin for what the estimate leaves out
            assert chosen.estimate.total_gib < 0.9 * limit, name


def test_format_plan_and_verdict_table():
    text = format_plan(plan("gpt2", "t4x2"))
    lines = text.splitlines()
    assert lines[0].startswith("| preset") and len(lines) == 2 + 3
    assert "full *" in text
    table = verdict_table("t4x2")
    assert all(name in table for name in HUB_PRESETS) and "tiny-gpt2" not in table
    cpu = verdict_table("cpu-ci", include_tiny=True)
    assert "tiny-gpt2" in cpu and "bloomz" not in cpu


# --------------------------------------------------------------------------- GPU check

# (preset, method, batch, seq_len, dtype, checkpointing): one per architecture and method.
GPU_CASES = [
    ("gpt2", "full", 16, 256, "float16", False),
    ("gpt2", "full", 16, 256, "float16", True),
    ("gpt2-medium", "lora", 8, 256, "float16", False),
    ("bert-base-uncased", "full", 32, 128, "float16", False),
    ("roberta-base", "lora", 32, 128, "float16", False),
    ("bloomz-560m", "full", 2, 256, "float16", False),
    ("bloomz-560m", "lora", 4, 256, "float16", False),
    ("bloomz-560m", "lora", 8, 256, "float16", True),
    ("bloomz-1b7", "lora", 4, 256, "float16", True),
    ("flan-t5-base", "full", 8, 256, "float32", False),
    ("flan-t5-large", "lora", 8, 256, "float32", True),
    ("llama-3.2-1b", "lora", 4, 256, "float16", True),
    ("qwen2.5-0.5b-instruct", "full", 4, 256, "float16", False),
    ("gpt2", "qlora", 16, 256, "float16", False),
    ("bloomz-1b7", "qlora", 4, 256, "float16", True),
    ("flan-t5-large", "qlora", 8, 256, "float32", True),
    ("llama-3.2-1b", "qlora", 4, 256, "float16", True),
    ("llama-3.2-1b", "lora", 4, 256, "float16", False),
]


def _load_for_training(name: str, method: str, half: bool, tmp_path):
    """A randomly initialised model on the GPU, loaded as ``method`` needs it."""
    preset = get_preset(name)
    config = config_for(name)
    load = torch.float16 if half and method != "full" else torch.float32
    with torch.device("cuda"):
        model = AUTO[preset.family].from_config(config, dtype=load)
        if architecture._head_untied(config):
            architecture._untie_head(model)
            torch.nn.init.normal_(model.get_output_embeddings().weight, std=0.02)
    if method != "qlora":
        return model
    from transformers import BitsAndBytesConfig

    model.save_pretrained(tmp_path)  # from_pretrained is where bitsandbytes quantizes
    del model
    torch.cuda.empty_cache()
    nf4 = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=load,
    )
    return AUTO[preset.family].from_pretrained(
        tmp_path, quantization_config=nf4, device_map={"": 0}, dtype=load
    )


def measure_training_peak(name, method, batch, seq_len, dtype, checkpointing, tmp_path) -> int:
    """Peak CUDA bytes of two training steps of a randomly initialised model.

    As ``transformers.Trainer`` trains: AdamW, float16 autocast over float32 weights (full),
    float16 weights with float32 adapters (LoRA) or an NF4 base prepared by peft's
    ``prepare_model_for_kbit_training`` (QLoRA); two accumulated micro-batches per step.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    preset = get_preset(name)
    half = dtype != "float32"
    torch.cuda.empty_cache()
    start = torch.cuda.memory_allocated()
    model = _load_for_training(name, method, half, tmp_path)
    model.train()
    ckpt_kwargs = {"use_reentrant": False}
    if method == "qlora":
        model = prepare_model_for_kbit_training(model, checkpointing, ckpt_kwargs)
    elif checkpointing:
        model.gradient_checkpointing_enable(ckpt_kwargs)
    if method != "full":
        lora = LoraConfig(r=8, target_modules=list(preset.lora_targets))
        model = get_peft_model(model, lora)  # adapters in float32 (autocast_adapter_dtype)
    torch.cuda.reset_peak_memory_stats()  # training, not loading (from_pretrained may peak)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    ids = torch.randint(5, 1000, (batch, seq_len), device="cuda")
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    for _ in range(2):  # the first step creates AdamW's state
        for _ in range(2):  # gradient accumulation: gradients live through the backward pass
            with torch.autocast("cuda", dtype=torch.float16, enabled=half):
                loss = model(**inputs).loss / 2
            loss.backward()
            del loss
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated() - start
    del model, optimizer, params
    return peak


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: f"{c[0]}-{c[1]}-ckpt{c[5]}")
def test_estimate_against_cuda_peak(case, tmp_path):
    name, method, batch, seq_len, dtype, ckpt = case
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    measured = measure_training_peak(*case, tmp_path)
    est = estimate_memory(
        name,
        method=method,
        batch_size=batch,
        seq_len=seq_len,
        dtype=dtype,
        gradient_checkpointing=ckpt,
    )
    predicted = est.total - est.overhead  # the allocator does not see the CUDA context
    ratio = predicted / measured
    print(
        f"\n{name} {method} b={batch} s={seq_len} {dtype} ckpt={ckpt}: "
        f"measured {measured / 2**30:.2f} GiB, estimated {predicted / 2**30:.2f} GiB, "
        f"ratio {ratio:.2f} {est.as_gib()}"
    )
    assert 0.85 < ratio < 1.35


def test_the_planner_page_holds_the_current_t4_verdicts():
    from pathlib import Path

    from debiaslab.planner import verdict_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "planner.md").read_text("utf-8")
    assert verdict_table("t4x2").rstrip("\n") in page


def test_runtime_is_flops_and_bandwidth_over_what_the_gpu_sustains():
    from debiaslab.planner import runtime as rt

    gpu = rt.ACCELERATORS["t4x2"]
    work = rt.Workload(100_000_000, scored_tokens=1e6, decode_steps=1000, loads=1)
    by_hand = (
        (
            2 * 1e8 * 1e6 / (gpu.fp32_flops * rt.FP32_EFFICIENCY)
            + 1000 * max(2 * 1e8 / (gpu.bandwidth * rt.BANDWIDTH_EFFICIENCY), rt.STEP_LATENCY)
        )
        / 2
        + rt.START_SECONDS
        + 4 * 1e8 / rt.LOAD_BYTES_PER_SECOND
    )
    assert rt.seconds(work, "t4x2") == pytest.approx(by_hand)
    # More work takes longer; two GPUs share it; LoRA's backward skips the weight gradients.
    full = rt.evaluation("gpt2", "causal", None, 20)
    quick = rt.evaluation("gpt2", "causal", 100, 5)
    assert rt.seconds(quick, "t4x2") < rt.seconds(full, "t4x2")
    lora, whole = rt.finetuning("gpt2", 300, 4096, True), rt.finetuning("gpt2", 300, 4096, False)
    assert rt.seconds(lora, "p100") < rt.seconds(whole, "p100")
    text = rt.describe({"full": full, "quick": quick})
    assert text.startswith("full: ~") and "on Kaggle T4×2" in text and "on a P100" in text
