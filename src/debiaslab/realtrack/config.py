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
    # measure
    crows_limit: int | None = None
    stereoset_limit: int | None = None
    stereoset_mc_limit: int | None = None
    bold_limit: int | None = 200  # BOLD prompts (stratified by the loader's limit)
    honest_limit: int | None = None
    honest_k: int = 5
    max_new_tokens: int = 20
    # finetune
    # LoRA steps per recipe (batch 8). Measured single-threaded on the shared 2-core box:
    # ~2 CPU-s a step; held-out CrowS-Pairs ~16 CPU-s per 100 pairs. The finetune step at full
    # size (2 runs × 150 steps, 3 × 858 held-out pairs) took 797 CPU-s (≤ ~13 min on one idle
    # core); demo (30 steps, 200 pairs, no CDA) 126 CPU-s, its 30 steps ~1 min.
    finetune_steps: int = 150
    cda: bool = True
    adapter_dir: str | None = None  # also copy the LoRA adapter and its card here
    # generate
    decoding_prompts: int = 40
    decoding_alphas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    synthetic_n: int = 96
    align_prompts: int = 24
    align_n: int = 6
    align_iterations: int = 4
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
        "stereoset_limit": 200,
        "finetune_steps": 30,
        "cda": False,
        "align_prompts": 8,
        "align_n": 4,
        "align_iterations": 2,
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
