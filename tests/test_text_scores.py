"""Toxicity and regard aggregations, measure() with group gaps, and the evaluate backend."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from debiaslab.benchmarks import text_scores
from debiaslab.benchmarks.honest import HonestScores, score_completions
from debiaslab.benchmarks.text_scores import (
    REGARD_LABELS,
    Scorers,
    make_scorers,
    measure,
    regard_compare,
    toxicity_aggregates,
)
from debiaslab.errors import ConfigError


def test_toxicity_aggregations_match_hand_computation_with_a_tie_at_the_threshold():
    scores = [0.1, 0.5, 0.49999, 0.9]
    out = toxicity_aggregates(scores, threshold=0.5)
    assert out["max"] == 0.9
    assert out["ratio"] == 0.5  # 0.5 itself counts (>=), 0.49999 does not
    assert out["mean"] == pytest.approx(sum(scores) / 4)
    two_d = toxicity_aggregates([[0.1, 0.6], [0.2, 0.3]], threshold=0.5)
    assert two_d["expected_max"] == pytest.approx((0.6 + 0.3) / 2)
    assert two_d["probability"] == 0.5
    with pytest.raises(ValueError, match="no toxicity"):
        toxicity_aggregates([])


def test_regard_compare_is_difference_of_label_means():
    probs = np.array([[0.7, 0.1, 0.2, 0.0], [0.3, 0.3, 0.4, 0.0], [0.1, 0.8, 0.1, 0.0]])
    diff = regard_compare(probs, ["a", "a", "b"], "a", "b")
    assert diff["positive"] == pytest.approx(0.5 - 0.1)
    assert diff["negative"] == pytest.approx(0.2 - 0.8)
    assert diff["neutral"] == pytest.approx(0.3 - 0.1)
    with pytest.raises(ValueError, match="no texts for group 'c'"):
        regard_compare(probs, ["a", "a", "b"], "a", "c")


def fake_scorers() -> Scorers:
    """Deterministic scorers: a text is toxic (0.9) when it says "awful", else 0.1."""

    def toxicity(texts):
        return np.array([0.9 if "awful" in t else 0.1 for t in texts])

    def regard(texts):
        neg = np.array([0.8 if "awful" in t else 0.2 for t in texts])
        return np.stack([1 - neg, neg, np.zeros_like(neg), np.zeros_like(neg)], axis=1)

    lexicon = {"idiot": {"an"}}
    return Scorers(
        "builtin",
        toxicity=toxicity,
        regard=regard,
        honest=lambda rows, branch: score_completions(rows, lexicon, branch),
        hurtlex_categories=("an",),
    )


def test_measure_aggregates_per_group_and_domain():
    texts = [
        ["awful idiot", "fine"],  # group a
        ["awful", "awful"],  # group a
        ["fine", "fine"],  # group b
        ["nice", "idiot"],  # group b
        ["x", "y"],  # other domain, group c
        ["awful", "y"],  # other domain, group d
    ]
    domains = ["d1"] * 4 + ["d2"] * 2
    groups = ["a", "a", "b", "b", "c", "d"]
    out = measure(texts, domains, groups, fake_scorers(), n_boot=50, seed=0)
    m = out.metrics
    tox = np.array([[0.9, 0.1], [0.9, 0.9], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.9, 0.1]])
    assert m["toxicity/mean"] == pytest.approx(tox.mean())
    assert m["toxicity/ratio"] == pytest.approx(4 / 12)
    assert m["toxicity/expected_max"] == pytest.approx(tox.max(axis=1).mean())
    assert m["toxicity/probability"] == pytest.approx(3 / 6)
    # d1: per-prompt means a = (0.5, 0.9), b = (0.1, 0.1); gap = |0.7-0.4| + |0.1-0.4|
    assert m["d1/toxicity/group/a/mean"] == pytest.approx(0.7)
    assert m["d1/toxicity/gap"] == pytest.approx(0.6)
    assert "d1/toxicity/gap_p_value" in m and "d2/toxicity/gap" in m
    # regard compare of d1's two groups, per label
    assert m["d1/regard/compare/a_vs_b/negative"] == pytest.approx(0.65 - 0.2)
    assert m["d1/regard_negative/gap"] == pytest.approx(0.45)
    # HONEST: sentence branch, 2 of 12 completions hurtful ("awful idiot", "idiot")
    assert m["honest/score"] == pytest.approx(2 / 12)
    assert m["honest/category/an"] == pytest.approx(2 / 12)
    assert out.columns["honest"] == [0.5, 0, 0, 0.5, 0, 0]
    assert out.higher_is_better["toxicity/mean"] is False
    assert out.higher_is_better["regard/positive"] is True
    assert out.higher_is_better["d1/toxicity/gap_p_value"] is None
    assert out.ideal["d1/regard/compare/a_vs_b/negative"] == 0.0
    assert "toxicity/max" not in out.ci and out.ci["toxicity/mean"][0] <= m["toxicity/mean"]


def test_measure_rejects_mismatched_or_missing_groups():
    with pytest.raises(ValueError, match="same length"):
        measure([["a"]], ["d"], [], fake_scorers())
    with pytest.raises(ValueError, match="same, non-zero"):
        measure([["a"], ["b", "c"]], ["d", "d"], ["x", "y"], fake_scorers())
    with pytest.raises(ConfigError, match="no domain has both groups"):
        measure([["a"], ["b"]], ["d", "d"], ["x", "y"], fake_scorers(), compare=("x", "z"))


def test_unknown_metric_and_backend_are_config_errors():
    with pytest.raises(ConfigError, match="unknown or no metrics"):
        make_scorers(["toxic"])
    with pytest.raises(ConfigError, match="unknown backend"):
        make_scorers(["toxicity"], backend="vllm")


# ------------------------------------------------------------------- the evaluate backend


class FakeMeasurement:
    """Returns what evaluate's measurements document, from simple rules."""

    def __init__(self, name, config_name):
        self.name, self.config_name = name, config_name

    def compute(self, **kwargs):
        if self.name == "toxicity":
            if kwargs["toxic_label"] != "hate":
                return {"toxicity": []}  # evaluate logs a warning and scores nothing
            return {"toxicity": [0.9 if "awful" in t else 0.1 for t in kwargs["predictions"]]}
        if self.name == "regard":
            (text,) = kwargs["data"]
            neg = 0.8 if "awful" in text else 0.2
            return {"average_data_regard": {"negative": neg, "positive": 1 - neg}}
        (row,) = kwargs["predictions"]
        if len(row[0].split(" ")) > 1:
            raise NameError("name 'table' is not defined")
        return {"honest_score": sum(w == "idiot" for w in row) / len(row)}


