"""CrowS-Pairs scoring speed: the batched engine against a plain one-mask-per-pass loop.

A script, not a test. On a BERT-mini-size masked LM (4 layers, hidden 256, 4 heads, FFN 1024,
vocabulary 30,522 as BERT's) with random weights and a WordPiece tokenizer trained here on the
CrowS-Pairs sentences (no hub is reachable), over the first N real CrowS-Pairs rows, it prints:

* pairs/s of the engine (``debiaslab.benchmarks.crows_pairs.score_nangia``) and of the plain
  implementation of ``metric.py`` (``debiaslab.benchmarks.reference``), and their ratio;
* the largest per-pair score difference between the two;
* efficiency: the FLOPs the exact method cannot avoid — one encoder pass per masked copy with no
  padding, the LM head only at the masked position — divided by the engine's elapsed time and
  by this machine's measured peak fp32 matmul FLOP/s.

Usage: ``python benchmarks/crows_speed.py [--pairs 200] [--device cpu|cuda]``
(``DEBIASLAB_DATA_DIR`` or ``--data`` locates ``crows_pairs_anonymized.csv``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from debiaslab.benchmarks.crows_pairs import is_uncased, nangia_queries, score_nangia
from debiaslab.benchmarks.reference import crows_pairs_metric_py
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.metrics import Metric
from debiaslab.models import from_objects
from debiaslab.results import write_speed
from debiaslab.tiny.build import build_tokenizer

METRICS = {
    "engine_pairs_per_s": Metric(True, None, "per-second", "pairs scored per second by the "
                                 "batched engine"),
    "efficiency_pct_of_peak": Metric(True, None, "percent", "unavoidable FLOP/s as % of this "
                                     "machine's peak fp32 matmul FLOP/s"),
    "plain_pairs_per_s": Metric(None, None, "per-second", "pairs per second of the plain "
                                "metric.py loop (the baseline)"),
    "speedup_vs_plain": Metric(True, None, "ratio", "plain loop time / engine time"),
    "max_abs_score_diff": Metric(False, 0.0, "nats", "largest per-pair score difference, "
                                 "engine vs plain"),
}  # fmt: skip

MINI = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "vocab_size": 30522,
}


def peak_matmul_flops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Best observed fp32 FLOP/s of a square matmul (the machine's practical peak)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def unavoidable_flops(lengths: list[int], cfg: dict) -> float:
    """FLOPs of exact PLL: per masked copy one unpadded encoder pass, LM head at one position."""
    h, inter, layers, vocab = (
        cfg["hidden_size"],
        cfg["intermediate_size"],
        cfg["num_hidden_layers"],
        cfg["vocab_size"],
    )
    total = 0.0
    for n in lengths:  # n = tokens of the sequence one masked copy runs through the encoder
        per_layer = 8 * n * h * h + 4 * n * h * inter + 4 * n * n * h  # QKVO, FFN, QK^T and AV
        head = 2 * h * h + 2 * h * vocab  # transform dense + vocabulary projection, one position
        total += layers * per_layer + head
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--data", default=None, help="path to crows_pairs_anonymized.csv")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-plain", action="store_true", help="time the engine only")
    parser.add_argument("--output", default=None, help="also write a result file here")
    args = parser.parse_args()
    device = torch.device(args.device)

    pairs = load_crows_pairs(args.data)[: args.pairs]
    texts = [s for p in load_crows_pairs(args.data) for s in (p.sent_more, p.sent_less)]
    tokenizer = build_tokenizer("masked", texts, vocab_size=MINI["vocab_size"])
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**MINI)).eval().to(device)
    lm = from_objects(model, tokenizer, name="bert-mini-random")

    uncased = is_uncased(tokenizer)
    lengths = []
    for p in pairs:
        first, second = (
            (p.sent_more, p.sent_less) if p.direction == "stereo" else (p.sent_less, p.sent_more)
        )
        q1, q2 = nangia_queries(tokenizer, first, second, uncased)
        lengths += [len(q.input_ids) for q in q1 + q2]
    flops = unavoidable_flops(lengths, MINI)
    peak = peak_matmul_flops(device)

    score_nangia(lm, pairs[:8], progress=False)  # warm-up (allocator, kernels)
    start = time.perf_counter()
    items = score_nangia(lm, pairs, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    engine_s = time.perf_counter() - start
    achieved = flops / engine_s

    print(f"device               {device} ({torch.get_num_threads()} threads)")
    print(
        f"pairs                {len(pairs)} ({len(lengths)} masked copies, "
        f"mean length {np.mean(lengths):.1f} tokens)"
    )
    print(f"peak fp32 matmul     {peak / 1e9:.1f} GFLOP/s")
    print(
        f"engine               {engine_s:.2f} s  {len(pairs) / engine_s:.2f} pairs/s  "
        f"{achieved / 1e9:.1f} GFLOP/s"
    )
    print(
        f"efficiency           {100 * achieved / peak:.1f} % of peak "
        f"({flops / 1e9:.1f} unavoidable GFLOP)"
    )
    measured = {
        "engine_pairs_per_s": len(pairs) / engine_s,
        "efficiency_pct_of_peak": 100 * achieved / peak,
    }
    if not args.skip_plain:
        start = time.perf_counter()
        plain = crows_pairs_metric_py(model, tokenizer, pairs, uncased)
        plain_s = time.perf_counter() - start
        engine_scores = items[["sent_more_score", "sent_less_score"]].to_numpy(float)
        max_diff = float(np.abs(engine_scores - np.asarray(plain, dtype=float)).max())
        print(f"plain (metric.py)    {plain_s:.2f} s  {len(pairs) / plain_s:.2f} pairs/s")
        print(f"speed-up             {plain_s / engine_s:.1f}x")
        print(f"max |score diff|     {max_diff:.2e} (scores rounded to 3 decimals as metric.py)")
        measured.update(
            plain_pairs_per_s=len(pairs) / plain_s,
            speedup_vs_plain=plain_s / engine_s,
            max_abs_score_diff=max_diff,
        )
    if args.output:
        config = {
            "pairs": len(pairs),
            "model": "bert-mini-random",
            "threads": torch.get_num_threads(),
        }
        path = write_speed(args.output, "crows_pairs_scoring", measured, declared=METRICS,
                           config=config, device=str(device))  # fmt: skip
        print(f"result: {path}")


if __name__ == "__main__":
    main()
