"""The benchmark registry: what ``runner.evaluate`` can run, and how.

Each :class:`Benchmark` names its module (its card, and its ``METRICS``), the model
families it supports, the :mod:`debiaslab.evalconfig` section it reads and its hooks: check
and resolve settings, load data, name the data, the settings that go into the run id, run.
Adding a benchmark is one module and one :func:`register` call here. Example:

    >>> get("stereoset_mc").families
    ('causal', 'seq2seq')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from debiaslab.benchmarks import crows_pairs, generative, stereoset, stereoset_mc
from debiaslab.benchmarks.generation_metrics import (
    check_honest_branch,
    check_metrics,
    make_scorers,
)
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
from debiaslab.evalconfig import (
    CrowsPairsConfig,
    EvalConfig,
    GenerationConfig,
    StereoSetConfig,
)
from debiaslab.generation import GenerationSettings, cache_path
from debiaslab.models import detect_family, load_config
from debiaslab.results import BenchmarkOutput

ALL_FAMILIES = ("causal", "masked", "seq2seq")
DEFAULT_METRICS = {"bold": ("toxicity", "regard", "honest"), "honest": ("honest",)}


@dataclass
class Job:
    """One evaluation as a benchmark's hooks see it.

    ``settings`` is the benchmark's section of ``config``; ``family`` the model's family when
    known before loading (else None); hooks keep what they resolve in ``resolved`` (the
    CrowS-Pairs mode, the metrics, the generation settings); ``select`` keeps a part of the
    items before ``limit`` applies (the runner sets it for a fine-tuning split).
    """

    config: EvalConfig
    settings: Any
    family: str | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    select: Callable[[list], list] | None = None
    data_name: str | None = None  # the data file's name, once loaded
    processors: tuple[Any, str] | None = None  # decoding-time (factory, cache key)


def _nothing(job: Job) -> None:
    return None


def _no_settings(job: Job) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark.

    Attributes:
        name: the ``--benchmark`` value.
        title: how messages name it (``BOLD``).
        module: the module that scores it (its docstring is the card).
        families: the model families it runs on.
        config_type: the :class:`~debiaslab.evalconfig.EvalConfig` section it reads.
        load: ``load(job)`` → the items (``limit`` applied).
        source: ``source(job, loaded)`` → (data file name, its sha256 or None).
        run: ``run(lm, loaded, job)`` → :class:`~debiaslab.results.BenchmarkOutput`.
        check: ``check(job)``: checks of the settings alone, before anything else.
        prepare: ``prepare(job)``: resolves settings once the model is known to exist,
            before data or model load.
        run_config: ``run_config(job)`` → settings recorded in the result and its run id.
        setup: ``setup(job)``: after the run id is known, before the model loads (classifiers).
        likelihood: scored by log-likelihood (float32 by default; ``--too-long``,
            ``--fp32-check`` apply).
        generative: scored on generated text (``--decoding`` applies).
        resolved_keys: run-id settings whose recorded value is the one the run used
            (``auto`` resolved).
        fine_tuning_split: a fine-tuning recipe trains on this benchmark's items, so the
            runner evaluates the part it did not train on (``--crows-split``).
    """

    name: str
    title: str
    module: ModuleType
    families: tuple[str, ...]
    config_type: type
    load: Callable[[Job], Any]
    source: Callable[[Job, Any], tuple[str, str | None]]
    run: Callable[[Any, Any, Job], BenchmarkOutput]
    check: Callable[[Job], None] = _nothing
    prepare: Callable[[Job], None] = _nothing
    run_config: Callable[[Job], dict[str, Any]] = _no_settings
    setup: Callable[[Job], None] = _nothing
    likelihood: bool = False
    generative: bool = False
    resolved_keys: tuple[str, ...] = ()
    fine_tuning_split: bool = False

    def check_family(self, family: str | None, model: str) -> None:
        """Refuse a model family this benchmark does not run on (``None``: not known yet)."""
        if family is not None and family not in self.families:
            raise ConfigError(
                f"{self.title} needs a {' or '.join(self.families)} model; {model!r} is a "
                f"{family} LM (benchmark {self.name} runs on {', '.join(self.families)} models)"
            )


REGISTRY: dict[str, Benchmark] = {}


