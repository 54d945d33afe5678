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

from debiaslab.env import repo_root
from debiaslab.report.findings import EXPECTED, Finding, by_model, headline_rows
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
    tiny_classifier_scores,
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
        "real_models": ", ".join(by_model(results, tiny=False)) or None,
        "lead": _lead_sentence(results),
        "calibration": None
        if ranking is None
        else {"ordered": int(ranking["ordered"].sum()), "series": len(ranking)},
    }


def setup_numbers(results: Results) -> dict[str, Any]:
    """The software and hardware of the results: one row per distinct environment, and a
    sentence of what produced them (device, GPU count, processes), from the records alone."""
    envs = pd.DataFrame([
        {**(r.get("environment") or {}), "debiaslab": r.get("debiaslab_version"),
         "git": (r.get("git_hash") or "")[:12]}
        for _, r in results.records
    ])  # fmt: skip
    cols = [c for c in ("platform", "device", "gpu", "gpu_count", "processes", "cpu_count",
                        "python", "torch", "transformers", "debiaslab", "git")
            if c in envs.columns]  # fmt: skip
    table = envs[cols].fillna("—").astype(str).value_counts().reset_index(name="results")
    return {"table": table_data(table), "produced_on": _produced_on(envs)}


def _produced_on(envs: pd.DataFrame) -> str:
    """``"812 results on CPU (2 cores), 1 process; 40 on Tesla T4 ×2, 2 processes"``."""
    if envs.empty:
        return "no results"
    parts = []
    for _, row in envs.fillna("").iterrows():
        if row.get("gpu"):
            count = int(row.get("gpu_count") or 1)
            where = f"{row['gpu']}" + (f" ×{count}" if count > 1 else "")
        else:
            cores = row.get("cpu_count")
            where = "CPU" + (f" ({int(cores)} cores)" if cores != "" else "")
        processes = int(row.get("processes") or 1)
        parts.append(f"{where}, {processes} process{'es' if processes > 1 else ''}")
    counts = pd.Series(parts).value_counts()
    return "; ".join(f"{n:,} results on {where}" for where, n in counts.items())


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


def _prepost(results: Results, tiny: bool) -> dict[str, Any] | None:
    forest = prepost(results)
    forest = forest[forest["tiny"] == tiny] if not forest.empty else forest
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
    gaps = gaps[gaps["tiny"]] if not gaps.empty else gaps
    if gaps.empty:
        return None
    return {"count": len(gaps), "significant": int((gaps["p_value"] < 0.05).sum())}


def _tradeoffs(results: Results, tiny: bool) -> list[dict[str, Any]]:
    out = []
    for name, frame in tradeoffs(results).items():
        if bool(frame["tiny"].iloc[0]) != tiny:
            continue
        best = frame.sort_values("ppl_ratio").iloc[-1]
        out.append({
            "name": name, "kind": str(frame["kind"].iloc[0]),
            "model": str(frame["model"].iloc[0]), "kinds": kinds(frame["tiny"]),
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


def _align(results: Results, tiny: bool) -> dict[str, Any] | None:
    curves = [c for c in align_curves(results) if c["tiny"] == tiny]
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


def _lead_sentence(results: Results) -> dict[str, Any] | None:
    """The abstract's real-model numbers: the first real model's CrowS-Pairs score over every
    pair and its held-out change after fine-tuning (each ``None`` when not measured)."""
    rows = [r for r in headline_rows(results) if r.kind == "real" and r.ci]
    if not rows:
        return None
    model = rows[0].model

    def cite(key: str) -> dict[str, str] | None:
        row = next((r for r in rows if r.model == model and r.key == key), None)
        return None if row is None else {"value": row.text, "n": fmt(row.n)}

    return {"model": model, "crows": cite("crows_pairs"), "lora": cite("lora")}


def findings_table(rows: list[Finding]) -> dict[str, list]:
    """The lead table's cells: finding, value [95% CI], n, note (and the model, when the rows
    come from more than one)."""
    several = len({r.model for r in rows}) > 1
    return {
        "columns": ["finding", *(["model"] if several else []), "value [95% CI]", "n", "note"],
        "rows": [[r.name, *([r.model] if several else []), r.text,
                  "—" if r.n is None else f"{r.n:,} {r.n_unit}", r.note or "—"] for r in rows],
    }  # fmt: skip


def real_numbers(results: Results) -> dict[str, Any]:
    """The real-model findings (every one with an interval, in the lead table; those without
    one listed apart), what the real-model track should have written and did not, and which
    real models' toxicity/regard a tiny classifier scored."""
    rows = [r for r in headline_rows(results) if r.kind == "real"]
    with_ci = [r for r in rows if r.ci is not None]
    found = {r.key for r in rows}
    keyed = {r.key: r for r in rows}

    def cite(key: str) -> dict[str, str] | None:
        row = keyed.get(key)
        return None if row is None else {"value": row.text, "n": fmt(row.n), "note": row.note}

    real = by_model(results, tiny=False)
    quantized = [m for m, rs in real.items() if any((r.get("model") or {}).get("gguf_sha256")
                                                   for _, r in rs)]  # fmt: skip
    marked = [m for m, rs in real.items() if any(tiny_classifier_scores(r) for _, r in rs)]
    return {
        "models": ", ".join(dict.fromkeys(r.model for r in rows)) or None,
        "quantized": ", ".join(quantized) or None,
        "tiny_classifier": marked,
        "table": findings_table(with_ci) if with_ci else None,
        "no_interval": [f"{r.name} ({r.model}): {r.text}" for r in rows if r.ci is None],
        "missing": [label for key, label in EXPECTED.items() if key not in found],
        "crows": cite("crows_pairs"),
        "stereoset": cite("stereoset/ss"),
        "lora": cite("lora"),
    }


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
        "lead": real_numbers(results),
        "real_prepost": _prepost(results, tiny=False),
        "real_tradeoffs": _tradeoffs(results, tiny=False),
        "real_align": _align(results, tiny=False),
        "calibration": _calibration(results),
        "prepost": _prepost(results, tiny=True),
        "group_gaps": _group_gaps(results),
        "tradeoffs": _tradeoffs(results, tiny=True),
        "demographics": _demographics(results),
        "align": _align(results, tiny=True),
        "socratic": _socratic(results),
        "speed": None if sp.empty else table_data(sp),
    }


def numbers(results: Results, drawn: Mapping[str, list[Path]], base: Path) -> dict[str, Any]:
    """``{"abstract", "setup", "results"}``: what ``numbers.json`` holds for the sections."""
    return {
        "source": source_name(results.root),
        "abstract": abstract_numbers(results),
        "setup": setup_numbers(results),
        "results": results_numbers(results, drawn, base),
    }


def source_name(root: Path) -> str:
    """The results folder as the paper names it: relative to the repository when inside it
    (``results/paper``), else its own name (never a machine's absolute path)."""
    try:
        return root.resolve().relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return root.name


def _png(paths: list[Path]) -> Path:
    return next(p for p in paths if p.suffix == ".png")


def _relpath(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
