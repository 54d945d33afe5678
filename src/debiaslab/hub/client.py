# long by design: client, secret scrubbing and three card renderers; split into hub/ and cards.py
# is issue 14 point 3.
"""Share fine-tuned adapters (or full models) on the Hugging Face Hub, with a model card.

Design:
    * Every Hub call debiaslab makes goes through this module: :func:`push` creates a repo and
      uploads a folder, :func:`pull` downloads a snapshot. The client is injectable (``api=``;
      default :func:`default_api`, a ``huggingface_hub.HfApi``), so tests run against a local
      fake, and nothing touches the network at import time.
    * Offline first: :func:`push` without a token logs why and returns ``None`` instead of
      raising, so a notebook runs top to bottom without an account; :func:`pull` accepts a local
      directory wherever a repo id is expected.
    * Local problems fail before anything is sent: a folder with neither ``adapter_config.json``
      (PEFT adapter) nor ``config.json`` (full model), or without weights, or holding files that
      look like secrets (``.env``, ``token``, ``*.pem``, ...) or that contain the token, raises
      :class:`~debiaslab.errors.ConfigError`.
    * The caller's folder is never modified: the upload is staged in a temporary copy (hard
      links where the file system allows), where the card is written as ``README.md`` and a
      local base-model path in ``adapter_config.json`` is replaced by the public base model.
    * Secrets: the token comes from the argument or :func:`debiaslab.env.get_secret` and is
      handed to the client only. Client errors become a :class:`ConfigError` whose message says
      what failed and what to do, with the token scrubbed; the original exception is chained
      only when no part of it contains the token.
    * :func:`model_card` is a pure, deterministic function of result records (see
      :mod:`debiaslab.results`): it pairs ``pre`` and ``post`` records by benchmark, reports
      the headline metrics with their 95% intervals and whether each change is an improvement
      (by ``higher_is_better``, or distance to ``ideal`` such as 50 for CrowS-Pairs and
      StereoSet SS), the training configuration, usage, limitations and the debiaslab version
      and git hash. Local absolute paths and token-like strings are scrubbed from it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

import debiaslab
from debiaslab.config import get_preset
from debiaslab.env import get_secret
from debiaslab.errors import ConfigError
from debiaslab.folders import SECRET_NAME, SKIP_DIRS, walk_files
from debiaslab.gather import collect, gather
from debiaslab.io import write_bytes_atomic
from debiaslab.mitigation.finetune import MANIFEST
from debiaslab.mitigation.finetune import read_manifest as read_training_manifest
from debiaslab.model_source import ADAPTER_CONFIG, MODEL_CONFIG, folder_kind
from debiaslab.results import (
    as_number,
    decimals_for,
    headline_metrics,
    read_all,
    read_result,
    recency,
    value_with_ci,
)
from debiaslab.synth.pipeline import CARD, dataset_card
from debiaslab.synth.pipeline import read_manifest as read_dataset_manifest

log = logging.getLogger(__name__)

TOKEN_NAME = "HF_TOKEN"
HUB_URL = "https://huggingface.co"
CARD_NAME = "README.md"
# What pull downloads: configs, safetensors weights, tokenizer files and the card (no pickles).
PULL_PATTERNS = ("*.json", "*.safetensors", "*.md", "*.txt", "*.model", "*.tiktoken")
_SCAN_LIMIT = 50 * 2**20  # files up to this size are searched for the token itself
_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
_PATH_CHARS = r"[^\s/\\'\"`|<>()\[\]{},;]"
_POSIX_PATH_RE = re.compile(rf"(?<![\w.:/~-])~?/(?:{_PATH_CHARS}+/)*({_PATH_CHARS}+)/?")
_WINDOWS_PATH_RE = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\'\"`|<>]+\\)*([^\s\\'\"`|<>]+)\\?")
_REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
REDACTED = "<redacted>"

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


# --------------------------------------------------------------------------- client


def default_api() -> Any:
    """The real Hub client, ``huggingface_hub.HfApi()`` (tests pass a fake as ``api=``)."""
    from huggingface_hub import HfApi

    return HfApi()


# --------------------------------------------------------------------------- folders


def _folder_files(folder: Path, *, warn_links: bool = True) -> list[Path]:
    """Files to upload, relative to ``folder``, sorted; refuses names that look like secrets.

    Symbolic links that leave ``folder`` are skipped, with a warning if ``warn_links``
    (:mod:`debiaslab.folders`).
    """
    files = sorted(walk_files(folder, skip_dir=SKIP_DIRS.__contains__, warn=warn_links))
    secret = [str(f) for f in files if SECRET_NAME.match(f.name)]
    if secret:
        raise ConfigError(
            f"{folder}: refusing to upload files that look like secrets: {', '.join(secret)}. "
            "Move them out of the folder (tokens belong in HF_TOKEN, a Kaggle or Colab secret)."
        )
    return files


def _check_no_token(folder: Path, files: Sequence[Path], token: str) -> None:
    """Refuse to upload a (small enough to read) file that contains the token itself."""
    needle = token.encode()
    leaking = []
    for rel in files:
        path = folder / rel
        if path.stat().st_size <= _SCAN_LIMIT and needle in path.read_bytes():
            leaking.append(str(rel))
    if leaking:
        raise ConfigError(
            f"{folder}: refusing to upload, the Hugging Face token appears in: "
            f"{', '.join(leaking)}. Remove it from these files first."
        )


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


@contextmanager
def _staging(folder: Path, files: Sequence[Path]) -> Iterator[Path]:
    """A temporary copy of ``folder``'s ``files``, beside it when possible (hard links)."""
    tmp: tempfile.TemporaryDirectory[str] | None = None
    for parent in (folder.resolve().parent, None):
        try:
            tmp = tempfile.TemporaryDirectory(prefix=".debiaslab-push-", dir=parent)
            break
        except OSError:
            continue
    if tmp is None:  # pragma: no cover - both locations unwritable
        raise ConfigError("cannot create a temporary directory to stage the upload")
    with tmp as name:
        stage = Path(name)
        for rel in files:
            _link_or_copy(folder / rel, stage / rel)
        yield stage  # files written here replace links (write_bytes_atomic), never edit them


