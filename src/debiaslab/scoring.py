"""The shared, batched log-likelihood engine. Every likelihood benchmark goes through it.

Three primitives, one per model family: :func:`masked_logprobs`, :func:`causal_logprobs`
(as lm-evaluation-harness: a whole sentence is scored after a BOS token) and
:func:`seq2seq_logprobs`. All three sort work by length, fill batches up to a token budget,
show a tqdm bar, and halve the batch on an out-of-memory error and carry on. Log-softmax is
taken in float32.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from debiaslab.batching import device_of, length_batches, run_batches, unwrap_model
from debiaslab.errors import DebiaslabError
from debiaslab.scoring_head import causal_head, token_logprobs, width_bucket

log = logging.getLogger(__name__)

# Token budgets per forward pass (batch size × sequence length). Large matmuls are what a CPU
# runs near peak; on a GPU these are small. Halved automatically on out-of-memory.
MASKED_BATCH_TOKENS = 4096
CAUSAL_BATCH_TOKENS = 4096
SEQ2SEQ_BATCH_TOKENS = 4096


@dataclass(frozen=True)
class MaskedQuery:
    """Mask ``input_ids[position]`` and ask for ``log p(target)`` there."""

    input_ids: tuple[int, ...]
    position: int
    target: int


# --------------------------------------------------------------------------- shared machinery

TOO_LONG_POLICIES = ("error", "skip")
_NO_LIMIT = 1_000_000  # tokenizers say model_max_length = 1e30 when they know no limit


class SequenceTooLongError(DebiaslabError, ValueError):
    """Some items are longer than the model can read; raised before anything is scored.

    ``too_long`` maps each offending item's index (in the list given to the engine) to its
    length in tokens; benchmarks translate indices into file rows for the user.
    """

    def __init__(self, too_long: dict[int, int], max_length: int, what: str = "sequence"):
        self.too_long = dict(too_long)
        self.max_length = max_length
        first, length = next(iter(self.too_long.items()))
        super().__init__(
            f"{len(self.too_long)} {what}(s) longer than the model's maximum of {max_length} "
            f"tokens (first: item {first}, {length} tokens)"
        )

    def with_message(self, message: str) -> SequenceTooLongError:
        """The same error with a message that says where, in the user's terms."""
        self.args = (message,)
        return self


def max_length(model, tokenizer=None) -> int | None:
    """How many positions ``model`` can read: its position table, capped by the tokenizer's
    ``model_max_length`` when that is a real limit; None for relative positions (T5).

    RoBERTa-style tables reserve ``pad_token_id + 1`` rows (514 rows, 512 usable).
    """
    config = unwrap_model(model).config
    limit = getattr(config, "n_positions", None) or getattr(
        config, "max_position_embeddings", None
    )
    if limit is not None and getattr(config, "model_type", "") in (
        "roberta",
        "xlm-roberta",
        "camembert",
    ):
        limit -= (config.pad_token_id or 0) + 1
    if getattr(config, "model_type", "") in ("t5", "mt5", "umt5"):
        return None  # relative position buckets: no table to run off (512 is advice only)
    declared = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if declared is not None and declared < _NO_LIMIT:
        limit = declared if limit is None else min(limit, declared)
    return int(limit) if limit is not None else None


def check_lengths(lm, lengths: Sequence[int], what: str = "sequence") -> None:
    """Raise :class:`SequenceTooLongError` if any length exceeds :func:`max_length`."""
    limit = max_length(lm.model, lm.tokenizer)
    if limit is None:
        return
    too_long = {i: n for i, n in enumerate(lengths) if n > limit}
    if too_long:
        raise SequenceTooLongError(too_long, limit, what)


def sentence_lengths(lm, sentences: Sequence[str]) -> list[int]:
    """Positions the model reads to score each sentence as :func:`sentence_token_logprobs` does
    (masked LMs: the sentence with special tokens; causal: context + continuation, minus one;
    seq2seq: the longer of encoder input and decoder target). Benchmarks use it to find
    over-long items before scoring."""
    tok = lm.tokenizer
    if lm.family == "masked":
        return [len(tok(s)["input_ids"]) for s in sentences]
    items = empty_context_items(tok, sentences)
    if lm.family == "causal":
        return [len(c) + len(t) - 1 for c, t in items]
    return [max(len(c), len(t)) for c, t in items]


