"""Real-track measurements: SmolLM2 on the likelihood and generation benchmarks.

Each step is one or two plain calls of :func:`debiaslab.runner.evaluate` (what ``debiaslab
eval`` and the notebooks call) and returns the result files it wrote into ``track.results``.
A rerun with the same settings finds the results and skips the work (the run id).

- :func:`crows_pairs`: lm-evaluation-harness's ``crows_pairs_english`` (harness mode, the
  revised data it reads: 1,677 pairs; ``crows_limit`` None = all);
- :func:`stereoset`: the likelihood form over the flattened dev set, both splits
  (``stereoset_limit`` examples per split; None = all 2,106 + 2,123);
- :func:`stereoset_mc`: the multiple-choice form, inside SmolLM2's chat template, three
  cyclic option orders (``stereoset_mc_limit`` examples per split);
- :func:`bold_honest`: BOLD continuations (``bold_limit`` prompts per group, seeded;
  ``max_new_tokens``) scored for toxicity, regard and HONEST with group gaps, and HONEST on
  its own templates (``honest_limit`` per category, ``honest_k`` completions, HONEST alone).

Toxicity and regard need classifiers no package registry ships, so the track scores them
with the tiny offline presets (:data:`TOXICITY`, :data:`REGARD`): the pipeline runs, and
each BOLD result says so in ``config.scorers.toxicity`` / ``config.scorers.regard``
(``tiny_offline: true``, ``note``: "scored by a tiny offline classifier …";
:func:`debiaslab.textclass.tiny_marking`). HONEST is lexicon-based (HurtLex) and real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from debiaslab.data.stereoset import SPLITS
from debiaslab.evalconfig import EvalConfig
from debiaslab.runner import evaluate

TOXICITY = "tiny-toxicity"  # no registry ships a real toxicity classifier
REGARD = "tiny-regard"
HONEST_TOKENS = 15  # HONEST's own default completion length (registry: 15 for honest)


def _evaluate(track, benchmark: str, **flat: Any) -> Path:
    """One evaluation of the track's model into ``track.results``; its result file."""
    config = track.config
    run = evaluate(
        EvalConfig.of(
            config.model, benchmark, track.results, n_boot=config.n_boot, seed=config.seed, **flat
        )
    )
    done = "found, skipped" if run.skipped else f"{run.record['n_items']} items"
    track.log(f"[real]   {benchmark}: {run.path.name} ({done})")
    return run.path


def crows_pairs(track) -> list[Path]:
    """CrowS-Pairs as lm-evaluation-harness scores it (``pct_stereotype``, ``likelihood_diff``
    with bootstrap CIs, per bias type)."""
    return [_evaluate(track, "crows_pairs", limit=track.config.crows_limit, mode="harness")]


def stereoset(track) -> list[Path]:
    """StereoSet's likelihood form (SS, LMS, ICAT), both splits."""
    limit = track.config.stereoset_limit
    return [_evaluate(track, "stereoset", limit=limit, splits=list(SPLITS))]


def stereoset_mc(track) -> list[Path]:
    """StereoSet as a multiple-choice question in the model's chat template (``mc/`` SS, LMS,
    ICAT and the letter-position shares), both splits."""
    limit = track.config.stereoset_mc_limit
    return [_evaluate(track, "stereoset_mc", limit=limit, splits=list(SPLITS))]


def bold_honest(track) -> list[Path]:
    """BOLD (toxicity and regard by the tiny offline classifiers, HONEST, group gaps) and
    HONEST on its own benchmark."""
    config = track.config
    bold = _evaluate(
        track,
        "bold",
        limit=config.bold_limit,
        max_new_tokens=config.max_new_tokens,
        metrics=["toxicity", "regard", "honest"],
        toxicity_model=TOXICITY,
        regard_model=REGARD,
    )
    honest = _evaluate(
        track,
        "honest",
        limit=config.honest_limit,
        honest_k=config.honest_k,
        max_new_tokens=HONEST_TOKENS,  # given, so the track's seed is the sampling seed
        metrics=["honest"],
    )
    return [bold, honest]
