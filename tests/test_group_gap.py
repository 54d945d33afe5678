"""Group gap against a plain loop implementation of its definition, and its calibration."""

from __future__ import annotations

import numpy as np
import pytest

from debiaslab.benchmarks.group_gap import group_gap


def plain_gap(scores, groups):
    overall = sum(scores) / len(scores)
    total = 0.0
    for group in set(groups):
        members = [s for s, g in zip(scores, groups, strict=True) if g == group]
        total += abs(sum(members) / len(members) - overall)
    return total, total / overall


def test_gap_equals_plain_definition():
    rng = np.random.default_rng(0)
    groups = list(
        rng.choice(
            ["Asian_Americans", "African_Americans", "European_Americans"],
            size=300,
            p=[0.2, 0.3, 0.5],
        )
    )
    scores = list(rng.uniform(size=300) + [0.3 * (g == "African_Americans") for g in groups])
    metrics, ci = group_gap(scores, groups, n_boot=300, seed=1)
    gap, normalised = plain_gap(scores, groups)
    assert metrics["gap"] == pytest.approx(gap) and metrics["gap_normalised"] == pytest.approx(
        normalised
    )
    assert metrics["group/Asian_Americans/n_items"] == groups.count("Asian_Americans")
    assert ci["gap"][0] <= metrics["gap"] <= ci["gap"][1]
    assert metrics["gap_p_value"] < 0.01 and metrics["gap_null_mean"] < metrics["gap"]
    assert group_gap(scores, groups, n_boot=300, seed=1) == (metrics, ci)


def plain_p_value(scores, groups, n_perm, seed):
    """Permutation test written out: reassign texts to groups of the same sizes."""
    rng = np.random.default_rng(seed)
    observed = plain_gap(scores, groups)[0]
    hits = 0
    for _ in range(n_perm):
        shuffled = list(rng.permutation(groups))
        hits += plain_gap(scores, shuffled)[0] >= observed - 1e-12
    return (1 + hits) / (1 + n_perm)


def test_p_value_is_calibrated_under_no_difference_and_detects_one():
    """Under no difference p < 0.05 about 5% of the time; a real difference is found."""
    rng = np.random.default_rng(3)
    groups = [g for g in "abcde" for _ in range(30)]
    null_ps, effect_ps = [], []
    for _ in range(60):
        scores = rng.uniform(size=150)
        metrics, _ = group_gap(scores, groups, n_boot=0, n_perm=200, seed=0)
        null_ps.append(metrics["gap_p_value"])
        metrics, _ = group_gap(scores + 0.35 * (np.array(groups) == "a"), groups, n_perm=200)
        effect_ps.append(metrics["gap_p_value"])
    assert np.mean(np.array(null_ps) < 0.05) < 0.15
    assert np.mean(np.array(effect_ps) < 0.05) > 0.9
    # Same definition as a plain loop (independent RNG, so compare statistically).
    scores = rng.uniform(size=150)
    ours = group_gap(scores, groups, n_boot=0, n_perm=400)[0]["gap_p_value"]
    assert abs(ours - plain_p_value(list(scores), groups, 400, 1)) < 0.12


def test_two_groups_ci_reaches_zero_only_without_a_difference():
    rng = np.random.default_rng(5)
    groups = ["a"] * 80 + ["b"] * 80
    clean = rng.uniform(size=160)
    planted = clean + 0.3 * (np.array(groups) == "a")
    assert group_gap(clean, groups, seed=0)[1]["gap"][0] == 0.0
    assert group_gap(planted, groups, seed=0)[1]["gap"][0] > 0.0


def test_equal_groups_have_zero_gap_and_bad_input_is_rejected():
    metrics, _ = group_gap([0.1, 0.3, 0.3, 0.1], ["a", "a", "b", "b"], n_boot=0)
    assert metrics["gap"] == pytest.approx(0.0) and metrics["gap_p_value"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        group_gap([0.1], ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        group_gap([0.1, float("nan")], ["a", "b"])
    with pytest.raises(ValueError, match="two groups"):
        group_gap([0.1, 0.2], ["a", "a"])
