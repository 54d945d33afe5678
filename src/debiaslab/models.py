"""Load (model, tokenizer) for a preset, a hub id or a local path, in three families.

Families: ``causal`` (GPT-2, Bloomz, Llama), ``masked`` (BERT, RoBERTa), ``seq2seq``
(T5/FLAN-T5). Safe defaults: ``trust_remote_code=False`` and safetensors weights unless the user
says otherwise. Optional bitsandbytes 8-bit / NF4 4-bit quantization and a PEFT adapter from a
path or hub id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debiaslab.config import FAMILIES, get_preset
from debiaslab.data.fetch import cache_dir
from debiaslab.env import get_secret, select_device, select_dtype
from debiaslab.errors import ConfigError
from debiaslab.model_source import (
    CHOICES,
    PICKLE_HINT,
    check_adapter,
    check_model,
    in_hub_cache,
    offline_mode,
    one_line,
)
from debiaslab.smollm2 import is_smollm2_dir, smollm2_dir, source_record
from debiaslab.tiny.build import build_tiny, save_tiny
from debiaslab.tiny.cache import save_beside
from debiaslab.tiny.lexicon import PLANTED_VERSION
from debiaslab.validate import positive_int, require

log = logging.getLogger(__name__)

QUANTIZATIONS = (None, "8bit", "4bit")


@dataclass
class LoadedModel:
    """A model ready for scoring, with what is needed to describe it in a result file."""

    model: Any
    tokenizer: Any
    family: str
    name: str
    device: Any
    dtype: Any
    load_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    # Scoring batch limits: sequences per forward pass, and padded tokens per pass (None:
    # the engine's default budget). The engine halves a batch on out-of-memory by itself.
    batch_size: int | None = None
    batch_tokens: int | None = None


def detect_family(config) -> str:
    """Infer the family from a transformers config.

    Example:
        >>> from transformers import BertConfig, GPT2Config, T5Config
        >>> [detect_family(c()) for c in (BertConfig, GPT2Config, T5Config)]
        ['masked', 'causal', 'seq2seq']
    """
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "MaskedLM" in archs:
        return "masked"
    if "CausalLM" in archs or "LMHead" in archs:
        return "causal"
    masked_types = {
        "bert",
        "roberta",
        "distilbert",
        "albert",
        "electra",
        "deberta",
        "deberta-v2",
        "xlm-roberta",
        "camembert",
        "mpnet",
        "modernbert",
    }
    return "masked" if config.model_type in masked_types else "causal"


def _auto_class(family: str):
    import transformers

    return {
        "causal": transformers.AutoModelForCausalLM,
        "masked": transformers.AutoModelForMaskedLM,
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
    }[family]


def _tiny_path(family: str, name: str) -> Path:
    """Build (once) and cache the offline tiny model of a ``tiny-*`` preset."""

    path = cache_dir() / "tiny" / name
    record = {"tiny": family, "seed": 0, "version": PLANTED_VERSION}
    return save_beside(path, record, lambda tmp: save_tiny(*build_tiny(family, seed=0), tmp))


def resolve_source(name: str, family: str | None = None) -> tuple[str, str | None]:
    """Map a preset name, hub id or path to (what from_pretrained takes, family if known)."""
    preset = get_preset(name)
    if preset is not None:
        if preset.tiny:
            return str(_tiny_path(preset.tiny, name)), preset.family
        if preset.offline and offline_mode() and not in_hub_cache(preset.hub_id, "config.json"):
            return str(smollm2_dir()), preset.family  # the only offline source (OFFLINE_SOURCES)
        return preset.hub_id, family or preset.family
    return name, family


def load_config(
    name: str,
    *,
    source: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    token: str | None = None,
    use_safetensors: bool | None = True,
):
    """The transformers config of a preset, local folder or Hub id, checked first.

    Args:
        name: what the user gave; source: what it resolves to (default:
            :func:`resolve_source`). The rest as :func:`load_model`.

    Raises:
        ConfigError: one line naming ``name``: neither a preset, a local folder nor a
            reachable Hub id (see :mod:`debiaslab.model_source`).
    """
    import transformers

    source = source or resolve_source(name)[0]
    check_model(name, source, revision=revision, use_safetensors=use_safetensors)
    try:
        return transformers.AutoConfig.from_pretrained(
            source, revision=revision, trust_remote_code=trust_remote_code, token=token
        )
    except (OSError, ValueError) as exc:
        if Path(source).expanduser().is_dir():
            raise ConfigError(
                f"cannot read the model config in folder {source}: {one_line(exc)}"
            ) from exc
        raise ConfigError(
            f"model {name!r} is neither a preset, a local folder nor a Hub id reachable from "
            f"this machine ({one_line(exc)}): give {CHOICES}"
        ) from exc


def load_model(
    name: str,
    *,
    family: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    quantization: str | None = None,
    adapter: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    use_safetensors: bool | None = True,
    batch_size: int | None = None,
) -> LoadedModel:
    """Load a model and tokenizer for scoring or fine-tuning.

    Args:
        name: a preset from ``configs/models.yaml``, a hub id or a local directory.
        family: ``causal``, ``masked`` or ``seq2seq``; inferred from the config when omitted.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or ``None``/``auto``.
        dtype: ``auto`` (fp32 on CPU, bf16 where the GPU has it, else fp16) or a dtype name;
            the benchmark runner resolves ``auto`` to float32 for likelihood benchmarks
            (:func:`debiaslab.env.select_dtype`). float16 is refused for a preset with
            ``fp16_ok: false``.
        quantization: ``None``, ``8bit`` or ``4bit`` (NF4, double quantization), bitsandbytes.
        adapter: a PEFT adapter directory or hub id applied on top of the base model.
        revision: hub revision (branch, tag or commit) of the base model.
        trust_remote_code: run code shipped with a hub model (off unless you trust it).
        use_safetensors: load only safetensors weights (``None`` lets transformers choose).
        batch_size: at most this many sequences per scoring forward pass.

    Raises:
        ConfigError: unknown family or quantization, or the weights cannot be found.
    """
    import transformers

    if family is not None and family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantization!r}; expected 8bit, 4bit or none")
    require(positive_int, "batch_size", batch_size)  # 0 would silently mean "no cap"
    source, family = resolve_source(name, family)
    token = get_secret("HF_TOKEN")
    dev = select_device(device)
    torch_dtype = select_dtype(dev, dtype, model=name)  # refuses fp16 where fp16_ok: false
    started = time.perf_counter()
    common = {"revision": revision, "trust_remote_code": trust_remote_code, "token": token}
    config = load_config(name, source=source, use_safetensors=use_safetensors, **common)
    if adapter is not None:
        check_adapter(adapter)  # before the base model's weights load
    family = family or detect_family(config)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "use_safetensors": use_safetensors, **common}
    if quantization is not None:
        kwargs["quantization_config"] = _bnb_config(quantization, torch_dtype)
        kwargs["device_map"] = {"": str(dev)}
    try:
        model = _auto_class(family).from_pretrained(source, config=config, **kwargs)
    except OSError as exc:  # e.g. a Hub repo with only pickle weights
        hint = f"; {PICKLE_HINT}" if use_safetensors and "safetensors" in str(exc) else ""
        raise ConfigError(f"cannot load the weights of {name!r}: {one_line(exc)}{hint}") from exc
    if quantization is None:
        model.to(dev)
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter, token=token)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the adapter {adapter!r}: {one_line(exc)}") from exc
    model.eval()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **common)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer of {name!r}: {one_line(exc)}") from exc
    if family == "causal" and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family,
        name=name,
        device=dev,
        dtype=torch_dtype,
        load_seconds=time.perf_counter() - started,
        batch_size=batch_size,
        info={
            **(source_record() if is_smollm2_dir(source) else {}),
            "source": source,
            "family": family,
            "revision": revision,
            "quantization": quantization,
            "adapter": adapter,
            "dtype": str(torch_dtype).replace("torch.", ""),
            "device": str(dev),
            "n_parameters": sum(p.numel() for p in model.parameters()),
        },
    )


def _bnb_config(quantization: str, compute_dtype):
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def from_objects(model, tokenizer, *, name: str = "in-memory", family: str | None = None):
    """Wrap an already-loaded model and tokenizer (tests, notebooks) as a :class:`LoadedModel`."""
    family = family or detect_family(model.config)
    param = next(model.parameters())
    return LoadedModel(
        model=model.eval(),
        tokenizer=tokenizer,
        family=family,
        name=name,
        device=param.device,
        dtype=param.dtype,
        info={"source": name, "family": family},
    )
