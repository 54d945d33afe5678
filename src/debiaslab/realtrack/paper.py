"""``make paper``: the tiny collection, then the real-model track at full size, the results
committed in ``results/paper/``, the report in ``report/debiaslab-report.pdf``.

Everything runs under ``runs/paper/<UTC time>/`` first (the collection's output root there);
only when every step succeeded are its results moved into ``results/paper/`` (the earlier
folder is replaced in one rename, so a failed run leaves it intact) and the report built from
them. The LoRA adapter of the track, with its model card, goes to :data:`ADAPTER` (committed,
ready for ``debiaslab push``).
"""

from __future__ import annotations

import datetime as _dt
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from debiaslab import report
from debiaslab.collection import real_step, run_collection
from debiaslab.env import repo_root

RESULTS = Path("results") / "paper"
FIGURES = Path("report") / "figures"
REPORT = Path("report")
ADAPTER = Path("adapters") / "smollm2-135m-instruct-crows-lora"


def replace_folder(new: Path, target: Path) -> Path:
    """Put ``new`` where ``target`` is: the old folder is moved aside, the new one renamed in,
    the old one removed (a crash in between leaves one of them complete)."""

    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + ".new")
    old = target.with_name(target.name + ".old")
    for leftover in (staged, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(new, staged)
    if target.exists():
        target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def make_paper(
    root: str | Path | None = None, *, workers: int = 2, log: Callable[[str], None] = print
) -> Path:
    """Run the paper's experiments and build its PDF; return the PDF's path.

    The tiny collection (the calibration study and the pipeline checks), then the real-model
    track at full size alone with every core (:func:`debiaslab.collection.run_collection` with
    :func:`~debiaslab.collection.real_step`), then the results replace ``results/paper/`` and
    the report is built from them into ``report/``.
    """

    root = Path(root or repo_root()).resolve()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    stage = root / "runs" / "paper" / stamp
    started = time.perf_counter()
    run_collection(
        stage / "run",
        output_root=stage,
        workers=workers,
        real=real_step("full", root / ADAPTER, every_core=True),
        report=False,
        root=root,
        log=log,
    )
    results = replace_folder(stage / "results", root / RESULTS)
    pdf = report.build(results, root / FIGURES, root / REPORT, log=log)
    log(f"[paper] results in {results}, report {pdf}; {time.perf_counter() - started:.0f} s")
    return pdf
