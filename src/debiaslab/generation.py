"""The generation engine of the generation-based bias metrics (BOLD continuations, HONEST).

:func:`generate` writes ``k`` continuations per prompt with a causal or seq2seq LM, batched by
length, each output row seeded on its own (the same text whatever the batch, order or device)
and resumable from a cache file (:mod:`debiaslab.generation_cache`); :func:`fill_mask` returns
the ``top_k`` tokens a masked LM predicts at its mask token (for HONEST on masked LMs).

Example:
    >>> from debiaslab.models import from_objects
    >>> from debiaslab.tiny.build import build_tiny
    >>> lm = from_objects(*build_tiny("causal", seed=0))
    >>> settings = GenerationSettings(max_new_tokens=5, num_return_sequences=2)
    >>> out = generate(lm, ["The nurse said", "He"], settings, progress=False)
    >>> [len(texts) for texts in out]
    [2, 2]
    >>> out == generate(lm, ["He", "The nurse said"], settings, progress=False)[::-1]
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from debiaslab.batching import device_of, length_batches, pad_rows, run_batches, unwrap_model
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.generation_cache import CacheWriter, read_cache
from debiaslab.results import slug
from debiaslab.scoring import MASKED_BATCH_TOKENS, _mlm_head, prefix_token_id

log = logging.getLogger(__name__)

GENERATION_BATCH_SIZE = 16  # sequences per generate() call unless the caller or lm says otherwise
_NO_TOKEN_BUDGET = sys.maxsize  # generation batches are capped by sequence count only


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class GenerationSettings:
    """How continuations are generated; part of every cache key.

    Attributes:
        max_new_tokens: tokens generated per continuation.
        do_sample: sample (True) or decode greedily (False).
        temperature: softmax temperature when sampling (> 0).
        top_p: nucleus sampling mass, ``0 < top_p <= 1`` (1 = off).
        top_k: sample among the ``top_k`` most likely tokens (0 = off).
        num_return_sequences: continuations per prompt (1 when greedy).
        seed: base seed; each (prompt, return index) derives its own from it.

    Greedy decoding (``do_sample=False``) refuses sampling values it would ignore: temperature,
    top_p and top_k stay at their defaults (or at 0, 1 and 0, their "off" values).

    Example:
        >>> GenerationSettings(max_new_tokens=10).as_dict()["max_new_tokens"]
        10
        >>> GenerationSettings(top_p=0)
        Traceback (most recent call last):
        ...
        debiaslab.errors.ConfigError: top_p must be in (0, 1], got 0
    """

    max_new_tokens: int = 30
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    num_return_sequences: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "num_return_sequences"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ConfigError(
                f"top_k must be a non-negative integer (0 = off), got {self.top_k!r}"
            )
        if not _is_int(self.seed):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.do_sample, bool):
            raise ConfigError(f"do_sample must be true or false, got {self.do_sample!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.temperature, (int, float)) or self.temperature != self.temperature:
            raise ConfigError(f"temperature must be a number, got {self.temperature!r}")
        if self.do_sample and not 0 < self.temperature < float("inf"):
            raise ConfigError(
                f"temperature must be > 0 when sampling, got {self.temperature!r} "
                "(for greedy decoding set do_sample to false)"
            )
        if not self.do_sample:
            # Greedy decoding ignores these: a value other than the default (or the "off"
            # spelling) would be recorded in results without having had any effect.
            ignored = [
                f"{name}={value!r}"
                for name, value, neutral in (
                    ("temperature", self.temperature, (1.0, 0.0)),
                    ("top_p", self.top_p, (0.9, 1.0)),
                    ("top_k", self.top_k, (0,)),
                )
                if value not in neutral
            ]
            if ignored:
                raise ConfigError(
                    f"{', '.join(ignored)} has no effect with greedy decoding (do_sample false):"
                    " leave it at its default, or sample (do_sample true)"
                )
        if not self.do_sample and self.num_return_sequences != 1:
            raise ConfigError(
                f"num_return_sequences must be 1 with greedy decoding (do_sample false), got "
                f"{self.num_return_sequences}: every greedy sequence would be the same"
            )

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain, JSON-able dict."""
        return dataclasses.asdict(self)


def settings_hash(settings: GenerationSettings) -> str:
    """sha256 (hex) of the settings' canonical JSON."""
    return _sha256_json(settings.as_dict())


def cache_path(
    output_dir: str | Path, model_name: str, settings: GenerationSettings, stage: str | None = None
) -> Path:
    """The conventional cache file of one model's generations under one set of settings, one
    per ``stage``: a post-mitigation run never appends to the file a pre-mitigation result
    names (on Kaggle they are written in different sessions, and gathered together).

    Example:
        >>> cache_path("out", "google/flan-t5-base", GenerationSettings()).parent.as_posix()
        'out/generations'
        >>> cache_path("out", "google/flan-t5-base", GenerationSettings()).name[:22]
        'google--flan-t5-base__'
    """
    parts = [slug(model_name), *([slug(stage)] if stage else []), settings_hash(settings)[:8]]
    name = "__".join(parts) + ".jsonl"
    return Path(output_dir) / "generations" / name


