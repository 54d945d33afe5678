"""``debiaslab demo``, ``track``, ``paper``, ``calibrate``, ``report``, ``results`` and
``models``: the collection run, the real-model track, the paper's run, the calibration study,
the report, results from elsewhere, the presets."""

from __future__ import annotations

import argparse
from pathlib import Path

from debiaslab import collection, report
from debiaslab import validate as check
from debiaslab.calibration import run_calibration
from debiaslab.config import presets
from debiaslab.env import quiet_libraries, repo_root
from debiaslab.gather import gather
from debiaslab.realtrack.config import SIZES, STEPS, track_config
from debiaslab.realtrack.paper import make_paper
from debiaslab.realtrack.run import run_track
from debiaslab.report.findings import format_findings, headline_rows
from debiaslab.results_share import pull_results, push_results


def cmd_demo(args: argparse.Namespace) -> int:

    print(f"[demo] {quiet_libraries()}")
    real = None if args.no_real else collection.real_step("demo")
    summary = collection.run_collection(
        args.run_dir,
        output_root=args.output_root,
        workers=args.workers,
        only=args.only,
        real=real,
        report=not args.no_report,
    )
    results = Path(args.output_root or repo_root()) / "results"
    rows = headline_rows(results)
    print(format_findings([r for r in rows if r.kind != "tiny"]))  # the tiny ones: the report
    print(f"[demo] and {sum(r.kind == 'tiny' for r in rows)} tiny-model pipeline checks")
    built = summary.report or "(not built)"
    print(f"[demo] results: {results}; figures: {results.parent / 'figures'}; report: {built}")
    return 0


def cmd_track(args: argparse.Namespace) -> int:

    print(f"[real] {quiet_libraries()}")
    config = track_config(
        args.size, args.results, args.work, adapter_dir=args.adapter_dir,
        steps=tuple(args.steps) if args.steps else None,
    )  # fmt: skip
    run_track(config)
    return 0


def cmd_paper(args: argparse.Namespace) -> int:

    print(f"[paper] {quiet_libraries()}")
    make_paper(workers=args.workers)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:

    run_calibration(args.output, args.figures, models_dir=args.models, quick=args.quick)
    return 0


def cmd_report(args: argparse.Namespace) -> int:

    report.build(args.results, args.figures, args.out)
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


def cmd_models(args: argparse.Namespace) -> int:

    for name, preset in presets().items():
        print(f"{name:<24} {preset.family:<8} {preset.hub_id or '(offline tiny model)'}")
    return 0


