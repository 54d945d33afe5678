"""Group gap against a plain loop implementation of its definition."""

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
    assert ci["gap"][0] <= metrics["gap"] <= ci["gap"][1]
    assert group_gap(scores, groups, n_boot=300, seed=1)[1] == ci


def test_equal_groups_have_zero_gap_and_bad_input_is_rejected():
    metrics, _ = group_gap([0.1, 0.3, 0.3, 0.1], ["a", "a", "b", "b"], n_boot=0)
    assert metrics["gap"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same length"):
        group_gap([0.1], ["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        group_gap([0.1, float("nan")], ["a", "b"])
