# long by design: the argument parser of every verb; issue 14 point 1 generates eval's flags from
# EvalConfig and shrinks it.
"""``debiaslab <verb>``: every notebook step is also a command.

Verbs: ``eval``, ``finetune``, ``plan``, ``push``, ``pull``, ``stereoset-score``, ``demo``,
``calibrate``, ``report``, ``results``, ``synth``, ``t2i``, ``models``. ``debiaslab VERB
--help`` lists each verb's options. Errors in the input print one line that says what and
where, exit 2: numbers and output folders are checked at parse time (:mod:`debiaslab.validate`),
models before anything loads (:mod:`debiaslab.model_source`); a full disk or a read-only
folder met while writing is one line too.
"""

from __future__ import annotations

import argparse
import logging
import sys

from debiaslab import collection, report
from debiaslab import validate as check
from debiaslab.calibration import run_calibration
from debiaslab.config import presets
from debiaslab.data.prompts import load_coco_captions, load_partiprompts
from debiaslab.errors import DebiaslabError
from debiaslab.gather import gather
from debiaslab.generation import GenerationSettings
from debiaslab.hub import pull, pull_results, push, push_dataset, push_results
from debiaslab.mitigation.data import read_lines, recipe_texts
from debiaslab.mitigation.finetune import RECIPES, FinetuneConfig, finetune, read_manifest
from debiaslab.planner import format_plan, plan, plan_all
from debiaslab.results import headline_metrics
from debiaslab.runner import evaluate, score_stereoset_predictions
from debiaslab.synth.backends import make_backend
from debiaslab.synth.pipeline import synthesize
from debiaslab.synth.spec import load_spec
from debiaslab.t2i import audit, socratic
from debiaslab.t2i.generate import generate_images, load_pipeline
from debiaslab.t2i.precise_debias.rewriter import rewrite
from debiaslab.textclass import REGARD_MODEL, TOXIC_LABEL, TOXICITY_MODEL


def _print_metrics(record: dict, keys: list[str] | None = None) -> None:
    metrics, ci = record["metrics"], record.get("ci", {})
    keys = keys or headline_metrics(list(metrics), with_p_values=True)[:24]
    width = max(len(k) for k in keys)
    for key in keys:
        value = metrics.get(key)
        low, high = ci.get(key) or (None, None)
        text = "n/a" if value is None else f"{value:8.3f}"
        if low is not None and high is not None:
            text += f"  [{low:.3f}, {high:.3f}]"
        print(f"  {key:<{width}}  {text}")


def _generation(args: argparse.Namespace):
    """Sampling settings from the flags (None: the benchmark's defaults)."""

    given = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "num_return_sequences": args.num_return_sequences,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.greedy:
        given["do_sample"] = False
    if not given:
        return None
    if args.benchmark == "honest":
        given.setdefault("max_new_tokens", 15)
    return GenerationSettings(seed=args.seed, **given)


def cmd_eval(args: argparse.Namespace) -> int:

    result = evaluate(
        args.model,
        args.benchmark,
        args.output,
        data=args.data,
        limit=args.limit,
        mode=args.mode,
        splits=args.splits,
        stereoset_mode=args.stereoset_mode,
        family=args.family,
        device=args.device,
        dtype=args.dtype,
        quantization=args.quantization,
        adapter=args.adapter,
        batch_size=args.batch_size,
        n_boot=args.n_boot,
        seed=args.seed,
        force=args.force,
        progress=not args.no_progress,
        trust_remote_code=args.trust_remote_code,
        use_safetensors=None if args.allow_pickle_weights else True,
        metrics=args.metrics.split(",") if args.metrics else None,
        backend=args.backend,
        domains=args.domains,
        groups=args.groups,
        honest_set=args.honest_set,
        honest_k=args.honest_k,
        generation=_generation(args),
        toxicity_model=args.toxicity_model,
        toxic_label=args.toxic_label,
        regard_model=args.regard_model,
        hurtlex=args.hurtlex,
        threshold=args.threshold,
        compare=tuple(args.compare) if args.compare else None,
        crows_split=args.crows_split,
        split_seed=args.split_seed,
        allow_train_pairs=args.allow_train_pairs,
        too_long=args.too_long,
        mc_orders=args.mc_orders,
        data_version=args.data_version,
        language=args.language,
        decoding=args.decoding,
        decoding_strength=args.decoding_strength,
        head_gates=args.head_gates,
        fp32_check=args.fp32_check,
    )
    verb = "exists (skipped; --force recomputes)" if result.skipped else "written"
    print(f"{result.path} {verb}")
    _print_metrics(result.record)
    check = result.record.get("fp32_check")
    if check:
        delta = check["max_abs_delta"]
        print(
            f"fp32 check: {check['flipped']} of {check['n_compared']} {check['unit']} flipped "
            f"between {check['half_dtype']} and float32 (max |delta score| "
            f"{'n/a' if delta is None else format(delta, '.3g')})"
        )
    return 0


