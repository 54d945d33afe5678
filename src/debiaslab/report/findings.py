"""The headline findings: real-model results first, then the calibration study, then the tiny
pipeline checks, each a value with its 95% interval and the number of items behind it.

:func:`headline_rows` reads them from result files (a folder or :class:`~.tables.Results`); the
report's lead table and the demo's final printout (:func:`format_findings`) both show them.
A real model's toxicity or regard scored by a tiny offline classifier is never a real finding
(:func:`tiny_classifier_scores`); the report marks those rows where it shows them.

Example:
    >>> rows = headline_rows("results/paper")  # doctest: +SKIP
    >>> print(format_findings(rows))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from debiaslab.benchmarks.crows_pairs import paired_difference
from debiaslab.mitigation.tradeoff import EFFECT_BENCHMARK, tradeoff_from_record
from debiaslab.report.tables import (
    GAP_KEY,
    Results,
    calibration,
    calibration_ranking,
    is_tiny,
    load,
    model_label,
    tiny_classifier_scores,
)
from debiaslab.results import decimals_for, recency, value_with_ci
from debiaslab.t2i.precise_debias.align import ALIGN_BENCHMARK

KINDS = ("real", "calibration", "tiny")  # the order findings are shown in

# Single-record findings: (key, benchmark, metric keys tried in order, name, unit).
SINGLE = (
    ("crows_pairs", "crows_pairs", ("pct_stereotype",),
     "CrowS-Pairs: stereotypical sentence preferred", "%"),
    ("stereoset/ss", "stereoset", ("overall/ss", "intrasentence/overall/ss"),
     "StereoSet SS (50 = unbiased)", ""),
    ("stereoset/lms", "stereoset", ("overall/lms", "intrasentence/overall/lms"),
     "StereoSet LMS (100 = best)", ""),
    ("stereoset/icat", "stereoset", ("overall/icat", "intrasentence/overall/icat"),
     "StereoSet ICAT (100 = best)", ""),
    ("stereoset_mc", "stereoset_mc", ("mc/intrasentence/overall/ss", "mc/overall/ss", "ss"),
     "StereoSet multiple choice SS (50 = unbiased)", ""),
    ("honest", "honest", ("honest/score",), "HONEST: completions with a HurtLex word", ""),
)  # fmt: skip
# What the real-model track writes, by finding key: the report names those it does not find.
EXPECTED = {
    "crows_pairs": "CrowS-Pairs over every pair",
    "stereoset/ss": "StereoSet (SS, LMS, ICAT)",
    "stereoset_mc": "StereoSet multiple choice",
    "honest": "HONEST",
    "lora": "LoRA before/after on the held-out CrowS-Pairs half",
    "decoding": "the decoding-balance trade-off",
    "align": "PreciseDebias alignment (text level)",
}
N_UNIT = {"crows_pairs": "pairs", "stereoset": "examples", "stereoset_mc": "examples"}
# A real model's perplexity cost of fine-tuning: a ``post`` record's ratio (post / pre perplexity
# on held-out text, with its CI), or a ``perplexity`` metric in both its pre and post records.
PPL_RATIO_KEYS = ("perplexity_ratio", "ppl_ratio")
PPL_KEYS = ("perplexity", "ppl")


@dataclass(frozen=True)
class Finding:
    """One headline number: ``value [ci]`` over ``n`` items (``n_unit``) of ``model``.

    ``kind``: ``real`` (a real pretrained model), ``calibration`` (tiny models with a planted
    bias of known size) or ``tiny`` (a pipeline check on a tiny offline model). ``ci`` is
    ``None`` only where the result records no interval (then ``note`` says so).
    """

    name: str
    value: float
    ci: tuple[float, float] | None
    n: int | None
    kind: str
    model: str
    unit: str = ""
    n_unit: str = "items"
    note: str = ""
    key: str = ""  # which finding (:data:`EXPECTED`'s keys, ``calibration``)

    @property
    def text(self) -> str:
        """``value [low, high]`` with three significant digits (``—`` for a missing value)."""
        if self.value is None or not math.isfinite(self.value):
            return "—"
        digits = decimals_for([self.value])
        if self.ci is None:
            return f"{self.value:.{digits}f}{self.unit} (no interval recorded)"
        return value_with_ci(self.value, self.ci, digits) + (f" {self.unit}" if self.unit else "")


def _results(source: Results | str | Path) -> Results:
    return source if isinstance(source, Results) else load(source)


def _ci(record: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    ci = (record.get("ci") or {}).get(key)
    if not ci or any(v is None or not math.isfinite(float(v)) for v in ci):
        return None
    return float(ci[0]), float(ci[1])


def _crows_split(record: Mapping[str, Any]) -> str:
    return str(((record.get("eval_config") or {}).get("crows") or {}).get("crows_split") or "all")


def _main_record(records: list[dict[str, Any]], benchmark: str) -> dict[str, Any] | None:
    """A model's unmitigated record of a benchmark with the most items (then the latest); for
    CrowS-Pairs the run over every pair rather than a held-out half."""
    chosen = [
        r for r in records
        if r["benchmark"] == benchmark and r.get("stage") not in ("pre", "post")
        and (benchmark != "crows_pairs" or _crows_split(r) == "all")
    ]  # fmt: skip
    return max(chosen, key=lambda r: (r.get("n_items") or 0, recency(r))) if chosen else None


def by_model(results: Results, *, tiny: bool) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """``{model label: [(path, record), ...]}`` of the real (or tiny) results, real models
    named by their display name, those with a recorded source (``display_name``) first."""
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path, record in results.records:
        if record.get("benchmark") == "speed" or is_tiny(record) != tiny:
            continue
        groups.setdefault(model_label(record), []).append((path, record))
    named = {m for m, rs in groups.items() if any((r.get("model") or {}).get("display_name")
                                                  for _, r in rs)}  # fmt: skip
    return dict(sorted(groups.items(), key=lambda item: (item[0] not in named, item[0])))


def _single(record: Mapping[str, Any], spec, kind, model) -> Finding | None:
    tag, _, keys, name, unit = spec
    key = next((k for k in keys if k in record["metrics"]), None)
    if key is None or record["metrics"][key] is None:
        return None
    n = record.get("n_items")
    return Finding(
        name, float(record["metrics"][key]), _ci(record, key), None if n is None else int(n),
        kind, model, unit, N_UNIT.get(record["benchmark"], "items"), key=tag,
    )  # fmt: skip


def _items(path: Path, record: Mapping[str, Any]) -> pd.DataFrame | None:
    name = record.get("items_file")
    file = path.parent / name if name else None
    return pd.read_csv(file) if file is not None and file.is_file() else None


def _ppl_cost(records: list[tuple[Path, dict[str, Any]]]) -> str:
    """The perplexity cost of fine-tuning, in words, from the model's pre/post records."""
    for _, record in sorted(records, key=lambda pr: recency(pr[1]), reverse=True):
        if record.get("stage") != "post":
            continue
        for key in PPL_RATIO_KEYS:
            if key in record["metrics"]:
                shown = Finding("", float(record["metrics"][key]), _ci(record, key), None, "", "")
                return f"perplexity ×{shown.text}"
    stages: dict[str, dict[str, Any]] = {}
    for _, record in sorted(records, key=lambda pr: recency(pr[1])):
        if record.get("stage") in ("pre", "post"):
            for key in PPL_KEYS:
                if key in record["metrics"]:
                    stages[record["stage"]] = {"value": record["metrics"][key], "key": key}
    if {"pre", "post"} <= set(stages):
        pre, post = float(stages["pre"]["value"]), float(stages["post"]["value"])
        return f"perplexity {pre:.3g} → {post:.3g} (×{post / pre:.3g}; no interval recorded)"
    return "no perplexity measurement found"


