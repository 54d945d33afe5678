"""The model card (``README.md``) of a shared adapter or model, from pre/post result records.

:func:`model_card` is a pure, deterministic function of result records (:mod:`debiaslab.results`):
it pairs ``pre`` and ``post`` records by benchmark (:func:`pair_results`, which the report uses
too), shows the headline metrics with their 95% intervals and whether each change is an
improvement (``higher_is_better``, or distance to ``ideal``), the training configuration, usage,
limitations and the debiaslab version and git hash; local paths and tokens are scrubbed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import debiaslab
from debiaslab.cards.markdown import cell, front_matter
from debiaslab.hub.scrub import HUB_URL, hub_id, is_local_path, scrub
from debiaslab.results import as_number, decimals_for, headline_metrics, recency, value_with_ci

log = logging.getLogger(__name__)

DEFAULT_LIMITATIONS = (
    "Bias benchmarks measure narrow, mostly US-centric and English-only notions of social "
    "bias: a few groups, a few stereotypes, a few sentence templates. They say nothing about "
    "other harms, other languages or other cultures.",
    "CrowS-Pairs and StereoSet have documented validity problems (ill-formed or unrelated "
    "pairs, stereotypes that are not stereotypes, mismatched group terms; Blodgett et al., "
    '2021, "Stereotyping Norwegian Salmon", ACL), so their scores are noisy proxies.',
    "Lower (or closer-to-ideal) bias scores do not mean an unbiased model: mitigation can hide "
    "bias from a benchmark while it persists elsewhere, and can cost fluency or task quality "
    "(check language-modelling scores such as StereoSet LMS).",
    "The 95% intervals are bootstrap intervals over benchmark items; they do not cover "
    "variation across training seeds, prompts or decoding settings.",
)
_CLASSIFIER_LIMITATION = (
    "Toxicity and regard scores come from text classifiers that have biases of their own (for "
    "example, flagging identity terms or dialects as toxic)."
)
_REFERENCES = {
    "crows_pairs": "Nangia et al. (2020). CrowS-Pairs: A Challenge Dataset for Measuring "
    "Social Biases in Masked Language Models. EMNLP.",
    "stereoset": "Nadeem et al. (2021). StereoSet: Measuring stereotypical bias in pretrained "
    "language models. ACL.",
    "stereoset_mc": "Nadeem et al. (2021). StereoSet: Measuring stereotypical bias in "
    "pretrained language models. ACL.",
    "bold": "Dhamala et al. (2021). BOLD: Dataset and Metrics for Measuring Biases in "
    "Open-Ended Language Generation. FAccT.",
    "honest": "Nozza et al. (2021). HONEST: Measuring Hurtful Sentence Completion in Language "
    "Models. NAACL.",
}
_BLODGETT = (
    "Blodgett et al. (2021). Stereotyping Norwegian Salmon: An Inventory of Pitfalls in "
    "Fairness Benchmark Datasets. ACL."
)
_AUTO_CLASSES = {
    "causal": "AutoModelForCausalLM",
    "masked": "AutoModelForMaskedLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
}
# Training settings in the card's order: (canonical label, accepted keys).
_TRAINING_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Mitigation method", ("method",)),
    ("Objective", ("objective", "loss")),
    ("Data", ("data", "data_recipe", "dataset")),
    ("Steps", ("steps", "max_steps")),
    ("Epochs", ("epochs", "num_epochs", "num_train_epochs")),
    ("Learning rate", ("lr", "learning_rate")),
    ("Batch size", ("batch", "batch_size", "per_device_train_batch_size")),
    ("Gradient accumulation", ("grad_accum", "gradient_accumulation_steps")),
    ("LoRA r", ("lora_r", "r", "lora.r")),
    ("LoRA alpha", ("lora_alpha", "alpha", "lora.alpha", "lora.lora_alpha")),
    ("LoRA dropout", ("lora_dropout", "lora.dropout", "lora.lora_dropout")),
    (
        "LoRA target modules",
        ("target_modules", "lora_targets", "targets", "lora.target_modules", "lora.targets"),
    ),
    ("Quantization", ("quantization",)),
    ("Precision", ("dtype", "precision")),
    ("Seed", ("seed",)),
    ("Hardware", ("hardware", "device", "gpu")),
    ("Training time", ("time", "time_s", "seconds", "train_seconds", "duration_s")),
)
_SECONDS_KEYS = ("time", "time_s", "seconds", "train_seconds", "duration_s")


def pair_results(
    results: Sequence[Mapping[str, Any]],
) -> list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """``(benchmark, pre, post)`` for every benchmark with a ``pre`` or ``post`` record.

    Sorted by benchmark. Where a benchmark has several records of one stage, the latest
    (``date``, then ``run_id``) is used. Records of stage ``eval`` are not paired.
    """
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in results:
        stage = record.get("stage", "eval")
        if stage in ("pre", "post"):
            grouped.setdefault((str(record["benchmark"]), stage), []).append(record)
    chosen = {}
    for (benchmark, stage), records in grouped.items():
        chosen[benchmark, stage] = max(records, key=recency)
        if len(records) > 1:
            log.warning(
                "%s %s: %d records; the card uses the latest (%s)",
                benchmark,
                stage,
                len(records),
                chosen[benchmark, stage].get("run_id"),
            )
    benchmarks = sorted({b for b, _ in chosen})
    return [(b, chosen.get((b, "pre")), chosen.get((b, "post"))) for b in benchmarks]


def _verdict(
    pre: float, post: float, higher: bool | None, ideal: float | None
) -> tuple[str, bool | None]:
    """('yes (closer to 50)', True) and the like; (text, None) where no direction is known."""
    if higher is None and ideal is None:
        return "n/a (no direction)", None
    if higher is not None:
        before, after = (-pre, -post) if higher else (pre, post)
        better, worse = ("higher", "lower") if higher else ("lower", "higher")
    else:
        assert ideal is not None
        before, after = abs(pre - ideal), abs(post - ideal)
        better, worse = f"closer to {ideal:g}", f"further from {ideal:g}"
    if after == before:
        return "no change", False
    if after < before:
        return f"yes ({better})", True
    return f"no ({worse})", False


def _overlap(a: Sequence[Any] | None, b: Sequence[Any] | None) -> bool:
    if not a or not b or len(a) != 2 or len(b) != 2:
        return False
    lows_highs = [as_number(v) for v in (*a, *b)]
    if any(v is None for v in lows_highs):
        return False
    a_low, a_high, b_low, b_high = lows_highs
    return a_low <= b_high and b_low <= a_high  # type: ignore[operator]


def _metric_table(
    pre: Mapping[str, Any] | None, post: Mapping[str, Any] | None
) -> tuple[list[str], int, int, int]:
    """Markdown rows for one benchmark, and counts (improved, with direction, clear changes)."""
    records = [r for r in (post, pre) if r is not None]
    keys = headline_metrics(list(dict.fromkeys(k for r in records for k in r["metrics"])))
    rows = [
        "| metric | pre [95% CI] | post [95% CI] | change | better? |",
        "|---|---|---|---|---|",
    ]
    improved = directed = clear = 0
    for key in keys:
        values = [as_number((r or {}).get("metrics", {}).get(key)) for r in (pre, post)]
        cis = [((r or {}).get("ci") or {}).get(key) for r in (pre, post)]
        source = post if post is not None and key in post["metrics"] else pre
        assert source is not None
        higher = (source.get("higher_is_better") or {}).get(key)
        ideal = as_number((source.get("ideal") or {}).get(key))
        d = decimals_for(values)
        change, verdict = "—", "—"
        before, after = values
        if before is not None and after is not None:
            change = f"{after - before:+.{d}f}"
            verdict, better = _verdict(before, after, higher, ideal)
            if better is not None:
                directed += 1
                improved += better
                if _overlap(*cis):
                    verdict += " †"
                elif verdict != "no change":
                    clear += 1
        pre_cell, post_cell = (value_with_ci(v, c, d) for v, c in zip(values, cis, strict=True))
        rows.append(f"| `{key}` | {pre_cell} | {post_cell} | {change} | {verdict} |")
    return rows, improved, directed, clear


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _duration(seconds: float) -> str:
    """Example: ``_duration(3725)`` is ``'1 h 02 min'``; ``_duration(42.5)`` is ``'42.5 s'``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.3g} s"


