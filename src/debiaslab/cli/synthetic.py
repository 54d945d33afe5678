"""``debiaslab synth generate`` and ``synth push``: synthetic debiasing data."""

from __future__ import annotations

import argparse

from debiaslab import validate as check
from debiaslab.hub.client import push_dataset
from debiaslab.synth.backends import make_backend
from debiaslab.synth.pipeline import synthesize
from debiaslab.synth.spec import load_spec
from debiaslab.textclass import REGARD_MODEL, TOXIC_LABEL, TOXICITY_MODEL


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


def add_commands(sub) -> None:
    """``synth`` and its verbs."""
    synth_parser = sub.add_parser(
        "synth",
        help="generate, filter and share synthetic debiasing data",
        description="Synthetic debiasing data: generate texts for a spec of groups × topics × "
        "templates, filter them (toxicity, regard balance, duplicates, counterfactual "
        "pairing), save a Hugging Face dataset with a card, and push it to the Hub.",
    )
    synth_verbs = synth_parser.add_subparsers(
        dest="synth_verb", required=True, metavar="SYNTH_VERB"
    )
    generate_parser = synth_verbs.add_parser(
        "generate",
        help="generate and filter a dataset for a spec",
        description="Answers go to OUT/raw as they come (a rerun resumes); the dataset "
        "(OUT/data/*.parquet, OUT/README.md, OUT/synth.json) is written only when complete. "
        "The openai backend reads OPENAI_API_KEY (environment, Kaggle or Colab secret) and "
        "OPENAI_BASE_URL.",
    )
    generate_parser.add_argument(
        "--spec", required=True, help="spec YAML, or a shipped example (gender-work)"
    )
    generate_parser.add_argument("--backend", default="hf", choices=["hf", "openai"])
    generate_parser.add_argument(
        "--model",
        required=True,
        help="hf: preset, hub id or path (tiny-writer: an offline tiny model for the spec); "
        "openai: the model name the API expects",
    )
    generate_parser.add_argument(
        "--n", type=check.positive_int, required=True, help="texts to generate before filtering"
    )
    generate_parser.add_argument(
        "--out", type=check.output_dir, required=True, help="dataset folder"
    )
    generate_parser.add_argument("--max-new-tokens", type=check.positive_int, default=60)
    generate_parser.add_argument("--temperature", type=check.non_negative_float, default=1.0)
    generate_parser.add_argument("--top-p", type=check.top_p, default=0.95, help="hf backend")
    generate_parser.add_argument(
        "--chat", default="auto", choices=["auto", "on", "off"], help="hf: chat template"
    )
    generate_parser.add_argument("--device", help="hf backend: cpu, cuda, ... (default: auto)")
    generate_parser.add_argument(
        "--batch-size", type=check.positive_int, help="hf backend: sequences per generate call"
    )
    generate_parser.add_argument(
        "--base-url", help="openai backend: API root (default $OPENAI_BASE_URL)"
    )
    generate_parser.add_argument(
        "--rpm", type=check.positive_float, default=60.0, help="openai backend: requests/minute"
    )
    generate_parser.add_argument("--toxicity-model", default=TOXICITY_MODEL)
    generate_parser.add_argument("--toxic-label", default=TOXIC_LABEL)
    generate_parser.add_argument("--regard-model", default=REGARD_MODEL)
    generate_parser.add_argument("--seed", type=check.non_negative_int, default=0)
    generate_parser.set_defaults(func=cmd_synth_generate)
    push_parser = synth_verbs.add_parser(
        "push", help="upload a dataset folder to the Hub (HF_TOKEN)"
    )
    push_parser.add_argument("folder", help="a folder written by 'debiaslab synth generate'")
    push_parser.add_argument("--repo", required=True, help="user/name of the Hub dataset")
    push_parser.add_argument("--public", action="store_true", help="create a public repository")
    push_parser.set_defaults(func=cmd_synth_push)