def _effects(records: list[tuple[Path, dict[str, Any]]], kind: str, model: str) -> list[Finding]:
    """One finding per fine-tuning recipe from its ``finetune_effect`` record: the held-out
    CrowS-Pairs change with its paired CI, the perplexity ratio with its CI in the note."""
    rows = []
    for _, record in sorted(records, key=lambda pr: recency(pr[1])):
        if record["benchmark"] != EFFECT_BENCHMARK:
            continue
        key, metrics = "crows_pairs/pct_stereotype/change", record["metrics"]
        if key not in metrics:
            continue
        config = record.get("config") or {}
        recipe = config.get("recipe", "?")
        method = {"lora": "LoRA", "qlora": "QLoRA"}.get(config.get("method"), "fine-tuning")
        notes = ["paired bootstrap over the held-out pairs"]
        if "perplexity/ratio" in metrics:
            value, ci = float(metrics["perplexity/ratio"]), _ci(record, "perplexity/ratio")
            ratio = Finding("", value, ci, None, "", "")
            on = config.get("perplexity_texts")
            notes.append(f"perplexity ×{ratio.text}" + (f" on {on}" if on else ""))
        n = record.get("n_items")
        rows.append(Finding(
            f"{method} on {recipe}: change of CrowS-Pairs % stereotype on held-out pairs",
            float(metrics[key]), _ci(record, key), None if n is None else int(n), kind, model,
            # the headline's key ("lora", which the prose cites) is the counter-stereotypical run
            "", "held-out pairs", "; ".join(notes),
            "lora" if recipe == "crows_counter" else f"lora/{recipe}",
        ))  # fmt: skip
    return rows


