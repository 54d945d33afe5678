"""The PreciseDebias measure-and-align loop: sample rewrites, measure group shares, train on
the groups that come out too rarely, with a learning rate that grows with the gap.

PreciseDebias (Clemmer et al., WACV 2024) aims the rewriter's group shares at a target (US BLS;
:data:`debiaslab.t2i.targets.PRECISE_DEBIAS_RAW`). `align` runs the loop on a LoRA rewriter and
writes its curve (``align_curve.json``, a figure, a result file); `compare_shares` is the
text-level evaluation of several rewriters on held-out prompts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from debiaslab.batching import device_of, pad_rows
from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings
from debiaslab.io import write_bytes_atomic
from debiaslab.metrics import Metric
from debiaslab.plots_t2i import align_curve
from debiaslab.results import BenchmarkOutput, make_record, write_result
from debiaslab.stats import N_BOOT
from debiaslab.t2i.metrics import total_variation
from debiaslab.t2i.precise_debias.groups import (
    GROUPS,
    UNDETECTED,
    group_shares,
    marginals,
    measurement_ci,
    normalise_target,
)
from debiaslab.t2i.precise_debias.pairs import DEFAULT_INSTRUCTION
from debiaslab.t2i.precise_debias.rewriter import (
    MEASURE_SETTINGS,
    RECIPE,
    model_prompt,
    prompt_and_completion,
    rewrite,
)
from debiaslab.t2i.targets import PRECISE_DEBIAS_RAW

log = logging.getLogger(__name__)

CURVE_FILE = "align_curve.json"


@dataclasses.dataclass
class AlignResult:
    """What `align` did: the curve (one entry per measurement), where it wrote things."""

    curve: list[dict[str, Any]]
    stopped: str  # "threshold" or "max_iterations"
    curve_path: Path
    adapter: Path | None
    figures: list[Path]


def _trainable_lora(model) -> list:
    """The LoRA parameters of ``model``'s active adapter, made trainable (loaded adapters are
    frozen by default); the base stays frozen. The same adapter is trained on, never a new
    one."""
    if not hasattr(model, "peft_config"):
        raise ConfigError(
            "align trains the rewriter's LoRA adapter further, but the model has none: load it "
            "with load_model(name, adapter=<train_rewriter output>/adapter), or wrap it with "
            "peft.get_peft_model first"
        )
    adapter = getattr(model, "active_adapter", "default")
    params = []
    for name, param in model.named_parameters():
        if "lora_" in name and f".{adapter}" in name:
            param.requires_grad_(True)
            params.append(param)
        else:
            param.requires_grad_(False)
    if not params:
        raise ConfigError(f"the adapter {adapter!r} has no LoRA parameters to train")
    return params


def _encode_pair(tokenizer, pair: Mapping[str, str]) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``: the prompt as `rewrite` tokenizes it (`model_prompt`), then the
    completion and EOS; labels only on the completion (the prompt is given, not learned)."""
    _, completion = prompt_and_completion(
        pair["instruction"], pair["input"], pair["output"], tokenizer=tokenizer
    )
    prompt = model_prompt(pair["instruction"], pair["input"], tokenizer)
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    target = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None and (not target or target[-1] != tokenizer.eos_token_id):
        target.append(tokenizer.eos_token_id)
    return prompt_ids + target, [-100] * len(prompt_ids) + target


def _train_round(
    lm,
    by_group: Mapping[str, Sequence[Mapping[str, str]]],
    rates: Mapping[str, float],
    *,
    steps: int,
    batch_size: int,
    seed: int,
) -> float:
    """One round of further training; returns the mean loss.

    ``steps`` rounds of one AdamW step per group in ``rates``, interleaved (so no group is
    always trained last), each at that group's learning rate, on a batch of its pairs. One
    optimizer per round, as the seed started a new training run per group and iteration.
    """
    import torch

    model, tokenizer = lm.model, lm.tokenizer
    params = _trainable_lora(model)
    encoded = {g: [_encode_pair(tokenizer, p) for p in by_group[g]] for g in rates}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = device_of(model)
    optimizer = torch.optim.AdamW(params, lr=max(rates.values()), weight_decay=0.0)
    rng = random.Random(f"align-batches:{seed}")
    losses = []
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # LoRA dropout
            for _ in range(steps):
                for group, lr in rates.items():
                    rows = [rng.choice(encoded[group]) for _ in range(batch_size)]
                    ids, mask = pad_rows([r[0] for r in rows], pad_id)
                    labels, _ = pad_rows([r[1] for r in rows], -100)
                    loss = model(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        labels=labels.to(device),
                    ).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    for param_group in optimizer.param_groups:
                        param_group["lr"] = lr
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    losses.append(loss.item())
    finally:
        model.eval()
    return sum(losses) / len(losses)


