"""The real-model track's fine-tuning step: LoRA on the CrowS-Pairs train half, pre/post on the
held-out half, the perplexity cost, the adapter and its card (issue 15)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from debiaslab import smollm2
from debiaslab.cards.model import model_card
from debiaslab.realtrack.finetune import perplexity_effect

TOKEN = "hf_" + "x" * 30


def test_perplexity_effect_is_the_pooled_perplexity_and_its_ratio():
    pre = [(10.0, 4), (3.0, 2), (7.5, 3)]
    post = [(9.0, 4), (3.5, 2), (6.0, 3)]
    metrics, ci = perplexity_effect(pre, post, n_boot=200, seed=0)
    # plain definition: exp(total NLL / total tokens) of each, and their quotient
    assert metrics["perplexity/pre"] == pytest.approx(math.exp(20.5 / 9))
    assert metrics["perplexity/post"] == pytest.approx(math.exp(18.5 / 9))
    ratio = metrics["perplexity/post"] / metrics["perplexity/pre"]
    assert metrics["perplexity/ratio"] == pytest.approx(ratio)
    low, high = ci["perplexity/ratio"]
    assert low <= metrics["perplexity/ratio"] <= high and low < high
    assert metrics["perplexity/n_texts"] == 3 and metrics["perplexity/n_tokens"] == 9
    with pytest.raises(ValueError, match="same texts"):
        perplexity_effect(pre, post[:2], n_boot=10, seed=0)


def test_batched_text_nlls_are_the_per_token_loop_of_perplexity():
    from debiaslab.mitigation.decoding import perplexity, text_nlls
    from debiaslab.models import load_model

    lm = load_model("tiny-gpt2", dtype="float32")
    texts = ["the nurse said that she was tired", "a man", "engineers build bridges every day"]

    def unchanged(prompt_length):  # a processor that leaves the scores alone: the loop path
        return lambda input_ids, scores: scores

    batched, looped = text_nlls(lm, texts), text_nlls(lm, texts, [unchanged])
    assert [n for _, n in batched] == [n for _, n in looped]
    assert [s for s, _ in batched] == pytest.approx([s for s, _ in looped], rel=1e-5)
    total = sum(s for s, _ in looped) / sum(n for _, n in looped)
    assert perplexity(lm, texts) == pytest.approx(math.exp(total), rel=1e-5)


def test_a_card_names_dequantized_base_weights_and_the_hub_release():
    weights = smollm2.source_record()
    record = {
        "benchmark": "crows_pairs", "stage": "pre", "metrics": {"pct_stereotype": 60.0},
        "model": {"name": "smollm2-135m-instruct", "family": "causal", **weights},
    }  # fmt: skip
    card = model_card(
        [record], base_model="smollm2-135m-instruct", method="LoRA", training={}, repo_id="u/x"
    )
    assert smollm2.DISPLAY_NAME in card and smollm2.GGUF_SHA256 in card
    assert f"base_model: {smollm2.HUB_ID}" in card  # what the Hub loads it on
    assert "Base model on the Hub:** [`HuggingFaceTB/SmolLM2-135M-Instruct`]" in card
    # a record of the Hub release itself says nothing of a GGUF
    plain = {**record, "model": {"name": "gpt2", "family": "causal"}}
    card = model_card([plain], base_model="gpt2", method="LoRA", training={}, repo_id="u/x")
    assert "GGUF" not in card and "- **Base model:** [`openai-community/gpt2`]" in card


def test_the_cda_corpus_holds_only_training_pairs_sentences(tmp_path, shared_data):
    from types import SimpleNamespace

    from debiaslab.data.crows_pairs_revised import load_pairs
    from debiaslab.mitigation.data import recipe_texts, split_pairs
    from debiaslab.realtrack.finetune import cda_source

    track = SimpleNamespace(config=SimpleNamespace(seed=3), work=tmp_path)
    path = cda_source(track)
    lines = path.read_text("utf-8").splitlines()
    pairs = load_pairs("original", "english")
    flat = {p.index: {" ".join(s.split()) for s in (p.sent_more, p.sent_less)} for p in pairs}
    train = set().union(*(flat[p.index] for p in split_pairs(pairs, "train", seed=3)))
    heldout = set().union(*(flat[p.index] for p in split_pairs(pairs, "heldout", seed=3)))
    assert set(lines) == train and len(lines) == 2 * len(split_pairs(pairs, "train", seed=3))
    assert not set(lines) & (heldout - train)
    texts, info = recipe_texts("cda", path)
    assert len(texts) > len(lines) and info["n_original"] == len(lines)  # swapped copies added


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, shared_data):
    """The step once, small: 4 LoRA steps, 16 held-out pairs, no CDA run."""
    from debiaslab.realtrack.config import track_config
    from debiaslab.realtrack.finetune import lora_and_post_eval
    from debiaslab.realtrack.run import Track

    root = tmp_path_factory.mktemp("realtrack-finetune")
    config = track_config(
        "demo", root / "results", root / "work", finetune_steps=4, crows_limit=16, cda=False,
        n_boot=50, adapter_dir=str(root / "shipped"), extra={"ppl_per_group": 4},
    )  # fmt: skip
    track = Track(config, log=lambda _: None)
    files = lora_and_post_eval(track)
    by_stage = {json.loads(f.read_text())["stage"]: f for f in files}
    return track, files, by_stage


def _items(path):
    record = json.loads(path.read_text())
    return record, pd.read_csv(path.with_name(record["items_file"]))


@pytest.mark.slow
@pytest.mark.real
def test_the_adapter_loads_back_and_reproduces_its_post_evaluation_exactly(finetuned):
    from debiaslab.benchmarks.crows_pairs import run_crows_pairs
    from debiaslab.data.crows_pairs_revised import load_pairs
    from debiaslab.mitigation.data import split_pairs
    from debiaslab.models import load_model

    track, _, by_stage = finetuned
    config = track.config
    post, post_items = _items(by_stage["post"])
    _, pre_items = _items(by_stage["pre"])
    shipped = track.outputs["adapter_dir"]
    assert post["model"]["adapter"] == str(track.outputs["adapter"])
    lm = load_model(config.model, dtype="float32", adapter=str(shipped))  # the copy
    pairs = load_pairs(post["config"]["data_version"], "english")
    pairs = split_pairs(pairs, "heldout", seed=config.seed)[: config.crows_limit]
    again = run_crows_pairs(
        lm, pairs, mode="harness", n_boot=config.n_boot, seed=config.seed, progress=False
    )
    for column in ("sent_more_score", "sent_less_score"):
        assert np.array_equal(again.items[column].to_numpy(), post_items[column].to_numpy())
    assert again.metrics == pytest.approx(post["metrics"], abs=0, rel=0)
    # and the adapter does something: the post scores are not the base model's
    assert not np.array_equal(pre_items["sent_more_score"], post_items["sent_more_score"])


@pytest.mark.slow
@pytest.mark.real
def test_pre_and_post_are_on_held_out_pairs_the_adapter_never_trained_on(finetuned):
    from debiaslab.data.crows_pairs_revised import load_pairs
    from debiaslab.mitigation.checkpoints import texts_sha256
    from debiaslab.mitigation.data import crows_counter_texts, split_pairs
    from debiaslab.mitigation.finetune import read_manifest

    track, files, by_stage = finetuned
    assert {f.parent.name for f in files} == {"finetune-crows_counter"}
    (pre, pre_items), (post, post_items) = _items(by_stage["pre"]), _items(by_stage["post"])
    assert pre["config"]["crows_split"] == post["config"]["crows_split"] == "heldout"
    assert list(pre_items["index"]) == list(post_items["index"]) and len(pre_items) == 16
    original = load_pairs("original", "english")
    trained = {str(p.index) for p in split_pairs(original, "train", seed=track.config.seed)}
    assert trained and not trained & set(map(str, post_items["index"]))
    manifest = read_manifest(track.outputs["adapter"])
    texts = crows_counter_texts(original, seed=track.config.seed)
    assert manifest["recipe"] == "crows_counter"
    assert manifest["texts_sha256"] == texts_sha256(texts)
    assert manifest["config"]["method"] == "lora" and manifest["config"]["steps"] == 4
    # the effect record: post − pre of the files beside it, and the perplexity cost
    effect = json.loads(by_stage["effect"].read_text())
    m = effect["metrics"]
    key = "crows_pairs/pct_stereotype"
    assert m[f"{key}/pre"] == pre["metrics"]["pct_stereotype"]
    assert m[f"{key}/change"] == pytest.approx(
        post["metrics"]["pct_stereotype"] - pre["metrics"]["pct_stereotype"]
    )
    assert m["perplexity/ratio"] == pytest.approx(m["perplexity/post"] / m["perplexity/pre"])
    assert m["perplexity/n_texts"] == 8 and len(effect["ci"]["perplexity/ratio"]) == 2


@pytest.mark.slow
@pytest.mark.real
def test_the_shipped_adapter_is_small_names_its_base_honestly_and_pushes(finetuned, fake_hub):
    from debiaslab.hub.client import push

    track, _, _ = finetuned
    shipped = track.outputs["adapter_dir"]
    size = sum(f.stat().st_size for f in shipped.iterdir())
    assert size < 8 * 2**20, size
    card = (shipped / "README.md").read_text()
    assert smollm2.DISPLAY_NAME in card and smollm2.GGUF_SHA256 in card
    assert smollm2.HUB_ID in card and "/root/" not in card and "/tmp/" not in card
    results = track.results / "finetune-crows_counter"
    url = push(shipped, "user/smollm2-lora", results=results, token=TOKEN, api=fake_hub)
    assert url and "user/smollm2-lora" in url
    remote = fake_hub.folder("user/smollm2-lora")
    pushed = (remote / "README.md").read_text()
    assert smollm2.DISPLAY_NAME in pushed and smollm2.GGUF_SHA256 in pushed
    assert "### crows_pairs" in pushed  # the pre/post pair of that folder
    config = json.loads((remote / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == smollm2.HUB_ID
