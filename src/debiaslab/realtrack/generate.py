"""Real-track generation steps: decoding-time balancing, synthetic data the model writes
itself, PreciseDebias at the text level with the model as the rewriter.

Each step is the calls its notebook makes (``notebooks/_templates/decoding_balance.py``,
``synthetic_data.py``, ``precise_debias/01_dataset.py`` and ``02_train.py``) at the track's
sizes, and returns the result files it wrote into ``track.results``. Models are loaded by the
track's preset, so every record names the model honestly (``models.load_model`` adds
:func:`debiaslab.smollm2.source_record` for the dequantized GGUF).

Sizes (:mod:`.config`): CPU seconds (one thread) of runs on a shared 2-core machine (load ~4.5),
extrapolated linearly; idle 2-core wall time taken as ~0.65 of that. Decoding: ~0.55 s per
20-token continuation per setting (Self-Debias counts twice), ~5 s per held-out sentence over
all settings; full (24 prompts x 4, 20 sentences, 4 strengths + Self-Debias) ~440 CPU s, ~5 min.
Synthetic: ~1.2 s per 60-token text, ~4.5 s per LoRA step, ~0.15 s per CrowS pair; full (48
texts, 30 steps, 2 x 200 pairs) ~270 CPU s, ~3 min. PreciseDebias, measured at full size up to
the align loop: 71 written prompts 80 s, 40 rewriter steps (batch 4) 197 s; the align loop
~1-1.4 s per rewrite and ~1.3 s per training step and group, so ~330 s for 3 x 16 x 4 rewrites
and 2 rounds: ~610 CPU s, ~7 min. The demo's PreciseDebias measured whole: 124 CPU s (208 s
wall on the shared machine), ~80 s idle.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from debiaslab.data import prompts as prompt_data
from debiaslab.evalconfig import EvalConfig
from debiaslab.generation import GenerationSettings
from debiaslab.io import write_bytes_atomic
from debiaslab.mitigation import decoding
from debiaslab.mitigation.finetune import FinetuneConfig, run_finetune
from debiaslab.models import load_model
from debiaslab.results import write_result
from debiaslab.runner import evaluate
from debiaslab.synth import backends, pipeline, spec
from debiaslab.t2i.precise_debias import align, groups, pairs, rewriter

SYNTH_SPEC = "gender-work"
# The tiny offline classifiers (debiaslab.tiny.classifiers): no hub is reachable here, so the
# synthetic data's toxicity and regard filters use them, and the records say so.
TOXICITY_FILTER = "tiny-toxicity"
REGARD_FILTER = "tiny-regard"
CLASSIFIER_NOTE = (
    "tiny offline classifiers trained on planted lines (debiaslab.tiny.classifiers), not the "
    "published toxicity and regard models: the filters are a stand-in"
)
# 02_train's occupations (12 of them); the writer asks for scene prompts of each.
OCCUPATIONS = (
    "doctor", "nurse", "software developer", "chef", "construction worker", "teacher",
    "lawyer", "cashier", "pilot", "janitor", "scientist", "hairdresser",
)  # fmt: skip


def _result_files(folder: Path) -> set[Path]:
    return {p for p in folder.glob("*.json") if not p.name.startswith(".")}


def _written(folder: Path, before: set[Path], benchmark: str) -> list[Path]:
    """The result files of ``benchmark`` that appeared in ``folder`` since ``before``."""
    out = []
    for path in sorted(_result_files(folder) - before):
        record = json.loads(path.read_text("utf-8"))
        if record.get("benchmark") == benchmark:
            out.append(path)
    return out


def _writer_record(lm) -> dict[str, Any]:
    """Who wrote generated data: the model's name and its source facts (the GGUF)."""
    return {"name": lm.name, **{k: v for k, v in lm.info.items() if k != "name"}}


