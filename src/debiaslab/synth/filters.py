"""Filters of generated texts: cleaning, duplicates, toxicity, regard balance, counterfactuals.

Each filter is a plain function over lists, returning what it keeps, so the pipeline can count
what every step removed (the dataset card reports it): :func:`clean_text`,
:func:`exact_duplicates`, :func:`near_duplicates` (MinHash-LSH candidates after Broder 1997 and
Leskovec et al., each verified exactly), :func:`balance_by_label`, :func:`counterfactuals`.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from debiaslab.data.swaps import swap_gender

_SPACE = re.compile(r"\s+")
_QUOTES = "\"'“”‘’`"
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)

SHINGLE = 5
NUM_PERM = 128
BANDS = 32
_PRIME = (1 << 31) - 1


def clean_text(text: str) -> str:
    """The answer's first paragraph on one line, without wrapping quotes.

    Example:
        >>> clean_text('  "She leads the team well."\\n\\nSure! Here is another...')
        'She leads the team well.'
    """
    text = unicodedata.normalize("NFC", text).strip()
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    text = _SPACE.sub(" ", text).strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: the key of :func:`exact_duplicates`.

    Example:
        >>> normalise("He  is KIND!") == normalise("he is kind")
        True
    """
    return _SPACE.sub(" ", _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower())).strip()


def exact_duplicates(texts: Sequence[str]) -> list[bool]:
    """Keep-mask: the first of every set of texts equal after :func:`normalise`."""
    seen: set[str] = set()
    keep = []
    for text in texts:
        key = normalise(text)
        keep.append(key not in seen)
        seen.add(key)
    return keep


def shingles(text: str, size: int = SHINGLE) -> frozenset[str]:
    """Character ``size``-grams of the normalised text (the text itself when shorter).

    Example:
        >>> sorted(shingles("Ab, c!", 3))
        ['ab ', 'b c']
    """
    norm = normalise(text)
    if len(norm) <= size:
        return frozenset([norm])
    return frozenset(norm[i : i + size] for i in range(len(norm) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b| (1 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def minhash(sets: Sequence[frozenset[str]], num_perm: int = NUM_PERM, seed: int = 0) -> np.ndarray:
    """MinHash signatures, shape ``(len(sets), num_perm)``: per permutation, the minimum of
    ``(a·h + b) mod p`` over the set's hashes ``h`` (``p`` the Mersenne prime 2³¹ − 1, so the
    arithmetic is exact in 64 bits)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=num_perm, dtype=np.uint64)
    out = np.empty((len(sets), num_perm), dtype=np.uint64)
    for i, items in enumerate(sets):
        hashes = np.fromiter((_stable_hash(s) % _PRIME for s in items), dtype=np.uint64)
        out[i] = ((hashes[:, None] * a + b) % _PRIME).min(axis=0)
    return out


def near_duplicates(
    texts: Sequence[str],
    threshold: float = 0.8,
    *,
    size: int = SHINGLE,
    num_perm: int = NUM_PERM,
    bands: int = BANDS,
    seed: int = 0,
) -> list[bool]:
    """Keep-mask: drop a text whose shingle Jaccard similarity to an earlier kept text is at
    least ``threshold`` (MinHash-LSH candidates, each verified exactly).

    Similarity is character 5-gram Jaccard (by default). Candidates come from MinHash with
    locality-sensitive hashing (Broder 1997; the banding of Leskovec et al., *Mining of
    Massive Datasets*, ch. 3), and every candidate is checked with the exact Jaccard
    similarity, so nothing below the threshold is ever removed; a pair far above the threshold
    is found with probability ≈ 1 (0.99996 at J = 0.8 with 32 bands of 4 rows), one near the
    threshold may be missed.

    Args:
        texts: texts in priority order (earlier ones are kept).
        threshold: Jaccard similarity of character ``size``-grams that counts as a duplicate.
        num_perm, bands: signature length and LSH bands (``num_perm`` divisible by ``bands``).
    """
    if not texts:
        return []
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be divisible by bands ({bands})")
    sets = [shingles(t, size) for t in texts]
    signatures = minhash(sets, num_perm, seed)
    rows = num_perm // bands
    buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(bands)]
    keep = []
    for i, signature in enumerate(signatures):
        keys = [signature[b * rows : (b + 1) * rows].tobytes() for b in range(bands)]
        candidates = {j for b, key in enumerate(keys) for j in buckets[b].get(key, ())}
        duplicate = any(jaccard(sets[i], sets[j]) >= threshold for j in sorted(candidates))
        keep.append(not duplicate)
        if not duplicate:
            for b, key in enumerate(keys):
                buckets[b][key].append(i)
    return keep


def balance_by_label(
    groups: Sequence[Hashable],
    labels: Sequence[Hashable],
    strata: Sequence[Hashable] | None = None,
    *,
    seed: int = 0,
) -> list[bool]:
    """Keep-mask that gives every group the same count of every label within each stratum.

    For each (stratum, label), every group keeps ``min`` over groups of its count there,
    chosen at random (seeded). Groups are those present anywhere in ``groups``: a group with
    no text of a label in a stratum removes that label there for everyone. Afterwards every
    group has the same regard distribution (strata: topics), so the data cannot teach that one
    group is spoken of more negatively.

    Example:
        >>> groups = ["f", "f", "f", "m", "m", "m"]
        >>> labels = ["neg", "pos", "pos", "pos", "pos", "pos"]
        >>> keep = balance_by_label(groups, labels)
        >>> [(g, label) for g, label, k in zip(groups, labels, keep) if k]
        [('f', 'pos'), ('f', 'pos'), ('m', 'pos'), ('m', 'pos')]
    """
    strata = [None] * len(groups) if strata is None else strata
    if not len(groups) == len(labels) == len(strata):
        raise ValueError("groups, labels and strata must have the same length")
    all_groups = sorted(set(groups), key=str)
    cells: dict[tuple, dict[Hashable, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (g, label, s) in enumerate(zip(groups, labels, strata, strict=True)):
        cells[(s, label)][g].append(i)
    keep = [False] * len(groups)
    rng = random.Random(f"balance:{seed}")
    for key in sorted(cells, key=str):
        members = cells[key]
        n = min(len(members.get(g, ())) for g in all_groups)
        for g in all_groups:
            chosen = members.get(g, [])
            for i in sorted(rng.sample(chosen, n)) if n < len(chosen) else chosen:
                keep[i] = True
    return keep


def swap_table(source: Sequence[str], target: Sequence[str]) -> dict[str, str]:
    """Word → counterpart from two aligned term lists (one direction: source → target).

    Example:
        >>> swap_table(["woman", "she"], ["man", "he"])
        {'woman': 'man', 'she': 'he'}
    """
    if len(source) != len(target):
        raise ValueError("term lists must be aligned (same length)")
    return {s.lower(): t.lower() for s, t in zip(source, target, strict=True)}


def counterfactuals(texts: Sequence[str], swaps: dict[str, str]) -> list[str | None]:
    """Each text with its group words replaced by the counterpart's (``None`` when it has none
    of them, so swapping changes nothing).

    Example:
        >>> counterfactuals(["She is a nurse.", "It rains."], {"she": "he"})
        ['He is a nurse.', None]
    """
    out: list[str | None] = []
    for text in texts:
        swapped = swap_gender(text, swaps)
        out.append(swapped if swapped != text else None)
    return out