def add_commands(sub) -> None:
    """``demo``, ``calibrate``, ``report``, ``results`` and its verbs, ``models``."""
    demo_parser = sub.add_parser(
        "demo",
        help="the whole notebook collection offline on tiny models, then the report",
        description="Execute every notebook on its tiny offline preset in dependency order "
        "(independent ones in parallel), then the results notebook and the report. Results, "
        "figures and runs go under the output root; executed notebooks, logs and "
        "timings.json under the run folder.",
    )
    demo_parser.add_argument(
        "--run-dir", type=check.output_dir, default=None, help="default: runs/demo/<UTC time>"
    )
    demo_parser.add_argument(
        "--output-root", type=check.output_dir, default=None, help="default: this checkout"
    )
    demo_parser.add_argument(
        "--workers", type=check.positive_int, default=2, help="notebooks at a time"
    )
    demo_parser.add_argument("--only", nargs="+", default=None, help="only these families (slugs)")
    demo_parser.add_argument("--no-report", action="store_true", help="skip building the report")
    demo_parser.add_argument(
        "--no-real", action="store_true", help="skip the real-model slice (SmolLM2-135M-Instruct)"
    )
    demo_parser.set_defaults(func=cmd_demo)

    track_parser = sub.add_parser(
        "track",
        help="SmolLM2-135M-Instruct offline through the language-model cycle (the real track)",
        description="Measure (CrowS-Pairs, StereoSet, BOLD/HONEST), fine-tune (LoRA, CDA) and "
        "re-measure, decoding balance, synthetic data and PreciseDebias rewriting on the one "
        "real model reachable offline; result files into --results.",
    )
    track_parser.add_argument("--size", choices=tuple(SIZES), default="demo")
    track_parser.add_argument("--results", type=check.output_dir, default="results")
    track_parser.add_argument("--work", type=check.output_dir, default="runs/realtrack")
    track_parser.add_argument(
        "--adapter-dir", type=check.output_dir, default=None,
        help="also copy the LoRA adapter and its model card here",
    )  # fmt: skip
    track_parser.add_argument("--steps", nargs="+", choices=STEPS, default=None)
    track_parser.set_defaults(func=cmd_track)

    paper_parser = sub.add_parser(
        "paper",
        help="the paper's experiments (real track at full size, tiny collection) and its PDF",
        description="What `make paper` runs: results into results/paper/, the report into "
        "report/debiaslab-report.pdf, the LoRA adapter into adapters/.",
    )
    paper_parser.add_argument(
        "--workers", type=check.positive_int, default=2, help="steps at a time"
    )
    paper_parser.set_defaults(func=cmd_paper)

    calibrate_parser = sub.add_parser(
        "calibrate",
        help="planted-bias calibration of the metrics (the calibration notebook)",
        description="Train tiny models with planted stereotype rates 0.2, "
        "0.5, 0.8, score them, write results and a calibration figure.",
    )
    calibrate_parser.add_argument(
        "--output", type=check.output_dir, default="results/calibration", help="results directory"
    )
    calibrate_parser.add_argument(
        "--figures", type=check.output_dir, default="figures", help="figures directory"
    )
    calibrate_parser.add_argument(
        "--models", type=check.output_dir, default=None, help="where trained tiny models are kept"
    )
    calibrate_parser.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    calibrate_parser.set_defaults(func=cmd_calibrate)

    report_parser = sub.add_parser(
        "report",
        help="figures and the PDF report from every result file",
        description="Draw the figures and build report/debiaslab-report.pdf (Typst) from the "
        "result files; every number in it comes from them.",
    )
    report_parser.add_argument("--results", default="results", help="results directory")
    report_parser.add_argument(
        "--figures", type=check.output_dir, default="figures", help="figures directory"
    )
    report_parser.add_argument(
        "--out",
        type=check.output_dir,
        default="runs/report",
        help="report directory (the committed paper: report, by make paper)",
    )
    report_parser.set_defaults(func=cmd_report)

    results_parser = sub.add_parser(
        "results",
        help="bring result files back from Kaggle or Colab runs (folder, zip or Hub dataset)",
        description="Copy the result JSONs of real runs, with their side files and tables (no "
        "images, no weights), into the local results folder; then run `make report`.",
    )
    results_verbs = results_parser.add_subparsers(
        dest="results_verb", required=True, metavar="RESULTS_VERB"
    )
    gather_parser = results_verbs.add_parser(
        "gather",
        help="copy results from a downloaded notebook output (folder or .zip)",
        description="SOURCE: a Kaggle notebook's output (Output tab → Download, or `kaggle "
        "kernels output USER/KERNEL -p DIR`), a Colab results folder copied from Drive, or a "
        ".zip of one. Files land below the last 'results' folder of their path "
        "(DIR/kaggle/working/results/gpt2/x.json → RESULTS/gpt2/x.json). Identical files are "
        "skipped; if any differ, nothing is copied unless --overwrite.",
    )
    gather_parser.add_argument("source", help="folder or .zip holding result files")
    gather_parser.add_argument(
        "--results", type=check.output_dir, default="results", help="local results folder"
    )
    gather_parser.add_argument(
        "--overwrite", action="store_true", help="replace files that differ"
    )
    gather_parser.set_defaults(func=cmd_results_gather)
    results_push_parser = results_verbs.add_parser(
        "push",
        help="upload a results folder to a Hub dataset (HF_TOKEN)",
        description="Upload every result JSON with its side files and tables (no images, no "
        "weights) to a Hugging Face dataset repo, with a card listing the runs. The token "
        "comes from HF_TOKEN or the platform's secret store; without one nothing is uploaded.",
    )
    results_push_parser.add_argument(
        "folder", help="results folder (e.g. /kaggle/working/results)"
    )
    results_push_parser.add_argument("--repo", required=True, help="user/name of the Hub dataset")
    results_push_parser.add_argument(
        "--public", action="store_true", help="create a public repository"
    )
    results_push_parser.set_defaults(func=cmd_results_push)
    results_pull_parser = results_verbs.add_parser(
        "pull",
        help="download a results dataset from the Hub into the results folder",
        description="Download the *.json and *.csv (and *.jsonl, *.tsv) files of a dataset "
        "made by `debiaslab results push` and gather them like `debiaslab results gather`.",
    )
    results_pull_parser.add_argument(
        "repo_id", help="user/name of the Hub dataset (or a local folder or .zip)"
    )
    results_pull_parser.add_argument(
        "--results", type=check.output_dir, default="results", help="local results folder"
    )
    results_pull_parser.add_argument(
        "--overwrite", action="store_true", help="replace files that differ"
    )
    results_pull_parser.add_argument("--revision", help="branch, tag or commit")
    results_pull_parser.set_defaults(func=cmd_results_pull)

    models_parser = sub.add_parser("models", help="list model presets")
    models_parser.set_defaults(func=cmd_models)
