"""Generation-based benchmarks: BOLD continuations and HONEST completions, scored and compared.

BOLD: each prompt (a Wikipedia sentence beginning about a person or group) is continued by a
generative model (K texts per prompt); the continuations alone, not the prompt, are scored for
toxicity, regard and HONEST hurtfulness, and groups within each domain are compared with the
group gap (:mod:`debiaslab.benchmarks.generation_metrics`; its ``METRICS`` declare both
benchmarks' metrics).

HONEST: each template ("the woman should work as a [M].") is completed K times — by a masked
LM's top-K words at ``[M]`` (word branch), by a causal LM's K sampled continuations of the text
before ``[M]``, or by a seq2seq model's K sampled fillings of a sentinel at ``[M]`` (sentence
branch). HONEST scores the completions; toxicity and regard, if asked for, score the filled
sentence (template with the completion in place of ``[M]``). Groups are the templates'
identity categories (female/male; queer/nonqueer …).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from debiaslab.benchmarks.generation_metrics import METRICS, THRESHOLD, Scorers, measure
from debiaslab.data.prompts import BoldPrompt, HonestTemplate
from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings, fill_mask, generate
from debiaslab.results import BenchmarkOutput

SEP = " ||| "  # joins a unit's K texts in the items table (all texts are in the JSONL)


def _output(
    benchmark: str, measured, n_items: int, items: pd.DataFrame, config: dict
) -> BenchmarkOutput:
    for name, values in measured.columns.items():
        items[name] = values
    return BenchmarkOutput(
        benchmark=benchmark,
        metrics=measured.metrics,
        ci=measured.ci,
        declared=METRICS,
        n_items=n_items,
        items=items,
        config=config,
    )


def run_bold(
    lm,
    prompts: Sequence[BoldPrompt],
    scorers: Scorers,
    *,
    settings: GenerationSettings | None = None,
    cache: str | Path | None = None,
    threshold: float = THRESHOLD,
    compare: tuple[str, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    processors: Sequence = (),
    processors_key: str | None = None,
) -> BenchmarkOutput:
    """Continue BOLD prompts, score the continuations, compare groups within each domain.

    ``processors`` (factories, see :func:`debiaslab.generation.generate`) steer decoding, e.g.
    :func:`debiaslab.mitigation.decoding.balance`.
    """
    if lm.family == "masked":
        raise ConfigError(
            "BOLD needs a generative model (causal or seq2seq); for a masked LM use "
            "--benchmark honest"
        )
    if not prompts:
        raise ConfigError("no BOLD prompts to run")
    scorers.check_honest_branch("sentence")  # before generating
    settings = settings or GenerationSettings()
    texts = generate(
        lm,
        [p.prompt for p in prompts],
        settings,
        cache=cache,
        progress=progress,
        processors=processors,
        processors_key=processors_key,
    )
    measured = measure(
        texts,
        [p.domain for p in prompts],
        [p.group for p in prompts],
        scorers,
        honest_branch="sentence",
        threshold=threshold,
        compare=compare,
        n_boot=n_boot,
        seed=seed,
    )
    items = pd.DataFrame(
        {
            "domain": [p.domain for p in prompts],
            "group": [p.group for p in prompts],
            "entity": [p.entity for p in prompts],
            "prompt": [p.prompt for p in prompts],
            "continuation": [SEP.join(row) for row in texts],
        }
    )
    config = {
        "generation": settings.as_dict(),
        "backend": scorers.backend,
        "scorers": scorers.info,
        "threshold": threshold,
        "scored_text": "continuation",
    }
    return _output("bold", measured, len(prompts), items, config)


def honest_inputs(lm, templates: Sequence[HonestTemplate]) -> tuple[list[str], str]:
    """What each family is given for a template, and the HONEST branch its output takes."""
    tokenizer = lm.tokenizer
    if lm.family == "masked":
        if tokenizer.mask_token is None:
            raise ConfigError("this masked LM's tokenizer has no mask token")
        return [t.template_masked.replace("[M]", tokenizer.mask_token) for t in templates], "word"
    if lm.family == "seq2seq" and "<extra_id_0>" in tokenizer.get_vocab():
        return [t.template_masked.replace("[M]", "<extra_id_0>") for t in templates], "sentence"
    return [t.template_masked.split("[M]")[0].rstrip() for t in templates], "sentence"


def _clean_fill(text: str) -> str:
    """A seq2seq span filling without its sentinels (``<extra_id_0> nurse <extra_id_1>``)."""
    import re

    return re.sub(r"<extra_id_\d+>", " ", text).split("  ")[0].strip() or text.strip()


def run_honest(
    lm,
    templates: Sequence[HonestTemplate],
    scorers: Scorers,
    *,
    set_name: str = "binary",
    k: int = 20,
    settings: GenerationSettings | None = None,
    cache: str | Path | None = None,
    threshold: float = THRESHOLD,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    processors: Sequence = (),
    processors_key: str | None = None,
) -> BenchmarkOutput:
    """Complete HONEST templates K times and score them (HONEST, optionally toxicity/regard).

    ``processors`` steer the generative branch's decoding (not fill-mask).
    """
    if not templates:
        raise ConfigError("no HONEST templates to run")
    if k <= 0:
        raise ConfigError(f"--honest-k must be positive, got {k}")
    inputs, branch = honest_inputs(lm, templates)
    scorers.check_honest_branch(branch)  # before generating
    settings = settings or GenerationSettings(max_new_tokens=15)
    if branch == "word":
        completions = fill_mask(lm, inputs, top_k=k, progress=progress)
        settings_used: dict = {"fill_mask_top_k": k}
    else:
        settings = replace(settings, num_return_sequences=k)
        completions = generate(
            lm,
            inputs,
            settings,
            cache=cache,
            progress=progress,
            processors=processors,
            processors_key=processors_key,
        )
        if lm.family == "seq2seq" and "<extra_id_0>" in inputs[0]:
            completions = [[_clean_fill(c) for c in row] for row in completions]
        settings_used = settings.as_dict()
    filled = [
        [t.template_masked.split("[M]")[0] + c.strip() for c in row]
        if branch == "sentence"
        else [t.template_masked.replace("[M]", c.strip()) for c in row]
        for t, row in zip(templates, completions, strict=True)
    ]
    measured = measure(
        filled,
        [set_name] * len(templates),
        [t.category for t in templates],
        scorers,
        honest_texts=completions,
        honest_branch=branch,
        threshold=threshold,
        n_boot=n_boot,
        seed=seed,
    )
    items = pd.DataFrame(
        {
            "template": [t.template_masked for t in templates],
            "identity": [t.identity for t in templates],
            "category": [t.category for t in templates],
            "type": [t.type for t in templates],
            "completions": [SEP.join(row) for row in completions],
        }
    )
    config = {
        "set": set_name,
        "k": k,
        "branch": branch,
        "generation": settings_used,
        "backend": scorers.backend,
        "scorers": scorers.info,
        "threshold": threshold,
        "scored_text": "completion (HONEST); filled template (toxicity, regard)",
    }
    return _output("honest", measured, len(templates), items, config)
