"""Batching for every engine that runs a model over many items: scoring, generation,
classifiers, the decoding and head-gating methods and the PreciseDebias rewriter.

Items are grouped by length up to a token budget (:func:`length_batches`), run batch by batch
behind a tqdm bar, and a batch that runs out of memory is split in two and retried
(:func:`run_batches`); :func:`pad_rows` pads token id lists into ``(input_ids,
attention_mask)``.

Layer: models (imports only :mod:`debiaslab.distributed` beside it), so the engines above and
the tiny models beside it share one implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from debiaslab import distributed

log = logging.getLogger(__name__)


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA's own type, or a RuntimeError saying so)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def length_batches(
    lengths: Sequence[int], max_tokens: int, exact: bool, max_size: int | None = None
) -> list[list[int]]:
    """Group item indices into batches of ≤ ``max_tokens`` padded tokens, longest first.

    With ``exact`` every batch holds items of one length only (no padding at all);
    ``max_size`` caps the number of sequences in a batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        same = not exact or lengths[i] == width
        full = (len(current) + 1) * width > max_tokens or len(current) == (max_size or -1)
        if current and (not same or full):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def run_batches(
    batches: list[list[int]],
    run: Callable[[list[int]], list],
    *,
    n_items: int,
    progress: bool,
    desc: str,
    split: bool = True,
) -> list:
    """Run ``run`` on each batch; on OOM split the batch in two and retry. Results by item.

    Launched as several processes (one per GPU, :mod:`debiaslab.distributed`), each runs its
    share of the batches and every process gets all the results; ``split=False`` runs every
    batch here (a caller that gave each process its own items already).
    """

    def run_mine(mine: list[list[int]]) -> list:
        results: list = [None] * n_items
        todo = list(reversed(mine))
        total = sum(len(b) for b in mine)
        shown = progress and distributed.is_main()
        with tqdm(total=total, desc=desc, disable=not shown, unit="seq", leave=False) as bar:
            while todo:
                batch = todo.pop()
                try:
                    out = run(batch)
                except Exception as exc:
                    if not is_oom(exc) or len(batch) == 1:
                        raise
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    half = len(batch) // 2
                    log.warning("out of memory at batch %d; retrying with %d", len(batch), half)
                    todo.extend([batch[half:], batch[:half]])
                    continue
                for i, value in zip(batch, out, strict=True):
                    results[i] = value
                bar.update(len(batch))
        return results

    return distributed.share(batches, run_mine, n_items) if split else run_mine(batches)


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, *, left: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists into ``(input_ids, attention_mask)``, on the right or the left.

    Example:
        >>> ids, mask = pad_rows([[5, 6], [7]], 0, left=True)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, cols] = torch.tensor(list(row), dtype=torch.long)
        mask[i, cols] = 1
    return ids, mask


def unwrap_model(model):
    """The transformers model under a PEFT wrapper (adapter layers stay active)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def device_of(model) -> torch.device:
    """The device of ``model``'s first parameter (where its inputs must go)."""
    return next(model.parameters()).device
