"""The Socratic refinement loop: generate → caption → (stop?) → rewrite the prompt → repeat.

For each user prompt, cycle ``c = 0 … max_cycles − 1``:

1. generate an image from the current prompt (one seed per prompt and cycle, through
   :func:`debiaslab.t2i.generate.generate_images`, so every image can be regenerated);
2. caption it with BLIP (transformers ``BlipForConditionalGeneration``);
3. score it: CLIPScore of the image against the **user's** prompt (not the rewritten one: the
   loop must not be rewarded for drifting), and the caption's similarity to the user's prompt
   (cosine of CLIP text embeddings);
4. stop when the caption's similarity reaches ``stop_similarity``, or, with ``judge=True``, when
   the language model answers "yes" to "does this caption match the request?";
5. otherwise ask the language model for a better prompt from the user's prompt and the caption.

The best image is the cycle with the highest CLIPScore. Every cycle's prompt, caption, image
file, CLIPScore and similarity is recorded (``socratic.jsonl``), and a result file reports the
mean CLIPScore of the first, best and last cycles and the improvement best − first with a
bootstrap CI over prompts.

Language models come from :func:`debiaslab.synth.backends.make_backend`: a local transformers
model by default, an OpenAI-compatible API optionally (key from the secret store). A rewrite
that comes back empty keeps the previous prompt (a tiny offline model often returns nothing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from debiaslab.errors import ConfigError
from debiaslab.io import write_bytes_atomic
from debiaslab.metrics import Metric
from debiaslab.results import BenchmarkOutput, make_record, read_all, write_result
from debiaslab.stats import bootstrap_ci
from debiaslab.synth.backends import make_backend
from debiaslab.t2i.clip import (
    DEFAULT_CLIP,
    as_pil,
    clip_score,
    embed_texts,
    load_clip,
    load_model_and_processor,
    resolve_preset,
)
from debiaslab.t2i.generate import generate_images, load_pipeline

log = logging.getLogger(__name__)

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"
CAPTIONER_PRESETS = {"tiny-blip": "tiny"}
RECORDS = "socratic.jsonl"
# The result's metrics (summarise); CLIPScores on the run's clip_scale (config).
METRICS = {
    "clip_score_first": Metric(True, None, "score", "mean CLIPScore of the first cycle"),
    "clip_score_best": Metric(True, None, "score", "mean CLIPScore of each prompt's best cycle"),
    "clip_score_last": Metric(True, None, "score", "mean CLIPScore of the last cycle"),
    "improvement_best": Metric(True, None, "score", "mean CLIPScore gain, best - first cycle"),
    "improvement_last": Metric(True, None, "score", "mean CLIPScore gain, last - first cycle"),
    "cycles": Metric(None, None, "count", "mean number of cycles per prompt"),
    "clip_score/*": Metric(True, None, "score", "mean CLIPScore at this cycle of the prompts "
                           "that reached it"),
}  # fmt: skip
REWRITE_TEMPLATE = (
    "A text-to-image model was asked for: {prompt}\n"
    "The image it made shows: {caption}\n"
    "Write one improved prompt that makes the image show what was asked. Answer with the "
    "prompt only."
)
JUDGE_TEMPLATE = (
    "Request: {prompt}\nImage caption: {caption}\n"
    "Does the image match the request? Answer yes or no."
)


@dataclass
class Captioner:
    model: Any
    processor: Any
    name: str
    device: Any
    max_new_tokens: int = 30


def load_captioner(name: str = DEFAULT_CAPTIONER, device: str | None = None) -> Captioner:
    """A BLIP captioner (safetensors only, no remote code); ``tiny-blip`` offline."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from debiaslab.models import select_device

    source = resolve_preset(name, CAPTIONER_PRESETS, "blip")
    dev = select_device(device)
    model, processor = load_model_and_processor(
        BlipForConditionalGeneration, BlipProcessor, source, "BLIP captioner", "tiny-blip"
    )
    return Captioner(model.to(dev).eval(), processor, name, dev)


def caption(captioner: Captioner, images: Sequence[Any]) -> list[str]:
    """One greedy caption per image (PIL images or paths)."""
    import torch

    pil = [as_pil(image) for image in images]
    inputs = captioner.processor(images=pil, return_tensors="pt").to(captioner.device)
    with torch.inference_mode():
        out = captioner.model.generate(
            **inputs, max_new_tokens=captioner.max_new_tokens, do_sample=False
        )
    texts = captioner.processor.batch_decode(out, skip_special_tokens=True)
    return [" ".join(t.split()) for t in texts]


