"""``debiaslab kaggle build`` and ``kaggle push``: the collection as Kaggle notebooks.

:func:`build` writes a folder the ``kaggle`` command line pushes as it is:

* ``dataset/``: ``dataset-metadata.json`` (``<user>/debiaslab``), the package's wheel under
  ``wheels/`` (the notebooks' bootstrap cell installs it offline) and every registered
  benchmark file under ``debiaslab-data/`` (verified, as ``debiaslab data pull`` gets them;
  :func:`debiaslab.data.fetch.data_dir` finds that folder under ``/kaggle/input``);
* ``kernels/<kernel slug>/``: the notebook and its ``kernel-metadata.json``: id
  ``<user>/debiaslab-<family>-<stage>``, the dataset as ``dataset_sources``, the notebooks it
  reads as ``kernel_sources`` (:func:`debiaslab.notebooks.upstream`), so that Kaggle mounts
  their outputs under ``/kaggle/input/<slug>/`` where :mod:`debiaslab.handoff` finds them;
  GPU (``machine_shape`` ``NvidiaTeslaT4``: T4 x2) and internet where the notebook needs
  them (:func:`debiaslab.notebooks.kaggle_settings`).

:func:`push` runs ``kaggle datasets create|version`` and ``kaggle kernels push`` in
dependency order, waiting for each notebook to finish before pushing what reads it (a
notebook mounts the output its sources have when it starts).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from debiaslab import __version__
from debiaslab import notebooks as nb
from debiaslab.data import fetch
from debiaslab.data.pull import pull as pull_data
from debiaslab.env import repo_root
from debiaslab.errors import ConfigError
from debiaslab.handoff import kernel_slug
from debiaslab.io import write_bytes_atomic

DATASET_SLUG = "debiaslab"
DATA_FOLDER = fetch.BUNDLED_DATA
WHEELS = "wheels"
KERNEL_METADATA = "kernel-metadata.json"
DATASET_METADATA = "dataset-metadata.json"
T4X2 = "NvidiaTeslaT4"  # Kaggle's machine_shape for "GPU T4 x2"
# Runtime dependencies Kaggle's image lacks: their wheels go beside debiaslab's, so that the
# bootstrap cell installs offline (`pip install --no-index --find-links`).
NOT_ON_KAGGLE = ("gguf",)
# `kaggle kernels status` ends in one of these when a run is over.
_FINISHED = ("complete", "error", "cancel_acknowledged", "cancelled")


def notebooks() -> list[tuple[str, nb.Entry, str]]:
    """``(step name, entry, stage)`` of every notebook, upstream before downstream."""
    return [(nb.step_name(e, s), e, s) for e in nb.entries() for s in e.stages]


def title(name: str) -> str:
    """A title Kaggle turns into the kernel's slug (``kaggle kernels push`` warns otherwise).

    Example:
        >>> title("flan_t5/01_pre_eval")
        'debiaslab flan t5 01 pre eval'
    """
    return kernel_slug(name).replace("-", " ")


def kernel_metadata(user: str, name: str, entry: nb.Entry, stage: str, *, private: bool) -> dict:
    """One notebook's ``kernel-metadata.json`` (Kaggle's format, as ``kaggle kernels init``
    writes it)."""
    settings = nb.kaggle_settings(entry)
    metadata = {
        "id": f"{user}/{kernel_slug(name)}",
        "title": title(name),
        "code_file": f"{stage}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": private,
        "enable_gpu": settings["gpu"],
        "enable_tpu": False,
        "enable_internet": settings["internet"],
        "dataset_sources": [f"{user}/{DATASET_SLUG}"],
        "competition_sources": [],
        "kernel_sources": [f"{user}/{kernel_slug(u)}" for u in nb.upstream(entry, stage)],
        "model_sources": [],
    }
    if settings["gpu"]:
        metadata["machine_shape"] = T4X2
    return metadata


def dataset_metadata(user: str, *, private: bool) -> dict:
    return {
        "title": f"debiaslab {__version__} wheel and benchmark data",
        "id": f"{user}/{DATASET_SLUG}",
        "subtitle": "The debiaslab package and its verified benchmark files",
        "description": (
            f"debiaslab {__version__} ({nb.REPOSITORY}): `{WHEELS}/` holds the wheel that the "
            f"notebooks' bootstrap cell installs offline; `{DATA_FOLDER}/` every benchmark file "
            "of its data registry (CrowS-Pairs, StereoSet, BOLD, HONEST, ...), checksum-verified. "
            "Each file keeps its own licence; see the registry and the sources' pages."
        ),
        "isPrivate": private,
        "licenses": [{"name": "other"}],
        "keywords": [],
    }


def _write_json(path: Path, data: dict) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def download_dependencies(out: Path, names: tuple[str, ...] = NOT_ON_KAGGLE) -> list[Path]:
    """The wheels of ``names`` (at the versions pyproject allows) into ``out``, from the index."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    declared = [Requirement(r) for r in requires("debiaslab") or []]
    wanted = [f"{r.name}{r.specifier}" for r in declared if r.name in names and not r.marker]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
         "-d", str(out), *wanted],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise ConfigError(f"downloading {', '.join(wanted)} failed: {done.stderr.strip()[-500:]}")
    return sorted(p for p in out.glob("*.whl") if not p.name.startswith("debiaslab-"))


