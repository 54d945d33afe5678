"""Bring result files from Kaggle or Colab runs back into the local ``results/`` folder.

:func:`gather` takes what a notebook run left behind (a folder, a Hub snapshot, or a ``.zip``
of Kaggle's "Download output") and copies every debiaslab result JSON, its side files and the
data files beside it into ``results_dir``, all or nothing. Never copied: images, weights, files
over :data:`MAX_BYTES`, hidden files, names that look like secrets; never followed: a link that
leaves the source. Entry points: :func:`gather`, :func:`collect`, :class:`GatherReport`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.folders import SECRET_NAME, SKIP_DIRS, walk_files
from debiaslab.io import write_bytes_atomic
from debiaslab.results import ARTIFACT_NAMES, SCHEMA

log = logging.getLogger(__name__)

MAX_BYTES = 50 * 2**20  # nothing larger is copied (or pushed)
# Data files copied from a folder that holds a result, besides the results' own side files.
DATA_SUFFIXES = (".json", ".csv", ".tsv", ".jsonl")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".svg", ".pdf", ".eps"}
)
WEIGHT_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack"}
    | {".pkl", ".pickle", ".npz", ".npy"}
)
RESULTS_DIR_NAME = "results"
REQUIRED_FIELDS = ("run_id", "benchmark", "metrics")
# What :func:`debiaslab.results.run_id` produces: <model>__<benchmark>__<stage>__<8 hex>.json
_RESULT_NAME = re.compile(r"^.+__.+__.+__[0-9a-f]{8}\.json$")
_LIST_LIMIT = 20


@dataclass
class GatherReport:
    """What :func:`gather` did; every path is a destination under ``results_dir``.

    ``copied``: files written (new ones, and conflicting ones replaced with ``overwrite``);
    ``skipped``: files already there with the same bytes; ``conflicts``: files that were there
    with other bytes (replaced, so also in ``copied``); ``results``: the result JSONs among all
    of these.
    """

    copied: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    conflicts: list[Path] = field(default_factory=list)
    results: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """One line saying what was copied, what was already there, and what was replaced.

        Example:
            >>> GatherReport(copied=[Path("r/a.json")], results=[Path("r/a.json")]).summary()
            '1 result: 1 files copied, 0 already present, 0 conflicts'
        """
        replaced = " (replaced)" if self.conflicts else ""
        runs = f"{len(self.results)} result{'s' * (len(self.results) != 1)}"
        return (
            f"{runs}: {len(self.copied)} files copied, {len(self.skipped)} already present, "
            f"{len(self.conflicts)} conflicts{replaced}"
        )


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Entry:
    """A file of the source: its path below the source root, size, reader and display name."""

    rel: PurePosixPath
    size: int
    read: Callable[[], bytes]
    where: str


def _hidden_or_skipped(parts: tuple[str, ...]) -> bool:
    dirs, name = parts[:-1], parts[-1]
    return name.startswith(".") or any(
        d in SKIP_DIRS or d.startswith(".") or d == "__MACOSX" for d in dirs
    )


def _skipped_dir(name: str) -> bool:
    return name in SKIP_DIRS or name.startswith(".")


def _folder_entries(root: Path, links_within: Path | None = None) -> dict[PurePosixPath, _Entry]:
    entries: dict[PurePosixPath, _Entry] = {}
    # Links leaving root (and links_within): warned, skipped.
    for found in walk_files(root, skip_dir=_skipped_dir, links_within=links_within):
        if found.name.startswith("."):
            continue
        path = root / found
        rel = PurePosixPath(*found.parts)
        entries[rel] = _Entry(rel, path.stat().st_size, path.read_bytes, str(path))
    return entries


def _unsafe_member(name: str) -> bool:
    """Whether an archive member would land outside the folder it is unpacked into."""
    name = name.replace("\\", "/")
    return (
        name.startswith("/")
        or bool(re.match(r"^[A-Za-z]:", name))
        or ".." in PurePosixPath(name).parts
    )


def _link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """What a symbolic-link member points to (its content), for the warning only."""
    try:
        return archive.read(info)[:300].decode("utf-8", "replace")
    except Exception:  # a damaged member: the warning still names the link
        return "?"


def _zip_entries(archive: zipfile.ZipFile, zip_path: Path) -> dict[PurePosixPath, _Entry]:
    unsafe = [info.filename for info in archive.infolist() if _unsafe_member(info.filename)]
    if unsafe:
        raise ConfigError(
            f"{zip_path}: refusing the archive, members with an absolute path or '..' would be "
            f"written outside the results folder (zip slip): {_listing(unsafe)}. Nothing was "
            "copied."
        )
    entries: dict[PurePosixPath, _Entry] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        if stat.S_ISLNK(info.external_attr >> 16):  # a link stored by zip -y: never made real
            log.warning(
                "not copied: %s:%s is a symbolic link (to %r); links in an archive are never "
                "followed nor recreated",
                zip_path,
                info.filename,
                _link_target(archive, info),
            )
            continue
        rel = PurePosixPath(info.filename.replace("\\", "/"))
        if not rel.parts or _hidden_or_skipped(rel.parts):
            continue

        def read(info: zipfile.ZipInfo = info) -> bytes:
            try:
                return archive.read(info)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
                raise ConfigError(
                    f"{zip_path}: cannot read {info.filename} ({type(exc).__name__}: {exc})"
                ) from exc

        entries[rel] = _Entry(rel, info.file_size, read, f"{zip_path}:{info.filename}")
    return entries


@contextmanager
def _open_source(
    source: str | os.PathLike[str], links_within: Path | None = None
) -> Iterator[dict[PurePosixPath, _Entry]]:
    """The files of a folder or a ``.zip`` (kept open while the caller reads them)."""
    path = Path(source).expanduser()
    if path.is_dir():
        yield _folder_entries(path, links_within)
        return
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ConfigError(f"{path}: not a readable zip archive ({exc})") from exc
        with archive:
            yield _zip_entries(archive, path)
        return
    if path.exists():
        raise ConfigError(
            f"{path}: expected a folder or a .zip of one (a Kaggle notebook's output, a Colab "
            "results folder), not a single file"
        )
    raise ConfigError(f"{path}: no such folder or .zip")


# --------------------------------------------------------------------------- selection


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_LIMIT])
    more = len(names) - _LIST_LIMIT
    return shown + (f" and {more} more" if more > 0 else "")


def _is_artifact(name: str) -> bool:
    return any(name.endswith(f".{artifact}.json") for artifact in ARTIFACT_NAMES)


def _read_result(entry: _Entry) -> dict[str, Any] | None:
    """The record of a result JSON; ``None`` (logged) for JSON that is not a result.

    Raises:
        DataFormatError: the file is named like a result, or claims the result schema, and is
            not a valid one.
    """
    named_like = bool(_RESULT_NAME.match(entry.rel.name))
    if entry.size > MAX_BYTES:
        if named_like:
            log.warning("%s: over %d MB, not read nor copied", entry.where, MAX_BYTES >> 20)
        return None
    data = entry.read()
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if named_like:
            raise DataFormatError(
                f"named like a debiaslab result but not valid JSON ({exc}); replace it with the "
                "file from the run, or delete it",
                file=entry.where,
            ) from exc
        log.info("ignored as a result (not valid JSON): %s", entry.where)
        return None
    schema = record.get("schema") if isinstance(record, dict) else None
    if schema != SCHEMA:
        claims = isinstance(schema, str) and schema.startswith(SCHEMA.split("/")[0])
        if named_like or claims:
            raise DataFormatError(
                f"named like a debiaslab result but its schema is {schema!r}, not {SCHEMA!r} "
                "(written by another debiaslab version, or not a result)",
                file=entry.where,
                field="schema",
            )
        log.info("ignored as a result (no %r schema): %s", SCHEMA, entry.where)
        return None
    for key in REQUIRED_FIELDS:
        if key not in record:
            raise DataFormatError("missing required field", file=entry.where, field=key)
    return record


def _excluded(entry: _Entry) -> tuple[str, bool] | None:
    """Why a file is never copied and whether that deserves a warning, or ``None``."""
    suffix = entry.rel.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "an image", False
    if suffix in WEIGHT_SUFFIXES:
        return "model weights or a binary array", False
    if entry.size > MAX_BYTES:
        return f"over {MAX_BYTES >> 20} MB", True
    if SECRET_NAME.match(entry.rel.name):
        return "its name looks like a secret", True
    return None


def _referenced(record: Mapping[str, Any], folder: PurePosixPath) -> list[PurePosixPath]:
    """Side files a record names, relative to the source root (unsafe names dropped)."""
    names = [record.get("items_file")]
    artifacts = record.get("artifact_files")
    if isinstance(artifacts, dict):
        names += list(artifacts.values())
    config = record.get("config")
    if isinstance(config, dict):
        names.append(config.get("generations_file"))
    return [
        folder / name.replace("\\", "/")
        for name in names
        if isinstance(name, str) and name and not _unsafe_member(name)
    ]


def _select(
    entries: Mapping[PurePosixPath, _Entry],
) -> list[tuple[_Entry, dict[str, Any] | None]]:
    """The files to take, each with its record (``None`` for side and data files)."""
    records: dict[PurePosixPath, dict[str, Any]] = {}
    for rel in sorted(entries):
        if rel.suffix.lower() == ".json" and not _is_artifact(rel.name):
            record = _read_result(entries[rel])
            if record is not None:
                records[rel] = record
    chosen: dict[PurePosixPath, dict[str, Any] | None] = dict(records)

    def take(entry: _Entry, why: str) -> None:
        if entry.rel in chosen:
            return
        excluded = _excluded(entry)
        if excluded is None:
            chosen[entry.rel] = None
            return
        reason, loud = excluded
        level = logging.WARNING if loud else logging.DEBUG
        log.log(level, "not copied (%s, %s): %s", reason, why, entry.where)

    folders = {rel.parent for rel in records}
    for rel, record in records.items():
        prefix = rel.name[: -len(".json")] + "."
        for other in entries.values():
            if other.rel.parent == rel.parent and other.rel.name.startswith(prefix):
                take(other, f"side file of {rel.name}")
        for ref in _referenced(record, rel.parent):
            if ref in entries:
                take(entries[ref], f"named by {rel.name}")
    for entry in entries.values():
        if entry.rel.parent in folders and entry.rel.suffix.lower() in DATA_SUFFIXES:
            take(entry, "data file beside results")
    return [(entries[rel], chosen[rel]) for rel in sorted(chosen)]


def collect(source: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every file :func:`gather` would take from ``source``, relative to it, sorted.

    Each comes with its result record, or ``None`` for side and data files.

    Raises:
        DataFormatError: a file named like a result is not a valid one.
        ConfigError: ``source`` is neither a folder nor a zip, or the zip is unsafe.
    """
    with _open_source(source) as entries:
        return [(Path(*e.rel.parts), record) for e, record in _select(entries)]


