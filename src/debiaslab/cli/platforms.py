"""``debiaslab kaggle build`` and ``debiaslab kaggle push`` (:mod:`debiaslab.kaggle_bundle`)."""

from __future__ import annotations

import argparse

from debiaslab import kaggle_bundle
from debiaslab import validate as check


def cmd_kaggle_build(args: argparse.Namespace) -> int:
    kaggle_bundle.build(
        args.user, args.out, private=not args.public, data=not args.no_data, only=args.only
    )
    return 0


def cmd_kaggle_push(args: argparse.Namespace) -> int:
    pushed = kaggle_bundle.push(args.bundle, wait=not args.no_wait, poll=args.poll)
    print(f"[kaggle] {len(pushed)} notebooks pushed; their outputs: kaggle kernels output ID")
    return 0


def add_commands(sub) -> None:
    parser = sub.add_parser(
        "kaggle",
        help="the collection as Kaggle notebooks: build a pushable bundle, push it",
        description="build: a folder with the Kaggle dataset (the wheel and the benchmark "
        "data) and one folder per notebook with its kernel-metadata.json, each notebook "
        "attaching the outputs it reads; push: upload it with the `kaggle` command.",
    )
    verbs = parser.add_subparsers(dest="kaggle_verb", required=True, metavar="KAGGLE_VERB")
    build = verbs.add_parser("build", help="write the bundle")
    build.add_argument("--user", required=True, help="your Kaggle user name")
    build.add_argument("--out", type=check.output_dir, required=True, help="bundle folder")
    build.add_argument("--public", action="store_true", help="public notebooks and dataset")
    build.add_argument("--no-data", action="store_true", help="leave the benchmark files out")
    build.add_argument(
        "--only", nargs="+", metavar="NAME", help="only these benchmarks' data files"
    )
    build.set_defaults(func=cmd_kaggle_build)
    push = verbs.add_parser(
        "push",
        help="kaggle datasets create|version, then kaggle kernels push in dependency order",
    )
    push.add_argument("bundle", help="the folder `debiaslab kaggle build` wrote")
    push.add_argument(
        "--no-wait", action="store_true",
        help="push every notebook at once (downstream ones then mount older outputs)",
    )  # fmt: skip
    push.add_argument(
        "--poll", type=check.positive_float, default=60.0, help="seconds between status checks"
    )
    push.set_defaults(func=cmd_kaggle_push)
