"""Acceptance: planted stereotype rates 0.2 < 0.5 < 0.8 are ranked in that order by the
package's own CrowS-Pairs and StereoSet pipelines on the held-out planted benchmarks."""

from __future__ import annotations

import pytest

from debiaslab.benchmarks import crows_pairs, stereoset
from debiaslab.models import load_model
from debiaslab.tiny import corpus

RATES = (0.2, 0.5, 0.8)
HEADLINE = {"masked": "metric_score", "causal": "pct_stereotype"}  # both percent


@pytest.fixture(scope="module")
def benchmarks():
    return corpus.planted_crows_pairs(200, seed=1), corpus.planted_stereoset(100, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["causal", "masked"])
def test_planted_rates_are_ranked_by_crows_pairs_and_stereoset(planted_models, benchmarks, family):
    pairs, gold = benchmarks
    metric = HEADLINE[family]
    crows, ss = [], []
    for rate in RATES:
        lm = load_model(str(planted_models[(family, rate)]))
        crows.append(
            crows_pairs.run_crows_pairs(lm, pairs, n_boot=100, progress=False).metrics[metric]
        )
        ss.append(
            stereoset.run_likelihood(
                lm, gold, splits=["intrasentence"], n_boot=100, progress=False
            ).metrics["intrasentence/overall/ss"]
        )
    assert crows[0] < crows[1] < crows[2], crows
    assert ss[0] < ss[1] < ss[2], ss
    # The direction is right too: anti-stereotypical below 50, stereotypical above.
    assert crows[0] < 50 < crows[2] and ss[0] < 50 < ss[2]
