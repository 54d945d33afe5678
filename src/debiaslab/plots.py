"""Figures from result files; nothing typed by hand. Uses matplotlib's object API (no pyplot
state, no import-time style changes) and writes PNG + PDF atomically."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from debiaslab.data.fetch import write_bytes_atomic


def save_figure(fig, path_stem: str | Path, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf``, each rendered first, then renamed in."""
    stem = Path(path_stem)
    written = []
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight")
        written.append(write_bytes_atomic(stem.with_suffix(f".{fmt}"), buffer.getvalue()))
    return written


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


def align_curve(
    curve: list[dict],
    path_stem: str | Path,
    *,
    target: dict[str, float] | None = None,
    threshold: float | None = None,
) -> list[Path]:
    """The PreciseDebias measure-and-align loop, iteration by iteration.

    Left: the largest |target − share| over the groups and the total variation to the target
    (with the stopping threshold, dashed). Right: each group's share (solid) and its target
    (a dotted line of the same colour).

    Args:
        curve: ``align_curve.json``'s ``curve`` (:func:`debiaslab.t2i.rewriter.align`): dicts
            with ``iteration``, ``shares``, ``max_abs_delta`` and ``tv``.
        path_stem: output path without suffix.
        target: the (renormalised) target shares per group, or None.
        threshold: the stopping threshold on max |Δ|, or None.
    """
    from matplotlib.figure import Figure

    iterations = [entry["iteration"] for entry in curve]
    fig = Figure(figsize=(10.0, 3.8))
    left, right = fig.subplots(1, 2)
    left.plot(iterations, [e["max_abs_delta"] for e in curve], marker="o", label="max |Δ|")
    left.plot(iterations, [e["tv"] for e in curve], marker="s", label="TV to target")
    if threshold is not None:
        left.axhline(threshold, color="grey", lw=0.8, ls="--", label="threshold")
    left.set_xlabel("iteration")
    left.set_ylabel("distance to target")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8, frameon=False)
    groups = list(curve[0]["shares"]) if curve else []
    colours = [f"C{k % 10}" for k in range(len(groups))]
    for group, colour in zip(groups, colours, strict=True):
        right.plot(iterations, [e["shares"][group] for e in curve], color=colour, label=group)
        if target is not None and group in target:
            right.axhline(target[group], color=colour, lw=0.8, ls=":")
    right.set_xlabel("iteration")
    right.set_ylabel("share of rewrites (dotted: target)")
    right.set_ylim(bottom=0)
    right.legend(fontsize=7, frameon=False, ncol=2)
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("PreciseDebias alignment of the rewriter", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path_stem)


def socratic_curve(record: dict, path_stem: str | Path) -> list[Path]:
    """Mean CLIPScore per Socratic cycle (the prompts that reached it), with the first and best
    cycles' means and their 95% intervals, from a ``socratic`` result record."""
    from matplotlib.figure import Figure

    metrics, ci = record["metrics"], record.get("ci", {})
    cycles = sorted(int(k.rsplit("_", 1)[1]) for k in metrics if k.startswith("clip_score/cycle_"))
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.subplots()
    ax.plot(cycles, [metrics[f"clip_score/cycle_{c}"] for c in cycles], marker="o", label="mean")
    for key, label, x in (("clip_score_first", "first", -0.15), ("clip_score_best", "best", 0.15)):
        low, high = ci.get(key, (metrics[key], metrics[key]))
        err = [[metrics[key] - low], [high - metrics[key]]]
        ax.errorbar(
            [x], [metrics[key]], yerr=err, marker="s", capsize=3, linestyle="none",
            label=f"{label} (95% CI)",
        )  # fmt: skip
    scale = record.get("config", {}).get("clip_scale", "torchmetrics")
    ax.set_xlabel("cycle")
    ax.set_ylabel(f"CLIPScore vs. the user's prompt ({scale})")
    ax.set_xticks(cycles)
    ax.legend(frameon=False)
    return save_figure(fig, path_stem)