def _sha256_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def row_seed(seed: int, prompt: str, index: int) -> int:
    """The seed of output ``index`` of ``prompt``: 63 bits of sha256 of ``(seed, prompt, index)``.

    Example:
        >>> row_seed(0, "He", 0) == row_seed(0, "He", 0) != row_seed(0, "He", 1)
        True
    """
    digest = hashlib.sha256(json.dumps([seed, prompt, index]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def default_model_key(lm) -> str:
    """What identifies a model in cache keys: its name plus adapter, quantization, revision
    and head gates."""
    info = getattr(lm, "info", None) or {}
    parts = [str(lm.name)]
    keys = ("adapter", "quantization", "revision", "head_gates")
    parts += [f"{k}={info[k]}" for k in keys if info.get(k)]
    return " ".join(parts)


def cache_key(model_key: str, prompt: str, settings: GenerationSettings, index: int) -> str:
    """The cache key of one output row: sha256 of ``[model_key, prompt, settings, index]``."""
    return _sha256_json([model_key, prompt, settings.as_dict(), index])


class RowSeededSampling(LogitsProcessor):
    """Sample each batch row's next token from that row's own random stream.

    The scores are warped by transformers' ``TemperatureLogitsWarper``, ``TopKLogitsWarper``
    (when ``top_k > 0``) and ``TopPLogitsWarper`` (when ``top_p < 1``), in that order, as
    ``generate(do_sample=True)`` would. Row ``i``'s token is then drawn by inverse CDF with one
    uniform from a CPU ``torch.Generator`` seeded with ``seeds[i]``, one draw per step, so a
    row's tokens depend on its seed and its logits only (not on the batch or the device's RNG).
    The returned scores are ``-inf`` except 0 at the drawn token: greedy decoding picks it.

    Args:
        seeds: one seed per batch row, in row order.
        temperature: softmax temperature (> 0).
        top_k: keep the ``top_k`` most likely tokens (0 = off).
        top_p: keep the smallest set of most likely tokens with mass ≥ ``top_p`` (1 = off).
    """

    def __init__(
        self, seeds: Sequence[int], *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
    ) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(float(temperature))]
        if top_k > 0:
            self.warpers.append(TopKLogitsWarper(top_k=int(top_k)))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=float(top_p)))

    @classmethod
    def from_settings(
        cls, settings: GenerationSettings, seeds: Sequence[int]
    ) -> RowSeededSampling:
        """The sampler of ``settings`` for rows with the given seeds."""
        return cls(
            seeds, temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p
        )

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor
    ) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise ValueError(
                f"RowSeededSampling has {len(self.generators)} row seeds but got "
                f"{scores.shape[0]} rows (beam search or num_return_sequences > 1 in generate?)"
            )
        warped = scores
        for warper in self.warpers:
            warped = warper(input_ids, warped)
        cdf = torch.softmax(warped.float(), dim=-1).double().cumsum(dim=-1)
        uniforms = torch.cat(
            [torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators]
        ).to(cdf.device)
        # The first token whose cumulative mass exceeds u·total: never one of zero probability.
        targets = (uniforms * cdf[:, -1]).unsqueeze(-1)
        drawn = torch.searchsorted(cdf, targets, right=True).clamp(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, -float("inf"))
        return out.scatter_(1, drawn, 0.0)


def _pad_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    raise ConfigError("the tokenizer has neither a pad nor an EOS token to pad batches with")


