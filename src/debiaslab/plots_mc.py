"""The position-bias figure of StereoSet's prompt form (:mod:`debiaslab.benchmarks.stereoset_mc`).

A model that reads only the options' content answers each letter a third of the time when
every option is asked under every letter (``--mc-orders cyclic`` or ``all``); the figure shows
how far each result's % of answers per letter (``mc/position/*``, percent) is from 100/3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from debiaslab.plots import check_frame, save_figure

LETTERS = ("A", "B", "C")
COLUMNS = ("result", "letter", "share", "ci_low", "ci_high", "orders")


def position_frame(records: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per (result, letter) of ``stereoset_mc`` records with ``mc/position/*``.

    Args:
        records: ``(experiment, record)`` pairs (``report.tables.Results.of("stereoset_mc")``).

    Returns:
        Columns ``result`` (experiment, model and stage), ``letter``, ``share``, ``ci_low``,
        ``ci_high`` and ``orders`` (the result's option orders); empty if none has shares.
    """
    rows = []
    for experiment, record in records:
        metrics, ci = record.get("metrics") or {}, record.get("ci") or {}
        config = record.get("config") or {}
        if not all(f"mc/position/{c}" in metrics for c in LETTERS):
            continue  # results from before the mc/ metrics
        model = (record.get("model") or {}).get("name") or "model"
        name = f"{experiment} ({Path(str(model)).name}, {record.get('stage', 'eval')})"
        for letter in LETTERS:
            key = f"mc/position/{letter}"
            low, high = ci.get(key) or (float("nan"), float("nan"))
            rows.append({
                "result": name, "letter": letter, "share": float(metrics[key]),
                "ci_low": float(low), "ci_high": float(high),
                "orders": config.get("mc_orders") or config.get("orders") or "?",
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def position_shares(frame: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Each result's % of answers per letter with its 95% CI, against 100/3.

    Args:
        frame: :func:`position_frame` output (columns :data:`COLUMNS`).
        path_stem: output path without suffix.

    Raises:
        ValueError: the frame is empty or lacks a column.
    """
    from matplotlib.figure import Figure

    check_frame(frame, COLUMNS, "position_shares")
    results = list(pd.unique(frame["result"]))
    width = 0.8 / len(results)
    fig = Figure(
        figsize=(4.0 + 0.6 * len(results), 3.2 + 0.2 * len(results)), layout="constrained"
    )
    ax = fig.subplots()
    for k, result in enumerate(results):
        rows = frame[frame["result"] == result].set_index("letter").reindex(list(LETTERS))
        xs = [j - 0.4 + width * (k + 0.5) for j in range(len(LETTERS))]
        err = [rows["share"] - rows["ci_low"], rows["ci_high"] - rows["share"]]
        orders = rows["orders"].dropna().iloc[0] if rows["orders"].notna().any() else "?"
        ax.errorbar(
            xs, rows["share"], yerr=err, marker="o", linestyle="none", capsize=3,
            label=f"{result} [{orders} orders]",
        )  # fmt: skip
    ax.axhline(100 / 3, color="grey", lw=0.9, ls="--", label="no letter preferred (100/3 %)")
    ax.set_xticks(range(len(LETTERS)), labels=list(LETTERS))
    ax.set_xlim(-0.5, len(LETTERS) - 0.5)
    ax.set_ylim(0, 100)
    ax.set_xlabel("answer letter")
    ax.set_ylabel("% of answers (95% CI)")
    ax.set_title("StereoSet multiple choice: answers per letter", fontsize=10)
    fig.legend(loc="outside lower center", fontsize=7, frameon=False)
    return save_figure(fig, path_stem)
