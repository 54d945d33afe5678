"""Pre/post evaluation of one model (every benchmark of its family) and their comparison.

The notebooks call :func:`evaluate_suite` for the ``pre`` and ``post`` stages and
:func:`compare` to put them side by side, with a paired bootstrap for CrowS-Pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from debiaslab.benchmarks.crows_pairs import paired_difference
from debiaslab.benchmarks.registry import family_of
from debiaslab.config import get_preset
from debiaslab.evalconfig import EvalConfig
from debiaslab.launch import evaluate_all
from debiaslab.model_source import folder_kind
from debiaslab.results import headline_metrics
from debiaslab.runner import RunResult
from debiaslab.textclass import REGARD_MODEL, TOXICITY_MODEL

log = logging.getLogger(__name__)


# The benchmarks of a pre/post evaluation, by family; instruction-tuned models (Bloomz,
# FLAN-T5) add StereoSet's prompt form.
SUITES = {
    "causal": ("crows_pairs", "stereoset", "bold", "honest"),
    "masked": ("crows_pairs", "stereoset", "honest"),
    "seq2seq": ("crows_pairs", "stereoset", "bold", "honest"),
}


def evaluate_suite(
    model: str,
    output: str | Path,
    *,
    stage: str,
    family: str | None = None,
    benchmarks: list[str] | None = None,
    instruction: bool = False,
    adapter: str | None = None,
    limit: int | None = None,
    generation_limit: int | None = 20,
    bold_domains: list[str] | None = None,
    toxicity_model: str = TOXICITY_MODEL,
    regard_model: str = REGARD_MODEL,
    name: str | None = None,
    processes: int | str = "auto",
    **common,
) -> list[RunResult]:
    """The pre- or post-mitigation evaluation of one model: every benchmark of its family.

    CrowS-Pairs is scored on its held-out part (the pairs ``crows_counter`` fine-tuning never
    trains on), so pre and post numbers are comparable whatever the recipe.

    Args:
        model: preset, hub id or path (the base model when ``adapter`` is given).
        output: results directory.
        stage: ``pre`` or ``post``.
        family: the model family (default: the preset's, else inferred from the config).
        benchmarks: which to run (default :data:`SUITES` of the family, plus
            ``stereoset_mc`` when ``instruction``).
        instruction: the model follows instructions (adds StereoSet's prompt form).
        adapter: a PEFT adapter directory or hub id (post-evaluation); a full model's
            directory (full fine-tuning) is evaluated in place of ``model``.
        limit: CrowS-Pairs pairs / StereoSet examples per split (None: all).
        generation_limit: BOLD prompts and HONEST templates per group (None: all).
        bold_domains: BOLD domains (default: gender and race).
        toxicity_model, regard_model: classifiers for BOLD.
        name: the model's name in results (default ``model``).
        processes: ``auto`` runs on every visible GPU, one process each (Kaggle T4×2: two,
            the work shared batch by batch, the same result files as one process); or a count.
        common: other settings of :class:`~debiaslab.evalconfig.EvalConfig` by flat name
            (device, dtype, quantization, n_boot, seed, head_gates …).
    """

    if family is None:
        preset = get_preset(model)
        family = preset.family if preset is not None else family_of(model)
    chosen = list(benchmarks or SUITES[family])
    if benchmarks is None and instruction:
        chosen.insert(2, "stereoset_mc")
    name = name or model  # pre and post share it; the stage and the adapter tell them apart
    # A full fine-tune's folder holds the weights: it is the model, not an adapter.
    if adapter is not None and Path(adapter).is_dir() and folder_kind(adapter) == "model":
        model, adapter = str(adapter), None
    configs = []
    for benchmark in chosen:
        kwargs = dict(common)
        if benchmark == "crows_pairs":
            kwargs.update(crows_split="heldout", limit=limit)
        elif benchmark in ("stereoset", "stereoset_mc"):
            kwargs.update(limit=limit)
        elif benchmark == "bold":
            kwargs.update(
                limit=generation_limit,
                domains=bold_domains or ["gender", "race"],
                toxicity_model=toxicity_model,
                regard_model=regard_model,
            )
        else:
            kwargs.update(limit=generation_limit)
        configs.append(
            EvalConfig.of(
                model, benchmark, output, family=family, adapter=adapter, stage=stage,
                name=name, **kwargs,
            )
        )  # fmt: skip
    out = evaluate_all(configs, processes)
    for result in out:
        log.info("%s %s: %s", stage, result.record["benchmark"], result.path.name)
    return out


def summary_table(results: list[RunResult]):
    """Headline metrics of some runs as a DataFrame (benchmark, stage, metric, value, CI)."""
    import pandas as pd

    rows = []
    for result in results:
        record = result.record
        for key in headline_metrics(list(record["metrics"]), with_p_values=True):
            low, high = record.get("ci", {}).get(key) or (None, None)
            rows.append(
                {
                    "benchmark": record["benchmark"],
                    "stage": record.get("stage"),
                    "metric": key,
                    "value": record["metrics"][key],
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def compare(pre: list[RunResult], post: list[RunResult], *, n_boot: int = 1000, seed: int = 0):
    """Pre vs post headline metrics per benchmark, with the change and, for CrowS-Pairs, its
    paired bootstrap interval (same pairs scored before and after)."""

    before = summary_table(pre)
    after = summary_table(post)
    table = before.drop(columns="stage").merge(
        after.drop(columns="stage"), on=["benchmark", "metric"], suffixes=("_pre", "_post")
    )
    table["change"] = table["value_post"] - table["value_pre"]
    table["change_ci_low"] = float("nan")
    table["change_ci_high"] = float("nan")
    pre_crows = [r for r in pre if r.record["benchmark"] == "crows_pairs"]
    post_crows = [r for r in post if r.record["benchmark"] == "crows_pairs"]
    if pre_crows and post_crows:
        a, b = pre_crows[0], post_crows[0]
        mode = "nangia" if a.record["model"].get("family") == "masked" else "harness"
        _, ci = paired_difference(_items(a), _items(b), mode=mode, n_boot=n_boot, seed=seed)
        for i in table.index[table["benchmark"] == "crows_pairs"]:
            low, high = ci.get(table.at[i, "metric"], (float("nan"), float("nan")))
            table.at[i, "change_ci_low"], table.at[i, "change_ci_high"] = low, high
    return table


def _items(result: RunResult):
    import pandas as pd

    return pd.read_csv(result.path.with_name(result.record["items_file"]))
