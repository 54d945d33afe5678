"""Causal log-likelihoods of option groups that share a prefix: the prefix runs once.

A benchmark that scores several options of one example (StereoSet's three sentences) reads the
same tokens before the options diverge (the words before the blank; the context) once per
option. :func:`causal_logprobs_shared` runs those tokens once per group, keeps their key/value
cache, and runs each option's remaining tokens on a copy of it. In a causal model a position
depends only on the positions before it, so every log-probability is the one
:func:`debiaslab.scoring.causal_logprobs` returns for the same (context, continuation), up to
float32 noise of a different batch shape.

The shared prefix is found on token ids, never on text: the longest common prefix of the
options' input sequences (context + continuation without its last token), kept one token short
of the shortest so every option has a token of its own to run. A group with no common token
(a blank at the very start in a mode without a start token), or of one item, goes through
:func:`~debiaslab.scoring.causal_logprobs` unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DynamicCache

from debiaslab.batching import device_of, pad_rows, run_batches, unwrap_model
from debiaslab.scoring import CAUSAL_BATCH_TOKENS, causal_logprobs, check_lengths
from debiaslab.scoring_head import causal_head, token_logprobs

Item = tuple[Sequence[int], Sequence[int]]
# Prefix tokens whose key/value caches are held at once (a window of groups).
WINDOW_TOKENS = 2 * CAUSAL_BATCH_TOKENS
CACHE_ROWS_FACTOR = 4


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of ``sequences``, at most the shortest minus one.

    Example:
        >>> shared_prefix_length([[1, 5, 6, 7], [1, 5, 9], [1, 5, 6]])
        2
        >>> shared_prefix_length([[1, 5], [1, 5, 6]]), shared_prefix_length([[4, 5], [3, 5]])
        (1, 0)
    """
    shortest = min(len(s) for s in sequences)
    n = 0
    while n < shortest - 1 and len({s[n] for s in sequences}) == 1:
        n += 1
    return n


def _cache_name(module) -> str:
    """The keyword a model's forward takes its key/value cache by: ``cache`` (transformers 5)
    or ``past_key_values`` (earlier, and the name outputs keep)."""
    return (
        "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
    )


def _forward(model, parts, ids, mask, positions, cache, where):
    """Logits at ``where`` (row, column index tensors) and the key/value cache after ``ids``."""
    module = parts[0] if parts is not None else model
    out = module(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{_cache_name(module): cache},
    )
    after = out["cache"] if "cache" in out else out["past_key_values"]
    if parts is not None:
        return parts[1](out.last_hidden_state[where]), after
    return out.logits[where], after


