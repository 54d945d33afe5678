"""``debiaslab t2i``: text-to-image generation, occupation audit, prompt rewriting, Socratic
loop."""

from __future__ import annotations

import argparse
import json

from debiaslab import validate as check
from debiaslab.data.prompts import load_coco_captions, load_partiprompts
from debiaslab.mitigation.data import read_lines
from debiaslab.models import load_model
from debiaslab.t2i import audit, socratic
from debiaslab.t2i.generate import generate_images, load_pipeline
from debiaslab.t2i.precise_debias.rewriter import rewrite


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

    result, path = audit.run_audit(
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
    _, path = socratic.run_socratic(
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


def add_commands(sub) -> None:
    """``t2i`` and its verbs."""
    t2i_parser = sub.add_parser(
        "t2i",
        help="text-to-image bias: generate, audit occupations, rewrite prompts, Socratic loop",
    )
    t2i_verbs = t2i_parser.add_subparsers(dest="t2i_verb", required=True, metavar="T2I_VERB")

    def image_flags(p, model="sd-1.5"):
        p.add_argument("--model", default=model, help="sd-1.5, sd-2.1, tiny-sd, hub id or path")
        p.add_argument("--out", type=check.output_dir, required=True, help="output folder")
        p.add_argument("--steps", type=check.positive_int, default=30)
        p.add_argument(
            "--size", type=check.image_size, help="image side in pixels (default: native)"
        )
        p.add_argument("--device", help="cpu, cuda, ... (default: auto)")
        p.add_argument("--seed", type=check.non_negative_int, default=0)

    generate_parser = t2i_verbs.add_parser(
        "generate", help="images for prompts × seeds, PNG + manifest (resumes)"
    )
    image_flags(generate_parser)
    generate_parser.add_argument("--prompts", required=True, help="text file, one prompt per line")
    generate_parser.add_argument(
        "--images", type=check.positive_int, default=4, help="images (seeds) per prompt"
    )
    generate_parser.add_argument("--guidance", type=check.non_negative_float, default=7.5)
    generate_parser.add_argument("--batch-size", type=check.positive_int, default=4)
    generate_parser.add_argument(
        "--no-safety", action="store_true", help="turn the safety checker off"
    )
    generate_parser.set_defaults(func=cmd_t2i_generate)
    audit_parser = t2i_verbs.add_parser(
        "audit", help="perceived gender/race per BLS occupation vs. its BLS shares"
    )
    image_flags(audit_parser)
    audit_parser.add_argument(
        "--occupations", nargs="+", required=True, help="BLS occupation names"
    )
    audit_parser.add_argument(
        "--images", type=check.positive_int, default=8, help="images per occupation"
    )
    audit_parser.add_argument(
        "--clip", help="CLIP for the zero-shot classifier (default ViT-L/14)"
    )
    audit_parser.add_argument(
        "--rewriter", help="PreciseDebias rewriter model (post-mitigation audit)"
    )
    audit_parser.add_argument("--rewriter-adapter", help="its LoRA adapter")
    audit_parser.add_argument("--n-boot", type=check.non_negative_int, default=1000)
    audit_parser.set_defaults(func=cmd_t2i_audit)
    rewrite_parser = t2i_verbs.add_parser(
        "rewrite", help="PreciseDebias: rewrite prompts (JSON lines to stdout)"
    )
    rewrite_parser.add_argument(
        "--model", required=True, help="rewriter base model (preset, id, path)"
    )
    rewrite_parser.add_argument("--adapter", help="its LoRA adapter (directory or Hub id)")
    rewrite_parser.add_argument("--prompts", required=True, help="text file, one prompt per line")
    rewrite_parser.add_argument(
        "--n", type=check.positive_int, default=1, help="rewrites per prompt"
    )
    rewrite_parser.add_argument("--device", help="cpu, cuda, ... (default: auto)")
    rewrite_parser.set_defaults(func=cmd_t2i_rewrite)
    socratic_parser = t2i_verbs.add_parser(
        "socratic", help="the Socratic refinement loop on PartiPrompts or COCO"
    )
    image_flags(socratic_parser)
    socratic_parser.add_argument(
        "--categories", nargs="+", help="PartiPrompts categories (default all)"
    )
    socratic_parser.add_argument("--coco", help="a COCO captions JSON instead of PartiPrompts")
    socratic_parser.add_argument(
        "--limit", type=check.positive_int, default=5, help="prompts per category"
    )
    socratic_parser.add_argument("--max-cycles", type=check.positive_int, default=3)
    socratic_parser.add_argument("--stop-similarity", type=check.cosine)
    socratic_parser.add_argument(
        "--judge", action="store_true", help="the LLM decides when to stop"
    )
    socratic_parser.add_argument("--captioner", default="Salesforce/blip-image-captioning-base")
    socratic_parser.add_argument("--clip", help="CLIP for CLIPScore (default ViT-L/14)")
    socratic_parser.add_argument("--llm-backend", default="hf", choices=["hf", "openai"])
    socratic_parser.add_argument("--llm", default="qwen2.5-1.5b-instruct")
    socratic_parser.add_argument("--n-boot", type=check.non_negative_int, default=1000)
    socratic_parser.set_defaults(func=cmd_t2i_socratic)