# --------------------------------------------------------------------------- scrubbing


def _scrub(text: str, token: str | None = None) -> str:
    """Remove the token, token-like strings and local absolute paths (kept: their last part).

    Example:
        >>> _scrub("saved to /home/ana/runs/cda-lora and C:\\\\Users\\\\ana\\\\gpt2")
        'saved to cda-lora and gpt2'
        >>> _scrub("see https://huggingface.co/openai-community/gpt2, 8/10")
        'see https://huggingface.co/openai-community/gpt2, 8/10'
    """
    if token:
        text = text.replace(token, REDACTED)
    text = _HF_TOKEN_RE.sub(REDACTED, text)
    text = _POSIX_PATH_RE.sub(lambda m: m.group(1), text)
    return _WINDOWS_PATH_RE.sub(lambda m: m.group(1), text)


def _is_local_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith(("~", "./", "../"))
        or bool(re.match(r"^[A-Za-z]:[\\/]", name))
    )


def _hub_id(name: str) -> str | None:
    """The hub id that ``name`` (preset or hub id) stands for, or ``None`` (path, tiny model).

    Example:
        >>> _hub_id("gpt2"), _hub_id("Qwen/Qwen2.5-0.5B"), _hub_id("/tmp/x"), _hub_id("tiny-gpt2")
        ('openai-community/gpt2', 'Qwen/Qwen2.5-0.5B', None, None)
    """

    preset = get_preset(name)
    if preset is not None:
        return preset.hub_id
    if _is_local_path(name) or not _REPO_ID_RE.match(name):
        return None
    return name


