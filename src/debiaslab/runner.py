"""One evaluation run, end to end: config → data → model → benchmark → result files.

The CLI verb ``debiaslab eval`` and the notebooks call :func:`evaluate` with an
:class:`~debiaslab.evalconfig.EvalConfig`; the benchmark comes from
:mod:`debiaslab.benchmarks.registry`. The result file's name is the run id (model, benchmark,
stage and a hash of the settings that change results), so a rerun with the same settings finds
the existing result and skips the work unless ``force`` is set.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from debiaslab import distributed, env, models
from debiaslab.benchmarks import registry
from debiaslab.benchmarks.precision import check_request
from debiaslab.benchmarks.precision import fp32_check as recheck
from debiaslab.benchmarks.stereoset_official import METRICS as STEREOSET_METRICS
from debiaslab.benchmarks.stereoset_predictions import score_predictions_file
from debiaslab.data.fetch import sha256_of
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import EvalConfig
from debiaslab.mitigation import decoding as methods
from debiaslab.mitigation import decoding_families
from debiaslab.mitigation.data import check_crows_evaluation, split_pairs
from debiaslab.mitigation.finetune import read_manifest
from debiaslab.mitigation.heads import HeadGates, read_gates
from debiaslab.model_source import check_adapter, check_model
from debiaslab.results import BenchmarkOutput, make_record, run_id, write_result
from debiaslab.validate import check_output_dir

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    path: Path
    record: dict
    skipped: bool


def _load_data(entry: registry.Benchmark, job: registry.Job):
    """The benchmark's items (bad data fails here, before a model is loaded)."""
    return entry.load(job)