@dataclass(frozen=True)
class SocraticSettings:
    """How the loop runs; recorded with every result.

    Attributes:
        max_cycles: images per prompt at most (the first is the plain prompt's).
        stop_similarity: stop when the caption's CLIP-text cosine with the user's prompt is at
            least this (None: never by similarity).
        judge: ask the language model whether the caption matches (stop on "yes").
        steps, guidance, size: image generation settings.
        seed: base seed; cycle ``c`` of prompt ``i`` uses ``seed + 1000·i + c``.
        clip_scale: ``torchmetrics`` (100·max(cos, 0)) or ``hessel`` (2.5·max(cos, 0)).
    """

    max_cycles: int = 3
    stop_similarity: float | None = None
    judge: bool = False
    steps: int = 30
    guidance: float = 7.5
    size: int | None = None
    seed: int = 0
    clip_scale: str = "torchmetrics"

    def __post_init__(self) -> None:
        if self.max_cycles < 1:
            raise ConfigError(f"max_cycles must be at least 1, got {self.max_cycles}")


def _answer(llm, text: str) -> str:
    return " ".join(str(llm.complete(text)).split())


def _rewrite(llm, prompt: str, caption_text: str, previous: str) -> str:
    answer = _answer(llm, REWRITE_TEMPLATE.format(prompt=prompt, caption=caption_text))
    answer = answer.strip().strip("\"'").strip()
    return answer or previous