def _leaks(exc: BaseException, token: str | None) -> bool:
    """Whether the token appears anywhere in an exception or its causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while token and current is not None and id(current) not in seen:
        seen.add(id(current))
        if token in str(current) or token in repr(current.args):
            return True
        current = current.__cause__ or current.__context__
    return False


def _hub_error(action: str, repo_id: str, exc: Exception, token: str | None) -> ConfigError:
    """A :class:`ConfigError` that says what failed and what to do, without the token."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    detail = _scrub(f"{type(exc).__name__}: {exc}", token).strip()
    if len(detail) > 400:
        detail = detail[:400] + " ..."
    if status == 401:
        hint = (
            f"the Hub rejected the token: check {TOKEN_NAME} (environment variable, Kaggle or "
            "Colab secret)"
        )
    elif status == 403:
        hint = "the token may not write to this repo: use a write token and your own namespace"
    elif status == 404:
        hint = "the repo does not exist, or it is private and the token cannot read it"
    else:
        hint = "is this machine online? (on Kaggle: Settings → Internet on)"
    return ConfigError(f"could not {action} Hugging Face repo {repo_id!r}: {hint}. ({detail})")


def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID_RE.match(repo_id):
        raise ConfigError(
            f"{repo_id!r} is not a Hugging Face repo id (expected 'user/name', letters, digits, "
            "'-', '_', '.')"
        )


