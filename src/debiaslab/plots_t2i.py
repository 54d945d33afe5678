"""Text-to-image figures from result files: perceived demographics against the BLS shares, the
PreciseDebias alignment loop, the Socratic CLIPScore curve (matplotlib's object API, PNG + PDF
written atomically through :func:`debiaslab.plots.save_figure`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from debiaslab.plots import check_frame, save_figure


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
        curve: ``align_curve.json``'s ``curve``
            (:func:`debiaslab.t2i.precise_debias.align.align`): dicts with ``iteration``,
            ``shares``, ``max_abs_delta`` and ``tv``.
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


def demographics(frame: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Perceived demographics of generated images per occupation against BLS targets.

    One row of panels per demographic axis. For each occupation a block of horizontal bars,
    headed by the occupation's name: the BLS target bar first, then one bar per condition,
    each stacked by group in a colour that is the same across bars (one legend per axis).
    NaN perceived shares count as 0; a bar's shares need not sum to 1, and the remainder (no
    person / unclassified) stays blank.

    Args:
        frame: one row per (occupation, axis, group[, condition]) with columns
            ``occupation``, ``axis`` (e.g. ``"gender"``, ``"race"``), ``group``,
            ``perceived`` (share of images in 0..1, may be NaN), ``bls`` (the BLS target
            share in 0..1) and optionally ``condition`` (e.g. ``"plain prompt"`` /
            ``"rewritten"``; absent: a single condition).
        path_stem: output path without suffix.

    Raises:
        ValueError: the frame is empty or lacks a column.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    check_frame(frame, ("occupation", "axis", "group", "perceived", "bls"), "demographics")
    frame = frame.copy()
    if "condition" not in frame.columns:
        frame["condition"] = "generated images"
    frame["perceived"] = frame["perceived"].fillna(0.0)
    frame["bls"] = frame["bls"].fillna(0.0)
    axis_names = list(pd.unique(frame["axis"]))
    conditions = list(pd.unique(frame["condition"]))
    kinds = ["BLS target", *map(str, conditions)]
    block = len(kinds) + 1  # a header line, then the bars
    n_occupations = [frame.loc[frame["axis"] == a, "occupation"].nunique() for a in axis_names]
    fig = Figure(
        figsize=(7.5, 0.6 + sum(0.19 * block * n + 0.7 for n in n_occupations)),
        layout="constrained",
    )
    axes = fig.subplots(len(axis_names), 1, squeeze=False, height_ratios=n_occupations)[:, 0]
    for ax, axis_name in zip(axes, axis_names, strict=True):
        rows = frame[frame["axis"] == axis_name]
        groups = list(pd.unique(rows["group"]))
        if len(groups) <= 10:
            colour_of = {group: f"C{k}" for k, group in enumerate(groups)}
        else:
            cmap = colormaps["tab20"]
            colour_of = {group: cmap(k % 20) for k, group in enumerate(groups)}
        occupations = list(pd.unique(rows["occupation"]))
        ticks, tick_labels, widest = [], [], 1.0
        for i, occupation in enumerate(occupations):
            these = rows[rows["occupation"] == occupation]
            top = i * block
            ax.text(
                0, top, str(occupation), fontsize=8, fontweight="bold", va="center",
                ha="left",
            )  # fmt: skip
            bls = these.groupby("group", sort=False)["bls"].first()
            shares = [bls]
            for condition in conditions:
                part = these[these["condition"] == condition]
                shares.append(part.groupby("group", sort=False)["perceived"].sum())
            for j, (kind, share) in enumerate(zip(kinds, shares, strict=True)):
                y = top + 1 + j
                ticks.append(y)
                tick_labels.append(kind)
                left = 0.0
                for group in groups:
                    width = float(share.get(group, 0.0))
                    if width > 0:
                        ax.barh(
                            y, width, left=left, height=0.8, color=colour_of[group],
                            alpha=0.6 if j == 0 else 1.0, edgecolor="white", linewidth=0.4,
                        )  # fmt: skip
                    left += width
                widest = max(widest, left)
        ax.set_yticks(ticks, labels=tick_labels, fontsize=7)
        ax.set_ylim(len(occupations) * block - 0.4, -0.6)
        ax.set_xlim(0, widest)
        ax.set_xlabel("share (blank: no person / unclassified)", fontsize=8)
        ax.set_title(f"{axis_name}: perceived vs BLS", fontsize=9)
        ax.legend(
            handles=[Patch(color=colour_of[g], label=str(g)) for g in groups],
            loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False,
        )  # fmt: skip
    return save_figure(fig, path_stem)


def image_grid(
    images: Sequence[tuple[str | Path, str]],
    path_stem: str | Path,
    *,
    columns: int = 4,
    limit: int = 16,
) -> list[Path]:
    """Generated images in a grid, each titled by its label: ``(path, label)`` pairs, the
    first ``limit``; saved as ``<stem>.png``/``.pdf``.

    Raises:
        ValueError: no images.
    """
    from matplotlib.figure import Figure
    from PIL import Image

    chosen = list(images)[:limit]
    if not chosen:
        raise ValueError("no images to show")
    width = min(columns, len(chosen))
    rows = -(-len(chosen) // width)
    fig = Figure(figsize=(2.3 * width, 2.5 * rows))
    axes = fig.subplots(rows, width, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (path, label) in zip(axes.flat, chosen, strict=False):
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title(label if len(label) <= 34 else label[:33] + "…", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path_stem)
