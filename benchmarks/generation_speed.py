"""BOLD generation speed: the batched engine against one prompt at a time.

A script, not a test. On a GPT-2-small-size causal LM (12 layers, hidden 768, 12 heads) with
random weights and a byte-level BPE tokenizer trained here (no hub is reachable), over N real
BOLD prompts, it prints prompts/s of

* the engine, ``debiaslab.generation.generate`` (left-padded batches, per-row seeded
  sampling through a logits processor), and
* a plain loop: ``model.generate(do_sample=True, top_p=0.9)`` on one prompt at a time, as a
  notebook without batching does,

and their ratio, in one run on the same machine. With random weights a continuation can end
early on the EOS token; both sides are held to exactly ``max_new_tokens`` new tokens
(``min_new_tokens`` set equal) so they do the same work.

``--model <preset or folder>`` (e.g. ``smollm2-135m-instruct``, loaded offline) times that
causal LM instead of the random GPT-2, on the same BOLD prompts and settings.

Usage: ``python benchmarks/generation_speed.py [--model M] [--prompts 64] [--batch-size 32]
[--device D]``
(``DEBIASLAB_DATA_DIR`` or ``--data`` locates ``bold/prompts/gender_prompt.json``).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from debiaslab.data.prompts import load_bold, sample_prompts
from debiaslab.generation import GenerationSettings, generate
from debiaslab.metrics import Metric
from debiaslab.models import from_objects, load_model
from debiaslab.results import write_speed
from debiaslab.tiny.build import build_tokenizer

METRICS = {
    "engine_prompts_per_s": Metric(True, None, "per-second", "prompts continued per second "
                                   "by the batched engine"),
    "plain_prompts_per_s": Metric(None, None, "per-second", "prompts per second of the "
                                  "one-at-a-time loop (the baseline)"),
    "speedup_vs_plain": Metric(True, None, "ratio", "plain loop time / engine time"),
}  # fmt: skip

RANDOM_SMALL = "gpt2-small-random"
SMALL = {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=RANDOM_SMALL, help="gpt2-small-random, or a causal "
                        "LM preset or folder (e.g. smollm2-135m-instruct)")  # fmt: skip
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", help="a BOLD <domain>_prompt.json (default: resolved)")
    parser.add_argument("--output", default=None, help="also write a result file here")
    args = parser.parse_args()

    prompts = load_bold(["gender"] if args.data is None else None, args.data)
    prompts = [p.prompt for p in sample_prompts(prompts, limit=args.prompts // 2, seed=0)]
    prompts = prompts[: args.prompts]
    device = torch.device(args.device)
    if args.model == RANDOM_SMALL:
        tokenizer = build_tokenizer("causal", prompts, vocab_size=8000)
        torch.manual_seed(0)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **SMALL,
        )
        model = GPT2LMHeadModel(config).to(device).eval()
        lm = from_objects(model, tokenizer, name=RANDOM_SMALL)
    else:
        lm = load_model(args.model, device=args.device)
        if lm.family != "causal":
            raise SystemExit(f"{args.model} is a {lm.family} LM; this script times causal LMs")
        model, tokenizer = lm.model, lm.tokenizer
    model.generation_config.min_new_tokens = args.max_new_tokens  # both sides: same work
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, top_p=0.9)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    generate(lm, prompts[:4], settings, progress=False, batch_size=4)  # warm-up
    sync()
    start = time.perf_counter()
    out = generate(lm, prompts, settings, progress=False, batch_size=args.batch_size)
    sync()
    engine = time.perf_counter() - start
    assert all(len(rows) == 1 for rows in out)

    start = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").to(device)
            model.generate(
                **ids,
                do_sample=True,
                top_p=0.9,
                top_k=0,
                temperature=1.0,
                max_new_tokens=args.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                num_return_sequences=1,
            )
    sync()
    plain = time.perf_counter() - start

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model: {args.model}; device: {name} ({torch.get_num_threads()} threads, load "
          f"{load:.2f}); {len(prompts)} BOLD prompts, {args.max_new_tokens} new tokens "
          "each")  # fmt: skip
    print(f"engine (batch {args.batch_size}): {len(prompts) / engine:8.2f} prompts/s")
    print(f"plain one-by-one loop:     {len(prompts) / plain:8.2f} prompts/s")
    print(f"ratio: {plain / engine:.1f}x")
    if args.output:
        measured = {
            "engine_prompts_per_s": len(prompts) / engine,
            "plain_prompts_per_s": len(prompts) / plain,
            "speedup_vs_plain": plain / engine,
        }
        config = {"prompts": len(prompts), "batch_size": args.batch_size,
                  "max_new_tokens": args.max_new_tokens, "model": args.model,
                  "threads": torch.get_num_threads()}  # fmt: skip
        print("result:", write_speed(args.output, "generation", measured, declared=METRICS,
                                     config=config, device=name))  # fmt: skip


if __name__ == "__main__":
    main()