def generate(
    lm,
    prompts: Sequence[str],
    settings: GenerationSettings = GenerationSettings(),
    *,
    cache: str | Path | None = None,
    model_key: str | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    processors: Sequence[Callable[[int], LogitsProcessor]] = (),
    processors_key: str | None = None,
) -> list[list[str]]:
    """Generate ``settings.num_return_sequences`` continuations of every prompt.

    Batching: prompts are tokenized one by one, sorted by length and batched (``batch_size``
    sequences, else ``lm.batch_size``, else :data:`GENERATION_BATCH_SIZE`) through
    ``batching.run_batches`` (a tqdm bar; a batch halved on CUDA out-of-memory). A causal model
    reads LEFT-padded prompts (padding built here with an attention mask, so the tokenizer's
    ``padding_side`` is never touched) and returns only the new tokens; a seq2seq model reads
    right-padded encoder inputs and returns the decoder's output. Texts are decoded with
    ``skip_special_tokens=True``.

    Reproducibility: sampled text must not depend on which prompts share a batch, their order,
    an out-of-memory split or the device. So every output row (prompt, return index ``k``) gets
    its own seed, sha256 of ``(settings.seed, prompt, k)`` (:func:`row_seed`), and is sampled
    by :class:`RowSeededSampling`; ``num_return_sequences`` is implemented by repeating prompts
    here, each repeat with its own ``k``. With ``do_sample=False`` decoding is plain greedy.
    The model's ``generate`` is called with explicit ``do_sample=False, num_beams=1,
    num_return_sequences=1``, so no sampling default of its ``generation_config`` (e.g.
    ``temperature=0.6``) warps the scores again; its other entries (EOS, decoder start token)
    still apply.

    Resumable runs: with ``cache=path``, each finished output is appended to a JSON-lines file
    (:mod:`debiaslab.generation_cache`), durably after every batch. The key is sha256 of
    ``[model_key, prompt, settings, index]``: a rerun of a killed run generates only the
    missing rows, and lines of other models or settings in the same file are kept and ignored.

    Args:
        lm: a causal or seq2seq :class:`~debiaslab.models.LoadedModel`.
        prompts: the prompts (duplicates are generated once).
        settings: decoding settings.
        cache: a JSON-lines file to resume from and append to (see *Resumable runs* above);
            :func:`cache_path` gives the conventional one.
        model_key: identifies the model in cache keys (default: :func:`default_model_key`).
        progress: show a tqdm bar.
        batch_size: sequences per ``generate`` call (default ``lm.batch_size``, else
            :data:`GENERATION_BATCH_SIZE`); halved automatically on out-of-memory.
        processors: factories of extra ``LogitsProcessor``s (e.g. decoding-time debiasing),
            called once per batch with the width of the batch's prompt part (1 for seq2seq
            decoders), applied before sampling.
        processors_key: what the processors do, for the cache key (required with processors).

    Returns:
        Per prompt, its continuations in return-index order: a causal model's new tokens only
        (not the prompt), a seq2seq model's decoder output, special tokens removed.

    Raises:
        ConfigError: a masked LM (use :func:`fill_mask`) or an unknown family.
        DataFormatError: a prompt is not a string, or the cache file is corrupt.
    """
    if lm.family == "masked":
        raise ConfigError(
            f"{lm.name} is a masked LM, which cannot generate continuations; use "
            "debiaslab.generation.fill_mask for masked-LM completions"
        )
    if lm.family not in ("causal", "seq2seq"):
        raise ConfigError(f"unknown model family {lm.family!r}; expected causal or seq2seq")
    prompts = list(prompts)
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise DataFormatError(
                f"prompt {i} is a {type(prompt).__name__}, not a string", file="<prompts>", row=i
            )
    model_key = default_model_key(lm) if model_key is None else model_key
    if processors:
        if not processors_key:
            raise ConfigError("generate with processors needs a processors_key for the cache")
        model_key = f"{model_key} processors={processors_key}"
    n_return = settings.num_return_sequences
    keys = {
        (p, k): cache_key(model_key, p, settings, k)
        for p in dict.fromkeys(prompts)
        for k in range(n_return)
    }
    path = Path(cache) if cache is not None else None
    texts: dict[str, str] = {}
    if path is not None:
        known = read_cache(path)
        texts = {key: known[key] for key in keys.values() if key in known}
        if texts:
            log.info("%s: %d of %d outputs already generated", path, len(texts), len(keys))
    todo = [(key, p, k) for (p, k), key in keys.items() if key not in texts]
    if todo:
        writer = CacheWriter(path, model_key, settings.as_dict()) if path is not None else None
        try:
            new = _generate_rows(lm, todo, settings, writer, progress, batch_size, processors)
        finally:
            if writer is not None:
                writer.close()
        texts.update(zip((key for key, _, _ in todo), new, strict=True))
    return [[texts[keys[(p, k)]] for k in range(n_return)] for p in prompts]


