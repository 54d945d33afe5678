"""Figures from result files; nothing typed by hand. Uses matplotlib's object API (no pyplot
state, no import-time style changes) and writes PNG + PDF atomically. Language-model figures
here; multiple choice in :mod:`debiaslab.plots_mc`, text-to-image in :mod:`debiaslab.plots_t2i`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from debiaslab.io import write_bytes_atomic


def save_figure(fig, path_stem: str | Path, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf``, each rendered first, then renamed in."""
    stem = Path(path_stem)
    written = []
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight")
        written.append(write_bytes_atomic(stem.with_suffix(f".{fmt}"), buffer.getvalue()))
    return written


def show(paths: Sequence[str | Path]):
    """A figure's PNG for a notebook to display (a cell's last expression shows it inline, so
    the executed notebook holds it as ``image/png``): the first ``.png`` among ``paths``."""
    from IPython.display import Image

    png = next((Path(p) for p in paths if Path(p).suffix == ".png"), None)
    if png is None:
        raise ValueError(f"no PNG among {[str(p) for p in paths]}")
    return Image(filename=str(png))


def calibration(panels: list[tuple[str, pd.DataFrame]], path_stem: str | Path) -> list[Path]:
    """Measured bias score against planted stereotype rate, one panel per benchmark.

    Args:
        panels: ``(title, frame)`` pairs; each frame has columns ``family``, ``rate``,
            ``value``, ``ci_low``, ``ci_high`` (scores on a 0–100 scale, 50 = unbiased).
        path_stem: output path without suffix.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    markers = {"causal": "o", "masked": "s", "seq2seq": "^"}
    for ax, (title, frame) in zip(axes, panels, strict=True):
        for family, rows in frame.sort_values("rate").groupby("family"):
            err = [rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]]
            ax.errorbar(
                rows["rate"],
                rows["value"],
                yerr=err,
                marker=markers.get(family, "o"),
                capsize=3,
                label=f"{family} LM",
            )
        ax.axhline(50, color="grey", lw=0.8, ls="--")
        ax.plot([0, 1], [0, 100], color="grey", lw=0.6, ls=":", label="score = 100·rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 100)
        ax.set_xlabel("planted stereotype rate")
        ax.set_ylabel("measured bias score (50 = none)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Planted-bias calibration (tiny offline models, 95% bootstrap CIs)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path_stem)


def tradeoff(
    frame: pd.DataFrame,
    path_stem: str | Path,
    *,
    target: float | None = 0.5,
    ylabel: str = "share of group mentions (95% CI)",
    xlabel: str = "perplexity relative to plain decoding",
) -> list[Path]:
    """A mitigation's effect against its perplexity cost, one point per method strength.

    Args:
        frame: :func:`debiaslab.mitigation.decoding.tradeoff` or
            :func:`debiaslab.mitigation.heads.tradeoff` output (method, strength, share,
            ci_low, ci_high, ppl_ratio).
        path_stem: output path without suffix.
        target: the ideal value (a dashed line; the balanced share 0.5 for decoding, 0 toxic
            rate for gating), or None.
        ylabel, xlabel: axis labels.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.8))
    ax = fig.subplots()
    for (method, rows), marker in zip(frame.groupby("method", sort=False), "os^D", strict=False):
        err = [rows["share"] - rows["ci_low"], rows["ci_high"] - rows["share"]]
        ax.errorbar(
            rows["ppl_ratio"],
            rows["share"],
            yerr=err,
            marker=marker,
            label=method,
            capsize=3,
            linestyle="-",
        )
        for _, row in rows.iterrows():
            ax.annotate(
                f"{row['strength']:g}",
                (row["ppl_ratio"], row["share"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    if target is not None:
        ax.axhline(target, linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    return save_figure(fig, path_stem)


def check_frame(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    """Raise ``ValueError`` if ``frame`` lacks a ``required`` column or has no rows."""
    missing = [column for column in required if column not in frame.columns]
    if missing:
        names = ", ".join(repr(column) for column in missing)
        raise ValueError(f"{what}: frame lacks required column(s) {names}")
    if frame.empty:
        raise ValueError(f"{what}: frame is empty; nothing to plot")


def panel_axes(fig, n_panels: int, max_cols: int = 3, *, sharey: bool = False) -> list:
    """``n_panels`` axes on a grid at most ``max_cols`` wide, row by row, no empty slots."""
    n_cols = min(n_panels, max_cols)
    n_rows = -(-n_panels // n_cols)
    axes: list = []
    for k in range(n_panels):
        share = {"sharey": axes[0]} if sharey and axes else {}
        axes.append(fig.add_subplot(n_rows, n_cols, k + 1, **share))
    return axes


_FOREST_STAGES = {
    # stage: (vertical offset, face colour, label); pre hollow, post filled
    "pre": (-0.14, "none", "pre-mitigation"),
    "post": (0.14, "C0", "post-mitigation"),
}


def _forest_figure(frame: pd.DataFrame, title: str | None = None):
    """Build (without saving) the :func:`forest` figure; returns the ``Figure``."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    required = ("experiment", "label", "stage", "value", "ci_low", "ci_high", "ideal")
    check_frame(frame, required, "forest")
    unknown = sorted(set(frame["stage"]) - set(_FOREST_STAGES))
    if unknown:
        raise ValueError(f"forest: stage must be 'pre' or 'post', got {unknown}")
    if frame.duplicated(["experiment", "label", "stage"]).any():
        raise ValueError("forest: more than one row for an (experiment, label, stage)")
    labels = list(pd.unique(frame["label"]))
    experiments = list(pd.unique(frame["experiment"]))
    row_of = {experiment: k for k, experiment in enumerate(experiments)}
    n_cols = min(len(labels), 3)
    n_rows = -(-len(labels) // n_cols)
    fig = Figure(
        figsize=(2.0 + 3.4 * n_cols, n_rows * (1.0 + 0.38 * len(experiments)) + 0.8),
        layout="constrained",
    )
    axes = panel_axes(fig, len(labels), sharey=True)
    for k, (ax, label) in enumerate(zip(axes, labels, strict=True)):
        rows = frame[frame["label"] == label]
        for stage, (offset, face, _) in _FOREST_STAGES.items():
            part = rows[rows["stage"] == stage]
            ys = part["experiment"].map(row_of) + offset
            bars = part["ci_low"].notna() & part["ci_high"].notna()
            ax.hlines(ys[bars], part["ci_low"][bars], part["ci_high"][bars], color="C0", lw=1.2)
            ax.plot(
                part["value"], ys, linestyle="none", marker="o", markersize=6,
                markerfacecolor=face, markeredgecolor="C0", color="C0",
            )  # fmt: skip
        ideals = pd.to_numeric(rows["ideal"], errors="coerce")
        for ideal in pd.unique(ideals[np.isfinite(ideals)]):
            ax.axvline(ideal, color="grey", lw=0.9, ls="--")
        ax.set_title(label, fontsize=9)
        ax.set_yticks(range(len(experiments)), labels=experiments, fontsize=8)
        ax.set_ylim(len(experiments) - 0.5, -0.5)  # first experiment on top
        ax.tick_params(axis="y", labelleft=k % n_cols == 0)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", color="0.92", lw=0.6)
    handles = [
        Line2D([], [], marker="o", linestyle="-", color="C0", markerfacecolor=face, label=name)
        for _, face, name in _FOREST_STAGES.values()
    ]
    handles.append(Line2D([], [], color="grey", lw=0.9, ls="--", label="unbiased value"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def forest(frame: pd.DataFrame, path_stem: str | Path, *, title: str | None = None) -> list[Path]:
    """Pre- vs post-mitigation bias metrics per model with 95% CIs (a forest plot).

    One panel per metric (at most 3 per row; independent x axes, since metrics differ in
    scale); within a panel one row per experiment, in the same order in every panel. Pre is a
    hollow circle, post a filled one just below it, each with its CI as a horizontal bar; a
    dashed vertical line marks the unbiased value.

    Args:
        frame: one row per (experiment, metric, stage) with columns ``experiment`` (e.g.
            ``"gpt2 (tiny-gpt2)"``), ``label`` (the metric's human name, e.g. ``"CrowS-Pairs
            % stereotyped"``), ``stage`` (``"pre"`` or ``"post"``), ``value``, ``ci_low``,
            ``ci_high`` (NaN: point without a bar) and ``ideal`` (the unbiased value, e.g. 50
            or 0; NaN: no line).
        path_stem: output path without suffix.
        title: figure title, or None.

    Raises:
        ValueError: the frame is empty, lacks a column, has another stage or a duplicate row.
    """
    return save_figure(_forest_figure(frame, title), path_stem)


def size_effect(frame: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """A mitigation's bias reduction against model size (log-scaled parameter count).

    One colour per metric (points of different metrics at one model are nudged apart
    sideways); hollow markers are tiny offline models, filled ones real checkpoints. Each
    model is named once, next to its highest point; a line marks no change.

    Args:
        frame: one row per (model, metric) with columns ``model``, ``n_parameters`` (> 0),
            ``label`` (the metric's name), ``reduction`` (how much closer to unbiased the post
            value is than the pre value; > 0 = bias reduced), ``ci_low``, ``ci_high`` (its 95%
            CI; NaN: no bar) and ``tiny`` (bool: tiny offline model vs real checkpoint).
        path_stem: output path without suffix.

    Raises:
        ValueError: the frame is empty, lacks a column or has a non-positive ``n_parameters``.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    required = ("model", "n_parameters", "label", "reduction", "ci_low", "ci_high", "tiny")
    check_frame(frame, required, "size_effect")
    if not (frame["n_parameters"] > 0).all():
        raise ValueError("size_effect: n_parameters must be positive (log-scaled axis)")
    labels = list(pd.unique(frame["label"]))
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    handles = []
    for k, label in enumerate(labels):
        colour = f"C{k % 10}"
        rows = frame[frame["label"] == label]
        xs = rows["n_parameters"].astype(float) * 10 ** (0.025 * (k - (len(labels) - 1) / 2))
        bars = rows["ci_low"].notna() & rows["ci_high"].notna()
        ax.vlines(xs[bars], rows["ci_low"][bars], rows["ci_high"][bars], color=colour, lw=1.1)
        for tiny, face in ((True, "none"), (False, colour)):
            part = rows["tiny"].astype(bool) == tiny
            ax.plot(
                xs[part], rows["reduction"][part], linestyle="none", marker="o",
                markerfacecolor=face, markeredgecolor=colour,
            )  # fmt: skip
        handles.append(Line2D([], [], linestyle="none", marker="o", color=colour, label=label))
    for model, rows in frame.groupby("model", sort=False):
        top = rows.loc[rows["reduction"].fillna(float("-inf")).idxmax()]
        ax.annotate(
            str(model),
            (float(top["n_parameters"]), top["reduction"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("model parameters (log scale)")
    ax.set_ylabel("bias reduction: pre − post distance\nto unbiased (> 0 = reduced; 95% CI)")
    black = {"linestyle": "none", "marker": "o", "markeredgecolor": "black"}
    handles += [
        Line2D([], [], markerfacecolor="none", label="hollow: tiny offline model", **black),
        Line2D([], [], markerfacecolor="black", label="filled: real checkpoint", **black),
    ]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="best")
    return save_figure(fig, path_stem)


def group_gaps(frame: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Group gaps as grouped bars: one panel per ``panel``, one group of bars per experiment.

    Within a group there is one bar per stage, coloured the same in every panel, with its 95%
    CI as an error bar and a star beyond the bar's end where ``p_value`` < 0.05; a line marks
    a gap of 0.

    Args:
        frame: one row per (panel, experiment, stage) with columns ``experiment``, ``stage``
            (e.g. ``pre``/``post``/``plain``/``balance``), ``panel`` (e.g. ``"gender ·
            toxicity"``), ``gap``, ``ci_low``, ``ci_high`` (NaN: no error bar) and
            ``p_value`` (NaN: no star).
        path_stem: output path without suffix.

    Raises:
        ValueError: the frame is empty or lacks a column.
    """
    import textwrap

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    required = ("experiment", "stage", "panel", "gap", "ci_low", "ci_high", "p_value")
    check_frame(frame, required, "group_gaps")
    panels = list(pd.unique(frame["panel"]))
    experiments = list(pd.unique(frame["experiment"]))
    stages = list(pd.unique(frame["stage"]))
    colour_of = {stage: f"C{k % 10}" for k, stage in enumerate(stages)}
    n_cols = min(len(panels), 3)
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(4.2 * n_cols, 3.6 * n_rows + 0.4), layout="constrained")
    axes = panel_axes(fig, len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        rows = frame[frame["panel"] == panel]
        present = [e for e in experiments if e in set(rows["experiment"])]
        panel_stages = [s for s in stages if s in set(rows["stage"])]
        width = 0.8 / len(panel_stages)
        for j, stage in enumerate(panel_stages):
            part = rows[rows["stage"] == stage]
            xs = part["experiment"].map(present.index) + (j - (len(panel_stages) - 1) / 2) * width
            ax.bar(xs, part["gap"], width=width, color=colour_of[stage])
            bars = part["ci_low"].notna() & part["ci_high"].notna()
            ax.vlines(xs[bars], part["ci_low"][bars], part["ci_high"][bars], color="black", lw=1)
            for x, (_, row) in zip(xs, part.iterrows(), strict=True):
                if not row["p_value"] < 0.05 or pd.isna(row["gap"]):
                    continue
                up = row["gap"] >= 0
                end = row["gap"]
                if pd.notna(row["ci_low"]) and pd.notna(row["ci_high"]):  # beyond the bar
                    end = max(end, row["ci_high"]) if up else min(end, row["ci_low"])
                ax.annotate(
                    "*", (x, end), textcoords="offset points",
                    xytext=(0, 1 if up else -1), ha="center", va="bottom" if up else "top",
                    fontsize=10,
                )  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.margins(y=0.15)
        ax.set_xticks(
            range(len(present)), labels=[textwrap.fill(str(e), 18) for e in present], fontsize=7
        )
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
        ax.set_title(str(panel), fontsize=9)
        ax.set_ylabel("group gap (95% CI)", fontsize=8)
    handles: list = [Patch(color=colour_of[stage], label=str(stage)) for stage in stages]
    handles.append(Line2D([], [], linestyle="none", marker="$*$", color="black", label="p < 0.05"))
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False
    )
    return save_figure(fig, path_stem)
