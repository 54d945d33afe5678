"""``debiaslab <verb>``: every notebook step is also a command.

Verbs: ``eval``, ``finetune``, ``plan``, ``push``, ``pull``, ``stereoset-score``, ``demo``,
``track``, ``paper``, ``calibrate``, ``report``, ``results``, ``synth``, ``t2i``, ``models``,
``data``, ``kaggle`` (one module per group; ``data`` lives beside the registry in
:mod:`debiaslab.data.pull`).
``debiaslab VERB --help`` lists each verb's options. Errors in the input print one line that
says what and where, exit 2: numbers and output folders are checked at parse time
(:mod:`debiaslab.validate`), models before anything loads (:mod:`debiaslab.model_source`); a
full disk or a read-only folder met while writing is one line too.
"""

from __future__ import annotations

import argparse
import logging
import sys

from debiaslab import __version__
from debiaslab import validate as check
from debiaslab.cli import evaluation, images, outputs, platforms, synthetic, training
from debiaslab.data.pull import add_data_commands
from debiaslab.errors import DebiaslabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="debiaslab", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"debiaslab {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for group in (evaluation, training, outputs, synthetic, images, platforms):
        group.add_commands(sub)
    add_data_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
