"""Where am I and what can I run on: platform, paths, device, dtype, secrets.

This is the one module that knows platform paths (``/kaggle/...``, ``/content``). Nothing here
runs at import time; call :func:`setup` from a notebook or script.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

from debiaslab import __version__, gpucheck
from debiaslab.config import get_preset
from debiaslab.errors import ConfigError

log = logging.getLogger(__name__)

PLATFORMS = ("kaggle", "colab", "ci", "local")
OUTPUT_ENV = "DEBIASLAB_OUTPUT"
INPUT_ENV = "DEBIASLAB_INPUT_ROOT"


def detect_platform(environ: dict[str, str] | None = None) -> str:
    """Return ``kaggle``, ``colab``, ``ci`` or ``local``.

    Example:
        >>> detect_platform({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
        'kaggle'
        >>> detect_platform({"COLAB_RELEASE_TAG": "release-colab_20261101"})
        'colab'
        >>> detect_platform({"CI": "true"})
        'ci'
        >>> detect_platform({})
        'local'
    """
    env = os.environ if environ is None else environ
    if "KAGGLE_KERNEL_RUN_TYPE" in env or "KAGGLE_URL_BASE" in env:
        return "kaggle"
    if "COLAB_RELEASE_TAG" in env or "COLAB_GPU" in env:
        return "colab"
    if env.get("CI", "").lower() in ("1", "true", "yes"):
        return "ci"
    return "local"


def output_root(platform: str | None = None) -> Path:
    """Where results, figures and checkpoints go: ``$DEBIASLAB_OUTPUT`` or the platform's place."""
    if os.environ.get(OUTPUT_ENV):
        return Path(os.environ[OUTPUT_ENV])
    platform = platform or detect_platform()
    if platform == "kaggle":
        return Path("/kaggle/working")
    if platform == "colab":
        return Path("/content")
    return Path.cwd()


def input_root(platform: str | None = None) -> Path | None:
    """Where attached read-only inputs live: ``/kaggle/input`` (datasets, and the outputs of
    the notebooks named in ``kernel_sources``), ``/content`` on Colab, else ``None``.

    ``$DEBIASLAB_INPUT_ROOT`` overrides it: the emulated-Kaggle collection run
    (:mod:`debiaslab.collection`) mounts each notebook's upstream outputs there, read-only.
    """
    if os.environ.get(INPUT_ENV):
        return Path(os.environ[INPUT_ENV])
    platform = platform or detect_platform()
    if platform == "kaggle":
        return Path("/kaggle/input")
    if platform == "colab":
        return Path("/content")
    return None


# --------------------------------------------------------------------------- device and dtype


def _cuda_kernel_problem(torch) -> str | None:
    """A message if the installed torch has no kernels for the visible GPU, else ``None``."""
    capability = torch.cuda.get_device_capability(0)
    supported = torch.cuda.get_arch_list()
    if gpucheck.runs_on(capability, supported):
        return None
    gpu = gpucheck.Gpu(torch.cuda.get_device_name(0), tuple(capability))
    command = " ".join(gpucheck.install_command()[1:]).replace("-m pip", "pip", 1)
    return (
        f"the installed torch {torch.__version__} has no CUDA kernels for {gpu.name} "
        f"({gpu.arch}); it supports {', '.join(supported)}. Install a build that has them "
        f"(`{command}`, which the notebooks' bootstrap cell does on its own), then restart; "
        "or, on Kaggle, pick the 'GPU T4 x2' accelerator."
    )


def select_device(requested: str | None = None):
    """Pick ``cuda``/``mps``/``cpu`` (or honour ``requested``), failing fast on unusable GPUs.

    A process launched as one of several (``accelerate launch``, one per GPU) gets the GPU of
    its ``LOCAL_RANK`` for ``cuda``.

    Raises:
        ConfigError: CUDA was requested but is unavailable, or torch lacks kernels for the GPU.
    """
    import torch

    if requested in (None, "auto"):
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    if requested == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        requested = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r} requested but torch sees no CUDA GPU")
        problem = _cuda_kernel_problem(torch)
        if problem:
            raise ConfigError(problem)
    return device


def supports_bf16(device) -> bool:
    """bf16 needs compute capability ≥ 8.0 on CUDA (T4 is 7.5, P100 6.0: no bf16)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu"


def _fp16_problem(model: str | None) -> str | None:
    """Why float16 is refused for ``model`` (a preset with ``fp16_ok: false``), else ``None``."""
    if model is None:
        return None

    preset = get_preset(model)
    if preset is None or preset.fp16_ok:
        return None
    return (
        f"float16 requested for preset {model!r}, whose fp16_ok is false in "
        "configs/models.yaml (it overflows in float16): use float32, or bfloat16 on a GPU "
        "that has it (compute capability >= 8.0)."
    )


def check_fp16_ok(model: str | None) -> None:
    """Refuse float16 (inference or mixed-precision training) for a preset that overflows in it.

    Raises:
        ConfigError: ``model`` is a preset of ``configs/models.yaml`` with ``fp16_ok: false``.
    """
    problem = _fp16_problem(model)
    if problem:
        raise ConfigError(problem)


def select_dtype(
    device, requested: str = "auto", *, likelihood: bool = False, model: str | None = None
):
    """Choose the dtype a run loads its weights and computes in.

    ``auto`` gives float32 on CPU, and on every device for a likelihood benchmark
    (``likelihood``: CrowS-Pairs, StereoSet, see
    :data:`debiaslab.benchmarks.precision.LIKELIHOOD_BENCHMARKS`), as ``metric.py`` and
    bias-bench score: half precision rounds log-probabilities enough to flip close pairs.
    Otherwise (generation on a GPU) ``auto`` gives bf16 where the GPU has it, else fp16, or
    float32 for a preset whose ``fp16_ok`` is false. Half precision for a likelihood benchmark
    only when asked for by name.

    Args:
        device: the torch device the model runs on.
        requested: ``auto`` or a dtype name (``float32``/``fp32``, ``float16``/``fp16``,
            ``bfloat16``/``bf16``).
        likelihood: the run compares log-likelihoods.
        model: the model's preset name (or hub id / path: no preset, no preset rule).

    Raises:
        ConfigError: unknown dtype; bf16 requested on a GPU without bf16 (T4, P100), with
            advice; float16 requested for a preset with ``fp16_ok: false``.
    """
    import torch

    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if requested == "auto":
        if device.type == "cpu" or likelihood:
            return torch.float32
        if supports_bf16(device):
            return torch.bfloat16
        return torch.float32 if _fp16_problem(model) else torch.float16
    if requested not in names:
        raise ConfigError(f"unknown dtype {requested!r}; use auto, {', '.join(sorted(names))}")
    dtype = names[requested]
    if dtype == torch.bfloat16 and device.type == "cuda" and not supports_bf16(device):
        raise ConfigError(
            f"{torch.cuda.get_device_name(device)} has no bfloat16 support (compute capability "
            "< 8.0, e.g. T4, P100): use dtype 'float16' or 'auto'."
        )
    if dtype == torch.float16:
        check_fp16_ok(model)
    return dtype


# --------------------------------------------------------------------------- run size

# RUN = "quick" in a notebook: a first run in minutes. Each size parameter is capped at this
# (a notebook's own smaller value stays); RUN = "full" keeps every parameter as it is.
QUICK = {
    "LIMIT": 100,  # CrowS-Pairs pairs, StereoSet examples per split
    "GENERATION_LIMIT": 5,  # BOLD prompts and HONEST templates per group
    "STEPS": 30,  # fine-tuning steps (denoising steps are 30 already)
    "N": 60,  # synthetic texts generated
    "N_IMAGES": 2,
    "PROMPTS_PER_GROUP": 2,
    "ATTRIBUTION_PROMPTS": 10,
    "EVALUATION_PROMPTS": 4,
    "PROMPTS_PER_OCCUPATION": 4,
    "ALIGN_PROMPTS": 8,
    "ALIGN_ITERATIONS": 2,
    "EVAL_PROMPTS": 8,
    "MAX_CYCLES": 2,
}


def sized(run: str, say=print, **values):
    """The size parameters for ``run``: as given for ``full``; for ``quick`` each capped at
    :data:`QUICK` (``None``, "all", becomes the cap). Returns them in the order given (one
    value: that value) and prints what ``quick`` changed.

    Example:
        >>> sized("quick", say=lambda line: None, LIMIT=None, STEPS=300)
        (100, 30)
        >>> sized("full", LIMIT=None)

    Raises:
        ConfigError: ``run`` is neither ``quick`` nor ``full``.
    """
    if run not in ("quick", "full"):
        raise ConfigError(f"RUN = {run!r}: use 'quick' (a first run in minutes) or 'full'")
    out = dict(values)
    if run == "quick":
        for name, value in values.items():
            cap = QUICK.get(name)
            if cap is not None and (value is None or value > cap):
                out[name] = cap
        changed = [f"{k} {out[k]} (was {values[k]})" for k in values if out[k] != values[k]]
        say("RUN = 'quick': " + (", ".join(changed) or "nothing to cap"))
    result = tuple(out.values())
    return result[0] if len(result) == 1 else result


# --------------------------------------------------------------------------- secrets


def get_secret(name: str) -> str | None:
    """Read a secret: environment variable → Kaggle secrets → Colab userdata; never printed.

    Returns ``None`` when no source has it. Only the *source* is logged, never the value.
    """
    value = os.environ.get(name)
    if value:
        log.debug("secret %s taken from the environment", name)
        return value
    try:  # Kaggle: Add-ons → Secrets
        from kaggle_secrets import UserSecretsClient  # type: ignore[import-not-found]

        value = UserSecretsClient().get_secret(name)
        if value:
            log.debug("secret %s taken from Kaggle secrets", name)
            return value
    except Exception:
        pass
    try:  # Colab: the key icon in the left bar
        from google.colab import userdata  # type: ignore[import-not-found]

        value = userdata.get(name)
        if value:
            log.debug("secret %s taken from Colab userdata", name)
            return value
    except Exception:
        pass
    return None


# --------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Environment:
    platform: str
    device: str
    dtype: str
    output_root: Path
    input_root: Path | None
    seed: int

    def describe(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def needs_gpu(model: str | None) -> bool:
    """Whether a notebook running ``model`` needs a GPU: any real checkpoint (a Hub preset or
    id, a Stable Diffusion pipeline) does; tiny offline models (``tiny-*``) and SmolLM2 (its
    own offline source) run on a CPU."""
    if model is None or model.startswith("tiny-"):
        return False
    preset = get_preset(model)
    return preset is None or not (preset.tiny or preset.offline)


def hardware_lines(dev, dtype) -> list[str]:
    """What a user should see first: GPU names, compute capability, torch's CUDA
    architectures, the dtype chosen and free memory (or that there is no GPU)."""
    import torch

    lines = [f"torch {torch.__version__}; device {dev}, dtype {str(dtype).replace('torch.', '')}"]
    if not torch.cuda.is_available():
        return [*lines, "GPU: none visible to torch"]
    lines.append(f"CUDA architectures in this torch: {' '.join(torch.cuda.get_arch_list())}")
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        free, total = torch.cuda.mem_get_info(index)
        lines.append(
            f"GPU {index}: {torch.cuda.get_device_name(index)}, compute capability "
            f"{major}.{minor}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free"
        )
    return lines


def setup(
    seed: int = 0,
    device: str | None = None,
    dtype: str = "auto",
    *,
    model: str | None = None,
    say=print,
) -> Environment:
    """Detect the platform, pick device and dtype, seed RNGs, and print what was found.

    The first thing a notebook shows (printed, not logged): platform, GPU name(s), compute
    capability, torch's CUDA architectures, the dtype chosen and free memory.

    Args:
        model: the notebook's model; on Kaggle or Colab a real checkpoint (see
            :func:`needs_gpu`) without a GPU stops here with advice, instead of an hour later.

    Raises:
        ConfigError: a GPU is needed and none is visible (Kaggle or Colab); see
            :func:`select_device` for unusable GPUs.
    """
    platform = detect_platform()
    dev = select_device(device)
    chosen = select_dtype(dev, dtype)
    if dev.type == "cpu" and platform in ("kaggle", "colab") and needs_gpu(model):
        where = (
            "Settings → Accelerator → GPU T4 x2"
            if platform == "kaggle"
            else "Runtime → Change runtime type → T4 GPU"
        )
        raise ConfigError(
            f"this notebook runs {model!r}, which needs a GPU, and none is visible: turn one "
            f"on ({where}) and run it again; or set MODEL to a tiny preset (e.g. 'tiny-gpt2') "
            "to try it on the CPU."
        )
    seed_everything(seed)
    env = Environment(
        platform=platform,
        device=str(dev),
        dtype=str(chosen).replace("torch.", ""),
        output_root=output_root(platform),
        input_root=input_root(platform),
        seed=seed,
    )
    say(f"debiaslab {__version__} on {platform}; outputs in {env.output_root}")
    for line in hardware_lines(dev, chosen):
        say(line)
    return env


def repo_root() -> Path:
    """The source checkout holding ``notebooks/`` and ``report/`` (both are a part of the
    repository, not of the installed package)."""
    return Path(__file__).resolve().parents[2]


# What the messages that quiet_libraries() silences meant, said once.
QUIET_NOTE = (
    "offline notes: bitsandbytes runs 4-bit layers with its own CPU code (its faster kernel is "
    "on the Hub, which is not reachable); torchvision is not installed, so image processors use "
    "their PIL versions; model-saving progress bars are off. None of these changes a result."
)


def quiet_libraries() -> str:
    """Silence third-party messages a user cannot act on; return the line that explains them.

    For command-line runs (``make demo``, ``make paper``), called before the libraries load:
    bitsandbytes' and ``kernels``' offline warnings about the Hub kernel, transformers' notice
    that image processors fall back to PIL without torchvision, and transformers' per-model
    "Writing model shards" / "Loading weights" bars; the tiny models' build lines. Errors
    still show.
    """
    for name in ("bitsandbytes.backends.cpu.ops", "kernels", "transformers.utils.import_utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The tiny models' build lines (the collection says "tiny models ready in N s" once).
    logging.getLogger("debiaslab.tiny").setLevel(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return QUIET_NOTE
