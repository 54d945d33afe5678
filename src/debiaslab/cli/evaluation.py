"""``debiaslab eval`` (flags generated from :class:`~debiaslab.evalconfig.EvalConfig`) and
``debiaslab stereoset-score``."""

from __future__ import annotations

import argparse

from debiaslab import validate as check
from debiaslab.benchmarks import registry
from debiaslab.evalconfig import add_arguments, from_args
from debiaslab.results import headline_metrics
from debiaslab.runner import evaluate, score_stereoset_predictions


def _print_metrics(record: dict, keys: list[str] | None = None) -> None:
    metrics, ci = record["metrics"], record.get("ci", {})
    keys = keys or headline_metrics(list(metrics), with_p_values=True)[:24] or list(metrics)[:24]
    if not keys:
        return
    width = max(len(k) for k in keys)
    for key in keys:
        value = metrics.get(key)
        low, high = ci.get(key) or (None, None)
        text = "n/a" if value is None else f"{value:8.3f}"
        if low is not None and high is not None:
            text += f"  [{low:.3f}, {high:.3f}]"
        print(f"  {key:<{width}}  {text}")


def cmd_eval(args: argparse.Namespace) -> int:

    result = evaluate(from_args(args))
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


def cmd_stereoset_score(args: argparse.Namespace) -> int:

    result = score_stereoset_predictions(
        args.gold, args.predictions, args.output, n_boot=args.n_boot, seed=args.seed
    )
    print(f"{result.path} written")
    _print_metrics(result.record)
    return 0


def add_commands(sub) -> None:
    """``eval`` and ``stereoset-score``."""
    eval_parser = sub.add_parser(
        "eval",
        help="evaluate a model on a bias benchmark",
        description="Evaluate a model on a bias benchmark and write "
        "DIR/<run_id>.json (+ .items.csv, + StereoSet .predictions.json, + BOLD/HONEST "
        "generations in DIR/generations/*.jsonl).",
    )
    add_arguments(eval_parser, choices={"benchmark": registry.names()})
    eval_parser.set_defaults(func=cmd_eval)

    score_parser = sub.add_parser(
        "stereoset-score",
        help="score an official StereoSet predictions file",
        description="Score {'intrasentence': [{'id', 'score'}], ...} against "
        "a gold dev.json as StereoSet's evaluation.py does.",
    )
    score_parser.add_argument("--gold", required=True, help="gold file (dev.json schema)")
    score_parser.add_argument("--predictions", required=True, help="predictions JSON")
    score_parser.add_argument(
        "--output", type=check.output_dir, required=True, help="results directory"
    )
    score_parser.add_argument("--n-boot", type=check.non_negative_int, default=1000)
    score_parser.add_argument("--seed", type=check.non_negative_int, default=0)
    score_parser.set_defaults(func=cmd_stereoset_score)