def register(entry: Benchmark) -> Benchmark:
    """Add ``entry`` to the registry (a name is registered once)."""
    if entry.name in REGISTRY:
        raise ValueError(f"benchmark {entry.name!r} is registered twice")
    if not set(entry.families) <= set(ALL_FAMILIES):
        raise ValueError(f"{entry.name}: unknown families in {entry.families}")
    if not isinstance(getattr(entry.module, "METRICS", None), dict):
        raise ValueError(f"{entry.name}: module {entry.module.__name__} declares no METRICS")
    REGISTRY[entry.name] = entry
    return entry


def names() -> tuple[str, ...]:
    """The registered benchmark names, in registration order."""
    return tuple(REGISTRY)


def get(name: str) -> Benchmark:
    """The entry of ``name``; a ConfigError that lists the registered names if unknown."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown benchmark {name!r}; expected one of {', '.join(REGISTRY)}"
        ) from None


def _limited(items: list, job: Job) -> list:
    items = job.select(items) if job.select is not None else items
    return items[: job.config.limit] if job.config.limit else items


def _file_source(path: Path) -> tuple[str, str | None]:
    return path.name, sha256_of(path) if path.is_file() else None


def _common(job: Job) -> dict[str, Any]:
    """Keyword arguments every scoring function takes."""
    config = job.config
    return {"n_boot": config.n_boot, "seed": config.seed, "progress": config.progress}


# --------------------------------------------------------------------------------- CrowS-Pairs


def _crows_prepare(job: Job) -> None:
    """CrowS-Pairs' mode and data version, resolved before data or model are loaded (the
    default data depends on the mode, and ``auto`` mode on the model's family)."""
    settings: CrowsPairsConfig = job.settings
    config = job.config
    job.resolved.setdefault("split_seed", settings.split_seed)
    check_choice(settings.data_version, settings.language)
    mode, family = settings.mode, config.family
    if mode == "auto":
        preset = get_preset(config.model)
        if family is None and preset is not None:
            family = preset.family
        if family is None:
            try:
                family = family_of(config.model)
            except OSError as exc:
                raise ConfigError(
                    f"cannot load a model config from {config.model!r} to choose the "
                    f"CrowS-Pairs mode: {exc}. Give --family, or --mode nangia / harness."
                ) from exc
        mode = crows_pairs.resolve_mode(family, mode)
    job.resolved["mode"] = mode
    job.resolved["data_version"] = resolve_data_version(
        mode, settings.data_version, settings.language, config.data
    )


def family_of(model: str) -> str:
    """A model's family from its config (one-line errors for a bad name).

    Only the config is read, so pickle-only weights are left for ``load_model`` to judge
    (with the user's ``--allow-pickle-weights``).
    """
    return detect_family(load_config(model, use_safetensors=None))


def _crows_load(job: Job) -> list:
    version, language = job.resolved["data_version"], job.settings.language
    return _limited(load_pairs(version, language, job.config.data), job)


def _crows_source(job: Job, loaded) -> tuple[str, str | None]:
    if job.config.data:
        return _file_source(Path(job.config.data))
    return _file_source(
        resolve(registry_name(job.resolved["data_version"], job.settings.language))
    )


def _crows_run_config(job: Job) -> dict[str, Any]:
    settings: CrowsPairsConfig = job.settings
    out = {"data_version": job.resolved["data_version"], "language": settings.language}
    if settings.crows_split != "all":
        out.update({"crows_split": settings.crows_split, "split_seed": job.resolved["split_seed"]})
    return out


def _crows_run(lm, loaded, job: Job) -> BenchmarkOutput:
    return crows_pairs.run_crows_pairs(
        lm,
        loaded,
        mode=job.resolved["mode"],
        source=job.data_name,
        too_long=job.config.precision.too_long,
        **_common(job),
    )


# ----------------------------------------------------------------------------------- StereoSet


def _stereoset_load(job: Job) -> StereoSet:
    gold = load_stereoset(job.config.data)
    limit = job.config.limit
    if limit:
        gold = StereoSet(
            intrasentence=gold.intrasentence[:limit],
            intersentence=gold.intersentence[:limit],
            source=gold.source,
            version=gold.version,
        )
    return gold


