"""CrowS-Pairs scoring speed: the batched engine against a plain one-pass-per-item loop.

A script, not a test. Over the first N real CrowS-Pairs rows it prints:

* pairs/s of the engine and of a plain loop, and their ratio;
* the largest per-pair score difference between the two;
* efficiency: the FLOPs the exact method cannot avoid, divided by the engine's elapsed time and
  by this machine's peak fp32 matmul FLOP/s (the best of square-matmul runs before and after
  the engine, so a neighbour's load during one of them does not lower the peak).

``--model bert-mini-random`` (default): a BERT-mini-size masked LM (4 layers, hidden 256,
4 heads, FFN 1024, vocabulary 30,522 as BERT's) with random weights and a WordPiece tokenizer
trained here on the CrowS-Pairs sentences; the engine is ``score_nangia``, the plain loop
``metric.py`` (``debiaslab.benchmarks.reference``); unavoidable FLOPs: one encoder pass per
masked copy with no padding, the LM head only at the masked position.

``--model <preset or folder>`` of a causal LM (e.g. ``smollm2-135m-instruct``, loaded offline
in float32): the engine is lm-evaluation-harness scoring (``score_harness``: each sentence
after BOS), the plain loop one sentence per forward pass with the full logits, as the harness
at batch size 1; unavoidable FLOPs: one pass per sentence with no padding (the projections,
the causal half of attention) and the vocabulary projection at every scored token (its
log-softmax is elementwise work, not counted). Llama- and GPT-2-shaped configs.

Usage: ``python benchmarks/crows_speed.py [--model M] [--pairs 200] [--device cpu|cuda]``
(``DEBIASLAB_DATA_DIR`` or ``--data`` locates ``crows_pairs_anonymized.csv``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from debiaslab.benchmarks.crows_pairs import (
    is_uncased,
    nangia_queries,
    score_harness,
    score_nangia,
)
from debiaslab.benchmarks.reference import crows_pairs_metric_py
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.metrics import Metric
from debiaslab.models import from_objects, load_model
from debiaslab.results import write_speed
from debiaslab.scoring import empty_context_items
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

RANDOM_MINI = "bert-mini-random"
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


def causal_unavoidable_flops(items, config) -> float:
    """FLOPs of harness scoring: per (context, continuation) one unpadded pass over
    context + continuation minus its last token, the causal half of attention, and the
    vocabulary projection at each scored (continuation) token. Llama-shaped configs (gated MLP,
    grouped K/V) and GPT-2 ones (``n_embd``, a 4·h MLP)."""
    cfg = config.to_dict()
    h = cfg.get("hidden_size") or cfg["n_embd"]
    layers = cfg.get("num_hidden_layers") or cfg["n_layer"]
    heads = cfg.get("num_attention_heads") or cfg["n_head"]
    head_dim = cfg.get("head_dim") or h // heads
    kv = (cfg.get("num_key_value_heads") or heads) * head_dim
    gated = "n_embd" not in cfg  # Llama-style: gate, up and down projections
    inter = cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * h
    q = heads * head_dim
    per_token = 2 * h * (q + 2 * kv) + 2 * q * h + (6 if gated else 4) * h * inter
    total = 0.0
    for context, continuation in items:
        n = len(context) + len(continuation) - 1
        attention = 2 * q * n * (n + 1)  # QK^T and AV over the n(n+1)/2 causal pairs
        total += layers * (n * per_token + attention) + 2 * h * cfg["vocab_size"] * len(
            continuation
        )
    return total


def plain_causal_sums(model, items) -> list[float]:
    """Sentence log-likelihoods one item per forward pass, full logits, as the harness at
    batch size 1 (the baseline)."""
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for context, continuation in items:
            ids = torch.tensor([[*context, *continuation][:-1]], device=device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            start = len(context) - 1
            out.append(sum(logp[start + j, t].item() for j, t in enumerate(continuation)))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=RANDOM_MINI, help="bert-mini-random, or a causal "
                        "LM preset or folder (e.g. smollm2-135m-instruct)")  # fmt: skip
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--data", default=None, help="path to crows_pairs_anonymized.csv")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-plain", action="store_true", help="time the engine only")
    parser.add_argument("--output", default=None, help="also write a result file here")
    args = parser.parse_args()
    device = torch.device(args.device)

    all_pairs = load_crows_pairs(args.data)
    pairs = all_pairs[: args.pairs]
    if args.model == RANDOM_MINI:
        texts = [s for p in all_pairs for s in (p.sent_more, p.sent_less)]
        tokenizer = build_tokenizer("masked", texts, vocab_size=MINI["vocab_size"])
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig(**MINI)).eval().to(device)
        lm = from_objects(model, tokenizer, name=RANDOM_MINI)
    else:
        lm = load_model(args.model, device=args.device, dtype="float32")
    if lm.family not in ("masked", "causal"):
        raise SystemExit(f"{args.model} is a {lm.family} LM; this script times masked or causal")
    causal = lm.family == "causal"

    if causal:
        sentences = [s for p in pairs for s in (p.sent_more, p.sent_less)]
        items = empty_context_items(lm.tokenizer, sentences)
        lengths = [len(c) + len(t) - 1 for c, t in items]
        flops = causal_unavoidable_flops(items, lm.model.config)
        what = f"{len(items)} sentences"

        def engine_run(chosen):
            return score_harness(lm, chosen, progress=False)
    else:
        uncased = is_uncased(lm.tokenizer)
        lengths = []
        for p in pairs:
            first, second = (
                (p.sent_more, p.sent_less)
                if p.direction == "stereo"
                else (p.sent_less, p.sent_more)
            )
            q1, q2 = nangia_queries(lm.tokenizer, first, second, uncased)
            lengths += [len(q.input_ids) for q in q1 + q2]
        flops = unavoidable_flops(lengths, lm.model.config.to_dict())
        what = f"{len(lengths)} masked copies"

        def engine_run(chosen):
            return score_nangia(lm, chosen, progress=False)

    peak_before = peak_matmul_flops(device)
    engine_run(pairs[:8])  # warm-up (allocator, kernels)
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    items_out = engine_run(pairs)
    sync(device)
    engine_s, engine_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    peak = max(peak_before, peak_matmul_flops(device))
    achieved = flops / engine_s

    threads = torch.get_num_threads()
    print(f"model                {args.model} ({lm.family})")
    print(f"device               {device} ({threads} threads; load {load_text()})")
    print(f"pairs                {len(pairs)} ({what}, mean length {np.mean(lengths):.1f} tokens)")
    print(f"peak fp32 matmul     {peak / 1e9:.1f} GFLOP/s (before {peak_before / 1e9:.1f})")
    print(
        f"engine               {engine_s:.2f} s  {len(pairs) / engine_s:.2f} pairs/s  "
        f"{achieved / 1e9:.1f} GFLOP/s  (CPU time {engine_cpu_s:.2f} s)"
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
        if causal:
            plain = np.asarray(plain_causal_sums(lm.model, items)).reshape(-1, 2)
            columns, note = ["sent_more_score", "sent_less_score"], "sentence log-likelihoods"
        else:
            plain = np.asarray(crows_pairs_metric_py(lm.model, lm.tokenizer, pairs, uncased))
            columns, note = ["sent_more_score", "sent_less_score"], "rounded to 3 decimals"
        sync(device)
        plain_s = time.perf_counter() - start
        engine_scores = items_out[columns].to_numpy(float)
        max_diff = float(np.abs(engine_scores - plain.astype(float)).max())
        print(f"plain loop           {plain_s:.2f} s  {len(pairs) / plain_s:.2f} pairs/s")
        print(f"speed-up             {plain_s / engine_s:.1f}x")
        print(f"max |score diff|     {max_diff:.2e} ({note})")
        measured.update(
            plain_pairs_per_s=len(pairs) / plain_s,
            speedup_vs_plain=plain_s / engine_s,
            max_abs_score_diff=max_diff,
        )
    if args.output:
        config = {"pairs": len(pairs), "model": args.model, "family": lm.family,
                  "threads": threads, "peak_gflops": round(peak / 1e9, 1)}  # fmt: skip
        name = "crows_pairs_scoring_causal" if causal else "crows_pairs_scoring"
        path = write_speed(args.output, name, measured, declared=METRICS, config=config,
                           device=str(device))  # fmt: skip
        print(f"result: {path}")


def load_text() -> str:
    """The 1-minute load average (other processes share the cores), or '?'."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
