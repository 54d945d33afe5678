"""CLIP for text-to-image evaluation: load a model, L2-normalised image and text embeddings, and
CLIPScore (Hessel et al., EMNLP 2021) at the paper's or torchmetrics' scale.

The zero-shot classifier (:mod:`debiaslab.t2i.classify`) and the Socratic loop build on these;
``tiny-clip`` is an offline model with random weights (:mod:`debiaslab.tiny.t2i`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaslab.env import get_secret, select_device, select_dtype
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.tiny.t2i import tiny_t2i_path

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
CLIP_PRESETS = {"tiny-clip": "tiny"}  # the offline tiny CLIP of debiaslab.tiny.t2i
# CLIPScore's weight w per scale: torchmetrics' CLIPScore (0-100) and Hessel et al.'s paper.
CLIP_SCALES = {"torchmetrics": 100.0, "hessel": 2.5}


def as_pil(image):
    """An RGB ``PIL.Image`` from a PIL image, a path, an ``(H, W, 3)`` uint8 array or a
    ``(3, H, W)`` uint8 tensor."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            return opened.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    raise DataFormatError(
        f"cannot read an image from a {type(image).__name__}", file="<images>", field="image"
    )


def index_batches(n: int, size: int) -> list[range]:
    """Index ranges of ``size`` (the last one shorter) covering ``0 .. n - 1``."""
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


# --------------------------------------------------------------------------- CLIP


@dataclass
class Clip:
    """A CLIP model with its processor, ready for embeddings."""

    model: Any
    processor: Any
    name: str
    device: Any
    dtype: Any
    batch_size: int = 32


def resolve_preset(name: str, presets: Mapping[str, str], kind: str) -> str:
    """``name``, or the folder of the offline tiny ``kind`` model when ``presets`` maps it
    to ``"tiny"``."""
    if presets.get(name) == "tiny":
        return str(tiny_t2i_path(kind))
    return name


def load_model_and_processor(
    model_class, processor_class, source: str, what: str, tiny: str, **model_kwargs
):
    """``model_class`` and ``processor_class`` from ``source`` (safetensors only, no remote
    code, the Hub token from the secret store), or a :class:`ConfigError` naming ``what``
    could not be loaded and the offline ``tiny`` preset."""
    common = {"token": get_secret("HF_TOKEN"), "trust_remote_code": False}
    try:
        model = model_class.from_pretrained(source, use_safetensors=True, **model_kwargs, **common)
        processor = processor_class.from_pretrained(source, **common)
    except OSError as exc:
        raise ConfigError(
            f"cannot load a {what} from {source!r}: {exc}. Give {tiny!r}, a local directory, "
            "or a hub id reachable from this machine with safetensors weights."
        ) from exc
    return model, processor


def load_clip(
    name: str = DEFAULT_CLIP, device: str | None = None, dtype: str = "auto", batch_size: int = 32
) -> Clip:
    """Load a ``CLIPModel`` and ``CLIPProcessor`` (safetensors only, no remote code).

    Args:
        name: a hub id, a local directory, or ``tiny-clip`` (offline, random weights).
        device: ``cpu``, ``cuda``, ``mps`` or None (the best available).
        dtype: ``auto`` (fp32 on CPU, bf16 where the GPU has it, else fp16) or a dtype name.
        batch_size: images or texts per forward pass.

    Raises:
        ConfigError: the model cannot be loaded.
    """
    from transformers import CLIPModel, CLIPProcessor

    source = resolve_preset(name, CLIP_PRESETS, "clip")
    dev = select_device(device)
    torch_dtype = select_dtype(dev, dtype)
    model, processor = load_model_and_processor(
        CLIPModel, CLIPProcessor, source, "CLIP model", "tiny-clip", dtype=torch_dtype
    )
    return Clip(model.to(dev).eval(), processor, name, dev, torch_dtype, batch_size)