def select_by_length(
    lm,
    lengths_per_item: Sequence[Sequence[int]],
    describe: Callable[[int], str],
    *,
    policy: str = "error",
) -> tuple[list[int], dict[int, int]]:
    """Keep the items all of whose sequences fit the model; the rest per ``policy``.

    Args:
        lm: the loaded model.
        lengths_per_item: for each benchmark item (a pair, an example), the lengths of every
            sequence the model will read for it.
        describe: item index → where it is, for the error (``"file.csv: record index 17"``).
        policy: ``error`` (default: one error naming the first offending item, its length and
            the limit, and what to do) or ``skip`` (leave such items out; the caller records
            how many).

    Returns:
        (indices of the items kept, {index of a skipped item: its longest length}).
    """
    if policy not in TOO_LONG_POLICIES:
        raise ValueError(
            f"unknown too-long policy {policy!r}; expected one of {TOO_LONG_POLICIES}"
        )
    limit = max_length(lm.model, lm.tokenizer)
    longest = [max(lengths, default=0) for lengths in lengths_per_item]
    skipped = {} if limit is None else {i: n for i, n in enumerate(longest) if n > limit}
    if skipped and policy == "error":
        first, length = next(iter(skipped.items()))
        raise SequenceTooLongError(
            skipped,
            limit,
        ).with_message(
            f"{describe(first)}: {length} tokens, but the model reads at most {limit} "
            f"({len(skipped)} item(s) too long in all). Leave them out with --too-long skip "
            "(counted in the result as n_skipped_too_long), or shorten the data."
        )
    kept = [i for i in range(len(lengths_per_item)) if i not in skipped]
    return kept, skipped


def prefix_token_id(tokenizer) -> int:
    """The token a sentence is conditioned on: BOS, else EOS (lm-evaluation-harness)."""
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    raise ValueError("tokenizer has neither a BOS nor an EOS token to condition on")