def _lora(records: list[tuple[Path, dict[str, Any]]], kind: str, model: str) -> list[Finding]:
    """Post − pre of the CrowS-Pairs score on the held-out pairs (paired bootstrap CI when
    both item tables are there), with the perplexity cost in the note; from the
    ``finetune_effect`` records where there are some."""
    effects = _effects(records, kind, model)
    if effects:
        return effects
    crows = [(p, r) for p, r in records if r["benchmark"] == "crows_pairs"]
    pre = [pr for pr in crows if pr[1].get("stage") == "pre"]
    post = [pr for pr in crows if pr[1].get("stage") == "post"]
    if not pre or not post:
        return []
    (pre_path, pre_rec), (post_path, post_rec) = (max(s, key=lambda pr: recency(pr[1]))
                                                  for s in (pre, post))  # fmt: skip
    key = "pct_stereotype"
    if key not in pre_rec["metrics"] or key not in post_rec["metrics"]:
        return []
    delta = float(post_rec["metrics"][key]) - float(pre_rec["metrics"][key])
    items = _items(pre_path, pre_rec), _items(post_path, post_rec)
    note, ci = "", None
    if all(t is not None for t in items) and list(items[0]["index"]) == list(items[1]["index"]):
        mode = str((pre_rec.get("config") or {}).get("mode") or "harness")
        n_boot = int((pre_rec.get("config") or {}).get("n_boot") or 1000)
        _, cis = paired_difference(*items, mode=mode, n_boot=n_boot, seed=0)
        ci = tuple(float(v) for v in cis[key])
        note = "paired bootstrap over the held-out pairs"
    else:
        before, after = _ci(pre_rec, key), _ci(post_rec, key)
        if before and after:
            ci = (after[0] - before[1], after[1] - before[0])
            note = "interval from the two runs' intervals (no item files: conservative)"
    method = (post_rec.get("config") or {}).get("method") or "LoRA"
    n = pre_rec.get("n_items")
    return [
        Finding(
            f"{method} fine-tuning: change of CrowS-Pairs % stereotype on held-out pairs",
            delta, ci, None if n is None else int(n), kind, model, "", "held-out pairs",
            "; ".join(s for s in (note, _ppl_cost(records)) if s), "lora",
        )
    ]  # fmt: skip