def l2_normalise(features: torch.Tensor) -> torch.Tensor:
    features = features.float().cpu()
    return features / features.norm(p=2, dim=-1, keepdim=True)


@torch.inference_mode()
def embed_images(clip: Clip, images: Sequence[Any]) -> torch.Tensor:
    """L2-normalised CLIP image embeddings, ``(n, projection_dim)`` float32 on CPU.

    Images: PIL images, paths, uint8 arrays or tensors (see :func:`as_pil`).
    """
    model = clip.model
    out = []
    for rows in index_batches(len(images), clip.batch_size):
        pixels = clip.processor(images=[as_pil(images[i]) for i in rows], return_tensors="pt")
        pixels = pixels["pixel_values"].to(clip.device, clip.dtype)
        # The projected pooled output, spelled out: get_image_features returns a tensor in
        # transformers 4 and a model output in 5.
        pooled = model.vision_model(pixel_values=pixels).pooler_output
        out.append(l2_normalise(model.visual_projection(pooled)))
    return torch.cat(out) if out else torch.empty(0, model.config.projection_dim)


@torch.inference_mode()
def embed_texts(clip: Clip, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised CLIP text embeddings, ``(n, projection_dim)`` float32 on CPU.

    Texts longer than the model's context (77 tokens) are truncated, as torchmetrics does.
    """
    model = clip.model
    out = []
    for rows in index_batches(len(texts), clip.batch_size):
        tokens = clip.processor(
            text=[texts[i] for i in rows], return_tensors="pt", padding=True, truncation=True
        )
        pooled = model.text_model(
            input_ids=tokens["input_ids"].to(clip.device),
            attention_mask=tokens["attention_mask"].to(clip.device),
        ).pooler_output
        out.append(l2_normalise(model.text_projection(pooled)))
    return torch.cat(out) if out else torch.empty(0, model.config.projection_dim)


def clip_score(
    clip: Clip, images: Sequence[Any], texts: Sequence[str], *, scale: str = "torchmetrics"
) -> np.ndarray:
    """CLIPScore of each (image, text) pair: ``w · max(cos(E_image, E_text), 0)``, higher better.

    The definition of Hessel et al. (EMNLP 2021, "CLIPScore: A Reference-free Evaluation Metric
    for Image Captioning"), one value per pair, with the weight ``w`` of :data:`CLIP_SCALES`:

    * ``scale="hessel"``: ``w = 2.5``, the paper's (it stretches typical cosines of 0.2-0.4
      towards [0, 1]).
    * ``scale="torchmetrics"`` (default): ``w = 100``, the scale of
      ``torchmetrics.multimodal.CLIPScore`` (range 0-100). torchmetrics scores each pair
      ``100 · cos`` and its ``compute`` returns ``max(mean(100 · cos), 0)``: it clamps the
      mean, this function each pair, so the mean of the returned array equals torchmetrics'
      CLIPScore exactly when no cosine is negative (as with real CLIP models on real captions).

    Embeddings are :func:`embed_images` and :func:`embed_texts` (texts truncated to the model's
    context, as torchmetrics does); the arithmetic is in float32.

    Args:
        clip: a loaded CLIP model.
        images: the images (see :func:`as_pil`).
        texts: one text per image.
        scale: ``"torchmetrics"`` (w = 100, range 0-100) or ``"hessel"`` (w = 2.5, the paper's).

    Returns:
        ``(n,)`` float array; its mean is the corpus-level CLIPScore.
    """
    if scale not in CLIP_SCALES:
        raise ConfigError(
            f"unknown CLIPScore scale {scale!r}; expected one of {list(CLIP_SCALES)}"
        )
    if len(images) != len(texts):
        raise ConfigError(f"clip_score needs one text per image: {len(images)} vs {len(texts)}")
    cosines = (embed_images(clip, images) * embed_texts(clip, texts)).sum(dim=-1)
    return (CLIP_SCALES[scale] * cosines.clamp(min=0)).numpy()
