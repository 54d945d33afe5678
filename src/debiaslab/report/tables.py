"""The report's tables: every result file under ``results/`` read into tidy frames.

:func:`load` reads them all (:mod:`debiaslab.results`); each table function turns them into a
frame that :mod:`debiaslab.report.figures` draws and :mod:`debiaslab.report.numbers` puts in the
paper: provenance (tiny offline model or real checkpoint), pre vs. post per model, the effect
against model size, group gaps, trade-offs, image demographics against BLS, the PreciseDebias
align curve, Socratic runs, the planted-bias calibration, speed.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from debiaslab.calibration_tables import TOXICITY_RATES, calibration_table
from debiaslab.cards.model import pair_results
from debiaslab.errors import ConfigError
from debiaslab.mitigation.tradeoff import tradeoff_from_record
from debiaslab.results import load_all, read_all, recency
from debiaslab.t2i.audit import share_table
from debiaslab.t2i.precise_debias.align import ALIGN_BENCHMARK, curve_from_record

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
TRADEOFFS = ("decoding_tradeoff", "gating_tradeoff")  # inference-time mitigation sweeps
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


def is_tiny_name(name: str) -> bool:
    """Whether a model or classifier name or path is a tiny offline one (``tiny-*``,
    ``*-planted*``, ``*-random``, a folder in debiaslab's tiny cache)."""
    return bool(_TINY.search(name.lower()))


def is_tiny(record: Mapping[str, Any]) -> bool:
    """Whether a result comes from a tiny offline model (a ``tiny-*`` preset, a planted-bias
    model, a random-weight benchmark model such as ``bert-mini-random``, or anything built in
    debiaslab's tiny cache) rather than a real checkpoint. A model whose result records its
    verified source (``display_name`` and ``gguf_sha256``, :func:`debiaslab.smollm2.source_record`)
    is real wherever its files or adapters live."""
    model = record.get("model") or {}
    if model.get("display_name") and model.get("gguf_sha256"):
        return False
    config = record.get("config") or {}
    names = [model.get("name"), model.get("source"), model.get("adapter"), config.get("model")]
    names += [config.get("pipeline"), config.get("clip")]
    return any(isinstance(n, str) and is_tiny_name(n) for n in names)


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
    """A short model name for tables: the model's display name where its result records one
    (SmolLM2's "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)"), else the preset or repo id,
    not a local path."""
    model = record.get("model") or {}
    if model.get("display_name"):
        return str(model["display_name"])
    name = str(model.get("name") or model.get("source") or "model")
    return (
        name.rstrip("/").rsplit("/", 1)[-1] if "/" in name and Path(name).is_absolute() else name
    )


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


def direction_of(record: Mapping[str, Any], key: str) -> tuple[bool | None, float | None]:
    """``(higher_is_better, ideal)`` of metric ``key`` as its result record declares them (None
    where the record does not say): the one place the report reads a metric's direction."""
    return (record.get("higher_is_better") or {}).get(key), (record.get("ideal") or {}).get(key)


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
            higher_is_better, ideal = direction_of(pre, key)
            for stage, record in (("pre", pre), ("post", post)):
                value, low, high = _value(record, key, scale)
                rows.append({
                    "experiment": name, "model": model_label(pre), "label": label,
                    "stage": stage, "value": value, "ci_low": low, "ci_high": high,
                    "ideal": math.nan if ideal is None else float(ideal) * scale,
                    "higher_is_better": higher_is_better,
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


# Scores given by a classifier, and the generation setting that names it.
CLASSIFIER_SCORES = {"toxicity": "toxicity_model", "regard": "regard_model"}


def classifier_of(record: Mapping[str, Any], score: str) -> str | None:
    """The classifier that scored ``score`` (``toxicity`` or ``regard``) in a generation result."""
    field = CLASSIFIER_SCORES.get(score)
    if field is None:
        return None
    generation = (record.get("eval_config") or {}).get("generation") or {}
    name = generation.get(field) or (record.get("config") or {}).get(field)
    return None if name is None else str(name)


def tiny_classifier_scores(record: Mapping[str, Any]) -> list[str]:
    """The scores of a result (``toxicity``, ``regard``) that a tiny offline classifier gave:
    they test the pipeline, not the model, whatever model wrote the text."""
    return [
        score for score in CLASSIFIER_SCORES
        if (name := classifier_of(record, score)) and is_tiny_name(name)
    ]  # fmt: skip


GAP_KEY = re.compile(r"^(?P<domain>[^/]+)/(?P<score>[^/]+)/gap$")


def group_gaps(results: Results) -> pd.DataFrame:
    """Group gaps (BOLD toxicity/regard/HONEST per domain) of every generation result.

    Columns: experiment, model, stage, panel ("domain · score"), gap, ci_low, ci_high,
    p_value, tiny.
    """
    rows = []
    for experiment, record in results.of("bold"):
        for key in record["metrics"]:
            match = GAP_KEY.match(key)
            if not match:
                continue
            gap, low, high = _value(record, key)
            p_value = record["metrics"].get(f"{key}_p_value")
            marked = any(match["score"].startswith(s) for s in tiny_classifier_scores(record))
            rows.append({
                "experiment": f"{experiment} ({model_label(record)})",
                "model": model_label(record), "stage": record.get("stage", "eval"),
                "panel": f"{match['domain']} · {match['score']}"
                + (" (tiny classifier)" if marked else ""),
                "gap": gap, "ci_low": low,
                "ci_high": high, "p_value": math.nan if p_value is None else float(p_value),
                "tiny": is_tiny(record), "tiny_classifier": marked,
            })  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    first = frame["stage"].map(lambda s: 1 if s == "post" else 0 if s in BEFORE else 2)
    return frame.assign(_order=first).sort_values("_order", kind="stable").drop(columns="_order")


def tradeoffs(results: Results) -> dict[str, pd.DataFrame]:
    """The latest trade-off table per kind (``decoding_tradeoff``, ``gating_tradeoff``) and
    provenance: named ``<kind>_real`` for real models, ``<kind>`` for tiny ones (the figure's
    name; the frame's ``kind`` column holds the kind). Real first."""

    out = {}
    for kind in TRADEOFFS:
        for tiny in (False, True):
            records = [r for _, r in results.of(kind) if is_tiny(r) == tiny]
            if records:
                record = _latest_of(records)
                out[kind if tiny else f"{kind}_real"] = tradeoff_from_record(record).assign(
                    model=model_label(record), tiny=tiny, kind=kind
                )
    return out


def demographics(results: Results) -> pd.DataFrame:
    """Perceived image demographics per occupation against BLS shares, from every occupation
    audit (columns of :func:`debiaslab.t2i.audit.share_table` plus experiment, condition)."""
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
