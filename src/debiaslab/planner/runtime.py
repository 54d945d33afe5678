"""How long will a notebook take? An estimate from FLOPs and memory bandwidth, not a timing.

A notebook's work is counted in what bounds it (:class:`Workload`): tokens scored in float32
(2 FLOPs per parameter and token), tokens trained (6 for full fine-tuning, 4 for LoRA: the
frozen weights still pass gradients back), decoding steps (each reads every weight once, so
they are bounded by memory bandwidth), and denoising steps of a Stable Diffusion UNet. Each is
divided by what a GPU of :data:`ACCELERATORS` sustains (its datasheet peak times an
efficiency: ``half_efficiency``, :data:`FP32_EFFICIENCY`, :data:`BANDWIDTH_EFFICIENCY`),
split over its GPUs (evaluation and training share the work, :mod:`debiaslab.distributed`),
plus loading the weights and a notebook's start. The headers of the notebooks print these
numbers and say they are estimates: nothing here was timed on a T4 (this project's machines
cannot reach one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from debiaslab.planner.architecture import count_parameters

# What dense transformer work sustains of a datasheet peak, and of memory bandwidth (rough).
# A T4 is capped at 70 W: SD 1.5 at 512×512 runs ~3 steps/s there, about a tenth of its
# float16 tensor-core peak (its half_efficiency); a P100, without tensor cores, keeps a larger
# share of its smaller float16 peak and ends up about as fast.
FP32_EFFICIENCY = 0.4
BANDWIDTH_EFFICIENCY = 0.6
LOAD_BYTES_PER_SECOND = 100e6  # reading (or downloading) the weights
SD_UNET_FLOPS = 2.0e12  # one SD 1.5 denoising step at 512×512, classifier-free guidance (×2)
# What a small model cannot go below: one decoding step's kernel launches, and the Python
# around each scored sequence (tokenising, batching, the bootstrap); plus a notebook's start.
STEP_LATENCY = 0.015
SEQUENCE_OVERHEAD = 0.003
START_SECONDS = 60.0


@dataclass(frozen=True)
class Accelerator:
    name: str
    label: str
    gpus: int
    fp32_flops: float
    half_flops: float  # float16 (tensor cores on a T4; none on a P100)
    half_efficiency: float  # the share of half_flops sustained
    bandwidth: float  # bytes per second


ACCELERATORS = {
    "t4x2": Accelerator("t4x2", "Kaggle T4×2", 2, 8.1e12, 65e12, 0.1, 320e9),
    "p100": Accelerator("p100", "a P100", 1, 9.3e12, 18.7e12, 0.35, 732e9),
}


@dataclass(frozen=True)
class Workload:
    """What a notebook computes (see the module's text)."""

    parameters: int
    scored_tokens: float = 0.0  # float32 forward passes, per token
    sequences: float = 0.0  # sequences scored or generated (per-sequence overhead)
    decode_steps: float = 0.0  # batched decoding steps (each reads all weights)
    trained_tokens: float = 0.0
    lora: bool = True
    unet_evaluations: float = 0.0
    loads: int = 1  # times the weights are loaded


def seconds(work: Workload, accelerator: str) -> float:
    """The estimated wall time of ``work`` on ``accelerator`` (a key of :data:`ACCELERATORS`)."""
    gpu = ACCELERATORS[accelerator]
    p = work.parameters
    compute = 2 * p * work.scored_tokens / (gpu.fp32_flops * FP32_EFFICIENCY)
    compute += (
        (4 if work.lora else 6) * p * work.trained_tokens / (gpu.half_flops * gpu.half_efficiency)
    )
    step = max(2 * p / (gpu.bandwidth * BANDWIDTH_EFFICIENCY), STEP_LATENCY)
    compute += work.decode_steps * step + work.sequences * SEQUENCE_OVERHEAD
    compute += work.unet_evaluations * SD_UNET_FLOPS / (gpu.half_flops * gpu.half_efficiency)
    return START_SECONDS + compute / gpu.gpus + work.loads * 4 * p / LOAD_BYTES_PER_SECOND


def evaluation(
    model: str, family: str, limit: int | None, generation_limit: int | None
) -> Workload:
    """The pre- or post-evaluation suite of one model: CrowS-Pairs' held-out half and
    StereoSet's dev set scored (a masked model: once per token, pseudo-log-likelihood), BOLD's
    gender and race prompts continued (30 tokens, batches of 16) and HONEST's templates."""
    pairs = min(limit or 754, 754)
    examples = min(limit or 2106, 2106) + min(limit or 2123, 2123)
    crows, stereoset = pairs * 2 * 18, examples * 3 * 25
    per_token = 20 if family == "masked" else 1
    prompts = 6 * (generation_limit or 200) + 4 * (generation_limit or 100)
    decode = 0 if family == "masked" else math.ceil(prompts / 16) * 30
    return Workload(
        count_parameters(model).total,
        scored_tokens=(crows + stereoset) * per_token,
        sequences=(pairs * 2 + examples * 3) * per_token + prompts,
        decode_steps=decode,
        loads=4,
    )


def finetuning(model: str, steps: int, tokens_per_step: int, lora: bool) -> Workload:
    return Workload(
        count_parameters(model).total, trained_tokens=steps * tokens_per_step, lora=lora
    )


def images(n_images: int, steps: int) -> Workload:
    """Stable Diffusion 1.5 images (its 0.86 B-parameter UNet; CLIP and the VAE are small)."""
    return Workload(860_000_000, unet_evaluations=n_images * steps)


def describe(works: dict[str, Workload]) -> str:
    """``"full: ~12 min on Kaggle T4×2, ~20 min on a P100; quick: ~2 min"`` for a notebook's
    ``full`` and ``quick`` workloads."""

    def minutes(s: float) -> str:
        return f"~{max(1, round(s / 60))} min"

    full = works["full"]
    text = "; ".join(
        [
            "full: " + ", ".join(
                f"{minutes(seconds(full, a))} on {ACCELERATORS[a].label}" for a in ACCELERATORS
            ),
            f"quick: {minutes(seconds(works['quick'], 't4x2'))} on {ACCELERATORS['t4x2'].label}",
        ]
    )  # fmt: skip
    return text
