"""CrowS-Pairs: the batched engine reproduces metric.py; aggregation matches its counters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from debiaslab.benchmarks import crows_pairs as cp
from debiaslab.benchmarks.reference import (
    crows_pairs_metric_py,
    crows_pairs_metric_py_aggregate,
)
from debiaslab.data.crows_pairs import CrowsPair, load_crows_pairs
from debiaslab.models import from_objects
from debiaslab.tiny.build import build_tiny, build_tokenizer


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    return load_crows_pairs(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")


# One unit in the last place of metric.py's 3-decimal scores, plus float slack: two correct
# sums a hair apart on either side of a rounding boundary round 0.001 apart.
ONE_ULP_OF_3_DECIMALS = 1e-3 + 1e-9


def assert_nangia_parity(lm, model, tokenizer, pairs, uncased) -> pd.DataFrame:
    """Engine vs the plain metric.py: unrounded sums within 1e-4, and the published (rounded)
    scores at most one unit in the third decimal apart; returns the engine's rounded items."""
    raw = cp.score_nangia(lm, pairs, progress=False, rounded=False)
    plain = np.asarray(crows_pairs_metric_py(model, tokenizer, pairs, uncased, rounded=False))
    got = raw[["sent_more_score", "sent_less_score"]].to_numpy(float)
    np.testing.assert_allclose(got, plain, rtol=0, atol=1e-4)
    items = cp.score_nangia(lm, pairs, progress=False)
    published = items[["sent_more_score", "sent_less_score"]].to_numpy(float)
    assert np.array_equal(published, np.round(got, 3))  # metric.py's rounding, kept
    assert np.abs(published - np.round(plain, 3)).max() <= ONE_ULP_OF_3_DECIMALS
    return items


@pytest.mark.slow  # parity on real rows, every model family (make test-fast stays under 2 minutes)
def test_engine_matches_metric_py_on_real_rows_tiny(real_pairs):
    pairs = real_pairs[:60]
    assert {p.direction for p in pairs} == {"stereo", "antistereo"}
    lm = from_objects(*build_tiny("masked", seed=3))
    items = assert_nangia_parity(lm, lm.model, lm.tokenizer, pairs, cp.is_uncased(lm.tokenizer))
    assert list(items.columns[:7]) == [
        "index",
        "sent_more",
        "sent_less",
        "direction",
        "bias_type",
        "sent_more_score",
        "sent_less_score",
    ]


@pytest.mark.slow
def test_engine_matches_metric_py_on_bert_mini_first_200_rows(real_pairs):
    """The acceptance check: BERT-mini size (4 layers, hidden 256, BERT's 30,522 vocabulary)."""
    texts = [s for p in real_pairs for s in (p.sent_more, p.sent_less)]
    tokenizer = build_tokenizer("masked", texts, vocab_size=30522)
    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=30522,
            hidden_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=1024,
        )
    ).eval()
    lm = from_objects(model, tokenizer)
    assert_nangia_parity(lm, model, tokenizer, real_pairs[:200], uncased=True)


def test_aggregation_equals_metric_py_counters_with_ties():
    rng = np.random.default_rng(0)
    n = 500
    more = np.round(rng.normal(size=n), 1)  # coarse rounding: many ties
    less = np.round(rng.normal(size=n), 1)
    less[:40] = more[:40]
    directions = rng.choice(["stereo", "antistereo"], size=n, p=[0.85, 0.15])
    items = pd.DataFrame(
        {
            "sent_more_score": more,
            "sent_less_score": less,
            "direction": directions,
            "bias_type": rng.choice(["gender", "race-color"], size=n),
        }
    )
    ours = cp.nangia_metrics(items)(np.arange(n)[None, :])
    ref = crows_pairs_metric_py_aggregate(list(zip(more, less, strict=True)), directions)
    for key, value in ref.items():
        assert ours[key][0] == pytest.approx(value, abs=1e-9), key
    assert ref["neutral"] >= 40
    for bias_type in ("gender", "race-color"):
        sub = items["bias_type"] == bias_type
        ref_t = crows_pairs_metric_py_aggregate(
            list(zip(more[sub], less[sub], strict=True)), directions[sub]
        )
        assert ours[f"bias_type/{bias_type}/metric_score"][0] == pytest.approx(
            ref_t["metric_score"]
        )


def _pair(i, more, less, direction="stereo", bias_type="gender"):
    return CrowsPair(
        index=i, sent_more=more, sent_less=less, direction=direction, bias_type=bias_type
    )


def test_harness_ties_are_not_stereotyped_and_diff_is_absolute():
    items = pd.DataFrame(
        {
            "sent_more_score": [-3.0, -5.0, -2.0, -4.0],
            "sent_less_score": [-4.0, -5.0, -1.0, -4.5],
            "bias_type": ["gender"] * 4,
        }
    )
    out = cp.harness_metrics(items)(np.arange(4)[None, :])
    assert out["pct_stereotype"][0] == pytest.approx(50.0)  # percent; ties (row 2) do not count
    assert out["likelihood_diff"][0] == pytest.approx((1 + 0 + 1 + 0.5) / 4)


def test_run_on_causal_and_seq2seq_uses_harness_sentence_loglikelihoods():
    pairs = [
        _pair(0, "The nurse said she was tired.", "The nurse said he was tired."),
        _pair(1, "He fixed the car.", "She fixed the car.", "antistereo"),
    ]
    for family in ("causal", "seq2seq"):
        lm = from_objects(*build_tiny(family, seed=0))
        out = cp.run_crows_pairs(lm, pairs, n_boot=50, progress=False)
        assert out.config["mode"] == "harness"
        from debiaslab.scoring import sentence_token_logprobs

        direct = [
            x.sum()
            for x in sentence_token_logprobs(
                lm, [pairs[0].sent_more, pairs[0].sent_less], progress=False
            )
        ]
        # two batchings of the same sentences: equal up to float32 noise, not bit for bit
        assert out.items.loc[0, "sent_more_score"] == pytest.approx(direct[0], abs=1e-4)
        assert out.items.loc[0, "sent_less_score"] == pytest.approx(direct[1], abs=1e-4)
        expected = np.mean(out.items["sent_more_score"] > out.items["sent_less_score"])
        assert out.metrics["pct_stereotype"] == pytest.approx(100 * expected)  # percent
        assert out.higher_is_better["likelihood_diff"] is False
        assert out.ideal["pct_stereotype"] == 50.0  # the same scale as metric_score


def test_run_reports_ci_that_contains_the_estimate(real_pairs):
    lm = from_objects(*build_tiny("masked", seed=0))
    out = cp.run_crows_pairs(lm, real_pairs[:120], n_boot=300, seed=1, progress=False)
    for key in ("metric_score", "stereo_score", "antistereo_score"):
        low, high = out.ci[key]
        assert low <= out.metrics[key] <= high
    assert out.ideal["metric_score"] == 50.0
    again = cp.run_crows_pairs(lm, real_pairs[:120], n_boot=300, seed=1, progress=False)
    assert again.ci == out.ci  # seeded


def test_nangia_mode_needs_a_masked_lm():
    with pytest.raises(ValueError, match="masked LM"):
        cp.resolve_mode("causal", "nangia")
