"""The numbers the paper's prose reads: one JSON-able dictionary per generated section.

:func:`numbers` turns the tables of :mod:`debiaslab.report.tables` into formatted strings
(3 significant digits, ``value [low, high]``), table cells and figure paths; the Typst sections
in ``report/sections/`` read them from ``numbers.json`` and hold every word of the prose.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from debiaslab.report.tables import (
    Results,
    align_curves,
    audit_distances,
    calibration,
    calibration_ranking,
    demographics,
    group_gaps,
    is_tiny,
    planted_gaps,
    prepost,
    provenance,
    reduction,
    socratic_runs,
    speed,
    tradeoffs,
)
from debiaslab.results import as_number, decimals_for, value_with_ci


def fmt(value: Any) -> str:
    """A number for the paper (3 significant digits, as the model card's; — for missing)."""
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) or value is None:
        number = as_number(value)
        if number is None:
            return "—"
        return "0" if number == 0 else f"{number:.{decimals_for([number])}f}"
    return str(value)


def with_ci(value: float, low: float, high: float) -> str:
    """``value [low, high]`` with the value's decimals (``results.value_with_ci``)."""
    number = as_number(value)
    return value_with_ci(number, (low, high), decimals_for([number]))


def table_data(frame: pd.DataFrame) -> dict[str, list]:
    """A frame as ``{"columns", "rows"}`` of formatted strings (``lib.typ``'s ``data-table``)."""
    return {
        "columns": [str(c) for c in frame.columns],
        "rows": [[fmt(v) for v in row] for row in frame.itertuples(index=False)],
    }


def kinds(flags: Iterable[bool]) -> str:
    """``tiny``, ``real`` or ``both``: which models a set of results comes from (the sections'
    ``kind-note`` says it in words)."""
    flags = set(flags)
    return "tiny" if flags == {True} else "real" if flags == {False} else "both"


def _cis(frame: pd.DataFrame, value: str) -> list[str]:
    return [
        with_ci(v, lo, hi)
        for v, lo, hi in zip(frame[value], frame["ci_low"], frame["ci_high"], strict=True)
    ]


def abstract_numbers(results: Results) -> dict[str, Any]:
    """How many result files, experiment–model combinations per kind, calibration series."""
    prov = provenance(results)
    real = int((prov["kind"] == "real checkpoint").sum())
    cal = calibration(results)
    ranking = None if cal.empty else calibration_ranking(cal)
    return {
        "files": len(results.records),
        "tiny": len(prov) - real,
        "real": real,
        "calibration": None
        if ranking is None
        else {"ordered": int(ranking["ordered"].sum()), "series": len(ranking)},
    }


def setup_numbers(results: Results) -> dict[str, Any]:
    """The software and hardware of the results: one row per distinct environment."""
    envs = pd.DataFrame([
        {**(r.get("environment") or {}), "debiaslab": r.get("debiaslab_version"),
         "git": (r.get("git_hash") or "")[:12]}
        for _, r in results.records
    ])  # fmt: skip
    cols = [c for c in ("platform", "device", "gpu", "cpu_count", "python", "torch",
                        "transformers", "debiaslab", "git") if c in envs.columns]  # fmt: skip
    table = envs[cols].fillna("—").astype(str).value_counts().reset_index(name="results")
    return {"table": table_data(table)}


def _calibration(results: Results) -> dict[str, Any] | None:
    cal = calibration(results)
    if cal.empty:
        return None
    ranking = calibration_ranking(cal)
    gaps = planted_gaps(results)
    shown = cal.assign(score=_cis(cal, "value"))
    gap_rows = None if gaps.empty else gaps.assign(gap_ci=_cis(gaps, "gap"))
    return {
        "rates": ", ".join(f"{r:g}" for r in sorted(cal["rate"].unique())),
        "ordered": int(ranking["ordered"].sum()),
        "separated": int(ranking["separated"].sum()),
        "series": len(ranking),
        "table": table_data(shown[["dataset", "benchmark", "family", "rate", "metric", "score"]]),
        "planted_gaps": None
        if gap_rows is None
        else table_data(gap_rows[["model", "panel", "gap_ci", "p_value"]]),
    }