def _save_adapter(model, tokenizer, path: Path) -> Path:
    """Save the adapter to ``path`` through a temporary sibling, so a kill leaves the old one."""
    tmp = path.with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def align(
    lm,
    prompts: Sequence[str],
    target: Mapping[str, float] = PRECISE_DEBIAS_RAW,
    *,
    pairs_by_group: Mapping[str, Sequence[Mapping[str, str]]],
    output: str | Path,
    figures: str | Path | None = None,
    results: str | Path | None = None,
    n: int = 10,
    threshold: float = 0.02,
    max_iterations: int = 10,
    base_lr: float = 1e-4,
    steps: int = 20,
    batch_size: int = 8,
    settings: GenerationSettings | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    seed: int = 0,
    save_adapter: bool = True,
    progress: bool = False,
    n_boot: int = N_BOOT,
) -> AlignResult:
    """Measure the rewriter's group shares and train it towards ``target`` until close.

    Each iteration samples ``n`` rewrites per prompt (`rewrite`), measures each group's share
    among the detected ones (`group_shares`), and Δ_c = target_c − share_c with ``target``
    renormalised over the 8 groups (`normalise_target`). It stops when every |Δ_c| <
    ``threshold``, or after ``max_iterations`` measurements. Otherwise the adapter is trained
    further (the same LoRA weights, in place) on the pairs of the under-represented groups
    (Δ_c > 0), ``steps`` AdamW steps per group (`_train_round`), and measured again; so the
    last entry always describes the returned weights.

    Learning rates: ``lr_c = base_lr · min(1, Δ_c / Δ_0)``, where Δ_0 is the largest gap of
    the first round. So the first round trains its most under-represented group at
    ``base_lr``, and later rounds slow down as the gaps close: a proportional controller.
    Normalising by each round's own largest gap instead (``base_lr · Δ_c / max Δ``) trains the
    largest remaining gap at full ``base_lr`` however small it is, and on the planted tiny
    rewriter that overshot and oscillated near the target. AdamW's step size barely depends
    on the gradient's size, so ``base_lr · steps`` sets how far one round moves: too large
    and the shares swing from round to round (the curve shows it), too small and it crawls.
    The seed (lr ∝ gap / number of pairs) has the same knob.

    Why a direct loop and not repeated :func:`~debiaslab.mitigation.finetune.finetune` calls:
    finetune loads a model from a name and wraps a *new* LoRA adapter each time, while the
    loop must keep training one adapter already in memory; a few hundred AdamW steps on the
    LoRA parameters need no Trainer. The loss is on the completion only (the prompt is given).

    Every draw uses ``settings.seed`` (the same per iteration: common random numbers, so a
    change between iterations is the model's, not the draw's); training batches and LoRA
    dropout are seeded by ``seed`` and the iteration.

    Args:
        lm: the rewriter: a causal LoadedModel whose model is a PeftModel (its adapter is
            trained in place).
        prompts: generic prompts to measure on (keep them out of the training pairs to
            measure generalisation).
        target: shares per group key (default PreciseDebias's raw BLS vector).
        pairs_by_group: the training pairs of each group (:func:`.groups.pairs_by_group`).
        output: directory for ``align_curve.json``, ``rewrites/`` and ``adapter/``.
        figures: directory for ``align_curve.png``/``.pdf`` (None: no figure).
        results: results directory for the curve as a result file (:func:`align_record`;
            benchmark ``precise_debias_align``, what the results notebook and report read).
        n: rewrites per prompt and iteration.
        threshold: stop when every |Δ_c| is below it.
        max_iterations: measurements at most (training rounds: one fewer).
        base_lr: learning rate of the most under-represented group of the first round
            (the tiny rewriter: 6e-4 with 10 steps; a 1.5B LoRA: untested, start ~1e-4).
        steps: optimizer steps per under-represented group per round.
        batch_size: pairs per step.
        settings: decoding (default :data:`MEASURE_SETTINGS`).
        instruction: the rewriter's instruction.
        seed: training seed.
        save_adapter: write the final adapter to ``output/adapter``.
        progress: progress bars of generation.
        n_boot: bootstrap resamples of each measurement's intervals
            (:func:`.groups.measurement_ci`).

    Returns:
        An :class:`AlignResult`; the curve is also in ``output/align_curve.json``, rewritten
        after every iteration: a list of ``{iteration, shares, delta, max_abs_delta, tv,
        undetected, n_rewrites, ci, learning_rates, train_loss, seconds}``.

    Raises:
        ConfigError: bad arguments, a model without a LoRA adapter, or no pairs for an
            under-represented group.
    """

    if not prompts:
        raise ConfigError("align needs prompts to measure the rewriter on")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    for name, value in (("max_iterations", max_iterations), ("steps", steps), ("n", n)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not base_lr > 0:
        raise ConfigError(f"base_lr must be > 0, got {base_lr}")
    goal = normalise_target(target)
    by_group = {g: list(pairs_by_group.get(g, ())) for g in GROUPS}
    _trainable_lora(lm.model)  # fail before the first measurement, not after it
    output = Path(output)
    settings = settings or MEASURE_SETTINGS
    record: dict[str, Any] = {
        "method": RECIPE,
        "model": getattr(lm, "name", None),
        "target": goal,
        "threshold": threshold,
        "max_iterations": max_iterations,
        "n_per_prompt": n,
        "n_prompts": len(prompts),
        "base_lr": base_lr,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "settings": settings.as_dict(),
        "n_pairs": {g: len(p) for g, p in by_group.items()},
        "stopped": None,
        "curve": [],
    }
    curve: list[dict[str, Any]] = record["curve"]
    stopped = "max_iterations"
    reference_gap: float | None = None  # the largest Δ of the first round: lr scale
    for iteration in range(max_iterations):
        started = time.perf_counter()
        rows = rewrite(lm, prompts, n, settings, instruction=instruction, progress=progress)
        write_bytes_atomic(
            output / "rewrites" / f"iteration_{iteration:02d}.json",
            (json.dumps(dict(zip(prompts, rows, strict=True)), indent=1) + "\n").encode(),
        )
        measured = group_shares(rows)
        shares = {g: measured[g] for g in GROUPS}
        delta = {g: goal[g] - shares[g] for g in GROUPS}
        entry: dict[str, Any] = {
            "iteration": iteration,
            "shares": shares,
            "delta": delta,
            "max_abs_delta": max(abs(d) for d in delta.values()),
            "tv": total_variation(shares, goal),
            "undetected": measured[UNDETECTED],
            "n_rewrites": int(measured["n"]),
            "ci": measurement_ci(rows, goal, n_boot=n_boot, seed=seed),
            "learning_rates": {},
            "train_loss": None,
        }
        if measured[UNDETECTED] > 0.5:
            log.warning(
                "iteration %d: %.0f%% of rewrites name no group; shares rest on the others",
                iteration,
                100 * measured[UNDETECTED],
            )
        done = entry["max_abs_delta"] < threshold
        if not done and iteration < max_iterations - 1:
            if reference_gap is None:
                reference_gap = max(delta.values())
            rates = {g: base_lr * min(1.0, d / reference_gap) for g, d in delta.items() if d > 0}
            empty = [g for g in rates if not by_group[g]]
            if empty:
                raise ConfigError(f"no training pairs for under-represented groups {empty}")
            entry["learning_rates"] = rates
            entry["train_loss"] = _train_round(
                lm,
                by_group,
                rates,
                steps=steps,
                batch_size=batch_size,
                seed=seed * 100_003 + iteration,
            )
        entry["seconds"] = round(time.perf_counter() - started, 2)
        curve.append(entry)
        log.info(
            "align iteration %d: max|Δ| %.3f, TV %.3f, undetected %.2f",
            iteration,
            entry["max_abs_delta"],
            entry["tv"],
            entry["undetected"],
        )
        if done:
            stopped = "threshold"
        record["stopped"] = stopped if done or iteration == max_iterations - 1 else None
        curve_path = write_bytes_atomic(
            output / CURVE_FILE, (json.dumps(record, indent=2) + "\n").encode()
        )
        if done:
            break
    adapter = None
    if save_adapter:
        adapter = _save_adapter(lm.model, lm.tokenizer, output / "adapter")
    figure_paths: list[Path] = []
    if figures is not None:
        figure_paths = align_curve(
            curve, Path(figures) / "align_curve", target=goal, threshold=threshold
        )
    if results is not None:
        write_result(align_record(record, lm), results)
    return AlignResult(curve, stopped, curve_path, adapter, figure_paths)


ALIGN_BENCHMARK = "precise_debias_align"
# Keys of align_record: iteration/<i>/<name>, final/<name>, iterations.
ALIGN_METRICS = {
    "max_abs_delta": Metric(False, None, "fraction", "largest |group share - target share|"),
    "tv": Metric(False, None, "fraction", "total variation distance to the target"),
    "undetected": Metric(False, None, "fraction", "share of rewrites with no group detected"),
    "share/*": Metric(None, None, "fraction", "share of the rewrites naming this group"),
    "gender/*": Metric(None, None, "fraction", "share of detected rewrites naming this gender"),
    "ethnicity/*": Metric(None, None, "fraction", "share of detected rewrites naming it"),
    "iterations": Metric(None, None, "count", "iterations of the align loop"),
}  # fmt: skip


def align_record(curve_record: Mapping[str, Any], lm) -> dict[str, Any]:
    """The align loop's curve (``align_curve.json``) as a result record: per iteration the
    largest |Δ|, the TV distance to the target, the undetected share, each group's share and
    the gender and ethnicity shares they add up to (``gender/*``, ``ethnicity/*``; the
    target's as ``target/...``); ``final/*`` for the last measurement. Intervals
    (:func:`.groups.measurement_ci`) of each measurement's TV, undetected and gender/ethnicity
    shares, and of ``final/tv``, where the curve holds them.
    :func:`curve_from_record` reads it back."""

    curve = curve_record["curve"]
    metrics: dict[str, float] = {}
    ci: dict[str, list[float]] = {}
    for entry in curve:
        prefix = f"iteration/{entry['iteration']}"
        for key in ("max_abs_delta", "tv", "undetected"):
            metrics[f"{prefix}/{key}"] = entry[key]
        ci.update({f"{prefix}/{k}": v for k, v in (entry.get("ci") or {}).items()})
        metrics.update({f"{prefix}/share/{g}": v for g, v in entry["shares"].items()})
        metrics.update({f"{prefix}/{k}": v for k, v in marginals(entry["shares"]).items()})
    if curve_record.get("target"):
        metrics.update({f"target/{k}": v for k, v in marginals(curve_record["target"]).items()})
    metrics["final/max_abs_delta"] = curve[-1]["max_abs_delta"]
    metrics["final/tv"] = curve[-1]["tv"]
    if "tv" in (curve[-1].get("ci") or {}):
        ci["final/tv"] = curve[-1]["ci"]["tv"]
    metrics["iterations"] = float(len(curve))
    output = BenchmarkOutput(
        ALIGN_BENCHMARK,
        metrics,
        ci={k: tuple(v) for k, v in ci.items()},
        declared=ALIGN_METRICS,
        n_items=int(sum(e["n_rewrites"] for e in curve)),
    )
    config = {k: v for k, v in curve_record.items() if k not in ("curve", "model")}
    seconds = round(sum(e.get("seconds", 0.0) for e in curve), 2)
    info = {**getattr(lm, "info", {}), "name": getattr(lm, "name", None) or "rewriter"}
    return make_record(
        output, model=info, config=config, timing={"align_seconds": seconds}, stage="align"
    )


def curve_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"curve", "target", "threshold", "stopped"}`` back from an :func:`align_record`
    result (the curve entries as in ``align_curve.json``, without the training details)."""
    metrics = record["metrics"]
    curve = []
    for i in range(int(metrics["iterations"])):
        prefix = f"iteration/{i}/"
        shares = {
            k.removeprefix(f"{prefix}share/"): v
            for k, v in metrics.items()
            if k.startswith(f"{prefix}share/")
        }
        entry = {"iteration": i, "shares": shares}
        entry.update({k: metrics[prefix + k] for k in ("max_abs_delta", "tv", "undetected")})
        curve.append(entry)
    config = record.get("config", {})
    return {
        "curve": curve,
        "target": config.get("target"),
        "threshold": config.get("threshold"),
        "stopped": config.get("stopped"),
    }


def compare_shares(
    models: Mapping[str, Any],
    prompts: Sequence[str],
    *,
    n: int = 10,
    target: Mapping[str, float] = PRECISE_DEBIAS_RAW,
    settings: GenerationSettings | None = None,
):
    """Group shares of each model's rewrites of ``prompts`` against the target: the text-level
    evaluation (held-out prompts; ``models``: label → LoadedModel, e.g. base and rewriter).

    Returns:
        A DataFrame with model, group, share, target, and per model the total variation
        distance to the target (``group == "TV"``) and the undetected share.
    """
    import pandas as pd

    goal = normalise_target(target)
    rows = []
    for label, lm in models.items():
        shares = group_shares(rewrite(lm, prompts, n=n, settings=settings or MEASURE_SETTINGS))
        for group in GROUPS:
            rows.append(
                {"model": label, "group": group, "share": shares[group], "target": goal[group]}
            )
        tv = total_variation([shares[g] for g in GROUPS], [goal[g] for g in GROUPS])
        rows.append({"model": label, "group": "TV", "share": tv, "target": 0.0})
        rows.append(
            {"model": label, "group": "undetected", "share": shares["undetected"], "target": 0.0}
        )
    return pd.DataFrame(rows)