def build_wheel(out: Path, root: Path | None = None) -> Path:
    """``pip wheel --no-deps`` of the checkout into ``out``; returns the wheel."""
    root = root or repo_root()
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(root), "-w", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    wheels = sorted(out.glob(f"debiaslab-{__version__}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ConfigError(f"building the wheel failed: {done.stderr.strip()[-500:]}")
    return wheels[-1]


def build(
    user: str,
    out: str | Path,
    *,
    private: bool = True,
    data: bool = True,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the pushable bundle (see the module's text) into ``out``; returns ``out``.

    ``data``: put the benchmark files in (``only``: these benchmarks or files, as ``debiaslab
    data pull --only``); ``private``: the notebooks and dataset are private on Kaggle.

    Raises:
        ConfigError: ``user`` is not a Kaggle user name; ``out`` holds something else; a
            benchmark file could not be fetched and verified (``data``); the wheel failed.
    """
    if not user or not all(c.isalnum() or c in "-_" for c in user):
        raise ConfigError(f"--user {user!r}: give your Kaggle user name (letters, digits, -)")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset" / DATASET_METADATA).is_file():
        raise ConfigError(f"{out} is not empty and not a debiaslab bundle: choose a new folder")
    shutil.rmtree(out, ignore_errors=True)
    dataset = out / "dataset"
    wheel = build_wheel(dataset / WHEELS)
    extra = download_dependencies(dataset / WHEELS)
    log(f"[kaggle] wheels: {wheel.name}, {', '.join(p.name for p in extra)}")
    if data:
        report = pull_data(dataset / DATA_FOLDER, only=only)
        if report.failed:
            failed = "; ".join(f"{k}: {v}" for k, v in sorted(report.failed.items()))
            raise ConfigError(f"benchmark files could not be fetched: {failed}")
        log(f"[kaggle] data: {report.summary()}")
    _write_json(dataset / DATASET_METADATA, dataset_metadata(user, private=private))
    for name, entry, stage in notebooks():
        folder = out / "kernels" / kernel_slug(name)
        folder.mkdir(parents=True)
        shutil.copyfile(nb.notebook_path(entry, stage), folder / f"{stage}.ipynb")
        _write_json(
            folder / KERNEL_METADATA, kernel_metadata(user, name, entry, stage, private=private)
        )
    log(f"[kaggle] {len(notebooks())} notebooks and the dataset in {out}; next: "
        f"debiaslab kaggle push {out}")  # fmt: skip
    return out


def push_order(out: str | Path) -> list[Path]:
    """The bundle's kernel folders, each after the ones its ``kernel_sources`` name."""
    folders = sorted((Path(out) / "kernels").iterdir())
    metadata = {
        json.loads((f / KERNEL_METADATA).read_text("utf-8"))["id"]: f
        for f in folders
        if (f / KERNEL_METADATA).is_file()
    }
    order: list[str] = []
    while len(order) < len(metadata):
        ready = [
            kid
            for kid, folder in metadata.items()
            if kid not in order
            and all(
                s in order
                for s in json.loads((folder / KERNEL_METADATA).read_text("utf-8"))[
                    "kernel_sources"
                ]
            )
        ]
        if not ready:
            raise ConfigError(f"{out}: the kernel_sources form a cycle or name a missing kernel")
        order += ready
    return [metadata[kid] for kid in order]


def push(
    out: str | Path,
    *,
    wait: bool = True,
    poll: float = 60.0,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Push the bundle with the ``kaggle`` command: the dataset (created, or a new version),
    then each notebook in dependency order; with ``wait``, a notebook is pushed only when the
    ones it reads have finished (``kaggle kernels status``). Returns the kernel ids pushed.

    Raises:
        ConfigError: no ``kaggle`` command (``pip install kaggle``; credentials in
            ``~/.kaggle/kaggle.json`` or ``KAGGLE_USERNAME``/``KAGGLE_KEY``), a command failed,
            or an upstream notebook ended in an error.
    """
    out = Path(out)
    if shutil.which("kaggle") is None:
        raise ConfigError("no `kaggle` command: pip install kaggle, then put your API token "
                          "in ~/.kaggle/kaggle.json (kaggle.com → Settings → API)")  # fmt: skip
    dataset = json.loads((out / "dataset" / DATASET_METADATA).read_text("utf-8"))

    def kaggle(*args: str) -> str:
        done = run(["kaggle", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"kaggle {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    exists = run(["kaggle", "datasets", "status", dataset["id"]], capture_output=True, text=True)
    folder = str(out / "dataset")
    if exists.returncode == 0:
        kaggle("datasets", "version", "-p", folder, "-m", f"debiaslab {__version__}",
               "--dir-mode", "zip")  # fmt: skip
    else:
        kaggle("datasets", "create", "-p", folder, "--dir-mode", "zip")
    log(f"[kaggle] dataset {dataset['id']} pushed")
    pushed: list[str] = []
    for kernel in push_order(out):
        metadata = json.loads((kernel / KERNEL_METADATA).read_text("utf-8"))
        for source in metadata["kernel_sources"] if wait else ():
            _wait_for(source, kaggle, poll, log)
        kaggle("kernels", "push", "-p", str(kernel))
        pushed.append(metadata["id"])
        log(f"[kaggle] pushed {metadata['id']}")
    return pushed


def _wait_for(kernel: str, kaggle: Callable[..., str], poll: float, log) -> None:
    while True:
        text = kaggle("kernels", "status", kernel)
        status = text.rsplit('has status "', 1)[-1].split('"')[0].rsplit(".", 1)[-1].lower()
        if status in _FINISHED:
            if status != "complete":
                raise ConfigError(f"{kernel} ended with status {status}: {text.strip()}")
            return
        log(f"[kaggle] waiting for {kernel} ({status})")
        time.sleep(poll)