def _destination(rel: PurePosixPath) -> PurePosixPath:
    """``rel`` below its last ``results`` folder, or as it is without one."""
    dirs = rel.parts[:-1]
    if RESULTS_DIR_NAME in dirs:
        last = len(dirs) - 1 - dirs[::-1].index(RESULTS_DIR_NAME)
        return PurePosixPath(*rel.parts[last + 1 :])
    return rel


def _same_bytes(path: Path, entry: _Entry) -> bool:
    return path.stat().st_size == entry.size and path.read_bytes() == entry.read()


# --------------------------------------------------------------------------- gather


def gather(
    source: str | os.PathLike[str],
    results_dir: str | os.PathLike[str] = "results",
    *,
    overwrite: bool = False,
    links_within: str | os.PathLike[str] | None = None,
) -> GatherReport:
    """Copy the results of a Kaggle or Colab run (a folder or a ``.zip``) into ``results_dir``.

    A notebook writes one result JSON per run under ``<output root>/results/<notebook slug>/``
    (see :mod:`debiaslab.results`), with side files beside it. Copied into ``results_dir``:

    * every debiaslab result JSON (schema :data:`~debiaslab.results.SCHEMA`) found under the
      source. Other JSON files are not results (logged and ignored as such); a file named like
      a result (``<model>__<benchmark>__<stage>__<hash>.json``) or claiming the result schema
      that does not parse as one is an error naming it;
    * each result's side files: every ``<run_id>.*`` beside it (``.items.csv``,
      ``.predictions.json``, ...) and the files its record names (``items_file``,
      ``artifact_files``, ``config.generations_file``);
    * the other data files (:data:`DATA_SUFFIXES`: tables such as ``decoding_tradeoff.csv``,
      ``*.json`` curves) directly in a folder that holds a result.

    Never copied: images and figures, model weights, files over :data:`MAX_BYTES`, hidden
    files, names that look like secrets, and folders such as ``.git`` or
    ``.ipynb_checkpoints``. Never followed: a symbolic link that leaves the source folder
    (skipped with a warning naming link and target, see :mod:`debiaslab.folders`), and a
    symbolic link stored in a zip (skipped, warned).

    A file goes to ``results_dir/<path below the last "results" folder of its source path>``
    (``DIR/kaggle/working/results/gpt2/x.json`` → ``results_dir/gpt2/x.json``), or below the
    source root when its path has no ``results`` folder. All or nothing: the copy is planned
    before anything is written: a file already there with the same bytes is skipped, one with
    other bytes is a conflict, and conflicts stop the whole gather (nothing copied) unless
    ``overwrite=True``. Each file is written atomically, side files before their result.
    Archive members with absolute paths or ``..`` are refused (zip slip); nothing is extracted
    to disk but the planned copies.

    Args:
        source: a notebook's output folder (``kaggle kernels output USER/KERNEL -p DIR``), a
            Colab ``results/`` folder, a Hub snapshot, or a ``.zip`` of one.
        results_dir: the local results folder (created if missing).
        overwrite: replace files that differ instead of stopping.
        links_within: a folder outside ``source`` that its links may point into (a Hub cache
            snapshot's ``blobs``); any other link leaving ``source`` is skipped, warned.

    Returns:
        A :class:`GatherReport` of what was copied, skipped as identical, and replaced.

    Raises:
        ConfigError: no result in ``source``; conflicting files (without ``overwrite``; the
            message lists them); two source files for one destination; an unsafe zip.
        DataFormatError: a file named like a result that is not a valid one (the message names
            it).
    """
    out = Path(results_dir)
    within = Path(links_within) if links_within is not None else None
    with _open_source(source, within) as entries:
        selected = _select(entries)
        if not any(record is not None for _, record in selected):
            raise ConfigError(
                f"{source}: no debiaslab result files found (JSON files with schema {SCHEMA!r});"
                " point to the notebook's output folder or the zip Kaggle gives"
            )
        plan: dict[PurePosixPath, tuple[_Entry, bool]] = {}
        clashes = []
        for entry, record in selected:
            dest = _destination(entry.rel)
            if dest in plan:
                first = plan[dest][0]
                if first.size != entry.size or first.read() != entry.read():
                    clashes.append(f"{first.where} and {entry.where} (→ {out / dest})")
                continue
            plan[dest] = (entry, record is not None)
        if clashes:
            raise ConfigError(
                f"{source}: different files would be copied to one place: {_listing(clashes)}."
                " Gather these runs one at a time, into different results folders. Nothing was "
                "copied."
            )

        report = GatherReport()
        todo: list[tuple[Path, _Entry, bool]] = []
        for dest_rel, (entry, is_result) in sorted(plan.items()):
            dest = out.joinpath(*dest_rel.parts)
            if is_result:
                report.results.append(dest)
            if dest.is_dir():
                raise ConfigError(f"{dest}: is a folder, cannot copy {entry.where} there")
            if dest.is_file():
                if _same_bytes(dest, entry):
                    report.skipped.append(dest)
                    continue
                report.conflicts.append(dest)
            todo.append((dest, entry, is_result))
        if report.conflicts and not overwrite:
            raise ConfigError(
                f"{len(report.conflicts)} file(s) in {out} differ from those in {source}: "
                f"{_listing([str(p) for p in report.conflicts])}. Pass --overwrite "
                "(overwrite=True) to replace them, or gather into another results folder. "
                "Nothing was copied."
            )
        # Side and data files first, results last: a result present always has its side files.
        for dest, entry, _ in sorted(todo, key=lambda item: (item[2], str(item[0]))):
            write_bytes_atomic(dest, entry.read())
            report.copied.append(dest)
    log.info("gathered from %s into %s: %s", source, out, report.summary())
    return report


def gather_each(
    sources: Iterable[Path], results_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> list[tuple[Path, GatherReport]]:
    """:func:`gather` every source folder that holds result files into ``results_dir`` (the
    others are passed over); returns each gathered source with its report."""
    done = []
    for source in sources:
        folder = Path(source).resolve()
        if folder.is_dir() and any(record is not None for _, record in collect(folder)):
            done.append((Path(source), gather(folder, results_dir, overwrite=overwrite)))
    return done