def _prepost(results: Results) -> dict[str, Any] | None:
    forest = prepost(results)
    if forest.empty:
        return None
    wide = forest.pivot_table(
        index=["experiment", "label"],
        columns="stage",
        values=["value", "ci_low", "ci_high"],
        aggfunc="first",
    )
    rows, reductions = [], []
    for (experiment, label), row in wide.iterrows():
        pre = (row[("value", "pre")], row[("ci_low", "pre")], row[("ci_high", "pre")])
        post = (row[("value", "post")], row[("ci_low", "post")], row[("ci_high", "post")])
        info = forest[(forest["experiment"] == experiment) & (forest["label"] == label)].iloc[0]
        ideal = None if pd.isna(info["ideal"]) else float(info["ideal"])
        red = reduction(pre[0], post[0], info["higher_is_better"], ideal)
        reductions.append(red)
        rows.append({
            "experiment": experiment, "metric": label, "pre": with_ci(*pre),
            "post": with_ci(*post), "ideal": fmt(ideal), "bias reduced by": fmt(red),
        })  # fmt: skip
    return {
        "kinds": kinds(forest["tiny"]),
        "improved": sum(1 for r in reductions if r > 0),
        "comparisons": len(rows),
        "no_direction": sum(1 for r in reductions if math.isnan(r)),
        "table": table_data(pd.DataFrame(rows)),
    }


def _group_gaps(results: Results) -> dict[str, Any] | None:
    gaps = group_gaps(results)
    if gaps.empty:
        return None
    return {"count": len(gaps), "significant": int((gaps["p_value"] < 0.05).sum())}


def _tradeoffs(results: Results) -> list[dict[str, Any]]:
    out = []
    for kind, frame in tradeoffs(results).items():
        best = frame.sort_values("ppl_ratio").iloc[-1]
        out.append({
            "kind": kind, "model": str(frame["model"].iloc[0]), "kinds": kinds(frame["tiny"]),
            "method": str(best["method"]), "strength": fmt(float(best["strength"])),
            "share": with_ci(best["share"], best["ci_low"], best["ci_high"]),
            "ppl_ratio": fmt(best["ppl_ratio"]),
        })  # fmt: skip
    return out


def _demographics(results: Results) -> dict[str, Any] | None:
    shares = demographics(results)
    if shares.empty:
        return None
    dist = audit_distances(results)
    tv = dist[dist["distance"] == "tv"]
    mean_tv = tv.groupby(["condition", "axis"])["value"].mean().reset_index()
    return {
        "kinds": kinds(shares["tiny"]),
        "mean_tv": [
            {"condition": r.condition, "axis": r.axis, "tv": fmt(r.value)}
            for r in mean_tv.itertuples()
        ],
    }


def _align(results: Results) -> dict[str, Any] | None:
    curves = align_curves(results)
    if not curves:
        return None
    curve = curves[-1]
    first, last = curve["curve"][0], curve["curve"][-1]
    return {
        "kinds": kinds([curve["tiny"]]),
        "measurements": len(curve["curve"]),
        "delta_first": fmt(first["max_abs_delta"]),
        "delta_last": fmt(last["max_abs_delta"]),
        "tv_first": fmt(first["tv"]),
        "tv_last": fmt(last["tv"]),
        "stopped": str(curve["stopped"]),
    }


def _socratic(results: Results) -> list[dict[str, Any]]:
    out = []
    for record in socratic_runs(results):
        m, ci = record["metrics"], record.get("ci") or {}
        first, best = (
            with_ci(m[key], *ci.get(key, (math.nan, math.nan)))
            for key in ("clip_score_first", "clip_score_best")
        )
        out.append({
            "kinds": kinds([is_tiny(record)]), "prompts": str(record.get("n_items")),
            "first": first, "best": best,
        })  # fmt: skip
    return out


def results_numbers(
    results: Results, drawn: Mapping[str, list[Path]], base: Path
) -> dict[str, Any]:
    """Every number of the Results section; ``figures`` maps each drawn figure's name to its PNG
    relative to ``base`` (the folder the sections are compiled from). A subsection without
    results is ``None`` (or an empty list)."""
    prov = provenance(results)
    n_tiny = int((prov["kind"] == "tiny offline").sum())
    sp = speed(results)
    return {
        "files": len(results.records),
        "tiny": n_tiny,
        "real": len(prov) - n_tiny,
        "provenance": table_data(prov),
        "figures": {name: _relpath(_png(paths), base) for name, paths in drawn.items()},
        "calibration": _calibration(results),
        "prepost": _prepost(results),
        "group_gaps": _group_gaps(results),
        "tradeoffs": _tradeoffs(results),
        "demographics": _demographics(results),
        "align": _align(results),
        "socratic": _socratic(results),
        "speed": None if sp.empty else table_data(sp),
    }


def numbers(results: Results, drawn: Mapping[str, list[Path]], base: Path) -> dict[str, Any]:
    """``{"abstract", "setup", "results"}``: what ``numbers.json`` holds for the sections."""
    return {
        "abstract": abstract_numbers(results),
        "setup": setup_numbers(results),
        "results": results_numbers(results, drawn, base),
    }


def _png(paths: list[Path]) -> Path:
    return next(p for p in paths if p.suffix == ".png")


def _relpath(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