def _decoding(records: list[tuple[Path, dict[str, Any]]], kind: str, model: str) -> list[Finding]:
    chosen = [r for _, r in records if r["benchmark"] == "decoding_tradeoff"]
    if not chosen:
        return []
    table = tradeoff_from_record(max(chosen, key=recency))
    if table.empty:
        return []
    # The balancing method at its strongest setting against plain decoding (its strength 0);
    # other methods of the sweep (Self-Debias) are in the trade-off figure and table.
    balance = table[table["method"] == "balance"]
    sweep = balance if not balance.empty else table
    plain = sweep.sort_values("strength").iloc[0]
    best = sweep.sort_values("strength").iloc[-1]
    base = Finding("", plain["share"], (plain["ci_low"], plain["ci_high"]), int(plain["n"]), "",
                   "")  # fmt: skip
    return [
        Finding(
            f"Decoding balance ({best['method']} {best['strength']:g}): share of the first "
            "group among group mentions (0.5 = balanced)",
            float(best["share"]), (float(best["ci_low"]), float(best["ci_high"])),
            int(best["n"]), kind, model, "", "continuations naming a group",
            f"plain decoding {base.text} (n = {base.n}); perplexity ×{best['ppl_ratio']:.3g} of "
            "plain (one held-out text set, no interval)", "decoding",
        )
    ]  # fmt: skip


def _align(records: list[tuple[Path, dict[str, Any]]], kind: str, model: str) -> list[Finding]:
    chosen = [r for _, r in records if r["benchmark"] == ALIGN_BENCHMARK]
    if not chosen:
        return []
    record = max(chosen, key=recency)
    metrics = record["metrics"]
    iterations = int(metrics.get("iterations") or 0)
    if not iterations or "iteration/0/tv" not in metrics:
        return []
    first = Finding("", float(metrics["iteration/0/tv"]), _ci(record, "iteration/0/tv"), None,
                    "", "")  # fmt: skip
    n = record.get("n_items")
    last = iterations - 1
    undetected = [metrics.get(f"iteration/{i}/undetected") for i in (0, last)]
    named = (
        "; rewrites naming no group (shares are over the others): "
        + " → ".join(f"{100 * float(u):.0f}%" for u in undetected)
        if None not in undetected
        else ""
    )
    return [
        Finding(
            "PreciseDebias (text level): total variation of group shares to the target after "
            "alignment", float(metrics["final/tv"]), _ci(record, "final/tv"),
            None if n is None else int(n), kind, model, "", "rewrites",
            f"before alignment {first.text}; {iterations} measurements{named}", "align",
        )
    ]  # fmt: skip


def _gaps(records: list[tuple[Path, dict[str, Any]]], kind: str, model: str) -> list[Finding]:
    """Group gaps of the BOLD and HONEST runs (``<domain>/<score>/gap``), with the permutation
    p-value; a real model's toxicity or regard gap scored by a tiny classifier is left out."""
    rows = []
    for benchmark in ("bold", "honest"):
        record = _main_record([r for _, r in records], benchmark)
        if record is None:
            continue
        skipped = tiny_classifier_scores(record) if kind == "real" else []
        for key, value in record["metrics"].items():
            match = GAP_KEY.match(key)
            if not match or value is None or any(match["score"].startswith(s) for s in skipped):
                continue
            p = record["metrics"].get(f"{key}_p_value")
            groups = sorted(
                {
                    k.split("/")[3]
                    for k in record["metrics"]
                    if k.startswith(f"{match['domain']}/{match['score']}/group/")
                }
            )
            rows.append(Finding(
                f"{benchmark.upper()} {match['domain']} · {match['score'].replace('_', ' ')}: "
                "group gap (0 = no gap)", float(value), _ci(record, key),
                _int(record.get("n_items")), kind, model, "", "prompts",
                "; ".join(s for s in (
                    "" if p is None else f"permutation p = {float(p):.3g}",
                    f"groups: {', '.join(groups)}" if groups else "",
                ) if s), f"{benchmark}/gap",
            ))  # fmt: skip
    return rows


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def model_findings(records: list[tuple[Path, dict[str, Any]]], kind: str, model: str):
    """Every finding of one model's results (real or tiny)."""
    plain = [r for _, r in records]
    rows: list[Finding] = []
    for spec in SINGLE:
        record = _main_record(plain, spec[1])
        if record is not None and (row := _single(record, spec, kind, model)):
            rows.append(row)
    for step in (_gaps, _lora, _decoding, _align):
        rows += step(records, kind, model)
    return rows