def empty_context_items(tokenizer, sentences: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) token ids of bare sentences, as lm-evaluation-harness builds a
    request whose context is ``""`` (``loglikelihood`` in ``lm_eval/api/model.py``).

    The sentence is encoded without special tokens (no ``</s>`` for T5, no BOS for Llama) and
    conditioned on :func:`prefix_token_id`; if the sentence itself begins with that token (its
    text starts with, say, ``<|endoftext|>``), that token becomes the context and the rest is
    scored, so the prefix is never scored as a token of the sentence. The same rule for causal
    and seq2seq models (for seq2seq the context is the encoder input).

    Raises:
        ValueError: a sentence with nothing left to score (empty, or only the prefix token).

    Example:
        >>> from debiaslab.tiny.build import build_tokenizer
        >>> tok = build_tokenizer("causal")  # <|endoftext|> (id 0) is its BOS
        >>> plain, led = empty_context_items(tok, ["He ran.", "<|endoftext|>He ran."])
        >>> plain == led, plain[0]
        (True, [0])
    """
    prefix = prefix_token_id(tokenizer)
    items = []
    for k, sentence in enumerate(sentences):
        ids = list(tokenizer(sentence, add_special_tokens=False)["input_ids"])
        context, continuation = ([prefix], ids) if ids[:1] != [prefix] else (ids[:1], ids[1:])
        if not continuation:
            raise ValueError(f"sentence {k} ({sentence!r}) has no tokens to score")
        items.append((context, continuation))
    return items


# --------------------------------------------------------------------------- masked LMs


def _mlm_head(model) -> tuple[torch.nn.Module, Callable] | None:
    """(encoder, head) for known masked-LM classes, so the head runs only where needed."""
    name = type(model).__name__
    if name in ("BertForMaskedLM", "DebertaV2ForMaskedLM") and hasattr(model, "cls"):
        return model.base_model, model.cls
    if name in ("RobertaForMaskedLM", "XLMRobertaForMaskedLM", "CamembertForMaskedLM"):
        return model.base_model, model.lm_head
    if name == "AlbertForMaskedLM":
        return model.base_model, model.predictions
    if name == "DistilBertForMaskedLM":

        def head(hidden):
            hidden = model.activation(model.vocab_transform(hidden))
            return model.vocab_projector(model.vocab_layer_norm(hidden))

        return model.base_model, head
    return None


def masked_logprobs(
    lm,
    queries: Sequence[MaskedQuery],
    *,
    progress: bool = True,
    desc: str = "masked LM",
) -> np.ndarray:
    """``log p(target | input with position masked)`` for every query (float64 array).

    Queries are bucketed by exact length, so a batch has no padding and needs no attention
    mask; the LM head (the vocabulary projection, usually the most expensive layer of a small
    encoder) runs only at the masked position.

    Example:
        >>> from debiaslab.models import from_objects
        >>> from debiaslab.tiny.build import build_tiny
        >>> lm = from_objects(*build_tiny("masked", seed=0))
        >>> ids = tuple(lm.tokenizer("the nurse is here")["input_ids"])
        >>> lp = masked_logprobs(lm, [MaskedQuery(ids, 2, ids[2])], progress=False)
        >>> lp.shape, bool(lp[0] < 0)
        ((1,), True)
    """
    model, tokenizer = unwrap_model(lm.model), lm.tokenizer
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise ValueError("tokenizer has no mask token: masked-LM scoring needs one")
    device = device_of(model)
    parts = _mlm_head(model)
    lengths = [len(q.input_ids) for q in queries]
    check_lengths(lm, lengths, "masked query")

    @torch.inference_mode()
    def run(batch: list[int]) -> list[float]:
        ids = torch.tensor([queries[i].input_ids for i in batch], dtype=torch.long)
        rows = torch.arange(len(batch))
        positions = torch.tensor([queries[i].position for i in batch])
        targets = torch.tensor([queries[i].target for i in batch])
        ids[rows, positions] = mask_id
        ids = ids.to(device)
        if parts is not None:
            encoder, head = parts
            hidden = encoder(input_ids=ids).last_hidden_state
            logits = head(hidden[rows.to(device), positions.to(device)])
        else:
            logits = model(input_ids=ids).logits[rows.to(device), positions.to(device)]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return logprobs[rows.to(device), targets.to(device)].tolist()

    budget = lm.batch_tokens or MASKED_BATCH_TOKENS
    batches = length_batches(lengths, budget, exact=True, max_size=lm.batch_size)
    out = run_batches(batches, run, n_items=len(queries), progress=progress, desc=desc)
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------- causal LMs


def causal_logprobs(
    lm,
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    progress: bool = True,
    desc: str = "causal LM",
) -> list[np.ndarray]:
    """Per-token ``log p(continuation_j | context, continuation_<j)`` for each (context, cont).

    For a whole sentence the context is a BOS token and the continuation the sentence, as
    lm-evaluation-harness scores it.

    The context must be non-empty (use ``[prefix_token_id(tokenizer)]`` for a bare sentence).
    Sequences are batched by length bucket (:mod:`~debiaslab.scoring_head`: exact lengths for
    short ones, little padding above), right-padded (which leaves every real position of a
    causal model unchanged), and for plain-head architectures the vocabulary projection and
    log-softmax run only at the scored positions. Items whose model input is the
    same (context + continuation without its last token: the answer letters of one
    multiple-choice question) share one forward pass, as lm-evaluation-harness shares one for
    one-token continuations of a context.
    """
    model, tokenizer = unwrap_model(lm.model), lm.tokenizer
    device = device_of(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for k, (context, continuation) in enumerate(items):
        if len(context) == 0 or len(continuation) == 0:
            raise ValueError(f"item {k}: context and continuation must both be non-empty")
    # The model reads context + continuation without its last token.
    check_lengths(lm, [len(c) + len(t) - 1 for c, t in items])
    parts = causal_head(model)
    inputs: dict[tuple[int, ...], list[int]] = {}  # model input -> the items that read it
    for k, (context, continuation) in enumerate(items):
        inputs.setdefault(tuple([*context, *continuation][:-1]), []).append(k)
    unique = list(inputs)
    lengths = [len(seq) for seq in unique]

    @torch.inference_mode()
    def run(batch: list[int]) -> list[list[np.ndarray]]:
        width = max(lengths[u] for u in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols, targets, owners, per_input = [], [], [], [], []
        for b, u in enumerate(batch):
            seq = unique[u]
            ids[b, : len(seq)] = torch.tensor(seq)
            attention[b, : len(seq)] = 1
            per_input.append(len(inputs[seq]))
            for i in inputs[seq]:
                context, continuation = items[i]
                start = len(context) - 1
                rows.extend([b] * len(continuation))
                cols.extend(range(start, start + len(continuation)))
                targets.extend(continuation)
                owners.append(len(continuation))
        # An all-ones mask (one length, no padding) keeps attention on its plain causal path.
        mask = attention.to(device)
        where = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        if parts is not None:
            trunk, head = parts
            hidden = trunk(input_ids=ids.to(device), attention_mask=mask).last_hidden_state
            logits = head(hidden[where])
        else:
            logits = model(input_ids=ids.to(device), attention_mask=mask).logits[where]
        values = token_logprobs(logits, torch.tensor(targets, device=device))
        flat = [v.numpy() for v in torch.split(values.double().cpu(), owners)]
        cuts = np.cumsum([0, *per_input])
        return [flat[a:b] for a, b in itertools.pairwise(cuts)]

    budget = lm.batch_tokens or CAUSAL_BATCH_TOKENS
    buckets = [width_bucket(n) for n in lengths]
    batches = length_batches(buckets, budget, exact=True, max_size=lm.batch_size)
    shared = run_batches(batches, run, n_items=len(unique), progress=progress, desc=desc)
    out: list[np.ndarray] = [np.empty(0)] * len(items)
    for seq, values in zip(unique, shared, strict=True):
        for i, value in zip(inputs[seq], values, strict=True):
            out[i] = value
    return out


# --------------------------------------------------------------------------- seq2seq LMs


def seq2seq_logprobs(
    lm,
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    progress: bool = True,
    desc: str = "seq2seq LM",
) -> list[np.ndarray]:
    """Per-token ``log p(target_j | encoder input, target_<j)`` for each (encoder ids, target):
    the log-probabilities of a decoder target given an encoder input."""
    model, tokenizer = unwrap_model(lm.model), lm.tokenizer
    device = device_of(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for k, (source, target) in enumerate(items):
        if len(source) == 0 or len(target) == 0:
            raise ValueError(f"item {k}: encoder input and target must both be non-empty")
    lengths = [len(s) + len(t) for s, t in items]
    limit = max_length(model, tokenizer)
    if limit is not None:  # encoder and decoder read their own positions
        too_long = {
            i: max(len(s), len(t)) for i, (s, t) in enumerate(items) if max(len(s), len(t)) > limit
        }
        if too_long:
            raise SequenceTooLongError(too_long, limit)

    @torch.inference_mode()
    def run(batch: list[int]) -> list[np.ndarray]:
        src_width = max(len(items[i][0]) for i in batch)
        tgt_width = max(len(items[i][1]) for i in batch)
        ids = torch.full((len(batch), src_width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), src_width), dtype=torch.long)
        labels = torch.full((len(batch), tgt_width), -100, dtype=torch.long)
        for b, i in enumerate(batch):
            source, target = items[i]
            ids[b, : len(source)] = torch.tensor(source)
            attention[b, : len(source)] = 1
            labels[b, : len(target)] = torch.tensor(target)
        out = model(
            input_ids=ids.to(device), attention_mask=attention.to(device), labels=labels.to(device)
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)
        safe = labels.clamp(min=0).to(device)
        values = logprobs.gather(-1, safe.unsqueeze(-1)).squeeze(-1).double().cpu()
        return [values[b, : len(items[i][1])].numpy() for b, i in enumerate(batch)]

    budget = lm.batch_tokens or SEQ2SEQ_BATCH_TOKENS
    batches = length_batches(lengths, budget, exact=False, max_size=lm.batch_size)
    return run_batches(batches, run, n_items=len(items), progress=progress, desc=desc)


# --------------------------------------------------------------------------- sentences


def sentence_token_logprobs(
    lm, sentences: Sequence[str], *, progress: bool = True, desc: str = "sentences"
) -> list[np.ndarray]:
    """Per-token log-probabilities of whole sentences, by family (lm-evaluation-harness).

    * causal and seq2seq: lm-evaluation-harness's request with an empty context
      (:func:`empty_context_items`): the sentence's tokens, encoded without special tokens,
      after the BOS (else EOS) token — for seq2seq as the decoder target of an encoder input
      holding just that token;
    * masked: the pseudo-log-likelihood terms of every token but the structural specials
      (:func:`pll_skipped_ids`: padding, CLS/SEP, BOS/EOS, mask); ``[UNK]`` is scored (Salazar
      et al. 2020 score every word piece).
    """
    tok = lm.tokenizer
    if lm.family in ("causal", "seq2seq"):
        items = empty_context_items(tok, sentences)
        engine = causal_logprobs if lm.family == "causal" else seq2seq_logprobs
        return engine(lm, items, progress=progress, desc=desc)
    if lm.family == "masked":
        queries, owners = [], defaultdict(list)
        skipped = pll_skipped_ids(tok)
        for k, s in enumerate(sentences):
            ids = tok(s)["input_ids"]
            for p, t in enumerate(ids):
                if t not in skipped:
                    owners[k].append(len(queries))
                    queries.append(MaskedQuery(tuple(ids), p, t))
        flat = masked_logprobs(lm, queries, progress=progress, desc=desc)
        return [flat[owners[k]] for k in range(len(sentences))]
    raise ValueError(f"unknown family {lm.family!r}")


def pll_skipped_ids(tokenizer) -> set[int]:
    """Token ids a pseudo-log-likelihood leaves out: padding, CLS/SEP, BOS/EOS and the mask
    token (they frame the sentence; they are not part of it). ``[UNK]`` is *not* among them:
    an unknown word is part of the sentence, and its term counts.

    Example:
        >>> from debiaslab.tiny.build import build_tokenizer
        >>> tok = build_tokenizer("masked")
        >>> sorted(tok.convert_ids_to_tokens(sorted(pll_skipped_ids(tok))))
        ['[CLS]', '[MASK]', '[PAD]', '[SEP]']
    """
    names = ("pad", "cls", "sep", "bos", "eos", "mask")
    ids = {getattr(tokenizer, f"{name}_token_id", None) for name in names}
    return {i for i in ids if i is not None}