def _spread(items: list, n: int, seed: int) -> list:
    """``n`` BOLD prompts spread over their groups: a seeded sample of ``ceil(n / groups)`` per
    group (:func:`~debiaslab.data.prompts.sample_prompts`), taken round-robin over groups."""
    n_groups = len({p.group for p in items})
    sample = prompt_data.sample_prompts(items, limit=-(-n // max(n_groups, 1)), seed=seed)
    by_group: dict[str, list] = {}
    for p in sample:
        by_group.setdefault(p.group, []).append(p)
    rounds = max((len(v) for v in by_group.values()), default=0)
    spread = [v[k] for k in range(rounds) for v in by_group.values() if k < len(v)]
    return spread[:n]


def decoding_tradeoff(track) -> list[Path]:
    """Group-mention share vs perplexity of decoding-time balancing (``decoding_alphas``) and
    Self-Debias on the real model: ``decoding_continuations`` continuations of each of
    ``decoding_prompts`` BOLD profession prompts, perplexity on ``decoding_held_out`` BOLD
    gender sentences (benchmark ``decoding_tradeoff``; the CSV beside it)."""
    cfg = track.config
    lm = load_model(cfg.model)
    neutral = _spread(prompt_data.load_bold(["profession"]), cfg.decoding_prompts, cfg.seed)
    held_out = _spread(prompt_data.load_bold(["gender"]), cfg.decoding_held_out, cfg.seed)
    settings = GenerationSettings(
        max_new_tokens=cfg.max_new_tokens,
        num_return_sequences=cfg.decoding_continuations,
        seed=cfg.seed,
    )
    track.results.mkdir(parents=True, exist_ok=True)
    before = _result_files(track.results)
    csv = track.results / "decoding_tradeoff.csv"
    table = decoding.tradeoff(
        lm,
        [p.prompt for p in neutral],
        [p.prompt for p in held_out],
        decoding.load_group_words(),
        alphas=cfg.decoding_alphas,
        self_debias_decays=(50.0,),
        settings=settings,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
        output=csv,
    )
    track.log(f"[real] decoding: {len(table)} settings on {len(neutral)} prompts")
    return [*_written(track.results, before, "decoding_tradeoff"), csv]


def synthetic(track) -> list[Path]:
    """Synthetic data written by the real model itself (the ``gender-work`` spec, its chat
    template, ``synthetic_n`` texts), filtered with the tiny offline classifiers, then a short
    LoRA fine-tune on it and CrowS-Pairs before and after (``synthetic_crows_limit`` pairs).

    Writes ``synthetic_data.json`` (not a result record: the dataset's manifest with who wrote
    it and which classifiers filtered it) and the two CrowS-Pairs results (stages
    ``synthetic-pre`` / ``synthetic-post``, the post one naming the data in ``model``).
    """
    cfg = track.config
    work = track.work / "synthetic"
    request = spec.load_spec(SYNTH_SPEC)
    writer = backends.make_backend(
        "hf", cfg.model, spec=request, max_new_tokens=cfg.synthetic_max_new_tokens, seed=cfg.seed
    )
    dataset = work / "dataset"
    manifest = pipeline.synthesize(
        request,
        writer,
        cfg.synthetic_n,
        dataset,
        toxicity_model=TOXICITY_FILTER,
        regard_model=REGARD_FILTER,
        seed=cfg.seed,
        progress=False,
    )
    written_by = _writer_record(writer.lm)
    del writer  # its model: the fine-tune loads its own copy
    data_facts = {
        "dataset": str(dataset),
        "spec": SYNTH_SPEC,
        "written_by": written_by,
        "filters": {**manifest["classifiers"], "note": CLASSIFIER_NOTE},
        "n_generated": manifest["n_generated"],
        "n_rows": manifest["n_rows"],
        "splits": manifest["splits"],
    }
    summary = track.results / "synthetic_data.json"
    text = json.dumps({**data_facts, "manifest": manifest}, indent=2) + "\n"
    write_bytes_atomic(summary, text.encode("utf-8"))
    track.log(
        f"[real] synthetic: {manifest['n_generated']} texts written by {written_by['name']}, "
        f"{manifest['n_rows']} rows after filters"
    )
    track.log("[real] synthetic: fine-tuning on it")
    config = FinetuneConfig(
        method="lora", steps=cfg.synthetic_steps, batch_size=8, seq_len=96, seed=cfg.seed
    )
    run = run_finetune(
        cfg.model, work / "lora", config, recipe="synthetic", data=str(dataset), progress=False
    )
    common = dict(
        limit=cfg.synthetic_crows_limit, n_boot=cfg.n_boot, seed=cfg.seed, progress=False
    )
    track.log(f"[real] synthetic: LoRA done ({run.manifest.get('metrics', {})}); CrowS-Pairs")
    pre = evaluate(
        EvalConfig.of(cfg.model, "crows_pairs", track.results, stage="synthetic-pre", **common)
    )
    meta = {
        "adapter_data": "synthetic (debiaslab synth), written by the model itself",
        "adapter_data_written_by": written_by["name"],
        "adapter_data_filters": data_facts["filters"],
        "adapter_steps": cfg.synthetic_steps,
    }
    post = evaluate(
        EvalConfig.of(
            cfg.model,
            "crows_pairs",
            track.results,
            stage="synthetic-post",
            adapter=str(run.weights),
            model_meta=meta,
            **common,
        )
    )
    return [summary, pre.path, post.path]


def _test_fraction(n_prompts: int, wanted: int) -> float:
    """The share of prompts held out so that ``wanted`` of them are (between 0.2 and 0.5)."""
    return min(0.5, max(0.2, wanted / max(n_prompts, 1)))


def precise_debias(track) -> list[Path]:
    """PreciseDebias at the text level with the real model as writer and rewriter.

    1. (01_dataset) the model writes ``precise_prompts_per_occupation`` scene prompts for each
       of :data:`OCCUPATIONS` (its chat template); the package's word lists strip and fill
       their demographic slots into one instruction pair per group; split by prompt.
    2. (02_train) LoRA rewriter on the training pairs (``rewriter_steps``), then the
       measure-and-align loop: trained on the training pairs of the under-represented groups,
       measured on ``align_prompts`` held-out prompts, ``align_n`` rewrites each,
       ``align_iterations`` measurements at most. The result (benchmark
       ``precise_debias_align``, :func:`~debiaslab.t2i.precise_debias.align.align_record`)
       holds the curve and each measurement's gender and ethnicity shares against the target.
    """
    cfg = track.config
    work = track.work / "precise_debias"
    writer = backends.make_backend(
        "hf", cfg.model, max_new_tokens=cfg.precise_prompt_tokens, seed=cfg.seed
    )
    generic = pairs.synthesize_prompts(
        writer, OCCUPATIONS, cfg.precise_prompts_per_occupation, work / "raw.jsonl", progress=False
    )
    written_by = _writer_record(writer.lm)
    del writer
    every = pairs.instruction_pairs(generic)
    n_prompts = len({p["input"] for p in every})
    fraction = _test_fraction(n_prompts, cfg.align_prompts)
    train, test = pairs.split_by_prompt(every, fraction, seed=cfg.seed)
    pairs.save_pairs(train, work / "train.json")
    pairs.save_pairs(test, work / "test.json")
    held_out = sorted({p["input"] for p in test})[: cfg.align_prompts]
    track.log(
        f"[real] precise_debias: {len(generic)} prompts written, {n_prompts} with a person; "
        f"{len(train)} train pairs, {len(held_out)} held-out prompts measured"
    )
    config = FinetuneConfig(
        method="lora",
        steps=cfg.rewriter_steps,
        lr=cfg.rewriter_lr,
        batch_size=cfg.precise_batch_size,
        seq_len=rewriter.REWRITER_SEQ_LEN,
        seed=cfg.seed,
    )
    run = rewriter.train_rewriter(cfg.model, train, work / "rewriter", config, progress=False)
    track.log(f"[real] precise_debias: rewriter trained ({run.manifest.get('metrics', {})})")
    lm = load_model(cfg.model, adapter=str(run.weights))
    aligned = align.align(
        lm,
        held_out,
        pairs_by_group=groups.pairs_by_group(train),
        output=work / "align",
        n=cfg.align_n,
        max_iterations=cfg.align_iterations,
        base_lr=cfg.align_lr,
        steps=cfg.align_steps,
        batch_size=cfg.precise_batch_size,
        # a rewrite is its prompt plus a few words: room for that, not the default 96 tokens
        settings=replace(
            rewriter.MEASURE_SETTINGS, max_new_tokens=cfg.precise_prompt_tokens + 16, seed=cfg.seed
        ),
        seed=cfg.seed,
        save_adapter=False,
    )
    track.log(f"[real] precise_debias: align stopped by {aligned.stopped}")
    curve = json.loads(aligned.curve_path.read_text("utf-8"))
    curve["prompts"] = {
        "written_by": written_by,
        "occupations": list(OCCUPATIONS),
        "per_occupation": cfg.precise_prompts_per_occupation,
        "n_written": len(generic),
        "n_with_person": n_prompts,
        "test_fraction": fraction,
        "n_train_pairs": len(train),
        "measured_on": "held-out prompts (no pair of them trained on)",
        "rewriter_steps": cfg.rewriter_steps,
    }
    return [write_result(align.align_record(curve, lm), track.results)]
