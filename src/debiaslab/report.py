# long by design: tables, figures and generated prose of the paper; prose moves to report/sections
# in issue 14 point 3.
"""The results notebook's tables and figures, and the paper built from them.

Everything here is a function of the result files under ``results/`` (see
:mod:`debiaslab.results`): :func:`load` reads them all; the table functions turn them into the
frames :mod:`debiaslab.plots` draws (pre vs. post per model, the effect against model size,
group gaps, trade-off curves, image demographics against BLS, the PreciseDebias align curve,
CLIPScore per Socratic cycle, the planted-bias calibration, speed); :func:`figures` draws every
figure the results allow; :func:`build` writes the generated parts of the paper
(``report/generated/*.typ``) and compiles ``report/paper.typ`` to PDF with Typst. No number in
the paper is typed by hand: change a result file, rebuild, and the paper follows.

Every result is marked as coming from a *tiny offline* model (the embedded default: random or
planted-bias weights built on this machine) or a *real checkpoint*, by the model it records.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from debiaslab import plots, plots_mc
from debiaslab.calibration_tables import TOXICITY_RATES, calibration_table
from debiaslab.env import repo_root
from debiaslab.errors import ConfigError
from debiaslab.hub import pair_results
from debiaslab.io import write_bytes_atomic
from debiaslab.mitigation.decoding import tradeoff_from_record
from debiaslab.results import (
    as_number,
    decimals_for,
    load_all,
    read_all,
    recency,
    value_with_ci,
)
from debiaslab.t2i.audit import share_table
from debiaslab.t2i.rewriter import ALIGN_BENCHMARK, curve_from_record

log = logging.getLogger(__name__)

PAPER = "paper.typ"
PDF = "debiaslab-report.pdf"
GENERATED = "generated"
# Metrics the pre/post forest shows: (benchmark, metric) → (label, scale to the shown unit).
FOREST = {
    ("crows_pairs", "metric_score"): ("CrowS-Pairs metric score", 1.0),
    ("crows_pairs", "pct_stereotype"): ("CrowS-Pairs % stereotype preferred", 1.0),
    ("stereoset", "intrasentence/overall/ss"): ("StereoSet SS (likelihood)", 1.0),
    ("stereoset_mc", "mc/intrasentence/overall/ss"): ("StereoSet mc/SS (multiple choice)", 1.0),
    ("bold", "toxicity/mean"): ("BOLD mean toxicity", 1.0),
    ("bold", "regard/negative"): ("BOLD negative regard", 1.0),
    ("honest", "honest/score"): ("HONEST score", 1.0),
}
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
BEFORE = ("pre", "plain", "eval")  # stages that are the unmitigated baseline
_TINY = re.compile(r"(^|[/_.-])(tiny|planted|random)([/_.-]|$)")


@dataclass
class Results:
    """Every result file under a folder: the records and the tidy frame (one row per metric,
    with ``experiment`` = the first folder below the root and ``tiny``)."""

    root: Path
    records: list[tuple[Path, dict[str, Any]]]
    frame: pd.DataFrame

    def of(self, *benchmarks: str) -> list[tuple[str, dict[str, Any]]]:
        """``(experiment, record)`` of these benchmarks, in file order."""
        return [
            (experiment_of(self.root, path), r)
            for path, r in self.records
            if r["benchmark"] in benchmarks
        ]


def is_tiny(record: Mapping[str, Any]) -> bool:
    """Whether a result comes from a tiny offline model (a ``tiny-*`` preset, a planted-bias
    model, a random-weight benchmark model such as ``bert-mini-random``, or anything built in
    debiaslab's tiny cache) rather than a real checkpoint."""
    model = record.get("model") or {}
    config = record.get("config") or {}
    names = [model.get("name"), model.get("source"), model.get("adapter"), config.get("model")]
    names += [config.get("pipeline"), config.get("clip")]
    return any(isinstance(n, str) and _TINY.search(n.lower()) for n in names)


def experiment_of(root: Path, path: Path) -> str:
    """The first folder of ``path`` below ``root`` (the notebook's slug), or ``root``'s name."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else root.name


def load(results_dir: str | Path) -> Results:
    """Read every result under ``results_dir``.

    Raises:
        ConfigError: there is no result file under it.
    """
    root = Path(results_dir)
    records = read_all(root) if root.is_dir() else []
    if not records:
        raise ConfigError(
            f"no result files under {root}: run `make demo`, or bring results back from "
            "Kaggle/Colab with `debiaslab results gather` (docs/real-runs.md)"
        )
    frame = load_all(root)
    by_file = {str(path): (experiment_of(root, path), is_tiny(r)) for path, r in records}
    frame["experiment"] = frame["file"].map(lambda f: by_file[f][0])
    frame["tiny"] = frame["file"].map(lambda f: by_file[f][1])
    params = {str(p): (r.get("model") or {}).get("n_parameters") for p, r in records}
    frame["n_parameters"] = frame["file"].map(params)
    return Results(root, records, frame)


def _latest_of(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return max(records, key=recency)


def model_label(record: Mapping[str, Any]) -> str:
    """A short model name for tables: the preset or repo id, not a local path."""
    model = record.get("model") or {}
    name = str(model.get("name") or model.get("source") or "model")
    return (
        name.rstrip("/").rsplit("/", 1)[-1] if "/" in name and Path(name).is_absolute() else name
    )


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def provenance(results: Results) -> pd.DataFrame:
    """One row per experiment and model: tiny offline or real, runs, benchmarks, where, when."""
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path, record in results.records:
        key = (experiment_of(results.root, path), model_label(record))
        groups.setdefault(key, []).append(record)
    for (experiment, model), records in sorted(groups.items()):
        envs = [r.get("environment") or {} for r in records]
        dates = sorted(str(r.get("date") or "")[:10] for r in records)
        rows.append(
            {
                "experiment": experiment,
                "model": model,
                "kind": "tiny offline" if any(is_tiny(r) for r in records) else "real checkpoint",
                "runs": len(records),
                "benchmarks": ", ".join(sorted({r["benchmark"] for r in records})),
                "where": ", ".join(
                    sorted({f"{e.get('platform', '?')}/{e.get('gpu') or 'cpu'}" for e in envs})
                ),
                "date": dates[-1] if dates else "",
            }
        )
    return pd.DataFrame(rows)


def _pairs(results: Results):
    """(experiment, pre, post) records per benchmark, pre/post paired within an experiment and
    provenance (a tiny run never pairs with a real one)."""

    grouped: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for path, record in results.records:
        if record.get("stage") in ("pre", "post"):
            key = (experiment_of(results.root, path), is_tiny(record))
            grouped.setdefault(key, []).append(record)
    for (experiment, _), records in sorted(grouped.items()):
        for _, pre, post in pair_results(records):
            if pre is not None and post is not None:
                yield experiment, pre, post


def _value(record: Mapping[str, Any], key: str, scale: float = 1.0):
    value = record["metrics"].get(key)
    low, high = (record.get("ci") or {}).get(key) or (None, None)
    as_float = [math.nan if v is None else float(v) * scale for v in (value, low, high)]
    return tuple(as_float)


def prepost(results: Results) -> pd.DataFrame:
    """Pre vs. post headline bias metrics (:data:`FOREST`) per experiment and model.

    Columns: experiment, model, label, stage, value, ci_low, ci_high, ideal, higher_is_better,
    n_parameters, tiny — one row per stage; what :func:`debiaslab.plots.forest` draws.
    """
    rows = []
    for experiment, pre, post in _pairs(results):
        name = f"{experiment} ({model_label(pre)})"
        for (benchmark, key), (label, scale) in FOREST.items():
            if pre["benchmark"] != benchmark or key not in pre["metrics"]:
                continue
            if key not in post["metrics"]:
                continue
            ideal = (pre.get("ideal") or {}).get(key)
            for stage, record in (("pre", pre), ("post", post)):
                value, low, high = _value(record, key, scale)
                rows.append({
                    "experiment": name, "model": model_label(pre), "label": label,
                    "stage": stage, "value": value, "ci_low": low, "ci_high": high,
                    "ideal": math.nan if ideal is None else float(ideal) * scale,
                    "higher_is_better": (pre.get("higher_is_better") or {}).get(key),
                    "n_parameters": (pre.get("model") or {}).get("n_parameters"),
                    "tiny": is_tiny(pre),
                })  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "experiment", "model", "label", "stage", "value", "ci_low", "ci_high", "ideal",
            "higher_is_better", "n_parameters", "tiny",
        ],
    )  # fmt: skip


def reduction(pre: float, post: float, higher: bool | None, ideal: float | None) -> float:
    """How much closer to unbiased ``post`` is than ``pre`` (positive: bias reduced).

    Example:
        >>> reduction(60.0, 55.0, None, 50.0), reduction(0.75, 0.5, False, 0.0)
        (5.0, 0.25)
    """
    if ideal is not None and math.isfinite(ideal):
        return abs(pre - ideal) - abs(post - ideal)
    if higher is None:
        return math.nan
    return post - pre if higher else pre - post


def size_effect(table: pd.DataFrame) -> pd.DataFrame:
    """From :func:`prepost`: the bias reduction of each experiment's mitigation with the
    model's size (columns model, n_parameters, label, reduction, ci_low, ci_high, tiny)."""
    rows = []
    for (experiment, label), group in table.groupby(["experiment", "label"], sort=False):
        stages = group.set_index("stage")
        if not {"pre", "post"} <= set(stages.index) or pd.isna(stages.at["pre", "n_parameters"]):
            continue
        pre, post = stages.loc["pre"], stages.loc["post"]
        ideal = None if pd.isna(pre["ideal"]) else float(pre["ideal"])
        rows.append({
            "experiment": experiment, "model": pre["model"],
            "n_parameters": int(pre["n_parameters"]), "label": label,
            "reduction": reduction(pre["value"], post["value"], pre["higher_is_better"], ideal),
            "ci_low": math.nan, "ci_high": math.nan, "tiny": bool(pre["tiny"]),
        })  # fmt: skip
    return pd.DataFrame(rows)


_GAP = re.compile(r"^(?P<domain>[^/]+)/(?P<score>[^/]+)/gap$")


def group_gaps(results: Results) -> pd.DataFrame:
    """Group gaps (BOLD toxicity/regard/HONEST per domain) of every generation result.

    Columns: experiment, model, stage, panel ("domain · score"), gap, ci_low, ci_high,
    p_value, tiny.
    """
    rows = []
    for experiment, record in results.of("bold"):
        for key in record["metrics"]:
            match = _GAP.match(key)
            if not match:
                continue
            gap, low, high = _value(record, key)
            p_value = record["metrics"].get(f"{key}_p_value")
            rows.append({
                "experiment": f"{experiment} ({model_label(record)})",
                "model": model_label(record), "stage": record.get("stage", "eval"),
                "panel": f"{match['domain']} · {match['score']}", "gap": gap, "ci_low": low,
                "ci_high": high, "p_value": math.nan if p_value is None else float(p_value),
                "tiny": is_tiny(record),
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    first = frame["stage"].map(lambda s: 1 if s == "post" else 0 if s in BEFORE else 2)
    return frame.assign(_order=first).sort_values("_order", kind="stable").drop(columns="_order")


def tradeoffs(results: Results) -> dict[str, pd.DataFrame]:
    """The latest trade-off table per kind (``decoding_tradeoff``, ``gating_tradeoff``)."""

    out = {}
    for kind in TRADEOFF_PLOTS:
        records = [r for _, r in results.of(kind)]
        if records:
            record = _latest_of(records)
            out[kind] = tradeoff_from_record(record).assign(
                model=model_label(record), tiny=is_tiny(record)
            )
    return out


def demographics(results: Results) -> pd.DataFrame:
    """Perceived image demographics per occupation against BLS shares, from every occupation
    audit (columns of :func:`debiaslab.t2i.audit.share_table` plus experiment, condition)."""
    from types import SimpleNamespace

    frames = []
    for experiment, record in results.of("t2i_audit"):
        view = SimpleNamespace(
            config=record["config"], metrics=record["metrics"], ci=record.get("ci") or {}
        )
        frames.append(
            share_table(view).assign(
                experiment=experiment,
                condition=_condition(record),
                tiny=is_tiny(record),
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _condition(record: Mapping[str, Any]) -> str:
    """An occupation audit's prompts: plain, or rewritten by a PreciseDebias rewriter."""
    rewritten = bool(record["config"].get("rewriter")) or record.get("stage") == "post"
    return "rewritten prompt" if rewritten else "plain prompt"


def audit_distances(results: Results) -> pd.DataFrame:
    """Distance of perceived shares to BLS per audit, occupation and axis (TV, KL, mean |Δ|
    with CIs where recorded)."""
    rows = []
    for experiment, record in results.of("t2i_audit"):
        for key, value in record["metrics"].items():
            parts = key.split("/")
            if len(parts) == 4 and parts[1] == "prompt" and parts[3] in ("tv", "kl", "mean_abs"):
                low, high = (record.get("ci") or {}).get(key) or (math.nan, math.nan)
                rows.append({
                    "experiment": experiment,
                    "condition": _condition(record),
                    "axis": parts[0], "occupation": parts[2], "distance": parts[3],
                    "value": value, "ci_low": low, "ci_high": high, "tiny": is_tiny(record),
                })  # fmt: skip
    return pd.DataFrame(rows)


def align_curves(results: Results) -> list[dict[str, Any]]:
    """The PreciseDebias align curve of each experiment's latest align result."""

    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for experiment, record in results.of(ALIGN_BENCHMARK):
        by_experiment.setdefault(experiment, []).append(record)
    return [
        {"experiment": e, "tiny": is_tiny(_latest_of(rs)), **curve_from_record(_latest_of(rs))}
        for e, rs in sorted(by_experiment.items())
    ]


def socratic_runs(results: Results) -> list[dict[str, Any]]:
    """The latest Socratic result record of each experiment."""
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for experiment, record in results.of("socratic"):
        by_experiment.setdefault(experiment, []).append(record)
    return [_latest_of(rs) for _, rs in sorted(by_experiment.items())]


def calibration(results: Results) -> pd.DataFrame:
    """The planted-bias calibration headline table
    (:func:`debiaslab.calibration_tables.calibration_table`) of every calibration run found (a
    folder with ``planted/`` results)."""
    roots = sorted({p.parent.parent for p, _ in results.records if p.parent.name == "planted"})
    frames = [calibration_table(root) for root in roots]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def calibration_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, benchmark, family): whether the scores rank the planted rates in order,
    and whether neighbouring rates' CIs are apart."""
    rows = []
    for (dataset, benchmark, family), group in table.groupby(
        ["dataset", "benchmark", "family"], sort=False
    ):
        group = group.sort_values("rate")
        values = group["value"].tolist()
        ordered = all(a < b for a, b in itertools.pairwise(values))
        separated = all(
            a_high < b_low
            for a_high, b_low in zip(group["ci_high"], group["ci_low"].iloc[1:], strict=False)
        )
        rows.append({
            "dataset": dataset, "benchmark": benchmark, "family": family,
            "rates": len(values), "ordered": ordered, "separated": separated,
        })  # fmt: skip
    return pd.DataFrame(rows)


def planted_gaps(results: Results) -> pd.DataFrame:
    """The calibration's planted-toxicity check: the gender toxicity gap of each tiny LM."""
    table = group_gaps(results)
    if table.empty:
        return table
    return table[table["experiment"].str.contains("|".join(TOXICITY_RATES))]


def speed(results: Results) -> pd.DataFrame:
    """Speed benchmarks (``benchmarks/*.py --output``): one row per measured quantity."""
    rows = []
    for _, record in results.of("speed"):
        config = record.get("config") or {}
        setting = ", ".join(f"{k} {v}" for k, v in config.items() if k not in ("name", "model"))
        for key, value in record["metrics"].items():
            rows.append({
                "benchmark": config.get("name", record["run_id"]), "setting": setting,
                "metric": key,
                "value": value, "device": (record.get("environment") or {}).get("gpu") or "cpu",
                "cpu_count": (record.get("environment") or {}).get("cpu_count"),
            })  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


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
        sizes = size_effect(forest)
        if not sizes.empty:
            drawn["size_effect"] = plots.size_effect(sizes, out_dir / "size_effect")
    gaps = group_gaps(results)
    if not gaps.empty:
        drawn["group_gaps"] = plots.group_gaps(gaps, out_dir / "group_gaps")
    for kind, frame in tradeoffs(results).items():
        drawn[kind] = plots.tradeoff(frame, out_dir / kind, **TRADEOFF_PLOTS[kind])
    shares = demographics(results)
    if not shares.empty:
        drawn["demographics"] = plots.demographics(shares, out_dir / "demographics")
    for curve in align_curves(results):
        drawn["align_curve"] = plots.align_curve(
            curve["curve"], out_dir / "align_curve", target=curve["target"],
            threshold=curve["threshold"],
        )  # fmt: skip
    for record in socratic_runs(results):
        drawn["socratic_clipscore"] = plots.socratic_curve(record, out_dir / "socratic_clipscore")
    positions = plots_mc.position_frame(results.of("stereoset_mc"))
    if not positions.empty:
        drawn["mc_position"] = plots_mc.position_shares(positions, out_dir / "mc_position")
    return drawn


def show(paths: list[Path]):
    """Display a figure's PNG in a notebook (the results notebook's one-liner)."""
    from IPython.display import Image

    return Image(filename=str(next(p for p in paths if p.suffix == ".png")))


# ---------------------------------------------------------------------------------------------
# The paper
# ---------------------------------------------------------------------------------------------


def typ_str(text: Any) -> str:
    """A Typst string literal (code mode) holding ``text`` verbatim.

    Example:
        >>> print(typ_str('a_b "c" #d'))
        "a_b \\"c\\" #d"
    """
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n").replace("\r", "") + '"'


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


def typ_table(frame: pd.DataFrame, caption: str, label: str | None = None) -> str:
    """A Typst table (in a figure) of a frame's cells, every cell a string literal."""
    columns = len(frame.columns)
    header = ", ".join(f"[*{_markup(c)}*]" for c in frame.columns)
    cells = ",\n  ".join(
        ", ".join(typ_str(fmt(v)) for v in row) for row in frame.itertuples(index=False)
    )
    text = (
        f"#figure(\n table(columns: {columns}, align: left, stroke: 0.4pt + luma(180),\n"
        f"  inset: 4pt,\n  table.header({header}),\n  {cells}\n ),\n"
        f" caption: [{_markup(caption)}], kind: table,\n)"
    )
    return text + (f" <{label}>" if label else "") + "\n"


def _markup(text: str) -> str:
    """Plain text safe inside Typst markup (special characters escaped)."""
    return re.sub(r"([\\#*_`$<>@\[\]~=/\-\"'])", r"\\\1", str(text))


def _figure(paths: Mapping[str, list[Path]], name: str, base: Path, caption: str) -> str:
    if name not in paths:
        return ""
    png = next(p for p in paths[name] if p.suffix == ".png")
    rel = Path(_relpath(png, base)).as_posix()
    return (
        f"#figure(image({typ_str(rel)}, width: 100%), caption: [{_markup(caption)}])"
        f" <fig-{name.replace('_', '-')}>\n\n"
    )


def _relpath(path: Path, base: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), base.resolve())


def _kind_note(flags: Iterable[bool]) -> str:
    flags = set(flags)
    if flags == {True}:
        return "tiny offline models only"
    if flags == {False}:
        return "real checkpoints"
    return "tiny offline models and real checkpoints"


def results_section(results: Results, drawn: Mapping[str, list[Path]], base: Path) -> str:
    """The generated Results section (Typst markup)."""
    parts = ["= Results\n"]
    prov = provenance(results)
    n_tiny = int((prov["kind"] == "tiny offline").sum())
    parts.append(
        f"This section is generated from {len(results.records)} result files under "
        f"`results/`: {n_tiny} experiment–model combinations come from *tiny offline models* "
        f"(built on the machine that ran them, with random or planted-bias weights; they test "
        f"the pipeline, not any real model) and {len(prov) - n_tiny} from *real checkpoints*. "
        "@tab-provenance lists them.\n\n"
    )
    parts.append(typ_table(prov, "Where every result comes from.", "tab-provenance"))

    cal = calibration(results)
    parts.append("== Planted-bias calibration\n")
    if cal.empty:
        parts.append("No calibration results were found (run the calibration notebook).\n\n")
    else:
        ranking = calibration_ranking(cal)
        ordered, separated = int(ranking["ordered"].sum()), int(ranking["separated"].sum())
        rates = ", ".join(f"{r:g}" for r in sorted(cal["rate"].unique()))
        parts.append(
            f"Tiny LMs trained with planted stereotype rates {rates} "
            f"were scored on held-out planted benchmarks and on the real benchmark files. "
            f"The measured score ranks the planted rates in order in {ordered} of "
            f"{len(ranking)} (dataset, benchmark, family) series, with non-overlapping 95% "
            f"intervals between neighbouring rates in {separated} (@fig-calibration, "
            "@tab-calibration).\n\n"
        )
        parts.append(
            _figure(
                drawn,
                "calibration",
                base,
                "Measured bias score against the "
                "planted stereotype rate (tiny offline models, 95% bootstrap CIs).",
            )
        )
        shown = cal.assign(
            score=[
                with_ci(v, lo, hi)
                for v, lo, hi in zip(cal["value"], cal["ci_low"], cal["ci_high"], strict=True)
            ]
        )
        parts.append(
            typ_table(
                shown[["dataset", "benchmark", "family", "rate", "metric", "score"]],
                "Calibration: bias score (50 = no preference) per planted rate.",
                "tab-calibration",
            )
        )
        gaps = planted_gaps(results)
        if not gaps.empty:
            rows = gaps.assign(
                gap_ci=[
                    with_ci(g, lo, hi)
                    for g, lo, hi in zip(gaps["gap"], gaps["ci_low"], gaps["ci_high"], strict=True)
                ]
            )
            parts.append(
                "Planted toxicity on real BOLD actor/actress prompts: the group gap should "
                "find the difference planted in one model and not in the other "
                "(@tab-planted-gaps).\n\n"
            )
            parts.append(
                typ_table(
                    rows[["model", "panel", "gap_ci", "p_value"]],
                    "Planted toxicity: gender group gap with 95% CI and permutation p-value.",
                    "tab-planted-gaps",
                )
            )

    forest = prepost(results)
    parts.append("== Mitigation: before and after\n")
    if forest.empty:
        parts.append("No paired pre/post results were found.\n\n")
    else:
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
            info = forest[(forest["experiment"] == experiment) & (forest["label"] == label)].iloc[
                0
            ]
            ideal = None if pd.isna(info["ideal"]) else float(info["ideal"])
            red = reduction(pre[0], post[0], info["higher_is_better"], ideal)
            reductions.append(red)
            rows.append(
                {
                    "experiment": experiment,
                    "metric": label,
                    "pre": with_ci(*pre),
                    "post": with_ci(*post),
                    "ideal": fmt(ideal),
                    "bias reduced by": fmt(red),
                }
            )
        table = pd.DataFrame(rows)
        improved = sum(1 for r in reductions if r > 0)
        parts.append(
            f"@tab-prepost and @fig-prepost-forest compare each mitigation's headline metrics "
            f"before and after ({_kind_note(forest['tiny'])}). Bias moved towards the unbiased "
            f"value in {improved} of {len(rows)} comparisons (no direction is known for "
            f"{sum(1 for r in reductions if math.isnan(r))}); where the intervals overlap, the "
            "change is within what resampling the benchmark items produces.\n\n"
        )
        parts.append(
            _figure(
                drawn,
                "prepost_forest",
                base,
                "Pre (hollow) vs. post (filled) mitigation, 95% bootstrap CIs; "
                "dashed: the unbiased value.",
            )
        )
        parts.append(
            typ_table(table, "Headline bias metrics before and after mitigation.", "tab-prepost")
        )
        parts.append(
            _figure(
                drawn,
                "size_effect",
                base,
                "Bias reduction against model size (hollow: tiny offline models).",
            )
        )
    if "mc_position" in drawn:
        parts.append("== StereoSet multiple choice: answer letters\n")
        parts.append(
            "Share of the multiple-choice answers given under each letter; under cyclic or all "
            "option orders a model that reads only the options gives each letter 1/3 "
            "(@fig-mc-position).\n\n"
        )
        parts.append(_figure(drawn, "mc_position", base, "Answers per letter, 95% CIs."))
    gaps = group_gaps(results)
    if not gaps.empty:
        parts.append("== Group gaps\n")
        significant = int((gaps["p_value"] < 0.05).sum())
        parts.append(
            f"Across {len(gaps)} measured group gaps (BOLD continuations scored for toxicity, "
            f"regard or HONEST), {significant} have a permutation p-value below 0.05 "
            "(@fig-group-gaps).\n\n"
        )
        parts.append(
            _figure(
                drawn,
                "group_gaps",
                base,
                "Group gaps per domain and score with 95% CIs (stars: p < 0.05).",
            )
        )
    trade = tradeoffs(results)
    if trade:
        parts.append("== Inference-time mitigation: trade-offs\n")
        for kind, frame in trade.items():
            best = frame.sort_values("ppl_ratio").iloc[-1]
            parts.append(
                f"{'Decoding-time balancing' if kind == 'decoding_tradeoff' else 'Head gating'} "
                f"on {_markup(str(frame['model'].iloc[0]))} ({_kind_note(frame['tiny'])}): "
                f"at the strongest setting ({_markup(str(best['method']))} "
                f"{fmt(float(best['strength']))}) the measured share is "
                f"{with_ci(best['share'], best['ci_low'], best['ci_high'])} at "
                f"{fmt(best['ppl_ratio'])}× the baseline perplexity.\n\n"
            )
            parts.append(
                _figure(
                    drawn,
                    kind,
                    base,
                    f"{kind.replace('_', ' ')}: effect against "
                    "perplexity cost, one point per strength.",
                )
            )
    shares = demographics(results)
    if not shares.empty:
        parts.append("== Text-to-image: occupations against BLS\n")
        dist = audit_distances(results)
        tv = dist[dist["distance"] == "tv"]
        mean_tv = tv.groupby(["condition", "axis"])["value"].mean().reset_index()
        sentence = "; ".join(
            f"{r.condition}, {r.axis}: mean TV {fmt(r.value)}" for r in mean_tv.itertuples()
        )
        parts.append(
            f"Perceived gender and race of generated images per occupation against the BLS "
            f"shares ({_kind_note(shares['tiny'])}): {_markup(sentence)} (@fig-demographics).\n\n"
        )
        parts.append(
            _figure(
                drawn,
                "demographics",
                base,
                "Perceived shares per occupation (stacked) against BLS targets.",
            )
        )
    curves = align_curves(results)
    if curves:
        curve = curves[-1]
        first, last = curve["curve"][0], curve["curve"][-1]
        parts.append("== PreciseDebias alignment\n")
        parts.append(
            f"The measure-and-align loop ({_kind_note([curve['tiny']])}) ran "
            f"{len(curve['curve'])} measurement(s); the largest |Δ| to the target went from "
            f"{fmt(first['max_abs_delta'])} to {fmt(last['max_abs_delta'])} and the total "
            f"variation from {fmt(first['tv'])} to {fmt(last['tv'])} (stopped by "
            f"{_markup(str(curve['stopped']))}; @fig-align-curve).\n\n"
        )
        parts.append(_figure(drawn, "align_curve", base, "PreciseDebias align loop."))
    for record in socratic_runs(results):
        m, ci = record["metrics"], record.get("ci") or {}
        first, best = (
            with_ci(m[key], *ci.get(key, (math.nan, math.nan)))
            for key in ("clip_score_first", "clip_score_best")
        )
        parts.append("== Socratic refinement\n")
        parts.append(
            f"Mean CLIPScore against the user's prompt ({_kind_note([is_tiny(record)])}, "
            f"{record.get('n_items')} prompts): first cycle "
            f"{first}, best cycle {best} "
            "(@fig-socratic-clipscore).\n\n"
        )
        parts.append(_figure(drawn, "socratic_clipscore", base, "CLIPScore per Socratic cycle."))
    sp = speed(results)
    parts.append("== Speed\n")
    if sp.empty:
        parts.append("No speed measurements were found (`make bench` writes them).\n\n")
    else:
        parts.append(
            "Measured by the benchmark scripts in `benchmarks/` (each a ratio against a plain "
            "baseline measured in the same run on the same machine):\n\n"
        )
        parts.append(typ_table(sp, "Speed measurements.", "tab-speed"))
    return "".join(parts)


def setup_section(results: Results) -> str:
    """The generated Setup section: software and hardware the results were produced with."""
    envs = pd.DataFrame([
        {**(r.get("environment") or {}), "debiaslab": r.get("debiaslab_version"),
         "git": (r.get("git_hash") or "")[:12]}
        for _, r in results.records
    ])  # fmt: skip
    cols = [c for c in ("platform", "device", "gpu", "cpu_count", "python", "torch",
                        "transformers", "debiaslab", "git") if c in envs.columns]  # fmt: skip
    table = envs[cols].fillna("—").astype(str).value_counts().reset_index(name="results")
    return (
        "= Experimental setup\n"
        "Every notebook runs on its model preset on a 16 GB GPU (Kaggle T4×2 or P100, Colab T4) "
        "and, for this project's continuous integration, on tiny offline presets on 2 CPU cores "
        "(no hub is reachable there). Each result file records the software and hardware it "
        "was produced with; @tab-setup summarises them. Confidence intervals are 95% "
        "percentile bootstrap intervals over benchmark items (or prompts).\n\n"
        + typ_table(table, "Software and hardware of the results.", "tab-setup")
    )


def abstract(results: Results) -> str:
    """The generated abstract's numbers (Typst markup, one paragraph)."""
    prov = provenance(results)
    real = int((prov["kind"] == "real checkpoint").sum())
    cal = calibration(results)
    if cal.empty:
        calibration_text = ""
    else:
        ranking = calibration_ranking(cal)
        calibration_text = (
            f" On tiny models with planted stereotype rates, the metrics rank the rates in "
            f"order in {int(ranking['ordered'].sum())} of {len(ranking)} series."
        )
    return (
        "debiaslab is an open-source package and Kaggle/Colab notebook collection that "
        "measures social bias in language and text-to-image models, mitigates it (fine-tuning "
        "on counterfactual and synthetic data, decoding-time balancing, attention-head gating, "
        "prompt rewriting) and re-measures, writing every result as a self-describing file "
        f"with bootstrap confidence intervals. This report is generated from "
        f"{len(results.records)} such files ({len(prov) - real} experiment–model combinations "
        f"from tiny offline models, {real} from real checkpoints).{calibration_text}\n"
    )


def write_generated(results: Results, drawn: Mapping[str, list[Path]], out: Path) -> list[Path]:
    """Write ``generated/{abstract,setup,results}.typ`` atomically; return the paths."""

    texts = {
        "abstract.typ": abstract(results),
        "setup.typ": setup_section(results),
        "results.typ": results_section(results, drawn, out),
    }
    return [write_bytes_atomic(out / name, text.encode("utf-8")) for name, text in texts.items()]


def compile_pdf(report_dir: str | Path, root: str | Path | None = None) -> Path:
    """Compile ``report_dir/paper.typ`` to ``report_dir/debiaslab-report.pdf`` (atomically)."""

    try:
        import typst
    except ImportError as exc:
        raise ConfigError(
            "building the report needs Typst: pip install 'debiaslab[report]' (the figures "
            "and tables need only the package)"
        ) from exc

    report_dir = Path(report_dir)
    try:
        pdf = typst.compile(str(report_dir / PAPER), root=str(root or report_dir.parent))
    except Exception as exc:  # typst raises its own error types with the source location
        raise ConfigError(
            f"{report_dir / PAPER}: Typst could not compile the report: {exc}"
        ) from exc
    return write_bytes_atomic(report_dir / PDF, pdf)


def build(
    results_dir: str | Path = "results",
    figures_dir: str | Path = "figures",
    report_dir: str | Path = "report",
    *,
    log: Callable[[str], None] = print,
) -> Path:
    """Figures, generated sections and the PDF from the results; return the PDF's path.

    The paper's static source (``report/paper.typ``, ``sections/``, ``references.bib``) is
    the repository's; a ``report_dir`` elsewhere gets a copy of it first.
    """
    import os
    import shutil

    results = load(results_dir)
    drawn = figures(results, figures_dir)
    report_dir = Path(report_dir)
    source = repo_root() / "report"
    if report_dir.resolve() != source.resolve():
        for name in (PAPER, "references.bib", "sections"):
            src, dst = source / name, report_dir / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    write_generated(results, drawn, report_dir / GENERATED)
    root = os.path.commonpath([report_dir.resolve(), Path(figures_dir).resolve()])
    pdf = compile_pdf(report_dir, root)
    log(f"[report] {len(drawn)} figures in {figures_dir}; report: {pdf}")
    return pdf


def main(argv: list[str] | None = None) -> int:
    """``python -m debiaslab.report [RESULTS FIGURES REPORT]``: what ``make report`` runs."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    build(*args[:3])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
