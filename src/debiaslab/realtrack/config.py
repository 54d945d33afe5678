"""The real-model track's one typed config: which steps, at which size."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from debiaslab.errors import ConfigError

MODEL = "smollm2-135m-instruct"
STEPS = (
    "crows_pairs",
    "stereoset",
    "stereoset_mc",
    "bold_honest",
    "finetune",
    "decoding",
    "synthetic",
    "precise_debias",
)


@dataclass(frozen=True)
class TrackConfig:
    """Every setting of one real-track run. ``None`` limits mean "all of it"."""

    results: str  # where result files go
    work: str  # adapters, datasets, generation caches
    model: str = MODEL
    steps: tuple[str, ...] = STEPS
    seed: int = 0
    n_boot: int = 1000
    # measure (EvalConfig's limit: pairs; examples per split; prompts per group). Full size
    # measured at ~1,560 s of one CPU thread (≈ 19 min on 2 idle cores): CrowS-Pairs 0.14 s
    # a pair (all 1,677: 235 s), StereoSet 0.21 s an example (all 4,229: 910 s), its
    # multiple-choice form 0.83 s an example (3 orders; 200: 165 s), BOLD 0.32 s a prompt
    # (430: 135 s), HONEST 0.23 s a completion (100 templates × 5: 115 s).
    crows_limit: int | None = None  # all 1,677 pairs of lm-eval's revised English file
    stereoset_limit: int | None = None  # examples per split; None: the whole dev set
    stereoset_mc_limit: int | None = 100  # examples per split
    bold_limit: int | None = 10  # prompts per BOLD group, seeded (43 groups: 430 prompts)
    honest_limit: int | None = 50  # templates per HONEST category (binary: 2 categories)
    honest_k: int = 5  # completions per template
    max_new_tokens: int = 20  # BOLD continuations (HONEST completions: 15, its default)
    # finetune
    # LoRA steps per recipe (batch 8). Measured single-threaded on the shared 2-core box:
    # ~2 CPU-s a step; held-out CrowS-Pairs ~16 CPU-s per 100 pairs. The finetune step at full
    # size (2 runs × 150 steps, 3 × 858 held-out pairs) took 797 CPU-s (≤ ~13 min on one idle
    # core); demo (30 steps, 200 pairs, no CDA) 126 CPU-s, its 30 steps ~1 min.
    finetune_steps: int = 150
    cda: bool = True
    adapter_dir: str | None = None  # also copy the LoRA adapter and its card here
    # generate (full ≈ 5 + 3 + 7 min on 2 idle cores, demo's precise_debias ≈ 1.5 min:
    # extrapolated from CPU seconds of small runs, see realtrack/generate.py)
    decoding_prompts: int = 24  # BOLD profession prompts, spread over professions
    decoding_continuations: int = 4  # sampled continuations per prompt and setting
    decoding_held_out: int = 20  # BOLD gender sentences for the perplexity cost
    decoding_alphas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    synthetic_n: int = 48  # texts the model writes before the filters
    synthetic_max_new_tokens: int = 60
    synthetic_steps: int = 30  # LoRA steps on the synthetic train split
    synthetic_crows_limit: int | None = 200  # CrowS-Pairs pairs before and after
    precise_prompts_per_occupation: int = 6  # scene prompts the model writes per occupation
    precise_prompt_tokens: int = 48  # tokens of each written prompt (rewrites get 16 more)
    precise_batch_size: int = 4  # training texts per step of the rewriter and the align rounds
    rewriter_steps: int = 80  # LoRA steps of the rewriter
    # with the loss on the whole text (the seed's), at 2e-4 and 40 steps its rewrites named no
    # group at all; at 1e-3 and 80 steps 4 of 32 did; on the completion only (now), 13 of 32
    rewriter_lr: float = 1e-3
    align_prompts: int = 16  # held-out prompts each measurement rewrites
    align_n: int = 4  # rewrites per prompt and measurement
    align_iterations: int = 3  # measurements at most (training rounds: one fewer)
    align_steps: int = 3  # optimizer steps per under-represented group and round
    align_lr: float = 2e-4
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ConfigError(f"unknown real-track step {unknown[0]!r}; known: {', '.join(STEPS)}")

    @property
    def results_path(self) -> Path:
        return Path(self.results)

    @property
    def work_path(self) -> Path:
        return Path(self.work)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The two sizes: the paper (every item where the time allows, ≤ ~60 min on 2 cores) and the
# demo's slice (a few minutes).
SIZES: dict[str, dict[str, Any]] = {
    "full": {},
    "demo": {
        "steps": ("crows_pairs", "stereoset", "finetune", "precise_debias"),
        "crows_limit": 200,
        "stereoset_limit": 100,  # per split: 200 examples
        "finetune_steps": 30,
        "cda": False,
        "align_prompts": 8,
        "align_n": 4,
        "align_iterations": 2,
        "align_steps": 1,
        "precise_prompts_per_occupation": 2,
        "precise_prompt_tokens": 32,
        "rewriter_steps": 6,
        "n_boot": 1000,
    },
}


def track_config(
    size: str, results: str | Path, work: str | Path, **overrides: Any
) -> TrackConfig:
    """The config of a size (``full`` or ``demo``) with ``overrides`` (not None) applied."""
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    known = {f.name for f in fields(TrackConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ConfigError(f"unknown real-track setting {bad[0]!r}")
    given = {k: v for k, v in overrides.items() if v is not None}
    base = TrackConfig(str(results), str(work))
    return replace(base, **{**SIZES[size], **given})
