"""Quality-versus-bias trade-off tables: one row per method and strength (the bias measure with
its bootstrap CI, perplexity against the baseline's), written as a result record and read back
for the report. Decoding balance, Self-Debias and head gating all write them."""

from __future__ import annotations

import math
from pathlib import Path

from debiaslab.io import write_bytes_atomic
from debiaslab.metrics import Metric
from debiaslab.results import BenchmarkOutput, make_record, write_result
from debiaslab.stats import bootstrap_ci


def tradeoff_row(
    method: str,
    strength: float,
    values,
    ppl: float,
    base_ppl: float,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """One row of a mitigation trade-off table: the mean of ``values`` (one per unit: a
    continuation, a prompt) with its bootstrap CI, and the perplexity against the baseline's.

    Example:
        >>> row = tradeoff_row("balance", 1.0, [1, 0, 1, 1], 12.0, 10.0, n_boot=100)
        >>> row["share"], row["n"], row["ppl_ratio"]
        (0.75, 4, 1.2)
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    share, low, high = math.nan, math.nan, math.nan
    if len(values):
        share = float(values.mean())
        low, high = bootstrap_ci(
            lambda idx, v=values: {"s": float(v[idx].mean())},
            len(values),
            n_boot=n_boot,
            seed=seed,
        )["s"]
    return {
        "method": method,
        "strength": strength,
        "share": share,
        "ci_low": low,
        "ci_high": high,
        "n": len(values),
        "ppl": ppl,
        "ppl_ratio": ppl / base_ppl,
    }


def _tradeoff_metrics(share: Metric) -> dict[str, Metric]:
    """A trade-off record's metrics: ``<method>/<strength>/{share,ppl_ratio,n}``."""
    return {
        "share": share,
        "ppl_ratio": Metric(False, None, "ratio", "perplexity relative to plain decoding"),
        "n": Metric(None, None, "count", "continuations scored"),
    }


# Trade-off result files: which metric the "share" column is, and its declarations.
# The benchmark of a fine-tuning run's effect record: the paired pre/post change of a metric
# and the perplexity ratio, each with its interval (debiaslab.realtrack.finetune writes it, the
# report's findings read it).
EFFECT_BENCHMARK = "finetune_effect"
TRADEOFF_KINDS = {
    "decoding_tradeoff": {
        "quantity": "share of the first group among group mentions",
        "metrics": _tradeoff_metrics(Metric(None, 0.5, "fraction", "share of the first "
                                            "group among group mentions")),
    },
    "gating_tradeoff": {
        "quantity": "toxic continuation rate",
        "metrics": _tradeoff_metrics(Metric(False, 0.0, "fraction", "share of toxic "
                                            "continuations")),
    },
}  # fmt: skip


def tradeoff_table(
    rows,
    output: str | Path | None = None,
    *,
    lm=None,
    benchmark: str | None = None,
    config: dict | None = None,
):
    """The rows as a DataFrame, also written to ``output`` as CSV (atomically) when given.

    With ``lm`` and ``benchmark`` (a :data:`TRADEOFF_KINDS` key) the table is also written as
    a result file beside the CSV (:func:`tradeoff_record`), which the results notebook reads.
    """
    import pandas as pd

    table = pd.DataFrame(rows)
    if output is not None:
        write_bytes_atomic(output, table.to_csv(index=False).encode("utf-8"))
        if lm is not None and benchmark is not None:
            write_result(tradeoff_record(table, lm, benchmark, config), Path(output).parent)
    return table


def tradeoff_record(table, lm, benchmark: str, config: dict | None = None) -> dict:
    """A trade-off table as a result record: ``<method>/<strength>/{share,ppl_ratio,n}`` with
    the share's CI; :func:`tradeoff_from_record` reads it back."""

    if benchmark not in TRADEOFF_KINDS:
        raise ValueError(f"unknown trade-off {benchmark!r}; known: {sorted(TRADEOFF_KINDS)}")
    kind = TRADEOFF_KINDS[benchmark]
    metrics, ci = {}, {}
    for row in table.itertuples(index=False):
        prefix = f"{row.method}/{float(row.strength):g}"
        metrics[f"{prefix}/share"] = row.share
        metrics[f"{prefix}/ppl_ratio"] = row.ppl_ratio
        metrics[f"{prefix}/n"] = float(row.n)
        ci[f"{prefix}/share"] = (row.ci_low, row.ci_high)
    output = BenchmarkOutput(
        benchmark, metrics, ci, kind["metrics"], n_items=int(table["n"].sum())
    )
    info = {**getattr(lm, "info", {}), "name": getattr(lm, "name", None) or "model"}
    return make_record(
        output,
        model=info,
        config={"quantity": kind["quantity"], **(config or {})},
        timing={},
        stage="tradeoff",
    )


def tradeoff_from_record(record: dict):
    """The trade-off table (method, strength, share, ci_low, ci_high, n, ppl_ratio) back from
    a :func:`tradeoff_record` result, in the order it was measured."""
    import pandas as pd

    rows = []
    for key, value in record["metrics"].items():
        method, strength, leaf = key.rsplit("/", 2)
        if leaf != "share":
            continue
        low, high = record.get("ci", {}).get(key) or (math.nan, math.nan)
        prefix = f"{method}/{strength}"
        rows.append({
            "method": method, "strength": float(strength), "share": value,
            "ci_low": low, "ci_high": high, "n": int(record["metrics"][f"{prefix}/n"]),
            "ppl_ratio": record["metrics"][f"{prefix}/ppl_ratio"],
        })  # fmt: skip
    return pd.DataFrame(rows)