def _calibration_rows(results: Results) -> list[Finding]:
    """Per calibration series, the score at the highest planted rate (with the lowest's)."""
    table = calibration(results)
    if table.empty:
        return []
    ranking = calibration_ranking(table).set_index(["dataset", "benchmark", "family"])
    rows = []
    for (dataset, benchmark, family), group in table.groupby(
        ["dataset", "benchmark", "family"], sort=False
    ):
        group = group.sort_values("rate")
        low, high = group.iloc[0], group.iloc[-1]
        lowest = Finding("", float(low["value"]), (low["ci_low"], low["ci_high"]), None, "", "")
        ordered = bool(ranking.loc[(dataset, benchmark, family), "ordered"])
        rows.append(Finding(
            f"{dataset} {benchmark.replace('_', '-')} ({family}): {high['metric']} at planted "
            f"rate {high['rate']:g}", float(high["value"]),
            (float(high["ci_low"]), float(high["ci_high"])), None, "calibration",
            f"tiny {family} LMs, planted", "", "items",
            f"rate {low['rate']:g}: {lowest.text}; rates ranked in order: "
            f"{'yes' if ordered else 'no'}", "calibration",
        ))  # fmt: skip
    return rows


def headline_rows(source: Results | str | Path) -> list[Finding]:
    """Every headline finding of a results folder: real models first (CrowS-Pairs, StereoSet,
    multiple choice, HONEST, fine-tuning's held-out change with its perplexity cost, decoding
    balance, PreciseDebias), then the planted-bias calibration, then the tiny models' pipeline
    checks (excluding the calibration's own models)."""
    results = _results(source)
    rows: list[Finding] = []
    for model, records in by_model(results, tiny=False).items():
        rows += model_findings(records, "real", model)
    rows += _calibration_rows(results)
    roots = {p.parent.parent for p, _ in results.records if p.parent.name == "planted"}
    for model, records in by_model(results, tiny=True).items():
        if "planted" in model:  # the calibration's own models: their rows are above
            continue
        records = [
            (p, r) for p, r in records
            if not (p.parent.parent in roots and p.parent.name in ("planted", "real"))
        ]  # fmt: skip
        rows += model_findings(records, "tiny", model)
    return rows


def format_findings(rows: list[Finding]) -> str:
    """The findings as a plain-text table, grouped by kind (the demo's final printout)."""
    if not rows:
        return "no findings: no result files with headline metrics"
    titles = {
        "real": "Real model",
        "calibration": "Calibration (tiny models with a planted bias)",
        "tiny": "Tiny offline models (pipeline checks, not real models)",
    }
    lines = []
    for kind in KINDS:
        chosen = [r for r in rows if r.kind == kind]
        if not chosen:
            continue
        lines += ["", titles[kind], "-" * len(titles[kind])]
        for model in dict.fromkeys(r.model for r in chosen):
            lines.append(f"{model}:")
            for row in (r for r in chosen if r.model == model):
                n = "" if row.n is None else f"  (n = {row.n:,} {row.n_unit})"
                lines.append(f"  {row.name}: {row.text}{n}")
                if row.note:
                    lines.append(f"      {row.note}")
    return "\n".join(lines[1:])