def refine(
    prompts: Sequence[str],
    pipe,
    captioner: Captioner,
    clip,
    llm,
    out_dir: str | Path,
    settings: SocraticSettings = SocraticSettings(),
    *,
    model: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the loop for every prompt; return (and write to ``OUT/socratic.jsonl``) one record
    per prompt: ``prompt``, ``cycles`` (each: cycle, prompt, caption, file, seed, clip_score,
    caption_similarity, stop), ``best_cycle``, ``best_file``.

    Images are written by the generation engine under ``OUT/images`` with its manifest, so a
    rerun regenerates nothing it already has.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    records = []
    for i, prompt in enumerate(tqdm(list(prompts), desc="socratic", disable=not progress)):
        current, cycles = prompt, []
        user_embedding = embed_texts(clip, [prompt])
        for c in range(settings.max_cycles):
            seed = settings.seed + 1000 * i + c
            row = generate_images(
                pipe,
                [current],
                [seed],
                out,
                steps=settings.steps,
                guidance=settings.guidance,
                height=settings.size,
                width=settings.size,
                batch_size=1,
                progress=False,
                model=model,
            )[0]
            image = out / row["file"]
            text = caption(captioner, [image])[0]
            score = float(clip_score(clip, [image], [prompt], scale=settings.clip_scale)[0])
            similarity = float((embed_texts(clip, [text or " "]) @ user_embedding.T).item())
            stop = None
            if settings.judge and _answer(
                llm, JUDGE_TEMPLATE.format(prompt=prompt, caption=text)
            ).lower().startswith("yes"):
                stop = "judge"
            elif settings.stop_similarity is not None and similarity >= settings.stop_similarity:
                stop = "similarity"
            cycles.append(
                {
                    "cycle": c,
                    "prompt": current,
                    "caption": text,
                    "file": row["file"],
                    "seed": seed,
                    "nsfw": row.get("nsfw"),
                    "clip_score": score,
                    "caption_similarity": similarity,
                    "stop": stop,
                }
            )
            if stop or c == settings.max_cycles - 1:
                break
            current = _rewrite(llm, prompt, text, current)
        best = max(range(len(cycles)), key=lambda k: (cycles[k]["clip_score"], -k))
        records.append(
            {"prompt": prompt, "cycles": cycles, "best_cycle": best,
             "best_file": cycles[best]["file"]}
        )  # fmt: skip
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_bytes_atomic(out / RECORDS, lines.encode("utf-8"))
    return records


def summarise(records: Sequence[dict[str, Any]], *, n_boot: int = 1000, seed: int = 0):
    """Mean CLIPScore of the first, best and last cycles, the improvement best − first and
    last − first, and the mean number of cycles, with bootstrap CIs over prompts.

    Returns:
        ``(metrics, ci)``; also per cycle index, the mean CLIPScore of the prompts that reached
        it (``clip_score/cycle_<c>``), for the per-cycle curve.
    """

    if not records:
        raise ConfigError("no Socratic records to summarise")
    first = np.array([r["cycles"][0]["clip_score"] for r in records])
    best = np.array([r["cycles"][r["best_cycle"]]["clip_score"] for r in records])
    last = np.array([r["cycles"][-1]["clip_score"] for r in records])
    cycles = np.array([len(r["cycles"]) for r in records], dtype=float)

    def stat(idx):
        return {
            "clip_score_first": float(first[idx].mean()),
            "clip_score_best": float(best[idx].mean()),
            "clip_score_last": float(last[idx].mean()),
            "improvement_best": float((best[idx] - first[idx]).mean()),
            "improvement_last": float((last[idx] - first[idx]).mean()),
            "cycles": float(cycles[idx].mean()),
        }

    everyone = np.arange(len(records))
    metrics = stat(everyone)
    ci = bootstrap_ci(stat, len(records), n_boot=n_boot, seed=seed)
    depth = max(len(r["cycles"]) for r in records)
    for c in range(depth):
        scores = [r["cycles"][c]["clip_score"] for r in records if len(r["cycles"]) > c]
        metrics[f"clip_score/cycle_{c}"] = float(np.mean(scores))
    return metrics, ci


def run_socratic(
    prompts: Sequence[str],
    output: str | Path,
    *,
    pipeline: str = "sd-1.5",
    captioner: str = DEFAULT_CAPTIONER,
    clip: str | None = None,
    llm_backend: str = "hf",
    llm: str = "qwen2.5-0.5b-instruct",
    settings: SocraticSettings = SocraticSettings(),
    device: str | None = None,
    n_boot: int = 1000,
    source: str = "prompts",
    progress: bool = True,
):
    """Load the models, run :func:`refine`, and write a result file (``benchmark: socratic``).

    Returns:
        ``(records, result_path)``.
    """

    pipe = load_pipeline(pipeline, device=device)
    cap = load_captioner(captioner, device=device)
    scorer = load_clip(clip or DEFAULT_CLIP, device=device)
    writer = make_backend(llm_backend, llm, max_new_tokens=60, temperature=1.0, device=device)
    out = Path(output)
    records = refine(
        prompts, pipe, cap, scorer, writer, out / "socratic", settings,
        model=pipeline, progress=progress,
    )  # fmt: skip
    metrics, ci = summarise(records, n_boot=n_boot, seed=settings.seed)
    items = cycle_table(records)
    items["file"] = [c["file"] for r in records for c in r["cycles"]]
    config = {
        "prompts": source,
        "n_prompts": len(records),
        "pipeline": pipeline,
        "captioner": captioner,
        "clip": scorer.name,
        "clip_scale": settings.clip_scale,
        "llm_backend": llm_backend,
        "llm": llm,
        "settings": asdict(settings),
    }
    output_ = BenchmarkOutput(
        "socratic", metrics, {k: tuple(v) for k, v in ci.items()}, METRICS, len(records),
        items=items, config=config,
    )  # fmt: skip
    record = make_record(
        output_,
        model={"name": pipeline, "source": pipeline, "device": str(pipe.device)},
        config=config,
        timing={},
        stage="socratic",
    )
    return records, write_result(record, out, items)


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """The per-prompt records :func:`refine` wrote to ``folder/socratic.jsonl``."""
    path = Path(folder) / RECORDS
    if not path.is_file():
        raise ConfigError(f"{folder}: no {RECORDS}; run the loop first (socratic.run_socratic)")
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def read_result(folder: str | Path) -> dict[str, Any]:
    """The Socratic result record :func:`run_socratic` wrote under ``folder``."""
    found = [r for _, r in read_all(folder) if r["benchmark"] == "socratic"]
    if not found:
        raise ConfigError(
            f"{folder}: no Socratic result file; run notebook 1 (socratic.run_socratic) first"
        )
    return found[-1]


def image_pairs(records: Sequence[dict[str, Any]], folder: str | Path) -> list[tuple[Path, str]]:
    """Each prompt's first and best cycle's image (``folder``: where :func:`read_records`
    reads), for :func:`debiaslab.plots_t2i.image_grid`."""
    pairs = []
    for record in records:
        cycles = record["cycles"]
        for cycle in sorted({0, record["best_cycle"]}):
            c = cycles[cycle]
            label = f"cycle {cycle}{' (best)' if cycle == record['best_cycle'] else ''}: "
            pairs.append((Path(folder) / c["file"], label + f"{c['clip_score']:.1f}"))
    return pairs


def cycle_table(records: Sequence[dict[str, Any]]):
    """One row per prompt and cycle: prompt, cycle, rewritten prompt, caption, CLIPScore,
    caption similarity, stop reason, best (a DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        [{"prompt": r["prompt"], "cycle": c["cycle"], "rewritten": c["prompt"],
          "caption": c["caption"], "clip_score": c["clip_score"],
          "caption_similarity": c["caption_similarity"], "stop": c["stop"],
          "best": c["cycle"] == r["best_cycle"]}
         for r in records for c in r["cycles"]]
    )  # fmt: skip


def summary_table(record: dict[str, Any]):
    """A result record's metrics with their 95% intervals (a DataFrame)."""
    import pandas as pd

    rows = []
    for key, value in record["metrics"].items():
        low, high = (record.get("ci", {}).get(key) or [float("nan"), float("nan")])[:2]
        rows.append({"metric": key, "value": value, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)