def _key_values(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer of a dynamic cache (transformers 5 layers, or 4's lists)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _new_cache(data: list[tuple[torch.Tensor, torch.Tensor]]):
    """A dynamic cache holding ``data`` ((keys, values) per layer)."""
    try:
        return DynamicCache(ddp_cache_data=data)
    except TypeError:  # transformers 4
        return DynamicCache.from_legacy_cache(tuple(data))


def causal_logprobs_shared(
    lm,
    items: Sequence[Item],
    groups: Sequence[Sequence[int]],
    *,
    progress: bool = True,
    desc: str = "causal LM (shared prefix)",
) -> list[np.ndarray]:
    """:func:`~debiaslab.scoring.causal_logprobs` of ``items``, the shared prefix of each group
    of item indices (``groups``: every item in exactly one) run once and its KV cache reused.

    Groups go in windows of :data:`WINDOW_TOKENS` prefix tokens (their caches are held at
    once). In a window, prefixes run in batches by length bucket (:func:`coarse_bucket`),
    left-padded to one width with position ids that count real tokens only; then all the
    window's options run in batches by suffix length bucket, across prefix batches, on caches
    gathered from their prefixes' rows and left-padded to the widest (masked), suffixes
    right-padded (which leaves every real position unchanged).

    Raises:
        ValueError: an empty context or continuation, or ``groups`` not a partition of the
            items.
    """
    model = unwrap_model(lm.model)
    device = device_of(model)
    seen = sorted(i for g in groups for i in g)
    if seen != list(range(len(items))):
        raise ValueError("groups must hold every item index exactly once")
    for k, (context, continuation) in enumerate(items):
        if len(context) == 0 or len(continuation) == 0:
            raise ValueError(f"item {k}: context and continuation must both be non-empty")
    seqs = [[*c, *t][:-1] for c, t in items]
    check_lengths(lm, [len(s) for s in seqs])
    shared, alone = [], []
    for group in groups:
        n = shared_prefix_length([seqs[i] for i in group]) if len(group) > 1 else 0
        (shared if n > 0 else alone).append((n, list(group)))
    out: list = [None] * len(items)
    if alone:
        lone = [i for _, g in alone for i in g]
        lone_lps = causal_logprobs(lm, [items[i] for i in lone], progress=False)
        for i, lp in zip(lone, lone_lps, strict=True):
            out[i] = lp
    if not shared:
        return out
    parts = causal_head(model)
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    budget = lm.batch_tokens or CAUSAL_BATCH_TOKENS

    def run_prefixes(batch: list[int], members: list, head_lp: dict) -> tuple:
        """One pass over the prefixes of groups ``batch``, LEFT-padded to one width (position
        ids count real tokens only); the log-probs the options score inside the prefix go to
        ``head_lp``, each option to ``members`` as (row, item, prefix length). Returns
        the batch's (keys, values) per layer and its prefix mask."""
        ids, prefix_mask = pad_rows([seqs[shared[g][1][0]][: shared[g][0]] for g in batch],
                                    pad_id, left=True)  # fmt: skip
        ids, prefix_mask = ids.to(device), prefix_mask.to(device)
        width = ids.shape[1]
        positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
        at: dict[tuple[int, int], int] = {}  # (row, column) → row of the prefix logits
        picks = []  # (item, row of the prefix logits, target)
        for b, g in enumerate(batch):
            prefix = shared[g][0]
            for i in shared[g][1]:
                members.append((b, i, prefix))
                context, continuation = items[i]
                full = [*context, *continuation]
                for j in range(len(context) - 1, prefix):  # from its context's last token on
                    column = width - prefix + j
                    picks.append((i, at.setdefault((b, column), len(at)), full[j + 1]))
        where = (
            torch.tensor([b for b, _ in at], dtype=torch.long, device=device),
            torch.tensor([c for _, c in at], dtype=torch.long, device=device),
        )
        logits, cache = _forward(model, parts, ids, prefix_mask, positions, None, where)
        if picks:
            k = torch.tensor([k for _, k, _ in picks], device=device)
            tgt = torch.tensor([t for _, _, t in picks], device=device)
            values = token_logprobs(logits[k], tgt).double().cpu().tolist()
            for (i, _, _), v in zip(picks, values, strict=True):
                head_lp.setdefault(i, []).append(v)
        return _key_values(cache), prefix_mask

    def run_suffixes(chunk: list, sources: list) -> dict[int, list]:
        """The options ``chunk`` ((source batch, row, item, prefix length)) on a cache built
        from their prefixes' rows, left-padded to the widest; log-probs by item."""
        chunk = sorted(chunk, key=lambda m: m[0])
        width = max(sources[s][1].shape[1] for s, _, _, _ in chunk)
        by_source: dict[int, list[int]] = {}
        for s, row, _, _ in chunk:
            by_source.setdefault(s, []).append(row)
        picked = [(s, torch.tensor(rows, device=device)) for s, rows in by_source.items()]

        def stack(get):  # rows of every source, left-padded to ``width`` on the sequence axis
            parts_ = []
            for s, rows in picked:
                t = get(s)[rows]
                pad = width - t.shape[-2 if t.dim() == 4 else -1]
                spec = (0, 0, pad, 0) if t.dim() == 4 else (pad, 0)
                parts_.append(F.pad(t, spec) if pad else t)
            return torch.cat(parts_, 0)

        layers = len(sources[0][0])
        cache = _new_cache(
            [
                (
                    stack(lambda s, n=n: sources[s][0][n][0]),
                    stack(lambda s, n=n: sources[s][0][n][1]),
                )
                for n in range(layers)
            ]
        )
        ids, suffix_mask = pad_rows([seqs[i][n:] for _, _, i, n in chunk], pad_id)
        mask = torch.cat([stack(lambda s: sources[s][1]), suffix_mask.to(device)], 1)
        starts = torch.tensor([n for _, _, _, n in chunk], device=device)
        positions = starts[:, None] + torch.arange(ids.shape[1], device=device)
        rows, cols, targets, owners = [], [], [], []
        for b, (_, _, i, n) in enumerate(chunk):
            context, continuation = items[i]
            full = [*context, *continuation]
            scored = range(max(len(context) - 1, n), len(seqs[i]))  # at or after the prefix
            rows += [b] * len(scored)
            cols += [j - n for j in scored]
            targets += [full[j + 1] for j in scored]
            owners.append((i, len(scored)))
        where = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        logits, _ = _forward(model, parts, ids.to(device), mask, positions, cache, where)
        values = token_logprobs(logits, torch.tensor(targets, device=device)).double().cpu()
        return {
            i: v.tolist()
            for (i, _), v in zip(owners, torch.split(values, [k for _, k in owners]), strict=True)
        }

    @torch.inference_mode()
    def run(window: list[int]) -> list[list[tuple[int, np.ndarray]]]:
        """A window of groups: their prefix passes, then all their options in suffix batches
        across prefix batches (few, full passes rather than many small ones)."""
        head_lp: dict[int, list[float]] = {}
        sources, members = [], []
        for batch in _chunks(window, lambda g: shared[g][0], 0, budget, lambda g: 1):
            found: list = []
            sources.append(run_prefixes(batch, found, head_lp))
            members += [(len(sources) - 1, *m) for m in found]
        members.sort(key=lambda m: len(seqs[m[2]]) - m[3])
        widest = max(s[1].shape[1] for s in sources)
        tail: dict[int, list] = {}
        # Suffix batches hold ``budget`` computed tokens; the gathered caches at most
        # CACHE_ROWS_FACTOR × ``budget`` prefix positions (memory, not compute).
        cap = max(1, CACHE_ROWS_FACTOR * budget // widest)
        suffix_length = lambda m: len(seqs[m[2]]) - m[3]  # noqa: E731
        for chunk in _chunks(members, suffix_length, 0, budget, max_rows=cap):
            tail.update(run_suffixes(chunk, sources))
        return [
            [(i, np.asarray(head_lp.get(i, []) + tail[i], dtype=np.float64)) for i in shared[g][1]]
            for g in window
        ]

    # Windows of groups (by prefix length) whose prefix caches are held at once.
    order = sorted(range(len(shared)), key=lambda g: (shared[g][0], g))
    windows, current, held = [], [], 0
    for g in order:
        if current and held + shared[g][0] > WINDOW_TOKENS:
            windows.append(current)
            current, held = [], 0
        current.append(g)
        held += shared[g][0]
    windows.append(current)
    results = run_batches(windows, run, n_items=len(shared), progress=progress, desc=desc)
    for per_group in results:
        for i, lp in per_group:
            out[i] = lp
    return out


def coarse_bucket(n: int) -> int:
    """The padded width of a prefix or suffix batch holding ``n`` tokens: exact up to 4, then
    steps of at most a quarter. Coarser than :func:`~debiaslab.scoring_head.width_bucket`: these
    batches are short, where a forward pass costs more per call than the padding.

    Example:
        >>> [coarse_bucket(n) for n in (1, 4, 5, 6, 7, 9, 12, 13)]
        [1, 4, 5, 6, 7, 10, 12, 15]
    """
    bound = 4
    if n <= bound:
        return n
    while bound < n:
        bound = max(bound + 1, int(bound * 1.25))
    return bound


def _chunks(
    order, length, extra: int, budget: int, cost=lambda _: 1, max_rows: int | None = None
) -> list[list]:
    """Consecutive runs of ``order`` (sorted by ``length``) of one :func:`coarse_bucket`, each
    within ``budget`` tokens: ``cost`` rows per entry, each ``extra`` + the bucket wide."""
    chunks, current, rows = [], [], 0
    for entry in order:
        width = coarse_bucket(length(entry))
        if current and (
            width != coarse_bucket(length(current[0]))
            or (rows + cost(entry)) * (extra + width) > budget
            or (max_rows is not None and rows + cost(entry) > max_rows)
        ):
            chunks.append(current)
            current, rows = [], 0
        current.append(entry)
        rows += cost(entry)
    if current:
        chunks.append(current)
    return chunks