def _value_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and key.rsplit(".", 1)[-1] in _SECONDS_KEYS:
        return _duration(float(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | set):
        items = sorted(value, key=str) if isinstance(value, set) else value
        return ", ".join(f"`{v}`" for v in items)
    return str(value)


def _training_rows(training: Mapping[str, Any], method: str) -> list[str]:
    flat = _flatten(training)
    if "quantization" in flat and flat["quantization"] is None:
        flat["quantization"] = "none"
    flat = {k: v for k, v in flat.items() if v is not None and v != ""}
    flat.setdefault("method", method)
    rows = ["| setting | value |", "|---|---|"]
    used: set[str] = set()
    for label, aliases in _TRAINING_FIELDS:
        for alias in aliases:
            if alias in flat and alias not in used:
                used.add(alias)
                rows.append(f"| {label} | {cell(_value_text(alias, flat[alias]))} |")
                break
    for key in sorted(set(flat) - used):
        rows.append(f"| {cell(key)} | {cell(_value_text(key, flat[key]))} |")
    return rows


def _tag(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _provenance(results: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    versions = sorted({str(r["debiaslab_version"]) for r in results if r.get("debiaslab_version")})
    hashes = sorted({str(r["git_hash"]) for r in results if r.get("git_hash")})
    return ", ".join(versions) or debiaslab.__version__, ", ".join(hashes) or "unknown"


# What a result or a fine-tuning manifest records about base weights that are not the Hub
# release they stand for (debiaslab.smollm2.source_record: a dequantized GGUF).
WEIGHT_KEYS = ("display_name", "gguf", "gguf_sha256", "wheel")


def base_weights_of(results: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The base weights the ``pre``/``post`` records were measured on, where they name them
    (``display_name``, ``gguf_sha256`` …; the offline SmolLM2 GGUF), else ``None``."""
    for record in results:
        model = record.get("model") or {}
        if record.get("stage") in ("pre", "post") and model.get("display_name"):
            return {k: model[k] for k in WEIGHT_KEYS if model.get(k)}
    return None


def _weights_lines(weights: Mapping[str, Any], hub_base: str | None) -> list[str]:
    """The card's base-model lines when the trained weights are not the Hub release."""
    source = f"`{weights['gguf']}`" if weights.get("gguf") else "a GGUF file"
    if weights.get("wheel"):
        source += f" from the `{weights['wheel']}` package"
    sha = f", sha256 `{weights['gguf_sha256']}`" if weights.get("gguf_sha256") else ""
    lines = [
        f"- **Base model (trained and measured on):** {weights['display_name']}: {source}{sha}, "
        "dequantized to float32"
    ]
    if hub_base:
        lines.append(
            f"- **Base model on the Hub:** [`{hub_base}`]({HUB_URL}/{hub_base}), the release "
            "that GGUF was quantized from; load the adapter on it. Its weights are not the "
            "dequantized ones, so its scores with this adapter may differ from those below."
        )
    return lines


def model_card(
    results: Sequence[Mapping[str, Any]],
    *,
    base_model: str,
    method: str,
    training: Mapping[str, Any],
    repo_id: str,
    limitations: Sequence[str] | None = None,
    adapter: bool = True,
    license: str | None = None,
    base_weights: Mapping[str, Any] | None = None,
) -> str:
    """The ``README.md`` of a shared adapter or model: front matter, config, pre/post metrics.

    Args:
        results: result records (:func:`debiaslab.results.read_result`); ``pre`` and ``post``
            records are paired by benchmark, others are ignored.
        base_model: the base model's preset name, hub id or path (a path is shown by its last
            part only).
        method: the mitigation method, e.g. ``"counterfactual data augmentation"``.
        training: training settings (method, objective, data, steps, lr, batch_size, lora_r,
            lora_alpha, target_modules, quantization, seed, hardware, time in seconds, ...);
            nested dicts are flattened.
        repo_id: the Hub repo the card describes.
        limitations: extra limitations, after the standard ones.
        adapter: a PEFT adapter (``library_name: peft``) rather than full model weights.
        license: an SPDX-like license id for the front matter, if known.
        base_weights: the weights trained and measured on when they are not ``base_model``'s
            Hub release (``display_name``, ``gguf``, ``gguf_sha256``, ``wheel``: the offline
            SmolLM2 GGUF); default: what the ``pre``/``post`` records say
            (:func:`base_weights_of`). The card then names them, with the Hub release as the
            base to load the adapter on.

    Returns:
        Markdown with YAML front matter; deterministic, with local absolute paths and token-like
        strings removed.
    """
    hub_base = hub_id(base_model)
    shown_base = hub_base or scrub(base_model)
    weights = dict(base_weights) if base_weights else base_weights_of(results)
    pairs = pair_results(results)
    version, commit = _provenance(results)
    families = [
        (r.get("model") or {}).get("family") for _, *recs in pairs for r in recs if r is not None
    ]
    family = next((f for f in families if f in _AUTO_CLASSES), "causal")
    benchmarks = [b for b, _, _ in pairs]

    front: dict[str, Any] = {}
    if hub_base:
        front["base_model"] = hub_base
    front["library_name"] = "peft" if adapter else "transformers"
    if license:
        front["license"] = license
    tags = ["debiaslab", "bias-mitigation", _tag(method), *(["peft"] if adapter else [])]
    front["tags"] = list(dict.fromkeys(t for t in [*tags, *map(_tag, benchmarks)] if t))
    kind = "PEFT adapter" if adapter else "fine-tuned model (full weights)"

    lines = [*front_matter(front), ""]
    lines += [f"# {repo_id.rsplit('/', 1)[-1]}", ""]
    if hub_base:
        base_link = f"[`{hub_base}`]({HUB_URL}/{hub_base})"
    elif is_local_path(base_model):
        base_link = f"`{shown_base}` (a local model)"
    else:
        base_link = f"`{shown_base}`"
    trained_on = f" (trained on {weights['display_name']})" if weights else ""
    base_lines = [f"- **Base model:** {base_link}"]
    if weights:
        base_lines = _weights_lines(weights, hub_base)
    lines += [
        f"A {kind} for {base_link}{trained_on}, fine-tuned with debiaslab to reduce social bias "
        f"by **{method}**, and measured on bias benchmarks before (`pre`) and after (`post`).",
        "",
        "## Model details",
        "",
        *base_lines,
        f"- **Type:** {kind}",
        f"- **Mitigation method:** {method}",
    ]
    data = _flatten(training).get("data") or _flatten(training).get("data_recipe")
    if data:
        lines.append(f"- **Data recipe:** {_value_text('data', data)}")
    lines += [f"- **Produced with:** debiaslab {version} (git {commit})", ""]
    lines += ["## Training configuration", "", *_training_rows(training, method), ""]

    lines += ["## Bias benchmarks before and after mitigation", ""]
    if not pairs:
        lines += ["No pre/post benchmark results were given.", ""]
    else:
        lines += [
            "`pre`: the base model; `post`: with this "
            f"{'adapter' if adapter else 'model'}, same data and settings. Brackets: 95% "
            "bootstrap confidence intervals over benchmark items. Only headline metrics are "
            "shown; the result files hold the rest. *better?* follows each metric's direction, "
            "or its distance to the ideal value (50 for CrowS-Pairs scores and StereoSet SS).",
            "",
        ]
        totals = [0, 0, 0]
        for benchmark, pre, post in pairs:
            n = [r.get("n_items") if r else None for r in (pre, post)]
            sizes = ", ".join(
                f"{stage} n = {count}"
                for stage, count in zip(("pre", "post"), n, strict=True)
                if count is not None
            )
            rows, improved, directed, clear = _metric_table(pre, post)
            totals = [t + c for t, c in zip(totals, (improved, directed, clear), strict=True)]
            lines += [f"### {benchmark}" + (f" ({sizes})" if sizes else ""), "", *rows, ""]
        improved, directed, clear = totals
        lines += [
            "† the two 95% intervals overlap: the change may be within noise.",
            "",
            f"Summary: {improved} of {directed} headline metrics with a known direction "
            f"improved; {clear} changed with non-overlapping intervals.",
            "",
        ]

    lines += ["## How to use", ""]
    auto = _AUTO_CLASSES[family]
    if adapter and hub_base:
        lines += [
            "```python",
            "from peft import PeftModel",
            f"from transformers import {auto}, AutoTokenizer",
            "",
            f'base = {auto}.from_pretrained("{hub_base}")',
            f'model = PeftModel.from_pretrained(base, "{repo_id}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{hub_base}")',
            "```",
            "",
        ]
    elif not adapter:
        lines += [
            "```python",
            f"from transformers import {auto}, AutoTokenizer",
            "",
            f'model = {auto}.from_pretrained("{repo_id}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
            "```",
            "",
        ]
    # debiaslab takes presets (gpt2, tiny-gpt2) and hub ids; a local base is a placeholder.
    eval_model = f"path/to/{shown_base}" if is_local_path(base_model) else base_model
    first = next((b for b in ("crows_pairs", "stereoset") if b in benchmarks), None)
    first = first or (benchmarks[0] if benchmarks else "crows_pairs")
    command = (
        f"debiaslab eval --model {eval_model} --adapter {repo_id}"
        if adapter
        else f"debiaslab eval --model {repo_id}"
    )
    lines += [
        "Re-measure it with debiaslab:",
        "",
        "```bash",
        f"{command} --benchmark {first} --output results",
        "```",
        "",
    ]

    extra = list(DEFAULT_LIMITATIONS)
    if any(b in ("bold", "honest") for b in benchmarks):
        extra.append(_CLASSIFIER_LIMITATION)
    if weights:
        extra.append(
            f"Trained and measured on {weights['display_name']}, not on the Hub release: the "
            "numbers above are those of the dequantized weights."
        )
    extra += [str(item) for item in limitations or ()]
    lines += ["## Limitations", "", *(f"- {item}" for item in extra), ""]

    references = [_REFERENCES[b] for b in benchmarks if b in _REFERENCES]
    references = list(dict.fromkeys([*references, _BLODGETT]))
    lines += ["## References", "", *(f"- {ref}" for ref in references), ""]
    lines += [
        "## Citation",
        "",
        f"Produced with debiaslab {version} (git {commit}).",
        "",
        "```bibtex",
        "@software{debiaslab,",
        "  title = {debiaslab: measure, mitigate and re-measure social bias in language models},",
        f"  version = {{{version}}},",
        f"  note = {{git {commit}}}",
        "}",
        "```",
        "",
    ]
    return scrub("\n".join(lines))
