"""The report's figures: every plot the results allow, drawn from :mod:`debiaslab.report.tables`.

:func:`figures` returns ``{name: [png, pdf]}``; the name is the paper's figure label
(``calibration`` → ``@fig-calibration``). :func:`show` displays one in a notebook. Group gaps,
pre/post forests, trade-offs and the align curve are drawn apart for real and tiny models
(what the paper shows): ``group_gaps`` and ``prepost_forest`` hold both, ``<name>_real`` and
``<name>_tiny`` one each; ``decoding_tradeoff``, ``gating_tradeoff`` and ``align_curve`` are
the tiny models' with ``<name>_real`` beside them, and name the real model's figure where no
tiny one was drawn (the results notebook's names).
"""

from __future__ import annotations

from pathlib import Path

from debiaslab import plots, plots_mc, plots_t2i
from debiaslab.report.tables import (
    Results,
    align_curves,
    calibration,
    demographics,
    group_gaps,
    prepost,
    size_effect,
    socratic_runs,
    tradeoffs,
)

# Axis labels and the target line of each trade-off sweep's plot (keys: tables.TRADEOFFS).
TRADEOFF_PLOTS = {
    "decoding_tradeoff": {
        "target": 0.5,
        "ylabel": "share of one group among mentions (95% CI)",
        "xlabel": "perplexity relative to plain decoding",
    },
    "gating_tradeoff": {
        "target": None,
        "ylabel": "toxic continuations (95% CI)",
        "xlabel": "perplexity relative to no gates",
    },
}


def figures(results: Results, figures_dir: str | Path) -> dict[str, list[Path]]:
    """Draw every figure the results allow into ``figures_dir``; return ``{name: paths}``."""

    out_dir = Path(figures_dir)
    drawn: dict[str, list[Path]] = {}
    table = calibration(results)
    if not table.empty:
        panels = [
            (f"{dataset} {benchmark.replace('_', '-')}", rows)
            for (dataset, benchmark), rows in table.groupby(["dataset", "benchmark"], sort=False)
        ]
        drawn["calibration"] = plots.calibration(panels, out_dir / "calibration")
    forest = prepost(results)
    if not forest.empty:
        drawn["prepost_forest"] = plots.forest(forest, out_dir / "prepost_forest")
        for name, tiny in (("prepost_forest_real", False), ("prepost_forest_tiny", True)):
            if forest["tiny"].eq(tiny).any():
                drawn[name] = plots.forest(forest[forest["tiny"] == tiny], out_dir / name)
        sizes = size_effect(forest)
        if not sizes.empty:
            drawn["size_effect"] = plots.size_effect(sizes, out_dir / "size_effect")
    gaps = group_gaps(results)
    if not gaps.empty:
        drawn["group_gaps"] = plots.group_gaps(gaps, out_dir / "group_gaps")
        for name, tiny in (("group_gaps_real", False), ("group_gaps_tiny", True)):
            chosen = gaps[gaps["tiny"] == tiny]
            if not chosen.empty:
                drawn[name] = plots.group_gaps(chosen, out_dir / name)
    for name, frame in tradeoffs(results).items():
        kind = str(frame["kind"].iloc[0])
        drawn[name] = plots.tradeoff(frame, out_dir / name, **TRADEOFF_PLOTS[kind])
        drawn.setdefault(kind, drawn[name])  # real first: a tiny one replaces this alias
    shares = demographics(results)
    if not shares.empty:
        drawn["demographics"] = plots_t2i.demographics(shares, out_dir / "demographics")
    for curve in align_curves(results):  # the latest experiment's per provenance
        name = "align_curve" if curve["tiny"] else "align_curve_real"
        drawn[name] = plots_t2i.align_curve(
            curve["curve"], out_dir / name, target=curve["target"],
            threshold=curve["threshold"],
        )  # fmt: skip
    if "align_curve_real" in drawn:
        drawn.setdefault("align_curve", drawn["align_curve_real"])
    for record in socratic_runs(results):
        drawn["socratic_clipscore"] = plots_t2i.socratic_curve(
            record, out_dir / "socratic_clipscore"
        )
    positions = plots_mc.position_frame(results.of("stereoset_mc"))
    if not positions.empty:
        drawn["mc_position"] = plots_mc.position_shares(positions, out_dir / "mc_position")
    return drawn
