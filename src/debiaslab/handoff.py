"""What one notebook hands the next, when each runs in its own session.

On Kaggle every notebook is a separate session with a fresh ``/kaggle/working``; a notebook
named in another's ``kernel_sources`` has its output mounted read-only under
``/kaggle/input/<kernel slug>/`` (:func:`kernel_slug`). So a notebook input (notebook 1's
results, notebook 2's adapter) is one parameter holding a path relative to an output root,
found, in this order:

1. in an upstream notebook's output under the input root (:func:`debiaslab.env.input_root`;
   the upstream's own slug first, then any other mounted input that holds the path);
2. in this session's working folder (:func:`debiaslab.env.output_root`: a local run, or one
   Colab session running the notebooks one after another);
3. on the Hugging Face Hub, when the value is a repo id (an adapter: :func:`adapter`; a results
   dataset: :func:`gather_results`).

Entry points: :func:`locate`, :func:`adapter`, :func:`bring_results`, :func:`gather_results`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from debiaslab.env import input_root, output_root
from debiaslab.errors import ConfigError
from debiaslab.gather import gather_each
from debiaslab.hub.client import pull
from debiaslab.hub.scrub import hub_id
from debiaslab.results import read_all
from debiaslab.results_share import pull_results

log = logging.getLogger(__name__)

PREFIX = "debiaslab"
_DEPTH = 3  # how deep under the input root a mounted output may sit (/kaggle/input/<a>/<b>/)


def kernel_slug(name: str) -> str:
    """The Kaggle kernel slug of a collection notebook (``family/stage``, or ``results``).

    Example:
        >>> kernel_slug("gpt2/01_pre_eval"), kernel_slug("results")
        ('debiaslab-gpt2-01-pre-eval', 'debiaslab-results')
    """
    return "-".join([PREFIX, *name.replace("_", "-").split("/")])


def mounted_outputs(upstream: str | None = None) -> list[Path]:
    """The folders mounted under the input root: ``upstream``'s own output first (looked for
    up to three levels down), then every other; ``[]`` outside Kaggle (and the emulation)."""
    root = input_root()
    if root is None or not root.is_dir() or root.resolve() == output_root().resolve():
        return []
    top = sorted(child for child in root.iterdir() if child.is_dir())
    if upstream is None:
        return top
    slug = kernel_slug(upstream)
    own = [
        found
        for depth in range(_DEPTH)
        for found in sorted(root.glob("/".join(["*"] * depth + [slug])))
        if found.is_dir()
    ]
    return own + [folder for folder in top if folder not in own]


def locate(path: str, *, upstream: str | None = None, required: bool = True) -> Path | None:
    """Where ``path`` (relative to an output root) is: an upstream output, else here.

    Raises:
        ConfigError: ``required`` and it is nowhere; the message says where it looked and what
            to attach or run.
    """
    candidates = _candidates(path, upstream)
    for candidate in candidates:
        if candidate.exists():
            log.info("%s: found at %s", path, candidate)
            return candidate
    if required:
        raise ConfigError(_missing(path, upstream, candidates))
    return None


def _candidates(path: str, upstream: str | None) -> list[Path]:
    """Where ``path`` may be, in order: each mounted output, then this session's folder."""
    return [*(folder / path for folder in mounted_outputs(upstream)), output_root() / path]


def _missing(path: str, upstream: str | None, candidates: list[Path]) -> str:
    source = f"notebook {kernel_slug(upstream)}" if upstream else "the notebook that makes it"
    return (
        f"{path!r} is neither in an attached notebook output (looked in "
        f"{', '.join(str(c.parent) for c in candidates[:-1]) or 'none attached'}) nor in "
        f"{output_root()}. On Kaggle: Add Input → Notebook output → {source} (or run "
        "`debiaslab kaggle build`, whose metadata attaches it); elsewhere: run it first in this "
        "session, or give a Hugging Face repo id where the parameter allows one"
    )


def adapter(value: str, *, upstream: str | None = None) -> Path:
    """A fine-tuning run, adapter or model folder: an upstream output, this session's folder,
    or (a repo id found nowhere here) a Hub download through :func:`debiaslab.hub.client.pull`.

    Raises:
        ConfigError: found nowhere here, and not a repo id or not on the Hub (the message
            says both where it looked and what the Hub answered).
    """
    found = locate(value, upstream=upstream, required=False)
    if found is not None:
        return pull(found)
    where = _missing(value, upstream, _candidates(value, upstream))
    if hub_id(value) is None:
        raise ConfigError(where)
    try:
        return pull(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}. As a Hub repo id: {exc}") from exc


def bring_results(
    path: str, *, upstream: str | None = None, into: str | None = None
) -> Path | None:
    """Copy an upstream notebook's result files under ``path`` into this session's folder
    (``into``, default the same ``path``), where a rerun with the same settings reads them
    instead of recomputing (:func:`debiaslab.runner.evaluate` skips a result that exists).

    Returns the local folder, or ``None`` when no upstream output holds results there.
    """
    here = output_root() / (into or path)
    for folder in mounted_outputs(upstream):
        for source, report in gather_each([folder / path], here):
            log.info("%s: %d files from %s", path, len(report.copied), source)
            return here
    return here if here.is_dir() else None


def gather_results(results: str = "results", repo: str | None = None) -> list[str]:
    """Every upstream notebook's result files, and a Hub results dataset (``repo``), gathered
    into this session's ``results`` folder; returns where they came from (identical files are
    kept once, and differing ones stop it: :func:`debiaslab.gather.gather`)."""
    target = output_root() / results
    folders = [folder / "results" for folder in mounted_outputs()]
    sources = [
        f"{source.parent.name}: {len(report.results)} result files"
        for source, report in gather_each(folders, target)
    ]
    if repo:
        report = pull_results(repo, target)
        sources.append(f"{repo}: {len(report.results)} result files")
    if target.is_dir() and not sources and any(True for _ in read_all(target)):
        sources.append(f"{target}: this session's results")
    if not sources:
        raise ConfigError(
            f"no result files: nothing under {target}, no attached notebook output holds a "
            "results/ folder, and RESULTS_REPO is not set. Attach the notebooks' outputs (Add "
            "Input → Notebook output), or set RESULTS_REPO to a results dataset on the Hub."
        )
    return sources
