"""Training of the tiny models: one plain AdamW loop on CPU, seconds per model.

`train_tiny` builds a tiny model (:mod:`debiaslab.tiny.build`) and fits it to texts with its
family's objective (masked LM at 30% masking, causal LM, seq2seq from sentinel-masked input);
`adamw_loop` is the loop every tiny model trains with (the tiny classifiers too). Defaults per
family are in `TRAIN_DEFAULTS`; :mod:`debiaslab.tiny.planted` trains the planted models with them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from debiaslab.batching import pad_rows
from debiaslab.errors import ConfigError
from debiaslab.tiny.build import N_SENTINELS, build_tiny, check_family

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Defaults measured on this project's 2-core CPU, one thread, other jobs running: causal ~9 s,
# masked ~19 s, seq2seq ~13 s; at these settings rates 0.2 / 0.5 / 0.8 separate cleanly on the
# held-out pairs (tests/test_tiny.py). lr is high for a transformer: the model is tiny and the
# run short.
TRAIN_DEFAULTS = {
    "masked": {"steps": 1000, "batch_size": 128, "lr": 3e-3},  # few tokens masked: big batches
    "causal": {"steps": 600, "batch_size": 32, "lr": 3e-3},
    "seq2seq": {"steps": 600, "batch_size": 32, "lr": 3e-3},
}
# 30%, not BERT's 15%: a ~9-token sentence then has ~3 masked tokens instead of ~1. At 15% the
# same calibration took about twice the samples in our runs (~40 s instead of ~20 s); Wettig et
# al. (EACL 2023) find 40% masking no worse than 15%. The seq2seq objective hides words at the
# same rate.
MLM_PROBABILITY = 0.3


def _length_bucketed(
    lengths: list[int], batch_size: int, generator: torch.Generator
) -> Iterator[list[int]]:
    """Endless batches of indices: shuffled each epoch, similar lengths batched together.

    Sorting windows of 16 batches by length cuts padding (a third of the tokens otherwise)
    while batches still mix templates; batch order is shuffled again within each window.
    """
    import torch

    window = 16 * batch_size
    while True:
        permutation = torch.randperm(len(lengths), generator=generator).tolist()
        for start in range(0, len(permutation), window):
            chunk = sorted(permutation[start : start + window], key=lengths.__getitem__)
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            for b in torch.randperm(len(batches), generator=generator).tolist():
                yield batches[b]


def sentinel_input(text: str, rng: random.Random, rate: float) -> str:
    """The seq2seq input: ``text`` with a share ``rate`` of its words (at least one) hidden.

    The k-th hidden word becomes ``<extra_id_k>`` and the target is the whole sentence, so
    whenever a group word is hidden and its attribute is not (or the reverse) the model must
    recover it from the other: that is where the planted association is learned.
    """
    words = text.split(" ")
    hidden = [i for i in range(len(words)) if rng.random() < rate]
    hidden = hidden[:N_SENTINELS] or [rng.randrange(len(words))]
    for k, i in enumerate(hidden):
        words[i] = f"<extra_id_{k}>"
    return " ".join(words)


def adamw_loop(
    model: PreTrainedModel,
    loss_of: Callable[[], torch.Tensor | None],
    *,
    steps: int,
    lr: float,
    warmup: int,
    decay: float,
) -> list[float]:
    """The training loop of every tiny model; returns the losses of the steps taken.

    AdamW (weight decay 0.01), gradients clipped at norm 1, a learning rate that rises
    linearly over ``warmup`` steps, stays at ``lr`` and falls linearly to 0 over the last
    ``decay`` share of the run. ``loss_of()`` gives one batch's loss, or None to skip a step
    (e.g. no token drawn for masking). The model is left in eval mode.
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup, (1 - step / steps) / decay)
    )
    losses: list[float] = []
    model.train()
    for _step in range(steps):
        loss = loss_of()
        if loss is None:
            continue
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def train_tiny(
    family: str,
    texts: list[str],
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    max_length: int = 48,
    mlm_probability: float = MLM_PROBABILITY,
    arch: dict[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build a tiny model and train it on ``texts`` with a plain AdamW loop on CPU.

    Objectives: masked LM through ``DataCollatorForLanguageModeling`` (80/10/10 replacement of
    ``mlm_probability`` of the tokens); causal LM on ``<|endoftext|> text <|endoftext|>``;
    seq2seq from the sentence with ``mlm_probability`` of its words replaced by sentinels
    (``<extra_id_k>``) to the whole sentence. Deterministic given ``seed`` and the torch thread
    count; the global RNG state is restored afterwards.

    Args:
        family: ``"masked"``, ``"causal"`` or ``"seq2seq"``.
        texts: training sentences, e.g. from `planted_texts`.
        steps: optimiser steps (default per family in `TRAIN_DEFAULTS`).
        batch_size: sentences per step (default per family).
        lr: peak AdamW learning rate (default per family).
        seed: seed of the initialisation, the batch order and the masking.
        max_length: tokens kept per sentence.
        mlm_probability: share of tokens the masked LM predicts and of words the seq2seq
            input hides (see `MLM_PROBABILITY`).
        arch: config overrides of the causal model (see `build_tiny`).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.

    Raises:
        ConfigError: for an unknown family or no texts.
    """
    import torch
    from transformers import DataCollatorForLanguageModeling

    check_family(family)
    if not texts:
        raise ConfigError("train_tiny needs at least one training text")
    defaults = TRAIN_DEFAULTS[family]
    steps = defaults["steps"] if steps is None else steps
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    lr = defaults["lr"] if lr is None else lr

    model, tokenizer = build_tiny(family, texts, seed, arch=arch)
    encode = {"truncation": True, "max_length": max_length}
    encoded = [tokenizer(text, **encode)["input_ids"] for text in texts]
    if family == "causal":  # the EOS also teaches where a sentence ends
        encoded = [[tokenizer.bos_token_id, *ids, tokenizer.eos_token_id] for ids in encoded]
    pad_id = tokenizer.pad_token_id
    sentinel_rng = random.Random(f"sentinel:{seed}")

    def loss_of(indices: list[int]) -> torch.Tensor | None:
        if family == "masked":
            batch = collator([{"input_ids": encoded[i]} for i in indices])
            # The MLM head (a vocabulary-wide projection) on the masked positions only: the
            # same loss as model(**batch).loss at about half the step time.
            hidden = model.bert(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            masked = batch["labels"] != -100
            if not masked.any():
                return None
            logits = model.cls(hidden[masked])
            return torch.nn.functional.cross_entropy(logits, batch["labels"][masked])
        if family == "causal":
            ids, mask = pad_rows([encoded[i] for i in indices], pad_id)
            labels = ids.masked_fill(mask == 0, -100)
            return model(input_ids=ids, attention_mask=mask, labels=labels).loss
        sources = [
            tokenizer(sentinel_input(texts[i], sentinel_rng, mlm_probability), **encode)
            for i in indices
        ]
        ids, mask = pad_rows([source["input_ids"] for source in sources], pad_id)
        targets, target_mask = pad_rows([encoded[i] for i in indices], pad_id)
        labels = targets.masked_fill(target_mask == 0, -100)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        if family == "masked":
            # No `seed=`: the collator then draws from the global RNG seeded above (its own
            # seeded generator refuses to run in a worker process of `planted_models`).
            collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        batches = _length_bucketed([len(ids) for ids in encoded], batch_size, generator)
        # 20 warm-up steps, constant, then linear decay over the last fifth: the association is
        # learned late, so the rate stays high for most of the run.
        losses = adamw_loop(
            model, lambda: loss_of(next(batches)), steps=steps, lr=lr, warmup=20, decay=0.2
        )
    log.info(
        "trained tiny %s model: %d steps in %.1f s, loss %.3f -> %.3f (first/last 20 steps)",
        family,
        steps,
        time.perf_counter() - started,
        sum(losses[:20]) / max(1, len(losses[:20])),
        sum(losses[-20:]) / max(1, len(losses[-20:])),
    )
    return model, tokenizer