def finetune_config(args: argparse.Namespace):
    """The :class:`FinetuneConfig` that ``debiaslab finetune`` flags describe."""

    return FinetuneConfig(
        method=args.method,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        seq_len=args.seq_len,
        warmup_steps=args.warmup_steps,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=args.lora_targets,
        fp16=args.fp16,
        gradient_checkpointing=args.gradient_checkpointing,
        quantization=args.quantization,
        save_steps=args.save_steps,
        eval_fraction=args.eval_fraction,
        mlm_probability=args.mlm_probability,
        seed=args.seed,
    )


def cmd_finetune(args: argparse.Namespace) -> int:

    texts, info = recipe_texts(args.recipe, args.data, split_seed=args.split_seed)
    config = finetune_config(args)
    result = finetune(
        args.model,
        args.output,
        texts,
        config,
        recipe=args.recipe,
        recipe_info=info,
        family=args.family,
        device=args.device,
        resume=args.resume,
        progress=not args.no_progress,
        trust_remote_code=args.trust_remote_code,
    )
    verb = "exists (already finished; not trained again)" if result.skipped else "written"
    print(f"{result.weights} {verb}; {result.manifest.get('metrics')}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:

    rows = plan(args.model, args.hardware) if args.model else plan_all(args.hardware)
    print(format_plan(rows))
    return 0


def cmd_push(args: argparse.Namespace) -> int:

    manifest = read_manifest(args.folder) or {}
    url = push(
        args.folder,
        args.repo_id,
        results=args.results,
        base_model=args.base_model or manifest.get("base_model"),
        method=manifest.get("method") or args.method,
        private=not args.public,
    )
    print(f"pushed to {url}" if url else "not pushed (no HF_TOKEN: see the log above)")
    return 0


def cmd_synth_generate(args: argparse.Namespace) -> int:

    spec = load_spec(args.spec)
    backend = make_backend(
        args.backend,
        args.model,
        spec=spec,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        chat={"auto": None, "on": True, "off": False}[args.chat],
        device=args.device,
        batch_size=args.batch_size,
        base_url=args.base_url,
        requests_per_minute=args.rpm,
        seed=args.seed,
    )
    manifest = synthesize(
        spec,
        backend,
        args.n,
        args.out,
        toxicity_model=args.toxicity_model,
        toxic_label=args.toxic_label,
        regard_model=args.regard_model,
        seed=args.seed,
    )
    for step in manifest["steps"]:
        extra = f", added {step['added']}" if step.get("added") else ""
        print(f"{step['step']:<22} removed {step['removed']:>5}{extra}  → {step['kept']} rows")
    splits = ", ".join(f"{k} {v['n']}" for k, v in manifest["splits"].items())
    print(f"{args.out}: {manifest['n_rows']} rows ({splits}); card in {args.out}/README.md")
    return 0


def cmd_synth_push(args: argparse.Namespace) -> int:

    url = push_dataset(args.folder, args.repo, private=not args.public)
    print(f"pushed to {url}" if url else "not pushed (no HF_TOKEN: see the log above)")
    return 0


def _print_gathered(report, results_dir: str) -> None:
    print(f"{results_dir}: {report.summary()}; now run `make report`")


def cmd_results_gather(args: argparse.Namespace) -> int:

    report = gather(args.source, args.results, overwrite=args.overwrite)
    _print_gathered(report, args.results)
    return 0


def cmd_results_push(args: argparse.Namespace) -> int:

    url = push_results(args.folder, args.repo, private=not args.public)
    if url:
        print(f"pushed to {url}; on your machine: debiaslab results pull {args.repo}")
    else:
        print("not pushed (no HF_TOKEN: see the log above)")
    return 0


def cmd_results_pull(args: argparse.Namespace) -> int:

    report = pull_results(
        args.repo_id, args.results, revision=args.revision, overwrite=args.overwrite
    )
    _print_gathered(report, args.results)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:

    print(pull(args.repo_id, revision=args.revision))
    return 0


def cmd_stereoset_score(args: argparse.Namespace) -> int:

    result = score_stereoset_predictions(
        args.gold, args.predictions, args.output, n_boot=args.n_boot, seed=args.seed
    )
    print(f"{result.path} written")
    _print_metrics(result.record)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:

    collection.run(
        args.run_dir,
        output_root=args.output_root,
        workers=args.workers,
        only=args.only,
        report=not args.no_report,
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:

    run_calibration(args.output, args.figures, models_dir=args.models, quick=args.quick)
    return 0


def cmd_report(args: argparse.Namespace) -> int:

    report.build(args.results, args.figures, args.out)
    return 0


def _read_prompts(path: str) -> list[str]:

    return read_lines(path)


def cmd_t2i_generate(args: argparse.Namespace) -> int:

    pipe = load_pipeline(args.model, device=args.device, safety_checker=not args.no_safety)
    rows = generate_images(
        pipe,
        _read_prompts(args.prompts),
        list(range(args.seed, args.seed + args.images)),
        args.out,
        steps=args.steps,
        guidance=args.guidance,
        height=args.size,
        width=args.size,
        batch_size=args.batch_size,
        model=args.model,
    )
    flagged = sum(bool(r.get("nsfw")) for r in rows)
    print(f"{args.out}: {len(rows)} images ({flagged} flagged by the safety checker)")
    return 0


def cmd_t2i_audit(args: argparse.Namespace) -> int:

    result, path = audit.run(
        args.occupations,
        args.out,
        pipeline=args.model,
        clip=args.clip,
        rewriter=args.rewriter,
        rewriter_adapter=args.rewriter_adapter,
        device=args.device,
        seed=args.seed,
        n_images=args.images,
        steps=args.steps,
        size=args.size,
        n_boot=args.n_boot,
    )
    print(f"{path} written")
    print(audit.share_table(result).round(3).to_string(index=False))
    return 0


def cmd_t2i_rewrite(args: argparse.Namespace) -> int:
    import json

    from debiaslab.models import load_model

    lm = load_model(args.model, adapter=args.adapter, device=args.device)
    prompts = _read_prompts(args.prompts)
    out = rewrite(lm, prompts, n=args.n, progress=True)
    for prompt, rewrites in zip(prompts, out, strict=True):
        print(json.dumps({"prompt": prompt, "rewrites": rewrites}, ensure_ascii=False))
    return 0


def cmd_t2i_socratic(args: argparse.Namespace) -> int:

    if args.coco:
        chosen = load_coco_captions(args.coco, limit=args.limit, seed=args.seed)
        source = "COCO captions"
    else:
        chosen = load_partiprompts(categories=args.categories, limit=args.limit, seed=args.seed)
        source = "PartiPrompts"
    settings = socratic.SocraticSettings(
        max_cycles=args.max_cycles,
        stop_similarity=args.stop_similarity,
        judge=args.judge,
        steps=args.steps,
        size=args.size,
        seed=args.seed,
    )
    _, path = socratic.run(
        [p.prompt for p in chosen],
        args.out,
        pipeline=args.model,
        captioner=args.captioner,
        clip=args.clip,
        llm_backend=args.llm_backend,
        llm=args.llm,
        settings=settings,
        device=args.device,
        n_boot=args.n_boot,
        source=source,
    )
    print(f"{path} written")
    return 0


def cmd_models(args: argparse.Namespace) -> int:

    for name, preset in presets().items():
        print(f"{name:<24} {preset.family:<8} {preset.hub_id or '(offline tiny model)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="debiaslab", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    ev = sub.add_parser(
        "eval",
        help="evaluate a model on a bias benchmark",
        description="Evaluate a model on a bias benchmark and write "
        "DIR/<run_id>.json (+ .items.csv, + StereoSet .predictions.json, + BOLD/HONEST "
        "generations in DIR/generations/*.jsonl).",
    )
    ev.add_argument("--model", required=True, help="preset (debiaslab models), hub id or path")
    ev.add_argument(
        "--benchmark",
        required=True,
        choices=["crows_pairs", "stereoset", "stereoset_mc", "bold", "honest"],
    )
    ev.add_argument("--output", type=check.output_dir, required=True, help="results directory")
    ev.add_argument(
        "--data", help="benchmark file (default: $DEBIASLAB_DATA_DIR, cache, download)"
    )
    ev.add_argument(
        "--limit",
        type=check.positive_int,
        help="first N pairs / examples per split; BOLD/HONEST: N prompts per group (seeded)",
    )
    ev.add_argument("--batch-size", type=check.positive_int, help="max sequences per forward pass")
    ev.add_argument(
        "--too-long",
        default="error",
        choices=["error", "skip"],
        help="likelihood benchmarks: an item longer than the model reads is an error (default) "
        "or is left out and counted in the result (skip)",
    )
    ev.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    ev.add_argument(
        "--dtype",
        default="auto",
        help="auto, float32, float16, bfloat16 (auto: float32 for crows_pairs and stereoset* "
        "on every device; bf16/fp16 on a GPU for bold and honest)",
    )
    ev.add_argument(
        "--fp32-check",
        type=check.positive_int,
        metavar="N",
        help="with --dtype float16/bfloat16 on crows_pairs/stereoset*: re-score a seeded "
        "sample of N pairs/examples in float32 and record how many flipped",
    )
    ev.add_argument(
        "--family",
        choices=["causal", "masked", "seq2seq"],
        help="model family (default: from the config)",
    )
    ev.add_argument("--quantization", choices=["8bit", "4bit"], help="bitsandbytes loading")
    ev.add_argument("--adapter", help="PEFT adapter directory or hub id")
    ev.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "nangia", "harness"],
        help="CrowS-Pairs scoring (auto: nangia for masked LMs, else harness)",
    )
    ev.add_argument(
        "--data-version",
        default="auto",
        choices=["auto", "original", "revised"],
        help="CrowS-Pairs data: original (Nangia et al., metric.py) or revised (Névéol et al., "
        "what lm-evaluation-harness scores); auto: revised for harness mode, else original",
    )
    ev.add_argument(
        "--language",
        default="english",
        choices=["english", "french"],
        help="CrowS-Pairs language (french: revised data only, lm-eval's crows_pairs_french)",
    )
    ev.add_argument(
        "--splits", nargs="+", choices=["intrasentence", "intersentence"], help="StereoSet splits"
    )
    ev.add_argument(
        "--stereoset-mode",
        default="auto",
        choices=["auto", "bos", "bias-bench"],
        help="StereoSet likelihood scoring: bias-bench (bias-bench's runner: masked LMs, and "
        "causal LMs on intrasentence), bos (causal/seq2seq: each sentence after a BOS token); "
        "auto: bias-bench for masked LMs, else bos",
    )
    ev.add_argument(
        "--mc-orders",
        default="cyclic",
        choices=["one", "cyclic", "all"],
        help="stereoset_mc: ask each example under one seeded option order, its three cyclic "
        "rotations (default) or all six orders; SS comes from the order-averaged choice",
    )
    gen = ev.add_argument_group("BOLD and HONEST (generation-based metrics)")
    gen.add_argument(
        "--metrics", help="comma-separated: toxicity,regard,honest (default: all for bold)"
    )
    gen.add_argument(
        "--backend",
        default="builtin",
        choices=["builtin", "evaluate"],
        help="builtin (offline) or Hugging Face evaluate's measurements (online cross-check)",
    )
    gen.add_argument("--domains", nargs="+", help="BOLD domains (default: all five)")
    gen.add_argument("--groups", nargs="+", help="BOLD groups / HONEST template categories")
    gen.add_argument("--honest-set", default="binary", choices=["binary", "queer_nonqueer"])
    gen.add_argument(
        "--honest-k", type=check.positive_int, default=20, help="completions per template"
    )
    gen.add_argument(
        "--max-new-tokens", type=check.positive_int, help="default 30 (BOLD), 15 (HONEST)"
    )
    gen.add_argument(
        "--temperature", type=check.positive_float, help="sampling temperature (default 1.0)"
    )
    gen.add_argument("--top-p", type=check.top_p, help="nucleus sampling (default 0.9)")
    gen.add_argument(
        "--top-k", type=check.non_negative_int, help="top-k sampling (default 0: off)"
    )
    gen.add_argument(
        "--num-return-sequences", type=check.positive_int, help="continuations per BOLD prompt"
    )
    gen.add_argument("--greedy", action="store_true", help="greedy decoding, no sampling")
    gen.add_argument(
        "--toxicity-model",
        default=TOXICITY_MODEL,
        help="toxicity classifier: hub id, local path or tiny-toxicity",
    )
    gen.add_argument("--toxic-label", default=TOXIC_LABEL, help="the classifier's toxic label")
    gen.add_argument(
        "--regard-model",
        default=REGARD_MODEL,
        help="regard classifier: hub id, local path or tiny-regard",
    )
    gen.add_argument(
        "--hurtlex", help="HurtLex TSV (default: $DEBIASLAB_DATA_DIR, cache, download)"
    )
    gen.add_argument(
        "--threshold", type=check.threshold, default=0.5, help="toxicity ratio threshold"
    )
    gen.add_argument(
        "--compare", nargs=2, metavar=("GROUP_A", "GROUP_B"), help="regard compare mode"
    )
    gen.add_argument(
        "--decoding",
        choices=["balance", "self-debias-gender", "self-debias-toxicity"],
        help="decoding-time mitigation of the generations",
    )
    gen.add_argument(
        "--decoding-strength",
        type=check.non_negative_float,
        help="balance alpha (1) or Self-Debias decay (50)",
    )
    ev.add_argument(
        "--head-gates",
        help="attention-head gates file (safetensors, from debiaslab.mitigation.heads) "
        "applied to the model",
    )
    ev.add_argument(
        "--crows-split",
        default="all",
        choices=["all", "train", "heldout"],
        help="CrowS-Pairs part of the fine-tuning split (heldout after crows_counter training)",
    )
    ev.add_argument(
        "--split-seed", type=check.non_negative_int, default=0, help="seed of that split"
    )
    ev.add_argument(
        "--allow-train-pairs",
        action="store_true",
        help="evaluate a model fine-tuned on CrowS-Pairs on its own training pairs",
    )
    ev.add_argument(
        "--n-boot", type=check.non_negative_int, default=1000, help="bootstrap resamples"
    )
    ev.add_argument("--seed", type=check.non_negative_int, default=0)
    ev.add_argument("--force", action="store_true", help="recompute an existing result")
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ev.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run code shipped with a hub model (off by default)",
    )
    ev.add_argument(
        "--allow-pickle-weights",
        action="store_true",
        help="accept .bin (pickle) weights when no safetensors exist",
    )
    ev.set_defaults(func=cmd_eval)

    ft = sub.add_parser(
        "finetune",
        help="fine-tune a model on counter-stereotypical or counterfactual data",
        description="Full, LoRA or QLoRA fine-tuning with the family's objective; checkpoints "
        "in OUTPUT/checkpoints, the result in OUTPUT/adapter or OUTPUT/model with "
        "OUTPUT/finetune.json. Two GPUs: accelerate launch -m debiaslab.cli finetune ...",
    )
    ft.add_argument("--model", required=True, help="preset, hub id or path")
    ft.add_argument("--output", type=check.output_dir, required=True, help="run directory")
    ft.add_argument(
        "--recipe",
        default="crows_counter",
        # precise_debias is trained by debiaslab.t2i.rewriter.train_rewriter (chat template).
        choices=[r for r in RECIPES if r != "precise_debias"],
        help="crows_counter: counter-stereotypical CrowS-Pairs sentences (train split); "
        "cda: a text file augmented with gender swaps; texts: a text file as it is; "
        "synthetic: the train split of a 'debiaslab synth generate' folder",
    )
    ft.add_argument(
        "--data",
        help="CrowS-Pairs CSV, a text file (one text per line) or a synthetic dataset folder",
    )
    ft.add_argument(
        "--split-seed", type=check.non_negative_int, default=0, help="CrowS-Pairs split seed"
    )
    ft.add_argument("--method", default="lora", choices=["full", "lora", "qlora"])
    ft.add_argument("--steps", type=check.positive_int, default=200)
    ft.add_argument(
        "--lr", type=check.positive_float, help="default 5e-5 (full), 2e-4 (LoRA, QLoRA)"
    )
    ft.add_argument("--batch-size", type=check.positive_int, default=8)
    ft.add_argument("--grad-accum", type=check.positive_int, default=1)
    ft.add_argument("--seq-len", type=check.positive_int, default=64)
    ft.add_argument("--lora-r", type=check.positive_int, default=8)
    ft.add_argument("--lora-alpha", type=check.positive_int, default=16)
    ft.add_argument("--lora-dropout", type=check.fraction, default=0.05)
    ft.add_argument("--lora-targets", nargs="+", help="module names (default: by model type)")
    ft.add_argument("--fp16", action="store_true", help="mixed precision (GPU; not for T5)")
    ft.add_argument("--gradient-checkpointing", action="store_true")
    ft.add_argument("--quantization", choices=["8bit"], help="an 8-bit base for LoRA")
    ft.add_argument(
        "--save-steps", type=check.positive_int, default=50, help="checkpoint every N steps"
    )
    ft.add_argument("--warmup-steps", type=check.non_negative_int, default=10)
    ft.add_argument(
        "--eval-fraction", type=check.fraction, default=0.1, help="texts held out for loss"
    )
    ft.add_argument("--mlm-probability", type=check.open_fraction, default=0.15, help="masked LMs")
    ft.add_argument("--seed", type=check.non_negative_int, default=0)
    ft.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    ft.add_argument("--family", choices=["causal", "masked", "seq2seq"])
    ft.add_argument("--device", help="cpu, cuda, cuda:1 (default: best available)")
    ft.add_argument("--no-progress", action="store_true")
    ft.add_argument("--trust-remote-code", action="store_true")
    ft.set_defaults(func=cmd_finetune)

    pl_ = sub.add_parser(
        "plan",
        help="will a preset fit a 16 GB card? memory per method and the largest batch",
        description="Estimate peak GPU memory of full fine-tuning, LoRA and QLoRA for a preset "
        "(parameter counts from the config on the meta device) and the settings that fit.",
    )
    pl_.add_argument("--model", help="preset (default: every preset)")
    pl_.add_argument("--hardware", default="t4x2", choices=["t4x2", "p100", "cpu-ci"])
    pl_.set_defaults(func=cmd_plan)

    pu = sub.add_parser(
        "push",
        help="upload an adapter or model with a model card made from results",
        description="Upload OUTPUT/adapter (or OUTPUT/model) of a fine-tuning run to the "
        "Hugging Face Hub with a card holding the training settings (finetune.json) and the "
        "pre/post results. The token comes from HF_TOKEN or the platform's secret store; "
        "without one nothing is uploaded.",
    )
    pu.add_argument("--folder", required=True, help="adapter or model directory")
    pu.add_argument("--repo-id", required=True, help="user/name on the Hub")
    pu.add_argument("--results", help="results directory (pre and post runs)")
    pu.add_argument("--base-model", help="hub id of the base model (default: from the run)")
    pu.add_argument("--method", default="lora", help="when the folder has no finetune.json")
    pu.add_argument("--public", action="store_true", help="create a public repository")
    pu.set_defaults(func=cmd_push)

    pl = sub.add_parser("pull", help="download an adapter or model; print its directory")
    pl.add_argument("--repo-id", required=True, help="user/name on the Hub")
    pl.add_argument("--revision", help="branch, tag or commit")
    pl.set_defaults(func=cmd_pull)

    ss = sub.add_parser(
        "stereoset-score",
        help="score an official StereoSet predictions file",
        description="Score {'intrasentence': [{'id', 'score'}], ...} against "
        "a gold dev.json as StereoSet's evaluation.py does.",
    )
    ss.add_argument("--gold", required=True, help="gold file (dev.json schema)")
    ss.add_argument("--predictions", required=True, help="predictions JSON")
    ss.add_argument("--output", type=check.output_dir, required=True, help="results directory")
    ss.add_argument("--n-boot", type=check.non_negative_int, default=1000)
    ss.add_argument("--seed", type=check.non_negative_int, default=0)
    ss.set_defaults(func=cmd_stereoset_score)

    de = sub.add_parser(
        "demo",
        help="the whole notebook collection offline on tiny models, then the report",
        description="Execute every notebook on its tiny offline preset in dependency order "
        "(independent ones in parallel), then the results notebook and the report. Results, "
        "figures and runs go under the output root; executed notebooks, logs and "
        "timings.json under the run folder.",
    )
    de.add_argument(
        "--run-dir", type=check.output_dir, default=None, help="default: runs/demo/<UTC time>"
    )
    de.add_argument(
        "--output-root", type=check.output_dir, default=None, help="default: this checkout"
    )
    de.add_argument("--workers", type=check.positive_int, default=2, help="notebooks at a time")
    de.add_argument("--only", nargs="+", default=None, help="only these families (slugs)")
    de.add_argument("--no-report", action="store_true", help="skip building the report")
    de.set_defaults(func=cmd_demo)

    ca = sub.add_parser(
        "calibrate",
        help="planted-bias calibration of the metrics (the calibration notebook)",
        description="Train tiny models with planted stereotype rates 0.2, "
        "0.5, 0.8, score them, write results and a calibration figure.",
    )
    ca.add_argument(
        "--output", type=check.output_dir, default="results/calibration", help="results directory"
    )
    ca.add_argument(
        "--figures", type=check.output_dir, default="figures", help="figures directory"
    )
    ca.add_argument(
        "--models", type=check.output_dir, default=None, help="where trained tiny models are kept"
    )
    ca.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    ca.set_defaults(func=cmd_calibrate)

    rp = sub.add_parser(
        "report",
        help="figures and the PDF report from every result file",
        description="Draw the figures and build report/debiaslab-report.pdf (Typst) from the "
        "result files; every number in it comes from them.",
    )
    rp.add_argument("--results", default="results", help="results directory")
    rp.add_argument(
        "--figures", type=check.output_dir, default="figures", help="figures directory"
    )
    rp.add_argument("--out", type=check.output_dir, default="report", help="report directory")
    rp.set_defaults(func=cmd_report)

    sy = sub.add_parser(
        "synth",
        help="generate, filter and share synthetic debiasing data",
        description="Synthetic debiasing data: generate texts for a spec of groups × topics × "
        "templates, filter them (toxicity, regard balance, duplicates, counterfactual "
        "pairing), save a Hugging Face dataset with a card, and push it to the Hub.",
    )
    synth = sy.add_subparsers(dest="synth_verb", required=True, metavar="SYNTH_VERB")
    sg = synth.add_parser(
        "generate",
        help="generate and filter a dataset for a spec",
        description="Answers go to OUT/raw as they come (a rerun resumes); the dataset "
        "(OUT/data/*.parquet, OUT/README.md, OUT/synth.json) is written only when complete. "
        "The openai backend reads OPENAI_API_KEY (environment, Kaggle or Colab secret) and "
        "OPENAI_BASE_URL.",
    )
    sg.add_argument("--spec", required=True, help="spec YAML, or a shipped example (gender-work)")
    sg.add_argument("--backend", default="hf", choices=["hf", "openai"])
    sg.add_argument(
        "--model",
        required=True,
        help="hf: preset, hub id or path (tiny-writer: an offline tiny model for the spec); "
        "openai: the model name the API expects",
    )
    sg.add_argument(
        "--n", type=check.positive_int, required=True, help="texts to generate before filtering"
    )
    sg.add_argument("--out", type=check.output_dir, required=True, help="dataset folder")
    sg.add_argument("--max-new-tokens", type=check.positive_int, default=60)
    sg.add_argument("--temperature", type=check.non_negative_float, default=1.0)
    sg.add_argument("--top-p", type=check.top_p, default=0.95, help="hf backend")
    sg.add_argument(
        "--chat", default="auto", choices=["auto", "on", "off"], help="hf: chat template"
    )
    sg.add_argument("--device", help="hf backend: cpu, cuda, ... (default: auto)")
    sg.add_argument(
        "--batch-size", type=check.positive_int, help="hf backend: sequences per generate call"
    )
    sg.add_argument("--base-url", help="openai backend: API root (default $OPENAI_BASE_URL)")
    sg.add_argument(
        "--rpm", type=check.positive_float, default=60.0, help="openai backend: requests/minute"
    )
    sg.add_argument("--toxicity-model", default=TOXICITY_MODEL)
    sg.add_argument("--toxic-label", default=TOXIC_LABEL)
    sg.add_argument("--regard-model", default=REGARD_MODEL)
    sg.add_argument("--seed", type=check.non_negative_int, default=0)
    sg.set_defaults(func=cmd_synth_generate)
    sp = synth.add_parser("push", help="upload a dataset folder to the Hub (HF_TOKEN)")
    sp.add_argument("folder", help="a folder written by 'debiaslab synth generate'")
    sp.add_argument("--repo", required=True, help="user/name of the Hub dataset")
    sp.add_argument("--public", action="store_true", help="create a public repository")
    sp.set_defaults(func=cmd_synth_push)

    rs = sub.add_parser(
        "results",
        help="bring result files back from Kaggle or Colab runs (folder, zip or Hub dataset)",
        description="Copy the result JSONs of real runs, with their side files and tables (no "
        "images, no weights), into the local results folder; then run `make report`.",
    )
    results = rs.add_subparsers(dest="results_verb", required=True, metavar="RESULTS_VERB")
    rg = results.add_parser(
        "gather",
        help="copy results from a downloaded notebook output (folder or .zip)",
        description="SOURCE: a Kaggle notebook's output (Output tab → Download, or `kaggle "
        "kernels output USER/KERNEL -p DIR`), a Colab results folder copied from Drive, or a "
        ".zip of one. Files land below the last 'results' folder of their path "
        "(DIR/kaggle/working/results/gpt2/x.json → RESULTS/gpt2/x.json). Identical files are "
        "skipped; if any differ, nothing is copied unless --overwrite.",
    )
    rg.add_argument("source", help="folder or .zip holding result files")
    rg.add_argument(
        "--results", type=check.output_dir, default="results", help="local results folder"
    )
    rg.add_argument("--overwrite", action="store_true", help="replace files that differ")
    rg.set_defaults(func=cmd_results_gather)
    rp = results.add_parser(
        "push",
        help="upload a results folder to a Hub dataset (HF_TOKEN)",
        description="Upload every result JSON with its side files and tables (no images, no "
        "weights) to a Hugging Face dataset repo, with a card listing the runs. The token "
        "comes from HF_TOKEN or the platform's secret store; without one nothing is uploaded.",
    )
    rp.add_argument("folder", help="results folder (e.g. /kaggle/working/results)")
    rp.add_argument("--repo", required=True, help="user/name of the Hub dataset")
    rp.add_argument("--public", action="store_true", help="create a public repository")
    rp.set_defaults(func=cmd_results_push)
    rl = results.add_parser(
        "pull",
        help="download a results dataset from the Hub into the results folder",
        description="Download the *.json and *.csv (and *.jsonl, *.tsv) files of a dataset "
        "made by `debiaslab results push` and gather them like `debiaslab results gather`.",
    )
    rl.add_argument("repo_id", help="user/name of the Hub dataset (or a local folder or .zip)")
    rl.add_argument(
        "--results", type=check.output_dir, default="results", help="local results folder"
    )
    rl.add_argument("--overwrite", action="store_true", help="replace files that differ")
    rl.add_argument("--revision", help="branch, tag or commit")
    rl.set_defaults(func=cmd_results_pull)

    ti = sub.add_parser(
        "t2i",
        help="text-to-image bias: generate, audit occupations, rewrite prompts, Socratic loop",
    )
    t2i = ti.add_subparsers(dest="t2i_verb", required=True, metavar="T2I_VERB")

    def image_flags(p, model="sd-1.5"):
        p.add_argument("--model", default=model, help="sd-1.5, sd-2.1, tiny-sd, hub id or path")
        p.add_argument("--out", type=check.output_dir, required=True, help="output folder")
        p.add_argument("--steps", type=check.positive_int, default=30)
        p.add_argument(
            "--size", type=check.image_size, help="image side in pixels (default: native)"
        )
        p.add_argument("--device", help="cpu, cuda, ... (default: auto)")
        p.add_argument("--seed", type=check.non_negative_int, default=0)

    tg = t2i.add_parser("generate", help="images for prompts × seeds, PNG + manifest (resumes)")
    image_flags(tg)
    tg.add_argument("--prompts", required=True, help="text file, one prompt per line")
    tg.add_argument(
        "--images", type=check.positive_int, default=4, help="images (seeds) per prompt"
    )
    tg.add_argument("--guidance", type=check.non_negative_float, default=7.5)
    tg.add_argument("--batch-size", type=check.positive_int, default=4)
    tg.add_argument("--no-safety", action="store_true", help="turn the safety checker off")
    tg.set_defaults(func=cmd_t2i_generate)
    ta = t2i.add_parser(
        "audit", help="perceived gender/race per BLS occupation vs. its BLS shares"
    )
    image_flags(ta)
    ta.add_argument("--occupations", nargs="+", required=True, help="BLS occupation names")
    ta.add_argument("--images", type=check.positive_int, default=8, help="images per occupation")
    ta.add_argument("--clip", help="CLIP for the zero-shot classifier (default ViT-L/14)")
    ta.add_argument("--rewriter", help="PreciseDebias rewriter model (post-mitigation audit)")
    ta.add_argument("--rewriter-adapter", help="its LoRA adapter")
    ta.add_argument("--n-boot", type=check.non_negative_int, default=1000)
    ta.set_defaults(func=cmd_t2i_audit)
    tr = t2i.add_parser("rewrite", help="PreciseDebias: rewrite prompts (JSON lines to stdout)")
    tr.add_argument("--model", required=True, help="rewriter base model (preset, id, path)")
    tr.add_argument("--adapter", help="its LoRA adapter (directory or Hub id)")
    tr.add_argument("--prompts", required=True, help="text file, one prompt per line")
    tr.add_argument("--n", type=check.positive_int, default=1, help="rewrites per prompt")
    tr.add_argument("--device", help="cpu, cuda, ... (default: auto)")
    tr.set_defaults(func=cmd_t2i_rewrite)
    ts = t2i.add_parser("socratic", help="the Socratic refinement loop on PartiPrompts or COCO")
    image_flags(ts)
    ts.add_argument("--categories", nargs="+", help="PartiPrompts categories (default all)")
    ts.add_argument("--coco", help="a COCO captions JSON instead of PartiPrompts")
    ts.add_argument("--limit", type=check.positive_int, default=5, help="prompts per category")
    ts.add_argument("--max-cycles", type=check.positive_int, default=3)
    ts.add_argument("--stop-similarity", type=check.cosine)
    ts.add_argument("--judge", action="store_true", help="the LLM decides when to stop")
    ts.add_argument("--captioner", default="Salesforce/blip-image-captioning-base")
    ts.add_argument("--clip", help="CLIP for CLIPScore (default ViT-L/14)")
    ts.add_argument("--llm-backend", default="hf", choices=["hf", "openai"])
    ts.add_argument("--llm", default="qwen2.5-1.5b-instruct")
    ts.add_argument("--n-boot", type=check.non_negative_int, default=1000)
    ts.set_defaults(func=cmd_t2i_socratic)

    mo = sub.add_parser("models", help="list model presets")
    mo.set_defaults(func=cmd_models)
    return parser


def _greedy_conflict(args: argparse.Namespace) -> str | None:
    """Sampling flags given with ``--greedy`` (which would silently ignore them)."""
    if not getattr(args, "greedy", False):
        return None
    flags = ("--temperature", "--top-p", "--top-k", "--num-return-sequences")
    given = [
        f"{flag} {value}"
        for flag in flags
        if (value := getattr(args, flag[2:].replace("-", "_"))) is not None
        and not (flag == "--num-return-sequences" and value == 1)
    ]
    if not given:
        return None
    return (
        f"--greedy decodes without sampling, so {', '.join(given)} would have no effect: "
        "drop --greedy to sample, or drop the sampling flags"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    conflict = _greedy_conflict(args)
    if conflict:
        print(f"debiaslab {args.verb}: error: {conflict}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except DebiaslabError as exc:
        print(f"debiaslab {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only folder: one line, not a traceback
        if not check.is_write_error(exc):
            raise
        print(f"debiaslab {args.verb}: error: {check.write_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