def _stereoset_source(job: Job, loaded) -> tuple[str, str | None]:
    if job.config.data:
        return _file_source(Path(job.config.data))
    if getattr(loaded, "source", ""):
        return _file_source(Path(loaded.source))
    return _file_source(resolve("crows_pairs"))  # as before the registry: no source known


def _splits(job: Job) -> list[str] | None:
    splits = job.settings.splits
    return list(splits) if splits is not None else None


def _stereoset_check(job: Job) -> None:
    stereoset.check_mode(job.settings.stereoset_mode, job.config.family, _splits(job))


def _stereoset_run(lm, loaded, job: Job) -> BenchmarkOutput:
    return stereoset.run_likelihood(
        lm,
        loaded,
        splits=_splits(job),
        mode=job.settings.stereoset_mode,
        too_long=job.config.precision.too_long,
        **_common(job),
    )


def _mc_check(job: Job) -> None:
    stereoset_mc.check_orders(job.settings.mc_orders)


def _mc_run(lm, loaded, job: Job) -> BenchmarkOutput:
    return stereoset_mc.run_multiple_choice(
        lm,
        loaded,
        splits=_splits(job),
        orders=job.settings.mc_orders,
        too_long=job.config.precision.too_long,
        **_common(job),
    )


# ------------------------------------------------------------------------------- BOLD, HONEST