def _generate_rows(
    lm,
    rows: list[tuple[str, str, int]],
    settings: GenerationSettings,
    writer: CacheWriter | None,
    progress: bool,
    batch_size: int | None,
    processors: Sequence[Callable[[int], LogitsProcessor]] = (),
) -> list[str]:
    """Generate one text per ``(key, prompt, index)`` row, in row order."""
    tokenizer = lm.tokenizer
    causal = lm.family == "causal"
    device = device_of(lm.model)
    pad_id = _pad_id(tokenizer)
    encoded: dict[str, list[int]] = {}
    for _, prompt, _ in rows:
        if prompt not in encoded:
            # An empty prompt is conditioned on BOS (else EOS), as a sentence in scoring.
            ids = tokenizer(prompt)["input_ids"]
            encoded[prompt] = list(ids) or [prefix_token_id(tokenizer)]
    row_ids = [encoded[prompt] for _, prompt, _ in rows]
    lengths = [len(ids) + settings.max_new_tokens for ids in row_ids]
    size = batch_size or lm.batch_size or GENERATION_BATCH_SIZE
    batches = length_batches(lengths, _NO_TOKEN_BUDGET, exact=False, max_size=size)

    @torch.inference_mode()
    def run(batch: list[int]) -> list[str]:
        # Causal models read LEFT-padded prompts; seq2seq encoders right-padded ones.
        ids, attention = pad_rows([row_ids[i] for i in batch], pad_id, left=causal)
        width = ids.shape[1]
        kwargs: dict[str, Any] = {
            "input_ids": ids.to(device),
            "attention_mask": attention.to(device),
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": False,
            "num_beams": 1,
            "num_return_sequences": 1,
            "pad_token_id": pad_id,
        }
        chain = [make(width if causal else 1) for make in processors]
        if settings.do_sample:
            seeds = [row_seed(settings.seed, rows[i][1], rows[i][2]) for i in batch]
            chain.append(RowSeededSampling.from_settings(settings, seeds))
        if chain:
            kwargs["logits_processor"] = LogitsProcessorList(chain)
        out = lm.model.generate(**kwargs)
        new_tokens = out[:, width:] if causal else out
        texts = tokenizer.batch_decode(new_tokens.cpu(), skip_special_tokens=True)
        if writer is not None:
            writer.write([rows[i] for i in batch], texts)
        return texts

    return run_batches(batches, run, n_items=len(rows), progress=progress, desc="generate")


def fill_mask(
    lm,
    texts: Sequence[str],
    top_k: int = 20,
    *,
    progress: bool = True,
    batch_size: int | None = None,
) -> list[list[str]]:
    """The ``top_k`` most likely tokens at the mask of each text, most likely first.

    Each token is ``tokenizer.decode([id]).strip()``, the fill-mask pipeline's ``token_str``
    (stripped). Texts are batched with padding and an attention mask; for known masked-LM
    classes the LM head runs at the mask position only.

    Args:
        lm: a masked :class:`~debiaslab.models.LoadedModel`.
        texts: texts holding the tokenizer's mask token (e.g. ``[MASK]``) exactly once.
        top_k: tokens returned per text.
        progress: show a tqdm bar.
        batch_size: texts per forward pass (default ``lm.batch_size``, else a token budget).

    Returns:
        Per text, ``top_k`` token strings by decreasing probability.

    Raises:
        ConfigError: not a masked LM, no mask token, or ``top_k`` not a positive integer.
        DataFormatError: a text holds the mask token zero or several times.
    """
    if lm.family != "masked":
        raise ConfigError(
            f"fill_mask needs a masked LM; {lm.name} is {lm.family} (use generate instead)"
        )
    tokenizer = lm.tokenizer
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise ConfigError(f"the tokenizer of {lm.name} has no mask token")
    if not _is_int(top_k) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    model = unwrap_model(lm.model)
    device = device_of(model)
    parts = _mlm_head(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded: list[list[int]] = []
    positions: list[int] = []
    for i, text in enumerate(texts):
        ids = list(tokenizer(text)["input_ids"])
        found = [p for p, t in enumerate(ids) if t == mask_id]
        if len(found) != 1:
            raise DataFormatError(
                f"text {i} holds the mask token {tokenizer.mask_token!r} {len(found)} times; "
                f"expected exactly once: {text!r}",
                file="<fill_mask texts>",
                row=i,
            )
        encoded.append(ids)
        positions.append(found[0])
    k = min(top_k, len(tokenizer))

    @torch.inference_mode()
    def run(batch: list[int]) -> list[list[str]]:
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for b, i in enumerate(batch):
            ids[b, : len(encoded[i])] = torch.tensor(encoded[i])
            attention[b, : len(encoded[i])] = 1
        rows = torch.arange(len(batch), device=device)
        cols = torch.tensor([positions[i] for i in batch], device=device)
        ids, attention = ids.to(device), attention.to(device)
        if parts is not None:
            encoder, head = parts
            hidden = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
            logits = head(hidden[rows, cols])
        else:
            logits = model(input_ids=ids, attention_mask=attention).logits[rows, cols]
        top = torch.topk(logits.float(), k, dim=-1).indices.cpu().tolist()
        return [[tokenizer.decode([t]).strip() for t in row] for row in top]

    budget = getattr(lm, "batch_tokens", None) or MASKED_BATCH_TOKENS
    size = batch_size or lm.batch_size
    batches = length_batches([len(ids) for ids in encoded], budget, exact=False, max_size=size)
    return run_batches(batches, run, n_items=len(encoded), progress=progress, desc="fill-mask")
