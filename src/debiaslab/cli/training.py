"""``debiaslab finetune``, ``plan``, ``push`` and ``pull``: fine-tuning and its models."""

from __future__ import annotations

import argparse

from debiaslab import validate as check
from debiaslab.hub.checkpoints import checkpoint_store
from debiaslab.hub.client import pull, push
from debiaslab.mitigation.data import recipe_texts
from debiaslab.mitigation.finetune import RECIPES, FinetuneConfig, finetune, read_manifest
from debiaslab.planner import format_plan, plan, plan_all


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
        store=checkpoint_store(args.hub_checkpoints) if args.hub_checkpoints else None,
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


def cmd_pull(args: argparse.Namespace) -> int:

    print(pull(args.repo_id, revision=args.revision))
    return 0


def add_commands(sub) -> None:
    """``finetune``, ``plan``, ``push`` and ``pull``."""
    finetune_parser = sub.add_parser(
        "finetune",
        help="fine-tune a model on counter-stereotypical or counterfactual data",
        description="Full, LoRA or QLoRA fine-tuning with the family's objective; checkpoints "
        "in OUTPUT/checkpoints, the result in OUTPUT/adapter or OUTPUT/model with "
        "OUTPUT/finetune.json. Two GPUs: accelerate launch -m debiaslab.cli finetune ...",
    )
    finetune_parser.add_argument("--model", required=True, help="preset, hub id or path")
    finetune_parser.add_argument(
        "--output", type=check.output_dir, required=True, help="run directory"
    )
    finetune_parser.add_argument(
        "--recipe",
        default="crows_counter",
        # precise_debias is trained by t2i.precise_debias.rewriter.train_rewriter (chat template).
        choices=[r for r in RECIPES if r != "precise_debias"],
        help="crows_counter: counter-stereotypical CrowS-Pairs sentences (train split); "
        "cda: a text file augmented with gender swaps; texts: a text file as it is; "
        "synthetic: the train split of a 'debiaslab synth generate' folder",
    )
    finetune_parser.add_argument(
        "--data",
        help="CrowS-Pairs CSV, a text file (one text per line) or a synthetic dataset folder",
    )
    finetune_parser.add_argument(
        "--split-seed", type=check.non_negative_int, default=0, help="CrowS-Pairs split seed"
    )
    finetune_parser.add_argument("--method", default="lora", choices=["full", "lora", "qlora"])
    finetune_parser.add_argument("--steps", type=check.positive_int, default=200)
    finetune_parser.add_argument(
        "--lr", type=check.positive_float, help="default 5e-5 (full), 2e-4 (LoRA, QLoRA)"
    )
    finetune_parser.add_argument("--batch-size", type=check.positive_int, default=8)
    finetune_parser.add_argument("--grad-accum", type=check.positive_int, default=1)
    finetune_parser.add_argument("--seq-len", type=check.positive_int, default=64)
    finetune_parser.add_argument("--lora-r", type=check.positive_int, default=8)
    finetune_parser.add_argument("--lora-alpha", type=check.positive_int, default=16)
    finetune_parser.add_argument("--lora-dropout", type=check.fraction, default=0.05)
    finetune_parser.add_argument(
        "--lora-targets", nargs="+", help="module names (default: by model type)"
    )
    finetune_parser.add_argument(
        "--fp16", action="store_true", help="mixed precision (GPU; not for T5)"
    )
    finetune_parser.add_argument("--gradient-checkpointing", action="store_true")
    finetune_parser.add_argument("--quantization", choices=["8bit"], help="an 8-bit base for LoRA")
    finetune_parser.add_argument(
        "--save-steps", type=check.positive_int, default=50, help="checkpoint every N steps"
    )
    finetune_parser.add_argument("--warmup-steps", type=check.non_negative_int, default=10)
    finetune_parser.add_argument(
        "--eval-fraction", type=check.fraction, default=0.1, help="texts held out for loss"
    )
    finetune_parser.add_argument(
        "--mlm-probability", type=check.open_fraction, default=0.15, help="masked LMs"
    )
    finetune_parser.add_argument("--seed", type=check.non_negative_int, default=0)
    finetune_parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint"
    )
    finetune_parser.add_argument("--family", choices=["causal", "masked", "seq2seq"])
    finetune_parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: best available)")
    finetune_parser.add_argument("--no-progress", action="store_true")
    finetune_parser.add_argument("--trust-remote-code", action="store_true")
    finetune_parser.add_argument(
        "--hub-checkpoints",
        metavar="REPO",
        help="push each checkpoint to this Hub repo as it is saved, and resume from its last "
        "one when the output folder has none (HF_TOKEN)",
    )
    finetune_parser.set_defaults(func=cmd_finetune)

    plan_parser = sub.add_parser(
        "plan",
        help="will a preset fit a 16 GB card? memory per method and the largest batch",
        description="Estimate peak GPU memory of full fine-tuning, LoRA and QLoRA for a preset "
        "(parameter counts from the config on the meta device) and the settings that fit.",
    )
    plan_parser.add_argument("--model", help="preset (default: every preset)")
    plan_parser.add_argument("--hardware", default="t4x2", choices=["t4x2", "p100", "cpu-ci"])
    plan_parser.set_defaults(func=cmd_plan)

    push_parser = sub.add_parser(
        "push",
        help="upload an adapter or model with a model card made from results",
        description="Upload OUTPUT/adapter (or OUTPUT/model) of a fine-tuning run to the "
        "Hugging Face Hub with a card holding the training settings (finetune.json) and the "
        "pre/post results. The token comes from HF_TOKEN or the platform's secret store; "
        "without one nothing is uploaded.",
    )
    push_parser.add_argument("--folder", required=True, help="adapter or model directory")
    push_parser.add_argument("--repo-id", required=True, help="user/name on the Hub")
    push_parser.add_argument("--results", help="results directory (pre and post runs)")
    push_parser.add_argument(
        "--base-model", help="hub id of the base model (default: from the run)"
    )
    push_parser.add_argument(
        "--method", default="lora", help="when the folder has no finetune.json"
    )
    push_parser.add_argument("--public", action="store_true", help="create a public repository")
    push_parser.set_defaults(func=cmd_push)

    pull_parser = sub.add_parser("pull", help="download an adapter or model; print its directory")
    pull_parser.add_argument("--repo-id", required=True, help="user/name on the Hub")
    pull_parser.add_argument("--revision", help="branch, tag or commit")
    pull_parser.set_defaults(func=cmd_pull)