def _generation_settings(job: Job) -> GenerationSettings:
    """Sampling settings from the config; none given: the benchmark's defaults (seed 0)."""
    s: GenerationConfig = job.settings
    given = {
        "max_new_tokens": s.max_new_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "num_return_sequences": s.num_return_sequences,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if s.greedy:
        given["do_sample"] = False
    default_tokens = 30 if job.config.benchmark == "bold" else 15
    if not given:
        return GenerationSettings(max_new_tokens=default_tokens)
    if job.config.benchmark == "honest":
        given.setdefault("max_new_tokens", default_tokens)
    return GenerationSettings(seed=job.config.seed, **given)


def _generative_prepare(job: Job) -> None:
    s: GenerationConfig = job.settings
    job.resolved["metrics"] = check_metrics(
        list(s.metrics or DEFAULT_METRICS[job.config.benchmark])
    )
    job.resolved["generation"] = _generation_settings(job)


def _generative_run_config(job: Job) -> dict[str, Any]:
    s: GenerationConfig = job.settings
    metrics = job.resolved["metrics"]
    out = {
        "metrics": metrics,
        "backend": s.backend,
        "domains": list(s.domains) if s.domains is not None else None,
        "groups": list(s.groups) if s.groups is not None else None,
        "generation": job.resolved["generation"].as_dict(),
        "toxicity_model": s.toxicity_model if "toxicity" in metrics else None,
        "toxic_label": s.toxic_label if "toxicity" in metrics else None,
        "regard_model": s.regard_model if "regard" in metrics else None,
        "threshold": s.threshold,
        "compare": list(s.compare) if s.compare else None,
    }
    if job.config.benchmark == "honest":
        out.update({"honest_set": s.honest_set, "honest_k": s.honest_k})
    return out


def _generative_setup(job: Job) -> None:
    """Classifiers load (and fail) before the model generates."""
    s: GenerationConfig = job.settings
    if job.config.benchmark == "bold" or job.family not in (None, "masked"):
        check_honest_branch(s.backend, job.resolved["metrics"], "sentence")  # else after loading
    job.resolved["scorers"] = make_scorers(
        job.resolved["metrics"],
        s.backend,
        toxicity_model=s.toxicity_model,
        toxic_label=s.toxic_label,
        regard_model=s.regard_model,
        hurtlex=s.hurtlex,
        device=job.config.device,
        progress=job.config.progress,
    )


def _generative_kwargs(job: Job) -> dict[str, Any]:
    settings = job.resolved["generation"]
    name = job.config.name or job.config.model
    cache = cache_path(job.config.output, name, settings, job.config.stage)
    out = {"settings": settings, "cache": cache, "threshold": job.settings.threshold}
    if job.processors is not None:
        factory, key = job.processors
        out.update({"processors": [factory], "processors_key": key})
    return {**out, **_common(job)}


def _with_generations_file(lm, result: BenchmarkOutput, job: Job, cache: Path):
    if lm.family != "masked":
        result.config["generations_file"] = str(Path(cache).relative_to(Path(job.config.output)))
    return result


def _bold_load(job: Job) -> list:
    s: GenerationConfig = job.settings
    domains = list(s.domains) if s.domains is not None else None
    groups = list(s.groups) if s.groups is not None else None
    items = prompts.load_bold(domains, job.config.data)
    return prompts.sample_prompts(
        items, groups=groups, limit=job.config.limit, seed=job.config.seed
    )


def _bold_source(job: Job, loaded) -> tuple[str, str | None]:
    if job.config.data:
        return _file_source(Path(job.config.data))
    domains = list(dict.fromkeys(p.domain for p in loaded))  # one file per domain: name them all
    files = [resolve(f"bold_{d}") for d in domains]
    return ",".join(f.name for f in files), ",".join(sha256_of(f) for f in files)


def _bold_run(lm, loaded, job: Job) -> BenchmarkOutput:
    kwargs = _generative_kwargs(job)
    compare = job.settings.compare
    result = generative.run_bold(
        lm, loaded, job.resolved["scorers"], compare=tuple(compare) if compare else None, **kwargs
    )
    return _with_generations_file(lm, result, job, kwargs["cache"])


def _honest_load(job: Job) -> list:
    s: GenerationConfig = job.settings
    templates = prompts.load_honest_templates(s.honest_set, job.config.data)
    return prompts.sample_prompts(
        templates,
        groups=list(s.groups) if s.groups is not None else None,
        limit=job.config.limit,
        seed=job.config.seed,
        key=lambda t: (s.honest_set, t.category),
    )


def _honest_source(job: Job, loaded) -> tuple[str, str | None]:
    if job.config.data:
        return _file_source(Path(job.config.data))
    return _file_source(resolve(f"honest_{job.settings.honest_set}"))


def _honest_run(lm, loaded, job: Job) -> BenchmarkOutput:
    kwargs = _generative_kwargs(job)
    s: GenerationConfig = job.settings
    result = generative.run_honest(
        lm, loaded, job.resolved["scorers"], set_name=s.honest_set, k=s.honest_k, **kwargs
    )
    return _with_generations_file(lm, result, job, kwargs["cache"])


# ------------------------------------------------------------------------------ registrations

register(
    Benchmark(
        "crows_pairs", "CrowS-Pairs", crows_pairs, ALL_FAMILIES, CrowsPairsConfig,
        load=_crows_load, source=_crows_source, run=_crows_run, prepare=_crows_prepare,
        run_config=_crows_run_config, likelihood=True, fine_tuning_split=True,
    )
)  # fmt: skip
register(
    Benchmark(
        "stereoset", "StereoSet", stereoset, ALL_FAMILIES, StereoSetConfig,
        load=_stereoset_load, source=_stereoset_source, run=_stereoset_run,
        check=_stereoset_check,
        # Always in the run id (auto too): results scored before the modes existed (RoBERTa
        # without the leading space) must not be reused. The record gets the mode used.
        run_config=lambda job: {"stereoset_mode": job.settings.stereoset_mode},
        likelihood=True, resolved_keys=("stereoset_mode",),
    )
)  # fmt: skip
register(
    Benchmark(
        "stereoset_mc", "StereoSet (multiple choice)", stereoset_mc, ("causal", "seq2seq"),
        StereoSetConfig, load=_stereoset_load, source=_stereoset_source, run=_mc_run,
        check=_mc_check,
        # Always: results before the mc/ metrics are not reused.
        run_config=lambda job: {"mc_orders": job.settings.mc_orders},
        likelihood=True,
    )
)  # fmt: skip
register(
    Benchmark(
        "bold", "BOLD", generative, ("causal", "seq2seq"), GenerationConfig,
        load=_bold_load, source=_bold_source, run=_bold_run, prepare=_generative_prepare,
        run_config=_generative_run_config, setup=_generative_setup, generative=True,
    )
)  # fmt: skip
register(
    Benchmark(
        "honest", "HONEST", generative, ALL_FAMILIES, GenerationConfig,
        load=_honest_load, source=_honest_source, run=_honest_run, prepare=_generative_prepare,
        run_config=_generative_run_config, setup=_generative_setup, generative=True,
    )
)  # fmt: skip