# --------------------------------------------------------------------------- model card


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
                rows.append(f"| {label} | {_cell_text(_value_text(alias, flat[alias]))} |")
                break
    for key in sorted(set(flat) - used):
        rows.append(f"| {_cell_text(key)} | {_cell_text(_value_text(key, flat[key]))} |")
    return rows


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _tag(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _provenance(results: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    versions = sorted({str(r["debiaslab_version"]) for r in results if r.get("debiaslab_version")})
    hashes = sorted({str(r["git_hash"]) for r in results if r.get("git_hash")})
    return ", ".join(versions) or debiaslab.__version__, ", ".join(hashes) or "unknown"


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

    Returns:
        Markdown with YAML front matter; deterministic, with local absolute paths and token-like
        strings removed.
    """
    hub_base = _hub_id(base_model)
    shown_base = hub_base or _scrub(base_model)
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

    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    lines += [f"# {repo_id.rsplit('/', 1)[-1]}", ""]
    if hub_base:
        base_link = f"[`{hub_base}`]({HUB_URL}/{hub_base})"
    elif _is_local_path(base_model):
        base_link = f"`{shown_base}` (a local model)"
    else:
        base_link = f"`{shown_base}`"
    lines += [
        f"A {kind} for {base_link}, fine-tuned with debiaslab to reduce social bias by "
        f"**{method}**, and measured on bias benchmarks before (`pre`) and after (`post`).",
        "",
        "## Model details",
        "",
        f"- **Base model:** {base_link}",
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
    eval_model = f"path/to/{shown_base}" if _is_local_path(base_model) else base_model
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
    return _scrub("\n".join(lines))


# --------------------------------------------------------------------------- push and pull


def _load_records(
    results: Sequence[Mapping[str, Any] | str | os.PathLike[str]] | str | os.PathLike[str] | None,
) -> list[Mapping[str, Any]]:
    """Records from dicts, result files, or directories of result files."""
    if results is None:
        return []
    if isinstance(results, str | os.PathLike):
        results = [results]
    records: list[Mapping[str, Any]] = []
    for item in results:
        if isinstance(item, Mapping):
            records.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            records += [record for _, record in read_all(path)]
        else:
            records.append(read_result(path))
    return records


def _public_base(
    base_model: str | None, records: Sequence[Mapping[str, Any]], folder: Path
) -> str:
    """The public base model: the argument, else the ``pre`` record's model, else the adapter's.

    A candidate that is a hub id or a preset wins over one that is a local path.
    """
    candidates = [base_model] if base_model else []
    candidates += [(r.get("model") or {}).get("name") for r in records if r.get("stage") == "pre"]
    config = folder / ADAPTER_CONFIG
    if config.is_file():
        with suppress(json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            candidates.append(json.loads(config.read_text("utf-8")).get("base_model_name_or_path"))
    named = [str(c) for c in candidates if c]
    return next((c for c in named if not _is_local_path(c)), named[0] if named else "unknown")


def _publish_base(stage: Path, base: str) -> None:
    """Replace a local base-model path in the staged ``adapter_config.json`` by its hub id.

    Without a known hub id the path is kept (a guess could name the wrong model) and a warning
    says that users must supply the base model themselves.
    """
    path = stage / ADAPTER_CONFIG
    config = json.loads(path.read_text("utf-8"))
    current = config.get("base_model_name_or_path")
    if not isinstance(current, str) or not _is_local_path(current):
        return
    public = _hub_id(base)
    if public is None:
        log.warning(
            "adapter_config.json names a local base model (%s) and no hub id is known for it: "
            "users of the adapter must load that base model themselves",
            _scrub(current),
        )
        return
    config["base_model_name_or_path"] = public
    log.info("adapter_config.json: local base model path replaced by %r", public)
    write_bytes_atomic(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


def _training_from_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The training facts of a fine-tuning run (its ``finetune.json``) for the card."""

    manifest = read_training_manifest(folder) or {}
    training = {
        "method": manifest.get("method"),
        "recipe": manifest.get("recipe"),
        **manifest.get("config", {}),
        "data": manifest.get("recipe_info"),
        "seconds": manifest.get("seconds"),
    }
    return {k: v for k, v in training.items() if v is not None}


def push(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    results: Sequence[Mapping[str, Any] | str | os.PathLike[str]]
    | str
    | os.PathLike[str]
    | None = None,
    card: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    training: Mapping[str, Any] | None = None,
    limitations: Sequence[str] | None = None,
    license: str | None = None,
    private: bool = True,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
) -> str | None:
    """Upload an adapter (or full model) folder to the Hub with a generated model card.

    The folder is checked, copied to a temporary directory with ``README.md`` (the card) added,
    and uploaded; the caller's folder is not modified.

    Args:
        folder: a directory written by ``save_pretrained`` (adapter or full model).
        repo_id: ``user/name`` on the Hub; created if missing.
        results: pre/post result records, result files or directories of them, for the card.
        card: the card's Markdown; generated by :func:`model_card` when ``None``.
        base_model: base model (preset, hub id); default: the ``pre`` results' model, else the
            adapter config's.
        method: mitigation method; default ``training["method"]``.
        training: training settings for the card.
        limitations: extra limitations for the card.
        license: license id for the card's front matter.
        private: create the repo private (an existing repo keeps its visibility).
        token: Hub token; default ``get_secret("HF_TOKEN")``. Never logged.
        commit_message: default ``"debiaslab <version>: upload <kind>"``.
        api: Hub client (``HfApi``-like); default :func:`default_api`.

    Returns:
        The repo URL, or ``None`` when no token is available (the upload is skipped and logged).

    Raises:
        ConfigError: a bad folder or repo id, files that look like secrets or contain the token,
            or a Hub error (message without the token).
    """
    folder = Path(folder)
    _check_repo_id(repo_id)
    kind = folder_kind(folder)
    files = _folder_files(folder)
    token = _push_token(folder, files, repo_id, token)
    if token is None:
        return None
    records = _load_records(results)
    base = _public_base(base_model, records, folder)
    if card is None:
        training = dict(training or _training_from_manifest(folder))
        card = model_card(
            records,
            base_model=base,
            method=method or str(training.get("method") or "unspecified"),
            training=training,
            repo_id=repo_id,
            limitations=limitations,
            adapter=kind == "adapter",
            license=license,
        )
    message = commit_message or f"debiaslab {debiaslab.__version__}: upload {kind}"
    return _upload(
        folder,
        files,
        repo_id,
        card=card,
        token=token,
        api=api,
        private=private,
        message=message,
        prepare=(lambda stage: _publish_base(stage, base)) if kind == "adapter" else None,
    )


def _push_token(
    folder: Path, files: Sequence[Path], repo_id: str, token: str | None
) -> str | None:
    """The token to push with (argument, else the secret), after checking that no file to
    upload contains it; ``None`` (logged) when there is none."""
    token = token or get_secret(TOKEN_NAME)
    if not token:
        _no_token(folder, repo_id)
        return None
    _check_no_token(folder, files, token)
    return token


def _no_token(folder: Path, repo_id: str) -> None:
    log.warning(
        "not pushing %s to the Hugging Face Hub (%s): no token. Set %s as an environment "
        "variable, a Kaggle secret (Add-ons → Secrets) or a Colab secret, with write access.",
        folder.name,
        repo_id,
        TOKEN_NAME,
    )


def _upload(
    folder: Path,
    files: Sequence[Path],
    repo_id: str,
    *,
    card: str,
    token: str,
    api: Any,
    private: bool,
    message: str,
    repo_type: str = "model",
    prepare: Any = None,
) -> str:
    """Stage ``files`` of ``folder`` with ``card`` as README.md and upload them to a repo."""
    card = _scrub(card, token)
    if Path(CARD_NAME) in files:
        log.info("%s/%s is replaced by the generated card in the upload", folder.name, CARD_NAME)
    client = api if api is not None else default_api()
    with _staging(folder, files) as stage:
        if prepare is not None:
            prepare(stage)
        write_bytes_atomic(stage / CARD_NAME, card.encode("utf-8"))
        log.info("pushing %s (%d files + card) to %s", folder.name, len(files), repo_id)
        try:
            url = client.create_repo(
                repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token
            )
            client.upload_folder(
                folder_path=str(stage),
                repo_id=repo_id,
                repo_type=repo_type,
                commit_message=message,
                token=token,
            )
        except Exception as exc:
            error = _hub_error("push to", repo_id, exc, token)
            if _leaks(exc, token):
                raise error from None
            raise error from exc
    prefix = "datasets/" if repo_type == "dataset" else ""
    url = str(url) if url else f"{HUB_URL}/{prefix}{repo_id}"
    log.info("pushed to %s", url)
    return url


def push_dataset(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
) -> str | None:
    """Upload a dataset folder written by ``debiaslab synth generate`` as a Hub dataset.

    Uploaded: the parquet splits (``data/``), the dataset card (``README.md``) and the manifest
    (``synth.json``); the raw, unfiltered generations (``raw/``) stay local. Token handling,
    secret checks and errors are those of :func:`push`.

    Returns:
        The dataset's URL, or ``None`` when no token is available (skipped and logged).
    """

    folder = Path(folder)
    _check_repo_id(repo_id)
    manifest = read_dataset_manifest(folder)
    files = [f for f in _folder_files(folder) if f.parts[0] in ("data", CARD, "synth.json")]
    if not any(f.parts[0] == "data" and f.suffix == ".parquet" for f in files):
        raise ConfigError(f"{folder}: no data/*.parquet to upload")
    token = _push_token(folder, files, repo_id, token)
    if token is None:
        return None
    return _upload(
        folder,
        files,
        repo_id,
        card=dataset_card(manifest),
        token=token,
        api=api,
        private=private,
        message=commit_message or f"debiaslab {debiaslab.__version__}: upload dataset",
        repo_type="dataset",
    )


def pull(
    repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    api: Any = None,
    local_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Download an adapter (or model) snapshot and return its local directory.

    Only configs, safetensors weights, tokenizer files and the card are fetched
    (:data:`PULL_PATTERNS`). A local directory given as ``repo_id`` is checked and returned as
    is, so offline code can pass a path where it would pass a repo id.

    Args:
        repo_id: ``user/name`` on the Hub, or a local directory: an adapter or model, or a
            fine-tuning run directory (its ``adapter/`` or ``model/`` is returned).
        revision: branch, tag or commit.
        token: Hub token for private repos; default ``get_secret("HF_TOKEN")`` (may be none).
        cache_dir: Hugging Face cache directory (default: the library's).
        api: Hub client (``HfApi``-like); default :func:`default_api`.
        local_root: look for ``repo_id`` as a directory under it first (a notebook's output
            root, where a fine-tuning run left its adapter).

    Raises:
        ConfigError: the repo cannot be reached or read (message without the token), or the
            snapshot holds neither ``adapter_config.json`` nor ``config.json``.
    """
    local = Path(repo_id).expanduser()
    if local_root is not None and (Path(local_root) / local).is_dir():
        local = Path(local_root) / local
    if local.is_dir():
        if (local / MANIFEST).is_file():  # a fine-tuning run: its adapter or full model
            local = next((w for w in (local / "adapter", local / "model") if w.is_dir()), local)
        folder_kind(local)
        return local
    repo_id = str(repo_id)
    if not _REPO_ID_RE.match(repo_id):
        raise ConfigError(
            f"{repo_id!r} is neither a local directory nor a Hugging Face repo id ('user/name')"
        )
    token = token or get_secret(TOKEN_NAME)
    client = api if api is not None else default_api()
    try:
        path = client.snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=None if cache_dir is None else str(cache_dir),
            allow_patterns=list(PULL_PATTERNS),
        )
    except Exception as exc:
        error = _hub_error("download", repo_id, exc, token)
        error = ConfigError(
            f"{error} Offline, pass the local adapter directory instead of the repo id."
        )
        if _leaks(exc, token):
            raise error from None
        raise error from exc
    path = Path(path)
    if not (path / ADAPTER_CONFIG).is_file() and not (path / MODEL_CONFIG).is_file():
        raise ConfigError(
            f"Hugging Face repo {repo_id!r} holds neither {ADAPTER_CONFIG} nor {MODEL_CONFIG} "
            "(or only pickle weights, which debiaslab does not download)"
        )
    log.info("pulled %s to %s", repo_id, path)
    return path


# --------------------------------------------------------------------------- results datasets

# What pull_results downloads from a results dataset: results and their tables (no card).
RESULTS_PULL_PATTERNS = ("*.json", "*.csv", "*.jsonl", "*.tsv")


def _is_tiny(name: str) -> bool:
    """Whether a model name is an offline tiny model (a smoke test, not a real checkpoint)."""

    preset = get_preset(name)
    return (preset is not None and preset.tiny is not None) or name.startswith("tiny-")


def results_card(
    records: Sequence[Mapping[str, Any]], *, repo_id: str, files: int | None = None
) -> str:
    """The README of a results dataset: one row per run (model, benchmark, stage, date).

    Deterministic (rows sorted by model, benchmark, stage, date, run id); local paths and
    token-like strings are scrubbed.
    """

    def row(record: Mapping[str, Any]) -> tuple[str, ...]:
        model = record.get("model") or {}
        name = str(model.get("name") or "unknown")
        env = record.get("environment") or {}
        where = " ".join(str(v) for v in (env.get("platform"), env.get("gpu")) if v) or "—"
        return (
            name + (" (tiny offline model)" if _is_tiny(name) else ""),
            str(record.get("benchmark")),
            str(record.get("stage", "eval")),
            str(record.get("date") or "—")[:10],
            where,
            f"`{record.get('run_id')}`",
        )

    rows = sorted(row(r) for r in records)
    benchmarks = sorted({str(r.get("benchmark")) for r in records})
    version = debiaslab.__version__
    front = {
        "tags": ["debiaslab", "bias-evaluation", "results"],
        "pretty_name": f"debiaslab results ({repo_id.split('/')[-1]})",
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# debiaslab results: {repo_id}",
        "",
        f"Result files of {len(records)} run{'s' * (len(records) != 1)} made with debiaslab "
        f"(benchmarks: {', '.join(benchmarks) or 'none'})"
        + (f", {files} files in all" if files is not None else "")
        + ". Each run is one JSON file (schema `debiaslab.result/1`: metrics, 95% bootstrap "
        "intervals, configuration, model, environment, date), with its per-item records "
        "(`<run_id>.items.csv`) and other side files beside it.",
        "",
        "| Model | Benchmark | Stage | Date | Platform | Run |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(cells)} |" for cells in rows),
        "",
        "Runs of tiny offline models are smoke tests of the pipeline, not measurements of real "
        "checkpoints.",
        "",
        "## Use",
        "",
        "```bash",
        f"debiaslab results pull {repo_id} --results results",
        "make report",
        "```",
        "",
        "or, in Python:",
        "",
        "```python",
        "from debiaslab import hub",
        "",
        f'hub.pull_results("{repo_id}", "results")',
        "```",
        "",
        f"Uploaded with debiaslab {version}.",
        "",
    ]
    return _scrub("\n".join(lines))


def push_results(
    results_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str | None:
    """Upload the results of ``results_dir`` to a Hub dataset, with a card listing the runs.

    Uploaded: every result JSON and its side files, and the data files beside results (what
    :func:`debiaslab.gather.collect` selects: no images, no weights, nothing over 50 MB), at
    their paths below ``results_dir``; a symbolic link that leaves ``results_dir`` is skipped with
    a warning, never followed. From a Colab or Kaggle cell this brings a run's results
    home: ``debiaslab results pull`` (or :func:`pull_results`) on another machine. Token
    handling, secret checks and errors are those of :func:`push`.

    Returns:
        The dataset's URL, or ``None`` when no token is available (skipped and logged).

    Raises:
        ConfigError: not a folder, no results, a bad repo id, files that look like secrets or
            contain the token, or a Hub error (message without the token).
        DataFormatError: a file named like a result that is not a valid one.
    """
    folder = Path(results_dir)
    _check_repo_id(repo_id)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a directory (expected a results folder)")
    selected = collect(folder)
    records = [record for _, record in selected if record is not None]
    if not records:
        raise ConfigError(f"{folder}: no debiaslab result files to upload")
    wanted = {rel for rel, _ in selected}
    files = [f for f in _folder_files(folder, warn_links=False) if f in wanted]  # collect warned
    token = _push_token(folder, files, repo_id, token)
    if token is None:
        return None
    return _upload(
        folder,
        files,
        repo_id,
        card=results_card(records, repo_id=repo_id, files=len(files)),
        token=token,
        api=api,
        private=private,
        message=commit_message
        or f"debiaslab {debiaslab.__version__}: upload {len(records)} results",
        repo_type="dataset",
    )


def pull_results(
    repo_id: str | os.PathLike[str],
    results_dir: str | os.PathLike[str] = "results",
    *,
    revision: str | None = None,
    token: str | None = None,
    api: Any = None,
    overwrite: bool = False,
) -> debiaslab.gather.GatherReport:
    """Download a results dataset (from :func:`push_results`) and gather it into ``results_dir``.

    Only :data:`RESULTS_PULL_PATTERNS` are fetched; the snapshot then goes through
    :func:`debiaslab.gather.gather` (identical files skipped, conflicts stop everything unless
    ``overwrite``). A local folder or ``.zip`` given as ``repo_id`` is gathered directly.

    Args:
        repo_id: ``user/name`` of a Hub dataset, or a local folder or ``.zip``.
        results_dir: the local results folder.
        revision: branch, tag or commit.
        token: Hub token for private datasets; default ``get_secret("HF_TOKEN")`` (may be none).
        api: Hub client (``HfApi``-like); default :func:`default_api`.
        overwrite: replace local files that differ.

    Raises:
        ConfigError: the dataset cannot be reached or read (message without the token), or
            conflicting files without ``overwrite``.
    """
    local = Path(repo_id).expanduser()
    if local.is_dir() or (local.is_file() and local.suffix.lower() == ".zip"):
        return gather(local, results_dir, overwrite=overwrite)
    repo_id = str(repo_id)
    if not _REPO_ID_RE.match(repo_id):
        raise ConfigError(
            f"{repo_id!r} is neither a local folder or .zip nor a Hugging Face dataset id "
            "('user/name')"
        )
    token = token or get_secret(TOKEN_NAME)
    client = api if api is not None else default_api()
    try:
        path = client.snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            token=token,
            allow_patterns=list(RESULTS_PULL_PATTERNS),
        )
    except Exception as exc:
        error = _hub_error("download", repo_id, exc, token)
        error = ConfigError(
            f"{error} It must be a dataset repo (debiaslab results push makes one); offline, "
            "gather a downloaded folder or zip instead (debiaslab results gather)."
        )
        if _leaks(exc, token):
            raise error from None
        raise error from exc
    log.info("pulled dataset %s to %s", repo_id, path)
    # A cache snapshot's files are links into <repo folder>/blobs: the one place they may lead.
    snapshot = Path(path)
    blobs = snapshot.parent.parent / "blobs" if snapshot.parent.name == "snapshots" else None
    return gather(path, results_dir, overwrite=overwrite, links_within=blobs)
