"""Near-duplicate removal: MinHash-LSH (``debiaslab.synth.filters.near_duplicates``) against the
plain pairwise definition, on the same texts in one run.

A script, not a test. It builds N synthetic sentences (random words from a small vocabulary, so
many pairs share shingles) plus near copies of a tenth of them, then times both and checks that
they keep exactly the same texts, and prints the ratio.

Usage: ``python benchmarks/near_duplicates.py [--n 3000] [--threshold 0.8]``
"""

from __future__ import annotations

import argparse
import random
import time

from debiaslab.synth.filters import jaccard, near_duplicates, shingles

WORDS = [
    "the",
    "a",
    "man",
    "woman",
    "nurse",
    "engineer",
    "leads",
    "team",
    "care",
    "works",
    "hard",
    "kind",
    "bright",
    "office",
    "hospital",
    "plans",
    "code",
    "site",
    "patients",
    "bridge",
    "review",
    "safety",
    "night",
    "shift",
]


def brute_force(texts: list[str], threshold: float) -> list[bool]:
    kept, keep = [], []
    for text in texts:
        grams = shingles(text)
        duplicate = any(jaccard(grams, other) >= threshold for other in kept)
        keep.append(not duplicate)
        if not duplicate:
            kept.append(grams)
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(args.n)]
    texts += [t + "!" for t in rng.sample(texts, args.n // 10)]
    started = time.perf_counter()
    lsh = near_duplicates(texts, args.threshold)
    lsh_s = time.perf_counter() - started
    started = time.perf_counter()
    plain = brute_force(texts, args.threshold)
    plain_s = time.perf_counter() - started
    print(f"{len(texts)} texts, threshold {args.threshold}")
    print(f"MinHash-LSH  {lsh_s:7.2f} s  kept {sum(lsh)}")
    print(f"pairwise     {plain_s:7.2f} s  kept {sum(plain)}")
    print(f"speed-up ×{plain_s / lsh_s:.1f}; same texts kept: {lsh == plain}")


if __name__ == "__main__":
    main()
