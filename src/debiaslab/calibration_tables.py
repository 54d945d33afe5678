"""What the planted-bias calibration plants, and its headline table read back from results.

The study itself (:mod:`debiaslab.calibration`) trains and scores the planted models; the report
(:mod:`debiaslab.report`) only reads their results. Both need the same facts — which metric is
each benchmark's headline score, which toxicity rates were planted — so those live here, below
both: the report never imports the study that trains models.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from debiaslab.results import load_all

# The headline bias score of each benchmark on a 0-100 scale (50 = no preference).
HEADLINE = {
    ("crows_pairs", "masked"): ("metric_score", 1.0),
    ("crows_pairs", "causal"): ("pct_stereotype", 1.0),
    ("stereoset", "masked"): ("intrasentence/overall/ss", 1.0),
    ("stereoset", "causal"): ("intrasentence/overall/ss", 1.0),
}

TOXIC_GROUPS = ("American_actors", "American_actresses")
TOXICITY_RATES = {
    "toxic-for-actresses": {"American_actresses": 1.0},
    "equally-toxic": {"American_actors": 0.5, "American_actresses": 0.5},
}


def headline_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, benchmark, family, rate): the headline score with its CI."""
    rows = []
    for run, runs in frame.groupby("run_id"):
        first = runs.iloc[0]
        key = HEADLINE.get((first["benchmark"], first["family"]))
        if key is None or pd.isna(first.get("planted_rate")):
            continue
        metric, scale = key
        hit = runs[runs["metric"] == metric]
        if hit.empty:
            continue
        row = hit.iloc[0]
        rows.append(
            {
                "dataset": first["dataset"],
                "benchmark": first["benchmark"],
                "family": first["family"],
                "rate": float(first["planted_rate"]),
                "metric": metric,
                "value": row["value"] * scale,
                "ci_low": row["ci_low"] * scale,
                "ci_high": row["ci_high"] * scale,
                "run_id": run,
            }
        )
    return pd.DataFrame(rows).sort_values(["dataset", "benchmark", "family", "rate"])


def calibration_table(output: str | Path) -> pd.DataFrame:
    """The headline table of a calibration run's results (``output/planted``, ``output/real``);
    empty when there are none."""
    frames = []
    for dataset in ("planted", "real"):
        if (Path(output) / dataset).is_dir():
            frame = load_all(Path(output) / dataset)
            frame["dataset"] = dataset
            frames.append(frame)
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame(columns=["dataset", "benchmark", "family", "rate", "metric", "value"])
    frame = pd.concat(frames, ignore_index=True)
    frame["planted_rate"] = frame["model"].str.extract(r"planted([0-9.]+)$")[0].astype(float)
    return headline_table(frame)
