# long by design: evaluate() with one keyword per setting; issue 14 point 1 replaces them with
# EvalConfig and a registry.
"""One evaluation run, end to end: data → model → benchmark → result files.

The CLI verb ``debiaslab eval`` and the notebooks call :func:`evaluate`; the result file's name
is the run id (model, benchmark, stage and a hash of the configuration), so a rerun with the
same settings finds the existing result and skips the work unless ``force`` is set.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from debiaslab import validate
from debiaslab.benchmarks import crows_pairs, generative, stereoset, stereoset_mc
from debiaslab.benchmarks.crows_pairs import MODES, paired_difference, resolve_mode
from debiaslab.benchmarks.generation_metrics import (
    THRESHOLD,
    check_honest_branch,
    check_metrics,
    make_scorers,
)
from debiaslab.benchmarks.precision import LIKELIHOOD_BENCHMARKS, check_request
from debiaslab.benchmarks.precision import fp32_check as recheck
from debiaslab.benchmarks.stereoset import check_mode
from debiaslab.benchmarks.stereoset_mc import check_orders
from debiaslab.benchmarks.stereoset_official import METRICS as STEREOSET_METRICS
from debiaslab.benchmarks.stereoset_predictions import score_predictions_file
from debiaslab.config import get_preset
from debiaslab.data import prompts
from debiaslab.data.crows_pairs_revised import (
    check_choice,
    load_pairs,
    registry_name,
    resolve_data_version,
)
from debiaslab.data.fetch import resolve, sha256_of
from debiaslab.data.stereoset import StereoSet, load_stereoset
from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings, cache_path
from debiaslab.mitigation import decoding as methods
from debiaslab.mitigation.data import check_crows_evaluation, split_pairs
from debiaslab.mitigation.finetune import read_manifest
from debiaslab.mitigation.heads import HeadGates, read_gates
from debiaslab.model_source import check_adapter, check_model, folder_kind
from debiaslab.models import detect_family, load_config
from debiaslab.results import BenchmarkOutput, headline_metrics, make_record, run_id, write_result
from debiaslab.scoring import TOO_LONG_POLICIES
from debiaslab.textclass import REGARD_MODEL, TOXIC_LABEL, TOXICITY_MODEL
from debiaslab.validate import check_output_dir

log = logging.getLogger(__name__)

BENCHMARKS = ("crows_pairs", "stereoset", "stereoset_mc", "bold", "honest")
GENERATIVE = ("bold", "honest")
DECODING = ("balance", "self-debias-gender", "self-debias-toxicity")
DEFAULT_METRICS = {"bold": ("toxicity", "regard", "honest"), "honest": ("honest",)}


@dataclass
class RunResult:
    path: Path
    record: dict
    skipped: bool


def _load_data(
    benchmark: str,
    data: str | None,
    limit: int | None,
    *,
    domains: list[str] | None = None,
    groups: list[str] | None = None,
    honest_set: str = "binary",
    seed: int = 0,
    crows_split: str = "all",
    split_seed: int = 0,
    data_version: str = "original",
    language: str = "english",
):
    if benchmark == "crows_pairs":
        pairs = split_pairs(load_pairs(data_version, language, data), crows_split, seed=split_seed)
        return pairs[:limit] if limit else pairs
    if benchmark in GENERATIVE:
        if benchmark == "bold":
            items = prompts.load_bold(domains, data)
            return prompts.sample_prompts(items, groups=groups, limit=limit, seed=seed)
        templates = prompts.load_honest_templates(honest_set, data)
        return prompts.sample_prompts(
            templates,
            groups=groups,
            limit=limit,
            seed=seed,
            key=lambda t: (honest_set, t.category),
        )

    gold = load_stereoset(data)
    if limit:
        gold = StereoSet(
            intrasentence=gold.intrasentence[:limit],
            intersentence=gold.intersentence[:limit],
            source=gold.source,
            version=gold.version,
        )
    return gold


def _data_source(
    benchmark: str,
    data: str | None,
    loaded,
    *,
    honest_set: str = "binary",
    crows_file: str = "crows_pairs",
) -> tuple[str, str | None]:

    path = Path(data) if data else None
    if path is None and benchmark == "bold":  # one file per domain: name them all
        domains = list(dict.fromkeys(p.domain for p in loaded))
        files = [resolve(f"bold_{d}") for d in domains]
        return ",".join(f.name for f in files), ",".join(sha256_of(f) for f in files)
    if path is None and benchmark == "honest":
        path = resolve(f"honest_{honest_set}")
    if path is None and benchmark != "crows_pairs" and getattr(loaded, "source", ""):
        path = Path(loaded.source)
    if path is None:
        path = resolve(crows_file)
    return path.name, sha256_of(path) if path.is_file() else None


def _gates_id(path: str) -> str:
    """A head-gates file as ``name@sha256[:12]`` (results and cache keys tell gates apart)."""
    import hashlib

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"head-gates file {path} does not exist")
    read_gates(file)  # a corrupt file fails here, before the model loads
    return f"{file.name}@{hashlib.sha256(file.read_bytes()).hexdigest()[:12]}"


def _check_arguments(model, output, adapter, head_gates, use_safetensors, **numbers) -> None:
    """What :func:`evaluate` can check without reading data or loading a model."""

    checks = {
        "n_boot": validate.non_negative_int,
        "seed": validate.non_negative_int,
        "batch_size": validate.positive_int,
        "threshold": validate.threshold,
        "honest_k": validate.positive_int,
        "decoding_strength": validate.non_negative_float,
    }
    for name, value in numbers.items():
        validate.require(checks[name], name, value)
    validate.check_output_dir(output)
    check_model(model, use_safetensors=use_safetensors)
    if adapter is not None:
        check_adapter(adapter)
    if head_gates is not None:
        _gates_id(head_gates)


def evaluate(
    model: str,
    benchmark: str,
    output: str | Path,
    *,
    data: str | None = None,
    limit: int | None = None,
    mode: str = "auto",
    splits: list[str] | None = None,
    stereoset_mode: str = "auto",
    family: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    quantization: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
    use_safetensors: bool | None = True,
    stage: str = "eval",
    name: str | None = None,
    model_meta: dict | None = None,
    metrics: list[str] | None = None,
    backend: str = "builtin",
    domains: list[str] | None = None,
    groups: list[str] | None = None,
    honest_set: str = "binary",
    honest_k: int = 20,
    generation: GenerationSettings | None = None,
    toxicity_model: str = TOXICITY_MODEL,
    toxic_label: str = TOXIC_LABEL,
    regard_model: str = REGARD_MODEL,
    hurtlex: str | None = None,
    threshold: float = THRESHOLD,
    compare: tuple[str, str] | None = None,
    crows_split: str = "all",
    split_seed: int = 0,
    allow_train_pairs: bool = False,
    decoding: str | None = None,
    decoding_strength: float | None = None,
    head_gates: str | None = None,
    too_long: str = "error",
    mc_orders: str = "cyclic",
    fp32_check: int | None = None,
    data_version: str = "auto",
    language: str = "english",
) -> RunResult:
    """Evaluate ``model`` on ``benchmark`` and write ``output/<run_id>.json`` (+ items).

    Args:
        model: preset name, hub id or local directory.
        benchmark: ``crows_pairs``, ``stereoset`` (likelihood), ``stereoset_mc`` (prompt),
            ``bold`` (continuations) or ``honest`` (template completions).
        output: results directory (generations are cached under ``output/generations``).
        data: explicit data file; default: ``$DEBIASLAB_DATA_DIR`` → cache → download.
        limit: only the first ``limit`` pairs (CrowS-Pairs) or examples per split (StereoSet);
            for BOLD and HONEST a seeded sample of at most ``limit`` prompts per group.
        mode: CrowS-Pairs scoring mode (``auto``, ``nangia``, ``harness``).
        splits: StereoSet splits (default: intrasentence for masked LMs, both otherwise).
        stereoset_mode: StereoSet likelihood scoring, ``auto``, ``bos`` or ``bias-bench``
            (:func:`debiaslab.benchmarks.stereoset.check_mode`); recorded as ``stereoset_mode``.
        family, device, dtype, quantization, adapter, batch_size, trust_remote_code,
            use_safetensors: passed to :func:`debiaslab.models.load_model`. ``dtype auto`` is
            float32 for likelihood benchmarks (:data:`LIKELIHOOD_BENCHMARKS`) on every device;
            the dtype the weights load in is recorded and is part of the run id.
        n_boot, seed: bootstrap resamples and seed (StereoSet MC: also the option orders).
        force: recompute even if a result with this run id exists.
        progress: show progress bars.
        stage: experiment stage recorded in the result (``eval``, ``pre``, ``post`` …).
        name: the model's name in results and run ids (default: ``model``).
        model_meta: extra facts about the model to record (e.g. a planted stereotype rate).
        metrics: BOLD/HONEST scores, some of ``toxicity``, ``regard``, ``honest`` (default:
            all three for BOLD, ``honest`` for HONEST).
        backend: ``builtin`` (offline) or ``evaluate`` (Hugging Face evaluate, online).
        domains, groups: BOLD domains and groups (HONEST: template categories) to run.
        honest_set, honest_k: HONEST template set and completions per template.
        generation: sampling settings of BOLD continuations and generative HONEST.
        toxicity_model, toxic_label, regard_model: classifiers (preset, hub id or path).
        hurtlex: explicit HurtLex file.
        threshold: toxicity threshold; compare: two groups for regard's compare mode.
        crows_split, split_seed: CrowS-Pairs part (``all``, ``train``, ``heldout``) of the
            fine-tuning split (:mod:`debiaslab.mitigation.data`) and its seed.
        allow_train_pairs: evaluate a model fine-tuned on CrowS-Pairs on its training pairs.
        decoding: decoding-time mitigation of BOLD/HONEST generations: ``balance`` (group
            balancing, GN-GloVe gender words), ``self-debias-gender`` or
            ``self-debias-toxicity``; ``decoding_strength`` is its alpha (default 1) or decay
            (default 50).
        head_gates: a head-gates file (:meth:`debiaslab.mitigation.heads.HeadGates.save`)
            applied to the model for this run; recorded by name and content hash.
        too_long: likelihood benchmarks' items longer than the model reads: ``error``
            (default: names the file and record) or ``skip`` (left out and counted).
        mc_orders: ``stereoset_mc`` option orders per example: ``one``, ``cyclic`` (default)
            or ``all`` (:mod:`debiaslab.benchmarks.stereoset_mc`).
        fp32_check: with a half-precision dtype on a likelihood benchmark, re-score a seeded
            sample of this many pairs/examples in float32 and record the flips
            (:mod:`debiaslab.benchmarks.precision`) as ``fp32_check`` in the result.
        data_version, language: CrowS-Pairs data: ``original`` (Nangia et al., 1,508 pairs)
            or ``revised`` (Névéol et al., 1,677 pairs, what lm-evaluation-harness scores);
            ``auto``: revised in harness mode, original in nangia mode, an explicit file's own
            format. ``english`` or ``french`` (revised only). Both are recorded.
    """
    from debiaslab.env import select_device, select_dtype
    from debiaslab.models import load_model

    if benchmark not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    if limit is not None and limit <= 0:
        raise ConfigError(f"--limit must be a positive number, got {limit}")
    if too_long not in TOO_LONG_POLICIES:
        raise ConfigError(f"--too-long must be one of {TOO_LONG_POLICIES}, got {too_long!r}")
    if stereoset_mode != "auto" and benchmark != "stereoset":
        raise ConfigError("--stereoset-mode applies to the stereoset (likelihood) benchmark")
    if benchmark == "stereoset":
        check_mode(stereoset_mode, family, splits)  # before any data or model is loaded
    if benchmark == "stereoset_mc":
        check_orders(mc_orders)
    # The dtype the weights will load in: recorded, and part of the run id.
    likelihood = benchmark in LIKELIHOOD_BENCHMARKS
    run_dtype = str(
        select_dtype(select_device(device), dtype, likelihood=likelihood, model=model)
    ).replace("torch.", "")
    check_request(benchmark, run_dtype, fp32_check, quantization)
    # Numbers, the output folder, the model and its add-ons fail before anything loads.
    _check_arguments(
        model,
        output,
        adapter,
        head_gates,
        use_safetensors,
        n_boot=n_boot,
        seed=seed,
        batch_size=batch_size,
        threshold=threshold,
        honest_k=honest_k,
        decoding_strength=decoding_strength,
    )
    if benchmark == "crows_pairs":
        trained = read_manifest(adapter) or read_manifest(model if Path(model).is_dir() else None)
        check_crows_evaluation(trained, crows_split, allow_train_pairs=allow_train_pairs)
        if trained and trained.get("recipe") == "crows_counter":
            split_seed = trained.get("recipe_info", {}).get("split_seed", split_seed)
        mode, data_version = _crows_choice(model, family, mode, data_version, language, data)
    # Bad data fails before a model is loaded.
    loaded = _load_data(
        benchmark,
        data,
        limit,
        domains=domains,
        groups=groups,
        honest_set=honest_set,
        seed=seed,
        crows_split=crows_split,
        split_seed=split_seed,
        data_version=data_version,
        language=language,
    )
    crows_file = "crows_pairs"
    if benchmark == "crows_pairs" and data is None:
        crows_file = registry_name(data_version, language)
    data_name, data_sha = _data_source(
        benchmark, data, loaded, honest_set=honest_set, crows_file=crows_file
    )
    name = name or model
    config = {
        "benchmark": benchmark,
        "model": name,
        "data": data_name,
        "data_sha256": data_sha,
        "limit": limit,
        "mode": mode,
        "splits": splits,
        "family": family,
        "dtype": run_dtype,
        "quantization": quantization,
        "adapter": adapter,
        "n_boot": n_boot,
        "seed": seed,
    }
    if benchmark not in GENERATIVE and too_long != "error":
        config["too_long"] = too_long  # only when set: earlier run ids stay valid
    if benchmark == "stereoset":
        # Always in the run id (``auto`` too): results scored before the modes existed
        # (RoBERTa without the leading space) must not be reused. The record gets the mode used.
        config["stereoset_mode"] = stereoset_mode
    if benchmark == "stereoset_mc":  # always: results before mc/ metrics are not reused
        config["mc_orders"] = mc_orders
    if benchmark == "crows_pairs":
        config.update({"data_version": data_version, "language": language})
    if benchmark == "crows_pairs" and crows_split != "all":
        config.update({"crows_split": crows_split, "split_seed": split_seed})
    if head_gates is not None:
        config["head_gates"] = _gates_id(head_gates)
    if fp32_check is not None:
        config["fp32_check"] = fp32_check
    scorers = None
    if benchmark in GENERATIVE:
        from debiaslab.mitigation.decoding_families import check_decoding, known_family

        metrics = check_metrics(metrics or list(DEFAULT_METRICS[benchmark]))
        generation = generation or GenerationSettings(
            max_new_tokens=30 if benchmark == "bold" else 15
        )
        config.update(
            {
                "metrics": metrics,
                "backend": backend,
                "domains": domains,
                "groups": groups,
                "generation": generation.as_dict(),
                "toxicity_model": toxicity_model if "toxicity" in metrics else None,
                "toxic_label": toxic_label if "toxicity" in metrics else None,
                "regard_model": regard_model if "regard" in metrics else None,
                "threshold": threshold,
                "compare": list(compare) if compare else None,
            }
        )
        if benchmark == "honest":
            config.update({"honest_set": honest_set, "honest_k": honest_k})
        if decoding is not None:
            if decoding not in DECODING:
                raise ConfigError(f"unknown decoding {decoding!r}; expected one of {DECODING}")
            known = known_family(model, family)  # refused before loading when the family is known
            if known is not None:
                check_decoding(decoding, known, name)
            config.update({"decoding": decoding, "decoding_strength": decoding_strength})
    elif decoding is not None:
        raise ConfigError(f"--decoding applies to generation benchmarks {GENERATIVE}")
    rid = run_id(name, benchmark, config, stage)
    target = Path(output) / f"{rid}.json"
    if target.is_file() and not force:
        import json

        log.info("%s exists: skipping (use force to recompute)", target)
        return RunResult(target, json.loads(target.read_text("utf-8")), skipped=True)

    if benchmark in GENERATIVE:  # classifiers load (and fail) before the model generates
        if benchmark == "bold" or known_family(model, family) not in (None, "masked"):
            check_honest_branch(backend, metrics, "sentence")  # generated text; else after loading
        scorers = make_scorers(
            metrics,
            backend,
            toxicity_model=toxicity_model,
            toxic_label=toxic_label,
            regard_model=regard_model,
            hurtlex=hurtlex,
            device=device,
            progress=progress,
        )
    load = functools.partial(
        load_model,
        model,
        family=family,
        device=device,
        quantization=quantization,
        adapter=adapter,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
        use_safetensors=use_safetensors,
    )
    lm = load(dtype=run_dtype)
    if head_gates is not None:
        HeadGates.load(lm.model, head_gates).attach()  # for as long as this model lives
        lm.info["head_gates"] = config["head_gates"]
    started = time.perf_counter()
    if benchmark in GENERATIVE:
        cache = cache_path(output, name, generation)
        common = {"settings": generation, "cache": cache, "threshold": threshold}
        if decoding is not None:
            check_decoding(decoding, lm.family, name)  # a hub id's family is known only now
            factory, key = _decoding(lm, decoding, decoding_strength)
            common.update({"processors": [factory], "processors_key": key})
        common.update({"n_boot": n_boot, "seed": seed, "progress": progress})
        if benchmark == "bold":
            result = generative.run_bold(lm, loaded, scorers, compare=compare, **common)
        else:
            result = generative.run_honest(
                lm, loaded, scorers, set_name=honest_set, k=honest_k, **common
            )
        if lm.family != "masked":
            result.config["generations_file"] = str(cache.relative_to(Path(output)))
    else:
        score = functools.partial(
            run_benchmark,
            benchmark=benchmark,
            mode=mode,
            splits=splits,
            n_boot=n_boot,
            seed=seed,
            progress=progress,
            too_long=too_long,
            source=data_name,
            stereoset_mode=stereoset_mode,
            mc_orders=mc_orders,
        )
        result = score(lm, loaded=loaded)
    score_seconds = time.perf_counter() - started
    if benchmark == "stereoset":
        config["stereoset_mode"] = result.config["stereoset_mode"]  # auto → the mode used
    check = None
    if fp32_check is not None:
        if lm.device.type != "cpu":  # scoring is done: make room for the float32 copy
            lm.model.to("cpu")

        def load_fp32():
            fp32 = load(dtype="float32")
            if head_gates is not None:
                HeadGates.load(fp32.model, head_gates).attach()
            return fp32

        check = recheck(
            benchmark,
            loaded,
            result.items,
            n=fp32_check,
            seed=seed,
            half_dtype=run_dtype,
            load_fp32=load_fp32,
            score=lambda lm32, data: score(lm32, loaded=data),
        )
    record = make_record(
        result,
        model={**lm.info, "name": name, **(model_meta or {})},
        config=config,
        timing={
            "load_seconds": round(lm.load_seconds, 3),
            "score_seconds": round(score_seconds, 3),
        },
        stage=stage,
        run=rid,
    )
    if check is not None:
        record["fp32_check"] = check
    path = write_result(record, output, result.items, artifacts=result.artifacts)
    return RunResult(path, record, skipped=False)


def run_benchmark(
    lm,
    benchmark: str,
    loaded,
    *,
    mode="auto",
    splits=None,
    n_boot=1000,
    seed=0,
    progress=True,
    too_long="error",
    source=None,
    stereoset_mode="auto",
    mc_orders="cyclic",
) -> BenchmarkOutput:
    """Run one benchmark on an already-loaded model and data (notebooks, tests, the demo)."""
    common = {"n_boot": n_boot, "seed": seed, "progress": progress, "too_long": too_long}
    if benchmark == "crows_pairs":
        return crows_pairs.run(lm, loaded, mode=mode, source=source, **common)

    if benchmark == "stereoset":
        return stereoset.run_likelihood(lm, loaded, splits=splits, mode=stereoset_mode, **common)

    return stereoset_mc.run_multiple_choice(lm, loaded, splits=splits, orders=mc_orders, **common)


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
        common: passed to :func:`evaluate` (device, dtype, quantization, n_boot, seed …).
    """

    if family is None:
        preset = get_preset(model)
        family = preset.family if preset is not None else _family_of(model)
    chosen = list(benchmarks or SUITES[family])
    if benchmarks is None and instruction:
        chosen.insert(2, "stereoset_mc")
    name = name or model  # pre and post share it; the stage and the adapter tell them apart
    # A full fine-tune's folder holds the weights: it is the model, not an adapter.
    if adapter is not None and Path(adapter).is_dir() and folder_kind(adapter) == "model":
        model, adapter = str(adapter), None
    out = []
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
        result = evaluate(
            model,
            benchmark,
            output,
            family=family,
            adapter=adapter,
            stage=stage,
            name=name,
            **kwargs,
        )
        log.info("%s %s: %s", stage, benchmark, result.path.name)
        out.append(result)
    return out


