"""One typed evaluation config: every setting of ``debiaslab eval`` / ``runner.evaluate``.

:class:`EvalConfig` holds the common settings and one sub-config per benchmark family; each
field carries its help text, choices and number check in ``field(metadata=...)``, from which
the ``eval`` flags are generated (:func:`add_arguments`) and API values are checked at
construction. Example:

    >>> EvalConfig.of("tiny-gpt2", "crows_pairs", "results", limit=4, mode="harness").crows.mode
    'harness'
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from debiaslab import validate
from debiaslab.benchmarks import crows_pairs, stereoset, stereoset_mc
from debiaslab.benchmarks.generation_metrics import BACKENDS, THRESHOLD
from debiaslab.config import FAMILIES
from debiaslab.data.crows_pairs_revised import DATA_VERSIONS, LANGUAGES
from debiaslab.data.prompts import HONEST_SETS
from debiaslab.errors import ConfigError
from debiaslab.models import QUANTIZATIONS
from debiaslab.scoring import TOO_LONG_POLICIES
from debiaslab.textclass import REGARD_MODEL, TOXIC_LABEL, TOXICITY_MODEL

DECODING = ("balance", "self-debias-gender", "self-debias-toxicity")
CROWS_SPLITS = ("all", "train", "heldout")  # mitigation.data.SPLITS (checked there too)
SPLITS = ("intrasentence", "intersentence")


def setting(default: Any = None, help: str = "", **meta: Any) -> Any:
    """A config field with its flag's metadata.

    ``meta`` keys: ``check`` (a :class:`~debiaslab.validate.NumberCheck`: the flag's type and
    the API check), ``choices``, ``nargs``, ``metavar``, ``required``, ``type`` (the flag's
    parser when not a number check), ``flag`` (the flag's name when it is not the field's,
    e.g. ``--no-progress``), ``const`` (the value such a switch stores).
    """
    meta["help"] = help
    if isinstance(default, dict | list):
        raise TypeError("mutable defaults: use None")
    if meta.get("required"):
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def comma_list(text: str) -> list[str]:
    """``toxicity,regard`` → ``["toxicity", "regard"]``."""
    return [part for part in text.split(",") if part]


def json_object(text: str) -> dict:
    """A JSON object given on the command line (``--model-meta '{"planted_rate": 0.2}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


class Section:
    """Checks and normalises the fields of a config dataclass (common to every section)."""

    title: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in SECTIONS:
                continue
            value = getattr(self, f.name)
            check, choices = f.metadata.get("check"), f.metadata.get("choices")
            if isinstance(value, list | tuple):  # JSON gives lists back: one form, tuples
                value = tuple(value)
            if isinstance(value, Path):
                value = str(value)
            if check is not None:
                value = validate.require(check, f.name, value)
            items = value if f.metadata.get("nargs") and value is not None else (value,)
            if choices is not None and value is not None:
                bad = [v for v in items if v not in choices]
                if bad:
                    raise ConfigError(
                        f"unknown {f.name} {bad[0]!r} ({flag_of(f)}); expected one of "
                        f"{', '.join(choices)}"
                    )
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class CrowsPairsConfig(Section):
    """CrowS-Pairs: scoring mode, data version and language, the fine-tuning split."""

    title: ClassVar[str] = "CrowS-Pairs"

    mode: str = setting(
        "auto",
        "CrowS-Pairs scoring (auto: nangia for masked LMs, else harness)",
        choices=crows_pairs.MODES,
    )
    data_version: str = setting(
        "auto",
        "CrowS-Pairs data: original (Nangia et al., metric.py) or revised (Névéol et al., "
        "what lm-evaluation-harness scores); auto: revised for harness mode, else original",
        choices=("auto", *DATA_VERSIONS),
    )
    language: str = setting(
        "english",
        "CrowS-Pairs language (french: revised data only, lm-eval's crows_pairs_french)",
        choices=LANGUAGES,
    )
    crows_split: str = setting(
        "all",
        "CrowS-Pairs part of the fine-tuning split (heldout after crows_counter training)",
        choices=CROWS_SPLITS,
    )
    split_seed: int = setting(0, "seed of that split", check=validate.non_negative_int)
    allow_train_pairs: bool = setting(
        False, "evaluate a model fine-tuned on CrowS-Pairs on its own training pairs"
    )


@dataclass(frozen=True)
class StereoSetConfig(Section):
    """StereoSet: splits, likelihood scoring form, multiple-choice option orders."""

    title: ClassVar[str] = "StereoSet"

    splits: tuple[str, ...] | None = setting(
        None, "StereoSet splits (default: intrasentence for masked LMs, both otherwise)",
        choices=SPLITS, nargs="+",
    )  # fmt: skip
    stereoset_mode: str = setting(
        "auto",
        "StereoSet likelihood scoring: bias-bench (bias-bench's runner: masked LMs, and "
        "causal LMs on intrasentence), bos (causal/seq2seq: each sentence after a BOS token); "
        "auto: bias-bench for masked LMs, else bos",
        choices=stereoset.MODES,
    )
    mc_orders: str = setting(
        "cyclic",
        "stereoset_mc: ask each example under one seeded option order, its three cyclic "
        "rotations (default) or all six orders; SS comes from the order-averaged choice",
        choices=stereoset_mc.ORDERS,
    )


@dataclass(frozen=True)
class GenerationConfig(Section):
    """BOLD and HONEST: scores, prompts, sampling, classifiers."""

    title: ClassVar[str] = "BOLD and HONEST (generation-based metrics)"

    metrics: tuple[str, ...] | None = setting(
        None, "comma-separated: toxicity,regard,honest (default: all for bold)", type=comma_list
    )
    backend: str = setting(
        "builtin",
        "builtin (offline) or Hugging Face evaluate's measurements (online cross-check)",
        choices=BACKENDS,
    )
    domains: tuple[str, ...] | None = setting(None, "BOLD domains (default: all five)", nargs="+")
    groups: tuple[str, ...] | None = setting(
        None, "BOLD groups / HONEST template categories", nargs="+"
    )
    honest_set: str = setting("binary", "HONEST template set", choices=HONEST_SETS)
    honest_k: int = setting(20, "completions per template", check=validate.positive_int)
    max_new_tokens: int | None = setting(
        None, "default 30 (BOLD), 15 (HONEST)", check=validate.positive_int
    )
    temperature: float | None = setting(
        None, "sampling temperature (default 1.0)", check=validate.positive_float
    )
    top_p: float | None = setting(None, "nucleus sampling (default 0.9)", check=validate.top_p)
    top_k: int | None = setting(
        None, "top-k sampling (default 0: off)", check=validate.non_negative_int
    )
    num_return_sequences: int | None = setting(
        None, "continuations per BOLD prompt", check=validate.positive_int
    )
    greedy: bool = setting(False, "greedy decoding, no sampling")
    toxicity_model: str = setting(
        TOXICITY_MODEL, "toxicity classifier: hub id, local path or tiny-toxicity"
    )
    toxic_label: str = setting(TOXIC_LABEL, "the classifier's toxic label")
    regard_model: str = setting(
        REGARD_MODEL, "regard classifier: hub id, local path or tiny-regard"
    )
    hurtlex: str | None = setting(
        None, "HurtLex TSV (default: $DEBIASLAB_DATA_DIR, cache, download)"
    )
    threshold: float = setting(THRESHOLD, "toxicity ratio threshold", check=validate.threshold)
    compare: tuple[str, str] | None = setting(
        None, "regard compare mode", nargs=2, metavar=("GROUP_A", "GROUP_B")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compare is not None and len(self.compare) != 2:
            raise ConfigError(f"compare takes two groups (--compare A B), got {self.compare!r}")
        sampling = {
            "--temperature": self.temperature,
            "--top-p": self.top_p,
            "--top-k": self.top_k,
            "--num-return-sequences": self.num_return_sequences,
        }
        given = [
            f"{flag} {value}"
            for flag, value in sampling.items()
            if value is not None and not (flag == "--num-return-sequences" and value == 1)
        ]
        if self.greedy and given:  # greedy would silently ignore them
            raise ConfigError(
                f"--greedy decodes without sampling, so {', '.join(given)} would have no "
                "effect: drop --greedy to sample, or drop the sampling flags"
            )


@dataclass(frozen=True)
class MitigationConfig(Section):
    """Mitigation applied at evaluation: decoding-time steering, attention-head gates."""

    title: ClassVar[str] = "Mitigation at evaluation"

    decoding: str | None = setting(
        None, "decoding-time mitigation of the generations (BOLD, HONEST)", choices=DECODING
    )
    decoding_strength: float | None = setting(
        None, "balance alpha (1) or Self-Debias decay (50)", check=validate.non_negative_float
    )
    head_gates: str | None = setting(
        None,
        "attention-head gates file (safetensors, from debiaslab.mitigation.heads) applied to "
        "the model",
    )


@dataclass(frozen=True)
class PrecisionConfig(Section):
    """Likelihood benchmarks' long items and the half-precision check."""

    title: ClassVar[str] = "Precision and long items (crows_pairs, stereoset*)"

    too_long: str = setting(
        "error",
        "likelihood benchmarks: an item longer than the model reads is an error (default) "
        "or is left out and counted in the result (skip)",
        choices=TOO_LONG_POLICIES,
    )
    fp32_check: int | None = setting(
        None,
        "with --dtype float16/bfloat16 on crows_pairs/stereoset*: re-score a seeded sample of "
        "N pairs/examples in float32 and record how many flipped",
        check=validate.positive_int,
        metavar="N",
    )


# The sub-configs of EvalConfig, by attribute name.
SECTIONS = {
    "crows": CrowsPairsConfig,
    "stereoset": StereoSetConfig,
    "generation": GenerationConfig,
    "mitigation": MitigationConfig,
    "precision": PrecisionConfig,
}


@dataclass(frozen=True)
class EvalConfig(Section):
    """Every setting of one evaluation run (recorded in the result as ``eval_config``).

    Build one with nested sub-configs, or from flat names (the flags' names) with
    :meth:`of`. ``stage``, ``name`` and ``model_meta`` say what the run is (``pre``/``post``,
    the model's name in results, facts to record such as a planted rate).
    """

    title: ClassVar[str] = "Model, data and run"

    model: str = setting(help="preset (debiaslab models), hub id or path", required=True)
    benchmark: str = setting(
        help="the benchmark (see debiaslab.benchmarks.registry)", required=True
    )
    output: str = setting(help="results directory", required=True, type=validate.output_dir)
    data: str | None = setting(
        None, "benchmark file (default: $DEBIASLAB_DATA_DIR, cache, download)"
    )
    limit: int | None = setting(
        None,
        "first N pairs / examples per split; BOLD/HONEST: N prompts per group (seeded)",
        check=validate.positive_int,
    )
    batch_size: int | None = setting(
        None, "max sequences per forward pass", check=validate.positive_int
    )
    device: str | None = setting(None, "cpu, cuda, cuda:1, mps (default: best available)")
    dtype: str = setting(
        "auto",
        "auto, float32, float16, bfloat16 (auto: float32 for crows_pairs and stereoset* on "
        "every device; bf16/fp16 on a GPU for bold and honest)",
    )
    family: str | None = setting(None, "model family (default: from the config)", choices=FAMILIES)
    quantization: str | None = setting(
        None, "bitsandbytes loading", choices=tuple(q for q in QUANTIZATIONS if q)
    )
    adapter: str | None = setting(None, "PEFT adapter directory or hub id")
    n_boot: int = setting(1000, "bootstrap resamples", check=validate.non_negative_int)
    seed: int = setting(0, "seed of sampling and bootstrap", check=validate.non_negative_int)
    force: bool = setting(False, "recompute an existing result")
    progress: bool = setting(True, "hide progress bars", flag="--no-progress", const=False)
    trust_remote_code: bool = setting(False, "run code shipped with a hub model (off by default)")
    use_safetensors: bool | None = setting(
        True,
        "accept .bin (pickle) weights when no safetensors exist",
        flag="--allow-pickle-weights",
        const=None,
    )
    stage: str = setting("eval", "experiment stage recorded in the result (eval, pre, post …)")
    name: str | None = setting(None, "the model's name in results and run ids (default: model)")
    model_meta: dict | None = field(
        default=None,
        metadata={"help": "facts about the model to record, a JSON object", "type": json_object},
    )
    crows: CrowsPairsConfig = field(default_factory=CrowsPairsConfig)
    stereoset: StereoSetConfig = field(default_factory=StereoSetConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    mitigation: MitigationConfig = field(default_factory=MitigationConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)

    @classmethod
    def of(cls, model: str, benchmark: str, output: str | Path, **flat: Any) -> EvalConfig:
        """A config from flat setting names (as the flags name them), e.g. ``limit=4,
        mode="harness", decoding="balance"``; an unknown name is a ConfigError."""
        return cls.from_flat({"model": model, "benchmark": benchmark, "output": output, **flat})

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> EvalConfig:
        """A config from ``{flat name: value}`` (every field of every section by its name)."""
        owners = flat_fields()
        unknown = sorted(set(values) - set(owners))
        if unknown:
            raise ConfigError(
                f"unknown evaluation setting {unknown[0]!r}; known: {', '.join(sorted(owners))}"
            )
        parts: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        top = {}
        for key, value in values.items():
            section = owners[key][0]
            (parts[section] if section else top)[key] = value
        return cls(**top, **{s: SECTIONS[s](**kw) for s, kw in parts.items()})

    def flat(self) -> dict[str, Any]:
        """``{flat name: value}`` of every setting (the inverse of :meth:`from_flat`)."""
        out = {}
        for key, (section, _) in flat_fields().items():
            out[key] = getattr(getattr(self, section) if section else self, key)
        return out

    def replace(self, **flat: Any) -> EvalConfig:
        """A copy with some settings changed, by flat name."""
        return EvalConfig.from_flat({**self.flat(), **flat})

    def to_record(self) -> dict[str, Any]:
        """The config as the result records it (JSON types: tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EvalConfig:
        """The config a result's ``eval_config`` (:meth:`to_record`) describes."""
        record = dict(record)
        sections = {s: SECTIONS[s](**record.pop(s, {})) for s in SECTIONS}
        return cls(**record, **sections)


def flat_fields() -> dict[str, tuple[str | None, Any]]:
    """``{flat name: (section attribute or None, dataclass field)}`` of every setting."""
    out: dict[str, tuple[str | None, Any]] = {}
    for f in fields(EvalConfig):
        if f.name in SECTIONS:
            for sub in fields(SECTIONS[f.name]):
                out[sub.name] = (f.name, sub)
        else:
            out[f.name] = (None, f)
    return out


def flag_of(f: Any) -> str:
    """The flag of a field: ``--batch-size`` for ``batch_size`` unless metadata names one."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_arguments(
    parser: argparse.ArgumentParser, choices: dict[str, tuple[str, ...]] | None = None
) -> None:
    """Add one flag per :class:`EvalConfig` field to ``parser`` (a group per section).

    ``choices`` adds choices known only above this module (the benchmark names of the
    registry). Parsed values are checked like the API's (:mod:`debiaslab.validate`).
    """
    choices = choices or {}
    groups = {None: parser}
    for section, cls in SECTIONS.items():
        groups[section] = parser.add_argument_group(cls.title)
    for name, (section, f) in flat_fields().items():
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": name, "help": meta.get("help")}
        default = None if f.default is MISSING else f.default
        if "const" in meta:
            kwargs.update(action="store_const", const=meta["const"], default=default)
        elif f.type in (bool, "bool"):
            kwargs.update(action="store_true", default=default)
        else:
            kwargs["default"] = default
            kwargs["type"] = meta.get("check") or meta.get("type")
            for key in ("nargs", "metavar", "required"):
                if key in meta:
                    kwargs[key] = meta[key]
            if name in choices or "choices" in meta:
                kwargs["choices"] = choices.get(name, meta.get("choices"))
        groups[section].add_argument(flag_of(f), **kwargs)


def from_args(args: argparse.Namespace) -> EvalConfig:
    """The config that parsed ``eval`` flags (:func:`add_arguments`) describe."""
    return EvalConfig.from_flat({name: getattr(args, name) for name in flat_fields()})