@pytest.fixture
def fake_evaluate(monkeypatch):
    calls = []

    def load(name, config_name=None, module_type=None):
        calls.append((name, config_name, module_type))
        return FakeMeasurement(name, config_name)

    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=load))
    return calls


def test_evaluate_backend_maps_measurement_outputs_to_per_text_scores(fake_evaluate):
    scorers = make_scorers(["toxicity", "regard", "honest"], backend="evaluate")
    assert fake_evaluate == [
        ("toxicity", "default", "measurement"),
        ("regard", None, "measurement"),
        ("honest", "en", "measurement"),
    ]
    assert scorers.toxicity(["awful", "ok"]).tolist() == [0.9, 0.1]
    regard = scorers.regard(["awful", "ok"])
    assert regard.shape == (2, len(REGARD_LABELS))
    assert regard[0].tolist() == pytest.approx([0.2, 0.8, 0.0, 0.0])
    honest = scorers.honest([["idiot", "nurse"], ["cook", "idiot"]], "word")
    assert isinstance(honest, HonestScores) and honest.counts.tolist() == [1, 1]
    with pytest.raises(ConfigError, match="sentence branch is broken"):
        scorers.honest([["a long sentence"]], "sentence")
    # The same numbers through measure() as the built-in path would give.
    out = measure([["awful"], ["ok"]], ["d", "d"], ["x", "y"], scorers, honest_branch="word")
    assert out.metrics["d/toxicity/gap"] == pytest.approx(0.8)


def test_evaluate_backend_errors_are_clear(fake_evaluate, monkeypatch):
    scorers = make_scorers(["toxicity"], backend="evaluate", toxic_label="toxic")
    with pytest.raises(ConfigError, match="'toxic' one of"):
        scorers.toxicity(["a"])
    with pytest.raises(ConfigError, match="always uses sasha/regardv3"):
        make_scorers(["regard"], backend="evaluate", regard_model="tiny-regard")

    def offline(*args, **kwargs):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=offline))
    with pytest.raises(ConfigError, match="needs network"):
        make_scorers(["toxicity"], backend="evaluate")
    monkeypatch.setitem(sys.modules, "evaluate", None)  # not installed
    with pytest.raises(ConfigError, match=r"pip install 'debiaslab\[evaluate\]'"):
        make_scorers(["toxicity"], backend="evaluate")


def test_directions_cover_every_key():
    assert text_scores._directions("gender/toxicity/group/a/n_items") is None
    assert text_scores._directions("regard/negative") is False
    assert text_scores._directions("honest/score") is False
