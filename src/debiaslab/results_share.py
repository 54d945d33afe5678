"""Share a results folder through a Hugging Face dataset: ``debiaslab results push`` and ``pull``.

:func:`push_results` uploads every result JSON with its side files and data tables (what
:func:`debiaslab.gather.collect` selects) and a card listing the runs; :func:`pull_results`
downloads such a dataset and gathers it into ``results/`` like a Kaggle output
(:func:`debiaslab.gather.gather`). Token, secret checks and errors are those of
:mod:`debiaslab.hub.client`. Example: ``pull_results("USER/debiaslab-results", "results")``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import debiaslab
from debiaslab.cards.results import results_card
from debiaslab.errors import ConfigError
from debiaslab.gather import GatherReport, collect, gather
from debiaslab.hub.client import connect, push_token, read_token, upload
from debiaslab.hub.scrub import REPO_ID_RE, check_repo_id, folder_files, hub_errors

log = logging.getLogger(__name__)

# What pull_results downloads from a results dataset: results and their tables (no card).
RESULTS_PULL_PATTERNS = ("*.json", "*.csv", "*.jsonl", "*.tsv")


def push_results(
    results_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str | None:
    """Upload the results of ``results_dir`` to a Hub dataset, with a card listing the runs.

    Uploaded: every result JSON and its side files, and the data files beside results (what
    :func:`debiaslab.gather.collect` selects: no images, no weights, nothing over 50 MB), at
    their paths below ``results_dir``; a symbolic link that leaves ``results_dir`` is skipped with
    a warning, never followed. From a Colab or Kaggle cell this brings a run's results
    home: ``debiaslab results pull`` (or :func:`pull_results`) on another machine. Token
    handling, secret checks and errors are those of :func:`debiaslab.hub.client.push`.

    Returns:
        The dataset's URL, or ``None`` when no token is available (skipped and logged).

    Raises:
        ConfigError: not a folder, no results, a bad repo id, files that look like secrets or
            contain the token, or a Hub error (message without the token).
        DataFormatError: a file named like a result that is not a valid one.
    """
    folder = Path(results_dir)
    check_repo_id(repo_id)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a directory (expected a results folder)")
    selected = collect(folder)
    records = [record for _, record in selected if record is not None]
    if not records:
        raise ConfigError(f"{folder}: no debiaslab result files to upload")
    wanted = {rel for rel, _ in selected}
    files = [f for f in folder_files(folder, warn_links=False) if f in wanted]  # collect warned
    token = push_token(folder, files, repo_id, token)
    if token is None:
        return None
    return upload(
        folder,
        files,
        repo_id,
        card=results_card(records, repo_id=repo_id, files=len(files)),
        token=token,
        api=api,
        private=private,
        message=commit_message
        or f"debiaslab {debiaslab.__version__}: upload {len(records)} results",
        repo_type="dataset",
    )


def pull_results(
    repo_id: str | os.PathLike[str],
    results_dir: str | os.PathLike[str] = "results",
    *,
    revision: str | None = None,
    token: str | None = None,
    api: Any = None,
    overwrite: bool = False,
) -> GatherReport:
    """Download a results dataset (from :func:`push_results`) and gather it into ``results_dir``.

    Only :data:`RESULTS_PULL_PATTERNS` are fetched; the snapshot then goes through
    :func:`debiaslab.gather.gather` (identical files skipped, conflicts stop everything unless
    ``overwrite``). A local folder or ``.zip`` given as ``repo_id`` is gathered directly.

    Args:
        repo_id: ``user/name`` of a Hub dataset, or a local folder or ``.zip``.
        results_dir: the local results folder.
        revision: branch, tag or commit.
        token: Hub token for private datasets; default ``get_secret("HF_TOKEN")`` (may be none).
        api: Hub client (``HfApi``-like); default :func:`debiaslab.hub.client.default_api`.
        overwrite: replace local files that differ.

    Raises:
        ConfigError: the dataset cannot be reached or read (message without the token), or
            conflicting files without ``overwrite``.
    """
    local = Path(repo_id).expanduser()
    if local.is_dir() or (local.is_file() and local.suffix.lower() == ".zip"):
        return gather(local, results_dir, overwrite=overwrite)
    repo_id = str(repo_id)
    if not REPO_ID_RE.match(repo_id):
        raise ConfigError(
            f"{repo_id!r} is neither a local folder or .zip nor a Hugging Face dataset id "
            "('user/name')"
        )
    token = read_token(token)
    client = connect(api)
    advice = (
        "It must be a dataset repo (debiaslab results push makes one); offline, gather a "
        "downloaded folder or zip instead (debiaslab results gather)."
    )
    with hub_errors("download", repo_id, token, advice):
        path = client.snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            token=token,
            allow_patterns=list(RESULTS_PULL_PATTERNS),
        )
    log.info("pulled dataset %s to %s", repo_id, path)
    # A cache snapshot's files are links into <repo folder>/blobs: the one place they may lead.
    snapshot = Path(path)
    blobs = snapshot.parent.parent / "blobs" if snapshot.parent.name == "snapshots" else None
    return gather(path, results_dir, overwrite=overwrite, links_within=blobs)
