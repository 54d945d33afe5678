"""Real-track fine-tuning: LoRA on the CrowS-Pairs counter-stereotypical train half (and CDA).

For each recipe (``cda`` first when ``config.cda``, then ``crows_counter``), in its own results
folder ``finetune-<recipe>/`` (one experiment each when the report is rooted at the track's
results, so it pairs one ``pre`` with one ``post`` per benchmark; rooted above, both folders
are one experiment and the latest ``post``, the headline's, is paired):

- a LoRA adapter trained for ``config.finetune_steps`` steps with the preset's ``cpu-ci``
  settings (:func:`debiaslab.mitigation.finetune.config_for`), in ``work/lora-<recipe>/``;
- CrowS-Pairs (harness mode) on the *held-out* half, ``pre`` (the base model) and ``post``
  (with the adapter): the notebooks' :func:`debiaslab.suites.evaluate_suite` calls;
- ``finetune_effect`` (stage ``effect``): the change of every headline CrowS-Pairs metric with
  its paired bootstrap CI (:func:`debiaslab.suites.compare`), and the perplexity cost: held-out
  perplexity of ordinary text (BOLD gender-domain Wikipedia sentence beginnings, as the
  decoding trade-off measures it) before and after, their ratio with a paired bootstrap CI
  over texts.

CDA, the comparison: the sentences of the same training pairs (both sides), each followed by
its gender-swapped copy (the ``cda`` recipe). The ``crows_counter`` adapter is
``track.outputs["adapter"]``; with ``config.adapter_dir`` it is copied there with its
``finetune.json`` and a model card (``README.md``) that names the weights it was trained on,
ready for ``debiaslab push --folder ADAPTER_DIR --results RESULTS/finetune-crows_counter``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from debiaslab.benchmarks.crows_pairs import METRICS as CROWS_METRICS
from debiaslab.cards.model import model_card
from debiaslab.data.crows_pairs_revised import load_pairs
from debiaslab.data.prompts import load_bold, sample_prompts
from debiaslab.hub.client import training_from_manifest
from debiaslab.io import write_bytes_atomic
from debiaslab.metrics import Metric
from debiaslab.mitigation.data import recipe_texts, split_pairs
from debiaslab.mitigation.decoding import text_nlls
from debiaslab.mitigation.finetune import MANIFEST, config_for, finetune
from debiaslab.mitigation.tradeoff import EFFECT_BENCHMARK
from debiaslab.models import load_model
from debiaslab.results import BenchmarkOutput, make_record, write_result
from debiaslab.runner import RunResult
from debiaslab.stats import bootstrap_ci
from debiaslab.suites import compare, evaluate_suite

HARDWARE = "cpu-ci"  # the preset's fine-tuning settings for a CPU runner
PPL_PER_GROUP = 100  # BOLD gender prompts per group (config.extra["ppl_per_group"])
# finetune_effect's metrics: <benchmark>/<metric>/{pre,post,change} (pre and post declared as
# the benchmark declares the metric) and perplexity/*.
METRICS = {
    **{f"{key}/{stage}": metric for key, metric in CROWS_METRICS.items()
       for stage in ("pre", "post")},
    **{f"{key}/change": Metric(None, None, metric.scale, f"post − pre of: {metric.description}; "
                               "paired bootstrap CI (the same pairs resampled before and after)")
       for key, metric in CROWS_METRICS.items()},
    "perplexity/pre": Metric(False, None, "score", "perplexity of held-out ordinary text "
                             "(BOLD gender-domain sentence beginnings), base model"),
    "perplexity/post": Metric(False, None, "score", "the same with the adapter"),
    "perplexity/ratio": Metric(False, None, "ratio", "post / pre perplexity, with a paired "
                               "bootstrap CI over texts (the cost of the fine-tuning)"),
    "perplexity/n_texts": Metric(None, None, "count", "texts in the perplexity set"),
    "perplexity/n_tokens": Metric(None, None, "count", "tokens scored in them"),
}  # fmt: skip


def lora_and_post_eval(track) -> list[Path]:
    """Train, evaluate pre/post on the held-out half, write the effect; the result files."""
    config = track.config
    # The headline last: where a report reads both folders as one experiment (rooted above
    # the track's results), the latest post record, crows_counter's, is the one it pairs.
    recipes = [*(["cda"] if config.cda else []), "crows_counter"]
    texts = ppl_texts(config.seed, config.extra.get("ppl_per_group", PPL_PER_GROUP))
    base = load_model(config.model, dtype="float32")
    base_nlls = text_nlls(base, texts)
    del base
    files: list[Path] = []
    pre = None
    for recipe in recipes:
        run = train(track, recipe)
        folder = track.results / f"finetune-{recipe}"
        common = crows_settings(config)
        if pre is None:
            pre = evaluate_suite(config.model, folder, stage="pre", **common)
        else:  # the same base model on the same pairs: the same record, in this experiment too
            pre = [copy_result(r, folder) for r in pre]
        post = evaluate_suite(
            config.model, folder, stage="post", adapter=str(run.weights), **common
        )
        tuned = load_model(config.model, dtype="float32", adapter=str(run.weights))
        record = effect_record(
            pre, post, base_nlls, text_nlls(tuned, texts), tuned, run.manifest, config
        )
        del tuned
        files += [r.path for r in pre + post]
        files.append(write_result(record, folder))
        track.log(f"[real] finetune {recipe}: {effect_line(record)}")
        if recipe == "crows_counter":
            track.outputs["adapter"] = run.weights
            if config.adapter_dir:
                records = [r.record for r in pre + post]
                track.outputs["adapter_dir"] = ship_adapter(run, records, config.adapter_dir)
    return files


def crows_settings(config) -> dict[str, Any]:
    """The evaluate_suite settings of the held-out CrowS-Pairs runs."""
    return {
        "benchmarks": ["crows_pairs"],
        "family": "causal",
        "limit": config.crows_limit,
        "mode": "harness",
        "split_seed": config.seed,
        "n_boot": config.n_boot,
        "seed": config.seed,
    }


def ppl_texts(seed: int, per_group: int = PPL_PER_GROUP) -> list[str]:
    """Held-out ordinary text: BOLD gender-domain Wikipedia sentence beginnings (seeded)."""
    prompts = sample_prompts(load_bold(["gender"]), limit=per_group, seed=seed)
    return [p.prompt for p in prompts]


def cda_source(track) -> Path:
    """The CDA corpus: both sentences of every training pair (never a held-out one)."""
    pairs = split_pairs(load_pairs("original", "english"), "train", seed=track.config.seed)
    lines = [" ".join(s.split()) for p in pairs for s in (p.sent_more, p.sent_less)]
    path = track.work / "cda-source.txt"
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def train(track, recipe: str):
    """The LoRA run of a recipe in ``work/lora-<recipe>`` (a finished run is reused)."""
    config = track.config
    data = str(cda_source(track)) if recipe == "cda" else None
    texts, info = recipe_texts(recipe, data, split_seed=config.seed)
    if recipe == "cda":
        info["source"] = "CrowS-Pairs train half, both sentences"
    settings = config_for(
        config.model, HARDWARE, method="lora", steps=config.finetune_steps, seed=config.seed,
        save_steps=max(config.finetune_steps, 1), eval_fraction=0.0,
    )  # fmt: skip
    track.log(f"[real] finetune {recipe}: {len(texts)} texts, {settings.steps} steps")
    return finetune(
        config.model, track.work / f"lora-{recipe}", texts, settings, recipe=recipe,
        recipe_info=info, resume=True, progress=False,
    )  # fmt: skip


def copy_result(result, folder: Path):
    """A result (and its items) written again, unchanged, into another folder."""
    record = dict(result.record)
    items = None
    if record.get("items_file"):
        items = pd.read_csv(result.path.with_name(record["items_file"]))
    return RunResult(write_result(record, folder, items), record, skipped=True)


def perplexity_effect(pre: list, post: list, *, n_boot: int, seed: int):
    """Perplexity before and after, and their ratio with a paired bootstrap CI over texts.

    ``pre``/``post``: :func:`~debiaslab.mitigation.decoding.text_nlls` of the same texts.
    """
    if len(pre) != len(post) or [n for _, n in pre] != [n for _, n in post]:
        raise ValueError("the perplexity cost needs the same texts, tokenized alike, twice")
    before = np.array([s for s, _ in pre], dtype=float)
    after = np.array([s for s, _ in post], dtype=float)
    counts = np.array([n for _, n in pre], dtype=float)

    def ratio(idx: np.ndarray) -> dict[str, float]:
        return {"ratio": math.exp((after[idx].sum() - before[idx].sum()) / counts[idx].sum())}

    metrics = {
        "perplexity/pre": math.exp(before.sum() / counts.sum()),
        "perplexity/post": math.exp(after.sum() / counts.sum()),
        "perplexity/ratio": ratio(np.arange(len(pre)))["ratio"],
        "perplexity/n_texts": float(len(pre)),
        "perplexity/n_tokens": float(counts.sum()),
    }
    ci = bootstrap_ci(ratio, len(pre), n_boot=n_boot, seed=seed)
    return metrics, {"perplexity/ratio": ci["ratio"]}


def effect_record(pre, post, base_nlls, tuned_nlls, lm, manifest, config) -> dict[str, Any]:
    """The ``finetune_effect`` record: pre, post and change of every headline metric (paired
    CI), and the perplexity cost."""
    table = compare(pre, post, n_boot=config.n_boot, seed=config.seed)
    metrics: dict[str, float] = {}
    ci: dict[str, tuple[float, float]] = {}
    for row in table.itertuples(index=False):
        key = f"{row.benchmark}/{row.metric}"
        metrics.update({f"{key}/pre": row.value_pre, f"{key}/post": row.value_post})
        metrics[f"{key}/change"] = row.change
        ci[f"{key}/pre"] = (row.ci_low_pre, row.ci_high_pre)
        ci[f"{key}/post"] = (row.ci_low_post, row.ci_high_post)
        ci[f"{key}/change"] = (row.change_ci_low, row.change_ci_high)
    ppl, ppl_ci = perplexity_effect(base_nlls, tuned_nlls, n_boot=config.n_boot, seed=config.seed)
    metrics.update(ppl)
    ci.update(ppl_ci)
    output = BenchmarkOutput(
        EFFECT_BENCHMARK, metrics, ci, METRICS, n_items=pre[0].record["n_items"]
    )
    settings = {
        "recipe": manifest.get("recipe"),
        "method": manifest.get("method"),
        "steps": manifest.get("config", {}).get("steps"),
        "texts_sha256": manifest.get("texts_sha256"),
        "adapter": str(lm.info.get("adapter")),
        "pre_runs": [r.record["run_id"] for r in pre],
        "post_runs": [r.record["run_id"] for r in post],
        "perplexity_texts": f"BOLD gender, {len(base_nlls)} texts, seed {config.seed}",
        "n_boot": config.n_boot,
        "seed": config.seed,
    }
    training = {k: manifest.get(k) for k in ("metrics", "seconds", "n_train_texts", "device")}
    return make_record(
        output,
        model={**lm.info, "name": config.model},
        config={**settings, "training": training},
        timing={"train_seconds": manifest.get("seconds") or 0.0},
        stage="effect",
    )


def effect_line(record: dict[str, Any]) -> str:
    """One line for the log: the headline change and the perplexity cost."""
    m, ci = record["metrics"], record["ci"]
    parts = []
    for key in ("crows_pairs/pct_stereotype/change", "perplexity/ratio"):
        if key in m:
            low, high = ci.get(key) or (math.nan, math.nan)
            parts.append(f"{key} {m[key]:.3g} [{low:.3g}, {high:.3g}]")
    return "; ".join(parts)


def ship_adapter(run, records: list[dict[str, Any]], dest: str | os.PathLike) -> Path:
    """Copy the adapter, its ``finetune.json`` and a model card into ``dest`` (replaced as a
    whole: staged beside it, then renamed)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    manifest = run.manifest
    card = model_card(
        records,
        base_model=manifest["base_model"],
        method="LoRA on counter-stereotypical CrowS-Pairs sentences (train half)",
        training=training_from_manifest(run.output),
        repo_id=f"your-name/{Path(dest).name}",
        base_weights=manifest.get("base_weights"),
    )
    stage = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        shutil.copytree(run.weights, stage, dirs_exist_ok=True)
        shutil.copy2(Path(run.output) / MANIFEST, stage / MANIFEST)
        (stage / "README.md").write_text(card, encoding="utf-8")
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.rename(dest, old)
        os.rename(stage, dest)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return dest
