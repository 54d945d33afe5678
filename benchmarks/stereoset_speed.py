"""StereoSet causal scoring speed: the shared prefix's KV cache reused against every option run
whole.

A script, not a test. Over the first N examples of each requested split of the real StereoSet
dev file, with a causal LM (default ``smollm2-135m-instruct``, loaded offline in float32), it
times :func:`debiaslab.benchmarks.stereoset.likelihood_scores` with ``reuse_prefix=True`` (the
tokens an example's three options share — BOS and the words before the blank, or BOS and the
context — run once, the options on copies of their key/value cache) and with
``reuse_prefix=False`` (each option from its first token, the same batched engine), in one run,
and prints both times, their ratio, and the largest absolute difference of a per-sentence score
(the geometric-mean probability StereoSet ranks). It also prints the ratio of tokens the model
reads without and with reuse: the speed-up the exact method can reach at most.

Usage: ``python benchmarks/stereoset_speed.py [--model M] [--examples 200] [--mode bos]``
(``DEBIASLAB_DATA_DIR`` or ``--data`` locates StereoSet).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from debiaslab.benchmarks import stereoset as ss
from debiaslab.data.stereoset import StereoSet, load_stereoset
from debiaslab.metrics import Metric
from debiaslab.models import load_model
from debiaslab.results import write_speed
from debiaslab.scoring_prefix import shared_prefix_length

METRICS = {
    "reuse_examples_per_s": Metric(True, None, "per-second", "StereoSet examples scored per "
                                   "second with the shared prefix's KV cache reused"),
    "plain_examples_per_s": Metric(None, None, "per-second", "examples per second with every "
                                   "option run whole (the baseline)"),
    "speedup_vs_plain": Metric(True, None, "ratio", "time without reuse / time with reuse"),
    "token_ratio": Metric(None, None, "ratio", "tokens read without reuse / with reuse: the "
                          "most reuse can save"),
    "max_abs_score_diff": Metric(False, 0.0, "fraction", "largest per-sentence score "
                                 "difference, reuse vs none"),
}  # fmt: skip


def token_counts(lm, gold: StereoSet, splits, mode: str) -> tuple[int, int]:
    """Tokens the model reads (trunk positions) without and with prefix reuse."""
    tok = lm.tokenizer
    start = ss.prefix_token_id(tok)
    whole = shared = 0
    for split in splits:
        for example in gold.split(split):
            context = []
            if split == "intersentence":
                context = tok(example.context, add_special_tokens=False)["input_ids"]
            seqs = []
            for sentence in example.sentences:
                text = f" {sentence.sentence}" if context else sentence.sentence
                ids = tok(text, add_special_tokens=False)["input_ids"]
                seqs.append(ids[:-1] if mode == "bias-bench" else [start, *context, *ids][:-1])
            seqs = [s for s in seqs if s]
            whole += sum(len(s) for s in seqs)
            shared += sum(len(s) for s in seqs) - (len(seqs) - 1) * shared_prefix_length(seqs)
    return whole, shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--examples", type=int, default=200, help="per split")
    parser.add_argument("--splits", default="intrasentence,intersentence")
    parser.add_argument("--mode", default="bos", choices=("bos", "bias-bench"))
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timings")
    parser.add_argument("--data", default=None, help="StereoSet dev.json or the flat copy")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="also write a result file here")
    args = parser.parse_args()
    device = torch.device(args.device)
    splits = tuple(args.splits.split(","))

    full = load_stereoset(args.data)
    gold = StereoSet(source=full.source, version=full.version)
    for split in splits:
        setattr(gold, split, full.split(split)[: args.examples])
    n = sum(len(gold.split(s)) for s in splits)
    lm = load_model(args.model, device=args.device, dtype="float32")
    if lm.family != "causal":
        raise SystemExit(f"{args.model} is a {lm.family} LM; prefix reuse is for causal LMs")
    whole_tokens, shared_tokens = token_counts(lm, gold, splits, args.mode)

    def timed(reuse: bool):
        best, scores = float("inf"), None
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            scores = ss.likelihood_scores(
                lm, gold, splits, mode=args.mode, progress=False, reuse_prefix=reuse
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        return best, scores

    warm = StereoSet(**{s: gold.split(s)[:4] for s in splits})
    ss.likelihood_scores(lm, warm, splits, mode=args.mode, progress=False)  # warm-up
    plain_s, plain = timed(False)
    reuse_s, reused = timed(True)
    diff = max(abs(reused[s][i] - plain[s][i]) for s in plain for i in plain[s])

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model: {args.model}; device {device} ({torch.get_num_threads()} threads, load "
          f"{load:.2f}); mode {args.mode}; {n} examples ({', '.join(splits)})")  # fmt: skip
    print(f"without reuse: {plain_s:8.2f} s  {n / plain_s:7.2f} examples/s")
    print(f"with reuse:    {reuse_s:8.2f} s  {n / reuse_s:7.2f} examples/s")
    print(f"ratio: {plain_s / reuse_s:.2f}x (tokens read {whole_tokens} vs {shared_tokens}: "
          f"{whole_tokens / shared_tokens:.2f}x at most)")  # fmt: skip
    print(f"max |score diff|: {diff:.2e}")
    if args.output:
        measured = {
            "reuse_examples_per_s": n / reuse_s,
            "plain_examples_per_s": n / plain_s,
            "speedup_vs_plain": plain_s / reuse_s,
            "token_ratio": whole_tokens / shared_tokens,
            "max_abs_score_diff": diff,
        }
        config = {"examples": n, "splits": ",".join(splits), "mode": args.mode,
                  "model": args.model, "threads": torch.get_num_threads()}  # fmt: skip
        path = write_speed(args.output, "stereoset_prefix_reuse", measured, declared=METRICS,
                           config=config, device=str(device))  # fmt: skip
        print("result:", path)


if __name__ == "__main__":
    main()