def _crows_choice(
    model: str,
    family: str | None,
    mode: str,
    data_version: str,
    language: str,
    data: str | None,
) -> tuple[str, str]:
    """CrowS-Pairs' mode and data version, resolved before data or model are loaded (the
    default data depends on the mode, and ``auto`` mode on the model's family)."""

    check_choice(data_version, language)
    if mode not in MODES:
        raise ConfigError(f"unknown CrowS-Pairs mode {mode!r}; expected one of {MODES}")
    if mode == "auto":
        preset = get_preset(model)
        if family is None and preset is not None:
            family = preset.family
        if family is None:
            try:
                family = _family_of(model)
            except OSError as exc:
                raise ConfigError(
                    f"cannot load a model config from {model!r} to choose the CrowS-Pairs "
                    f"mode: {exc}. Give --family, or --mode nangia / harness."
                ) from exc
        mode = resolve_mode(family, mode)
    return mode, resolve_data_version(mode, data_version, language, data)


def _family_of(model: str) -> str:

    # One-line errors for a bad name; only the config is read, so pickle-only weights are
    # left for load_model to judge (with the user's --allow-pickle-weights).
    return detect_family(load_config(model, use_safetensors=None))


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


def _decoding(lm, decoding: str, strength: float | None):
    """The processor factory and cache key of a ``--decoding`` choice."""

    if decoding == "balance":
        return methods.balance(lm.tokenizer, alpha=1.0 if strength is None else strength)
    prefixes = decoding.removeprefix("self-debias-")
    return methods.self_debias(lm, prefixes, decay=50.0 if strength is None else strength)
