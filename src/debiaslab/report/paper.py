"""The paper: generated sections plus the repository's static source, compiled with Typst.

:func:`build` draws the figures, writes ``report/generated/`` (``numbers.json`` from
:mod:`debiaslab.report.numbers` and the prose of ``sections/*.typ`` that reads it) and compiles
``report/paper.typ`` to ``report/debiaslab-report.pdf``. No number in the paper is typed by
hand: change a result file, rebuild, and the paper follows.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from debiaslab.env import repo_root
from debiaslab.errors import ConfigError
from debiaslab.io import write_bytes_atomic
from debiaslab.report.figures import figures
from debiaslab.report.numbers import numbers
from debiaslab.report.tables import Results, load

PAPER = "paper.typ"
PDF = "debiaslab-report.pdf"
GENERATED = "generated"
NUMBERS = "numbers.json"  # what the sections read (``#let n = json("numbers.json")``)
SECTIONS = ("lib.typ", "abstract.typ", "setup.typ", "results.typ")  # shipped in sections/


def write_generated(results: Results, drawn: Mapping[str, list[Path]], out: Path) -> list[Path]:
    """Write ``numbers.json`` and the sections that read it into ``out`` (atomically); return
    the paths. ``paper.typ`` includes ``generated/{abstract,setup,results}.typ``."""
    data = numbers(results, drawn, out)
    text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    paths = [write_bytes_atomic(out / NUMBERS, text.encode("utf-8"))]
    sections = resources.files("debiaslab.report") / "sections"
    for name in SECTIONS:
        paths.append(write_bytes_atomic(out / name, (sections / name).read_bytes()))
    return paths


def compile_pdf(report_dir: str | Path, root: str | Path | None = None) -> Path:
    """Compile ``report_dir/paper.typ`` to ``report_dir/debiaslab-report.pdf`` (atomically)."""

    try:
        import typst
    except ImportError as exc:
        raise ConfigError(
            "building the report needs Typst: pip install 'debiaslab[report]' (the figures "
            "and tables need only the package)"
        ) from exc

    report_dir = Path(report_dir)
    try:
        pdf = typst.compile(str(report_dir / PAPER), root=str(root or report_dir.parent))
    except Exception as exc:  # typst raises its own error types with the source location
        raise ConfigError(
            f"{report_dir / PAPER}: Typst could not compile the report: {exc}"
        ) from exc
    return write_bytes_atomic(report_dir / PDF, pdf)


def build(
    results_dir: str | Path = "results",
    figures_dir: str | Path = "figures",
    report_dir: str | Path = "report",
    *,
    log: Callable[[str], None] = print,
) -> Path:
    """Figures, generated sections and the PDF from the results; return the PDF's path.

    The paper's static source (``report/paper.typ``, ``sections/``, ``references.bib``) is
    the repository's; a ``report_dir`` elsewhere gets a copy of it first.
    """
    results = load(results_dir)
    drawn = figures(results, figures_dir)
    report_dir = Path(report_dir)
    source = repo_root() / "report"
    if report_dir.resolve() != source.resolve():
        for name in (PAPER, "references.bib", "sections"):
            src, dst = source / name, report_dir / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    write_generated(results, drawn, report_dir / GENERATED)
    root = os.path.commonpath([report_dir.resolve(), Path(figures_dir).resolve()])
    pdf = compile_pdf(report_dir, root)
    log(f"[report] {len(drawn)} figures in {figures_dir}; report: {pdf}")
    return pdf


def main(argv: list[str] | None = None) -> int:
    """``python -m debiaslab.report [RESULTS FIGURES REPORT]``: what ``make report`` runs."""
    args = sys.argv[1:] if argv is None else argv
    build(*args[:3])
    return 0
