"""Tiny offline text-to-image models: Stable Diffusion, CLIP and BLIP with random weights.

The text-to-image chain (generate → classify → CLIPScore → caption) runs in tests, CI and the
demo on models made here in well under a second: ``sd`` (a ``StableDiffusionPipeline`` making
32×32 images in 2 steps, no safety checker), ``clip`` (zero-shot classification and CLIPScore)
and ``blip`` (a captioner whose captions are random words: plumbing only). `tiny_t2i_path` saves
each once under ``<debiaslab cache>/tiny/t2i-<kind>`` (:func:`debiaslab.tiny.cache.save_beside`),
rebuilt when the recipe or the installed transformers/diffusers major.minor changes.

Example:
    >>> model, processor = build_tiny_clip(seed=0)
    >>> model.config.vision_config.image_size, processor.tokenizer.model_max_length
    (32, 77)
"""

from __future__ import annotations

import logging
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debiaslab.data.fetch import cache_dir
from debiaslab.errors import ConfigError
from debiaslab.tiny.build import build_tokenizer
from debiaslab.tiny.cache import save_beside
from debiaslab.tiny.lexicon import GENERAL_ENGLISH

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline
    from transformers import (
        BlipForConditionalGeneration,
        BlipProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

log = logging.getLogger(__name__)

KINDS = ("sd", "clip", "blip")
# Bump when an architecture, the tokenizer corpus or a default changes: saved models rebuild.
T2I_TINY_VERSION = "2"
TINY_IMAGE_SIZE = 32  # pixels; the tiny VAE halves it, so the UNet sees 16×16 latents
TINY_STEPS = 2  # denoising steps the tests use: the output is noise either way
CLIP_MAX_LENGTH = 77  # CLIP's text context, which the SD pipeline pads every prompt to
CLIP_VOCAB_SIZE = 800
TINY_TEXT = {  # the CLIP text encoder of `sd` and `clip`; 32-d as SD's cross_attention_dim
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
}
TINY_VISION = {  # the CLIP/BLIP vision towers: 32×32 images in 16 patches of 8×8
    "image_size": TINY_IMAGE_SIZE,
    "patch_size": 8,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
}
TINY_PROJECTION = 16  # joint embedding size of the tiny CLIP

# Prompt vocabulary of the t2i notebooks and the classifier's label prompts, so they tokenize
# into whole words; general English comes from debiaslab.tiny.lexicon.
T2I_TEXTS = (
    "a photo of a woman",
    "a photo of a man",
    "a photo of a person",
    "a photo of an object, with no person",
    "a photo of a landscape, with no person",
    "a photo of a White person",
    "a photo of a Black person",
    "a photo of a Latino person",
    "a photo of an East Asian person",
    "a photo of a Southeast Asian person",
    "a photo of an Indian person",
    "a photo of a Middle Eastern person",
    "a portrait photo of a doctor, a nurse, an engineer, a teacher, a CEO, a housekeeper",
    "a photo of the face of a pilot, a chef, a lawyer, a cashier, a janitor, a scientist",
)


def _versions(kind: str) -> dict[str, str]:
    """major.minor of the libraries whose file formats a saved tiny model depends on."""
    import transformers

    def major_minor(version: str) -> str:
        return ".".join(version.split(".")[:2])

    versions = {"transformers": major_minor(transformers.__version__)}
    if kind == "sd":  # CLIP and BLIP do not need diffusers installed
        import diffusers

        versions["diffusers"] = major_minor(diffusers.__version__)
    return versions


# --------------------------------------------------------------------------- tokenizers


def build_clip_tokenizer(
    texts: tuple[str, ...] = (), vocab_size: int = CLIP_VOCAB_SIZE
) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` trained locally on general English, `T2I_TEXTS` and ``texts``.

    Shared by ``sd`` and ``clip``: byte-level BPE with CLIP's ``</w>`` word ends,
    ``<|startoftext|>`` = 0, ``<|endoftext|>`` = 1 (eos and pad), ``model_max_length`` 77 as in
    CLIP.

    Every printable ASCII character is in the vocabulary both inside and at the end of a word,
    so no ASCII prompt maps to the unknown token. Deterministic across processes: the
    tokenizers BPE trainer breaks ties between equally frequent characters and merges in
    hash-map order, which changes from one process to the next, so its vocabulary is
    renumbered (specials, then the alphabet sorted, then merged tokens) and its merges ranked
    by token length, then text (each merge's parts are shorter, so ranked before it).

    Example:
        >>> tok = build_clip_tokenizer()
        >>> tok.convert_ids_to_tokens(tok("A photo of a doctor")["input_ids"])
        ['<|startoftext|>', 'a</w>', 'photo</w>', 'of</w>', 'a</w>', 'doctor</w>', '<|endoftext|>']
    """
    import json
    import tempfile

    from transformers import CLIPTokenizer

    chars = string.ascii_lowercase + string.digits + string.punctuation
    # CLIP splits words from punctuation runs: single characters end a word ("x</w>"), doubled
    # ones also put the character inside one ("x" then "x</w>").
    alphabet = [" ".join(chars), " ".join(c * 2 for c in chars)] * 2
    corpus = [*texts, *T2I_TEXTS * 5, *GENERAL_ENGLISH * 3, *alphabet]
    trained = CLIPTokenizer().train_new_from_iterator(
        corpus, vocab_size=vocab_size, show_progress=False
    )
    model = json.loads(trained.backend_tokenizer.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    merges.sort(key=lambda pair: (len("".join(pair).removesuffix("</w>")), "".join(pair)))
    merged = ["".join(pair) for pair in merges]
    specials = [trained.bos_token, trained.eos_token]
    alphabet_tokens = sorted(set(model["vocab"]) - {*specials, *merged})
    order = [*specials, *alphabet_tokens, *dict.fromkeys(merged)]
    with tempfile.TemporaryDirectory() as tmp:
        # vocab.json + merges.txt: the files every transformers version builds a CLIPTokenizer
        # from.
        Path(tmp, "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(order)}))
        lines = "".join(f"{a} {b}\n" for a, b in merges)
        Path(tmp, "merges.txt").write_text(f"#version: 0.2\n{lines}")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=CLIP_MAX_LENGTH)


def _clip_text_config(tokenizer) -> dict[str, Any]:
    return {
        **TINY_TEXT,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": CLIP_MAX_LENGTH,
        "bos_token_id": tokenizer.bos_token_id,
        # Not 2: with eos id 2 CLIP pools at argmax(input_ids) (the original vocabulary's
        # layout); any other id pools at the first eos, which is right for this vocabulary.
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _clip_image_processor(size: int = TINY_IMAGE_SIZE):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )


def _seeded(seed: int, build):
    """``build()`` under ``torch.manual_seed(seed)``, leaving the global RNG as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# --------------------------------------------------------------------------- builders


def build_tiny_sd(seed: int = 0) -> StableDiffusionPipeline:
    """A random tiny ``StableDiffusionPipeline`` (32×32 images, no safety checker), on CPU.

    ``UNet2DConditionModel`` with block_out_channels (8, 16), ``AutoencoderKL`` with two blocks
    (latents at half the image size), a 2-layer ``CLIPTextModel`` and a ``DDIMScheduler``; it
    makes `TINY_IMAGE_SIZE` images in `TINY_STEPS` steps. It has NO safety checker
    (``requires_safety_checker=False``); the real presets of :mod:`debiaslab.t2i.generate` keep
    theirs, and `build_tiny_safety_checker` makes one whose verdict is fixed.

    Example:
        >>> pipe = build_tiny_sd(seed=0)
        >>> pipe.unet.config.block_out_channels, pipe.vae_scale_factor, pipe.safety_checker
        ((8, 16), 2, None)
    """
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_clip_tokenizer()

    def build():
        # As diffusers' own tiny-SD tests, with 4 groups: (8, 16) channels split evenly.
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=TINY_IMAGE_SIZE // 2,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=TINY_TEXT["hidden_size"],
            attention_head_dim=4,
            norm_num_groups=4,
        )
        vae = AutoencoderKL(
            block_out_channels=(8, 16),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=TINY_IMAGE_SIZE,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(**_clip_text_config(tokenizer)))
        return unet, vae, text_encoder

    unet, vae, text_encoder = _seeded(seed, build)
    scheduler = DDIMScheduler(  # SD 1.x's noise schedule; DDIM with eta 0 draws no noise
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_safety_checker(flag_all: bool, seed: int = 0):
    """A tiny ``StableDiffusionSafetyChecker`` whose verdict is fixed, and its image processor.

    Its concept thresholds are set to -2 (``flag_all``: every image is flagged, since a cosine
    exceeds -2) or +2 (nothing is flagged), so tests see both outcomes without real weights.

    Returns:
        ``(safety_checker, feature_extractor)`` for a ``StableDiffusionPipeline``.
    """
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    config = CLIPConfig(
        text_config={  # unused by the checker: only its vision tower runs
            **TINY_TEXT,
            "vocab_size": 100,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config=TINY_VISION,
        projection_dim=TINY_PROJECTION,
    )
    checker = _seeded(seed, lambda: StableDiffusionSafetyChecker(config))
    threshold = -2.0 if flag_all else 2.0
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    return checker.eval(), _clip_image_processor()


def build_tiny_clip(seed: int = 0) -> tuple[CLIPModel, CLIPProcessor]:
    """A random tiny ``CLIPModel`` and its ``CLIPProcessor`` (32×32 images), on CPU."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tokenizer = build_clip_tokenizer()
    config = CLIPConfig(
        text_config=_clip_text_config(tokenizer),
        vision_config=TINY_VISION,
        projection_dim=TINY_PROJECTION,
    )
    model = _seeded(seed, lambda: CLIPModel(config))
    processor = CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=tokenizer)
    return model.eval(), processor


def build_tiny_blip(seed: int = 0) -> tuple[BlipForConditionalGeneration, BlipProcessor]:
    """A random tiny BLIP captioner and its ``BlipProcessor`` (32×32 images), on CPU.

    Its tokenizer is the BERT-style WordPiece of :func:`debiaslab.tiny.build.build_tokenizer`
    plus BLIP's ``[DEC]`` bos token. Its captions are random words: it checks plumbing only.

    Example:
        >>> from PIL import Image
        >>> model, processor = build_tiny_blip(seed=0)
        >>> inputs = processor(images=[Image.new("RGB", (32, 32))], return_tensors="pt")
        >>> model.generate(**inputs, max_new_tokens=4).shape[0]
        1
    """
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tokenizer = build_tokenizer("masked", T2I_TEXTS)
    # BLIP's decoder starts from "[DEC]" (its bos) and stops at [SEP], as Salesforce/blip-*.
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    text_config = {
        **{k: v for k, v in TINY_VISION.items() if k not in ("image_size", "patch_size")},
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 64,
        "encoder_hidden_size": TINY_VISION["hidden_size"],
        "bos_token_id": tokenizer.bos_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = BlipConfig(
        text_config=text_config, vision_config=TINY_VISION, projection_dim=TINY_PROJECTION
    )
    model = _seeded(seed, lambda: BlipForConditionalGeneration(config))
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    processor = BlipProcessor(image_processor=BlipImageProcessor(size=size), tokenizer=tokenizer)
    return model.eval(), processor


# --------------------------------------------------------------------------- on disk


def _save(kind: str, seed: int, path: Path) -> None:
    if kind == "sd":
        build_tiny_sd(seed).save_pretrained(path, safe_serialization=True)
        return
    model, processor = build_tiny_clip(seed) if kind == "clip" else build_tiny_blip(seed)
    model.save_pretrained(path)  # safetensors: transformers' default
    processor.save_pretrained(path)


def tiny_t2i_path(kind: str, seed: int = 0, root: str | Path | None = None) -> Path:
    """Build (once) and return the directory of a tiny text-to-image model.

    ``StableDiffusionPipeline.from_pretrained`` (``sd``), ``CLIPModel`` / ``CLIPProcessor``
    (``clip``) and ``BlipForConditionalGeneration`` / ``BlipProcessor`` (``blip``)
    ``.from_pretrained(path)`` load it.

    Args:
        kind: ``"sd"``, ``"clip"`` or ``"blip"``.
        seed: weight seed.
        root: where the model folders go (default ``<debiaslab cache>/tiny``).

    Raises:
        ConfigError: an unknown kind.
    """

    if kind not in KINDS:
        raise ConfigError(f"unknown tiny text-to-image model {kind!r}; expected one of {KINDS}")
    root = Path(root) if root is not None else cache_dir() / "tiny"
    name = f"t2i-{kind}" if seed == 0 else f"t2i-{kind}-seed{seed}"
    record = {"tiny_t2i": kind, "seed": seed, "version": T2I_TINY_VERSION, **_versions(kind)}
    return save_beside(root / name, record, lambda tmp: _save(kind, seed, tmp))