def _gates_id(path: str) -> str:
    """A head-gates file as ``name@sha256[:12]`` (results and cache keys tell gates apart)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"head-gates file {path} does not exist")
    read_gates(file)  # a corrupt file fails here, before the model loads
    return f"{file.name}@{hashlib.sha256(file.read_bytes()).hexdigest()[:12]}"


def _check_model_and_addons(config: EvalConfig) -> None:
    """The output folder, the model and its add-ons, before anything loads (numbers and
    choices were checked when the config was made)."""
    check_output_dir(config.output)
    check_model(config.model, use_safetensors=config.use_safetensors)
    if config.adapter is not None:
        check_adapter(config.adapter)
    if config.mitigation.head_gates is not None:
        _gates_id(config.mitigation.head_gates)


def _fine_tuning_split(config: EvalConfig, job: registry.Job) -> None:
    """The part of a benchmark a fine-tuning recipe did not train on (``--crows-split``)."""
    settings = config.crows
    model = config.model
    trained = read_manifest(config.adapter) or read_manifest(
        model if Path(model).is_dir() else None
    )
    check_crows_evaluation(
        trained, settings.crows_split, allow_train_pairs=settings.allow_train_pairs
    )
    split_seed = settings.split_seed
    if trained and trained.get("recipe") == "crows_counter":
        split_seed = trained.get("recipe_info", {}).get("split_seed", split_seed)
    job.resolved["split_seed"] = split_seed
    job.select = functools.partial(split_pairs, part=settings.crows_split, seed=split_seed)


def _check_decoding(entry: registry.Benchmark, config: EvalConfig, known: str | None) -> None:
    decoding = config.mitigation.decoding
    if decoding is None:
        return
    if not entry.generative:
        generative = tuple(name for name, e in registry.REGISTRY.items() if e.generative)
        raise ConfigError(f"--decoding applies to generation benchmarks {generative}")
    if known is not None:  # refused before loading when the family is known
        decoding_families.check_decoding(decoding, known, config.name or config.model)


def run_settings(entry: registry.Benchmark, job: registry.Job, run_dtype: str) -> dict:
    """The settings that change results: recorded as ``config`` and hashed into the run id."""
    config = job.config
    settings = {
        "benchmark": config.benchmark,
        "model": config.name or config.model,
        "data": job.data_name,
        "data_sha256": job.resolved["data_sha256"],
        "limit": config.limit,
        "mode": job.resolved.get("mode", config.crows.mode),
        "splits": list(config.stereoset.splits) if config.stereoset.splits is not None else None,
        "family": config.family,
        "dtype": run_dtype,
        "quantization": config.quantization,
        "adapter": config.adapter,
        "n_boot": config.n_boot,
        "seed": config.seed,
    }
    if not entry.generative and config.precision.too_long != "error":
        settings["too_long"] = config.precision.too_long  # only when set: run ids stay valid
    settings.update(entry.run_config(job))
    if config.mitigation.head_gates is not None:
        settings["head_gates"] = _gates_id(config.mitigation.head_gates)
    if config.precision.fp32_check is not None:
        settings["fp32_check"] = config.precision.fp32_check
    if entry.generative and config.mitigation.decoding is not None:
        settings["decoding"] = config.mitigation.decoding
        settings["decoding_strength"] = config.mitigation.decoding_strength
    return settings


def evaluate(config: EvalConfig) -> RunResult:
    """Evaluate ``config.model`` on ``config.benchmark``; write ``output/<run_id>.json``.

    Every setting is a field of :class:`~debiaslab.evalconfig.EvalConfig` (its help text says
    what it does). What can fail fails before anything loads, in this order: the settings
    alone (the config, then the benchmark's own checks), the dtype against the benchmark, the
    output folder, the model and its add-ons, the model family, then the data. ``dtype auto``
    is float32 for likelihood benchmarks on every device; the dtype the weights load in is
    recorded and is part of the run id. The result records the config as ``eval_config`` and
    the settings that change results as ``config`` (hashed into the run id).
    """
    entry = registry.get(config.benchmark)
    if config.stereoset.stereoset_mode != "auto" and config.benchmark != "stereoset":
        raise ConfigError("--stereoset-mode applies to the stereoset (likelihood) benchmark")
    job = registry.Job(config, config_section(config, entry.config_type))
    entry.check(job)
    # The dtype the weights will load in: recorded, and part of the run id.
    device = env.select_device(config.device)
    run_dtype = str(
        env.select_dtype(device, config.dtype, likelihood=entry.likelihood, model=config.model)
    ).replace("torch.", "")
    check_request(config.benchmark, run_dtype, config.precision.fp32_check, config.quantization)
    _check_model_and_addons(config)
    known = decoding_families.known_family(config.model, config.family)
    entry.check_family(known, config.model)
    job.family = known
    _check_decoding(entry, config, known)
    if entry.fine_tuning_split:
        _fine_tuning_split(config, job)
    entry.prepare(job)
    loaded = _load_data(entry, job)  # bad data fails before a model is loaded
    job.data_name, job.resolved["data_sha256"] = entry.source(job, loaded)
    settings = run_settings(entry, job, run_dtype)
    name = config.name or config.model
    rid = run_id(name, config.benchmark, settings, config.stage)
    target = Path(config.output) / f"{rid}.json"
    if target.is_file() and not config.force:
        log.info("%s exists: skipping (use force to recompute)", target)
        return RunResult(target, json.loads(target.read_text("utf-8")), skipped=True)

    entry.setup(job)
    load = functools.partial(
        models.load_model,
        config.model,
        family=config.family,
        device=config.device,
        quantization=config.quantization,
        adapter=config.adapter,
        batch_size=config.batch_size,
        trust_remote_code=config.trust_remote_code,
        use_safetensors=config.use_safetensors,
    )
    gates = config.mitigation.head_gates
    lm = load(dtype=run_dtype)
    if gates is not None:
        HeadGates.load(lm.model, gates).attach()  # for as long as this model lives
        lm.info["head_gates"] = settings["head_gates"]
    entry.check_family(lm.family, config.model)  # a hub id's family is known only now
    if entry.generative and config.mitigation.decoding is not None:
        decoding_families.check_decoding(config.mitigation.decoding, lm.family, name)
        job.processors = _decoding(
            lm, config.mitigation.decoding, config.mitigation.decoding_strength
        )
    started = time.perf_counter()
    result = entry.run(lm, loaded, job)
    score_seconds = time.perf_counter() - started
    for key in entry.resolved_keys:  # auto → the value used
        settings[key] = result.config[key]
    check = None
    if config.precision.fp32_check is not None:
        if lm.device.type != "cpu":  # scoring is done: make room for the float32 copy
            lm.model.to("cpu")

        def load_fp32():
            fp32 = load(dtype="float32")
            if gates is not None:
                HeadGates.load(fp32.model, gates).attach()
            return fp32

        check = recheck(
            config.benchmark,
            loaded,
            result.items,
            n=config.precision.fp32_check,
            seed=config.seed,
            half_dtype=run_dtype,
            load_fp32=load_fp32,
            score=lambda lm32, data: entry.run(lm32, data, job),
        )
    record = make_record(
        result,
        model={**lm.info, "name": name, **(config.model_meta or {})},
        config=settings,
        timing={
            "load_seconds": round(lm.load_seconds, 3),
            "score_seconds": round(score_seconds, 3),
        },
        stage=config.stage,
        run=rid,
    )
    if check is not None:
        record["fp32_check"] = check
    record["eval_config"] = config.to_record()
    # Launched as several processes (one per GPU), each holds every result; one writes them.
    path = target
    if distributed.is_main():
        path = write_result(record, config.output, result.items, artifacts=result.artifacts)
    distributed.barrier()
    return RunResult(path, record, skipped=False)


def config_section(config: EvalConfig, section_type: type):
    """The section of ``config`` of type ``section_type`` (a benchmark's settings)."""
    for value in vars(config).values():
        if isinstance(value, section_type):
            return value
    raise ConfigError(f"EvalConfig has no {section_type.__name__} section")


def score_stereoset_predictions(
    gold: str, predictions: str, output: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> RunResult:
    """Score an official StereoSet predictions file; write a result like ``evaluate`` does."""

    check_output_dir(output)
    started = time.perf_counter()
    scored = score_predictions_file(gold, predictions, n_boot=n_boot, seed=seed)
    elapsed = time.perf_counter() - started
    out = BenchmarkOutput(
        benchmark="stereoset",
        metrics=scored["metrics"],
        ci=scored["ci"],
        declared=STEREOSET_METRICS,
        n_items=scored["n_items"],
        config={"form": "predictions_file", "splits": list(scored["splits"])},
    )
    config = {
        "gold": Path(gold).name,
        "gold_sha256": sha256_of(Path(gold)),
        "predictions": Path(predictions).name,
        "predictions_sha256": sha256_of(Path(predictions)),
        "n_boot": n_boot,
        "seed": seed,
    }
    name = Path(predictions).stem
    record = make_record(
        out,
        model={"name": name, "source": str(predictions)},
        config=config,
        timing={"load_seconds": 0.0, "score_seconds": round(elapsed, 3)},
        stage="score",
        run=run_id(name, "stereoset", config, "score"),
    )
    path = write_result(record, output)
    return RunResult(path, record, skipped=False)


def _decoding(lm, decoding: str, strength: float | None):
    """The processor factory and cache key of a ``--decoding`` choice."""

    if decoding == "balance":
        return methods.balance(lm.tokenizer, alpha=1.0 if strength is None else strength)
    prefixes = decoding.removeprefix("self-debias-")
    return methods.self_debias(lm, prefixes, decay=50.0 if strength is None else strength)
