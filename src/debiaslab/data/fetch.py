"""Find a benchmark file: explicit path → ``DEBIASLAB_DATA_DIR`` → local cache → download.

The registry of external files (URL pinned to a commit, sha256, licence, citation) is data:
``data/registry.yaml`` in the repository, shipped in the wheel (see ``data/README.md``).
Downloads and copies are verified before they are moved, atomically, into place; nothing
half-written is ever left under a name the loaders would read. Also the byte-level helpers
every loader shares (:func:`decode_utf8`, :func:`parse_json`, :func:`parse_yaml`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from debiaslab.env import input_root, repo_root
from debiaslab.errors import ChecksumError, DataFormatError, DataNotFoundError
from debiaslab.io import write_atomic

log = logging.getLogger(__name__)

DATA_DIR_ENV = "DEBIASLAB_DATA_DIR"
# The data folder inside the Kaggle dataset of `debiaslab kaggle build` (found by data_dir).
BUNDLED_DATA = "debiaslab-data"
CACHE_DIR_ENV = "DEBIASLAB_CACHE"
REGISTRY_FILE = "registry.yaml"
SHIPPED_REGISTRY = f"data_registry/{REGISTRY_FILE}"  # inside the installed package
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that `surrogateescape` could not decode
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RemoteFile:
    """A data file with a canonical source (one entry of ``data/registry.yaml``).

    Attributes:
        relpath: where the file lies below a data directory or the cache.
        url: canonical download address, pinned to a commit.
        sha256: hex sha256 of the file's bytes, when published.
        git_blob_sha1: git's blob id (SHA-1 of ``"blob <size>\\0" + bytes``), when only that is.
        note: how to obtain the file by hand; shown when it cannot be downloaded (``url == ""``).
        benchmark: the benchmark or resource the file belongs to.
        size: bytes, when known.
        licence: the data's licence.
        citation: whom to cite.
    """

    relpath: str
    url: str
    sha256: str | None = None
    git_blob_sha1: str | None = None
    note: str = ""
    benchmark: str = ""
    size: int | None = None
    licence: str = ""
    citation: str = ""


_REQUIRED = ("benchmark", "file", "url", "licence", "citation")
_OPTIONAL = ("sha256", "git_blob_sha1", "size", "note")
_HEX = {"sha256": re.compile("[0-9a-f]{64}"), "git_blob_sha1": re.compile("[0-9a-f]{40}")}


def registry_path() -> Path:
    """The registry file: the copy an installed wheel ships (``debiaslab/data_registry/``),
    else the checkout's ``data/registry.yaml`` (source tree, ``PYTHONPATH=src``, editable)."""
    shipped = resources.files("debiaslab").joinpath(SHIPPED_REGISTRY)
    if shipped.is_file():
        return Path(str(shipped))
    return repo_root() / "data" / REGISTRY_FILE


def load_registry(path: str | os.PathLike | None = None) -> dict[str, RemoteFile]:
    """Read and check the registry (default :func:`registry_path`): name → :class:`RemoteFile`.

    Raises:
        DataNotFoundError: the file is missing (a broken install).
        DataFormatError: an entry lacks a field, has an unknown one, or a malformed value;
            the message names the file, the entry and the field.
    """
    file = Path(path) if path is not None else registry_path()
    if not file.is_file():
        raise DataNotFoundError(f"{file}: the data registry is missing; reinstall debiaslab")
    text, bad = decode_utf8(file.read_bytes())
    if bad is not None:
        raise DataFormatError(f"not valid UTF-8 ({bad})", file=file)
    document = parse_yaml(text, file)
    if not isinstance(document, dict):
        raise DataFormatError("expected a mapping of file name to entry", file=file)
    return {str(name): _entry(str(name), fields, file) for name, fields in document.items()}


def _entry(name: str, fields: object, file: Path) -> RemoteFile:
    """One registry entry, checked field by field."""
    if not isinstance(fields, dict):
        raise DataFormatError("expected a mapping of field to value", file=file, row=name)
    for key in fields:
        if key not in _REQUIRED and key not in _OPTIONAL:
            known = ", ".join((*_REQUIRED, *_OPTIONAL))
            raise DataFormatError(
                f"unknown field (known: {known})", file=file, row=name, field=key
            )
    for key in _REQUIRED:
        if not isinstance(fields.get(key), str) or (key != "url" and not fields[key].strip()):
            raise DataFormatError("missing or not a text", file=file, row=name, field=key)
    if "sha256" not in fields and "git_blob_sha1" not in fields:
        raise DataFormatError("no checksum: give sha256", file=file, row=name, field="sha256")
    for key, pattern in _HEX.items():
        value = fields.get(key)
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise DataFormatError(
                f"{value!r} is not {pattern.pattern} (lower-case hex)",
                file=file,
                row=name,
                field=key,
            )
    relpath = fields["file"]
    parts = Path(relpath).parts
    if Path(relpath).is_absolute() or ".." in parts or "\\" in relpath:
        raise DataFormatError(
            f"{relpath!r} must be a relative path below the data folder (/-separated, no '..')",
            file=file,
            row=name,
            field="file",
        )
    url = fields["url"]
    if url and not url.startswith("https://"):
        raise DataFormatError(
            f"{url!r} is not an https:// address", file=file, row=name, field="url"
        )
    if not url and not fields.get("note"):
        raise DataFormatError(
            "no url and no note saying how to obtain the file", file=file, row=name, field="note"
        )
    size = fields.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise DataFormatError(f"{size!r} is not a byte count", file=file, row=name, field="size")
    return RemoteFile(
        relpath=relpath,
        url=url,
        sha256=fields.get("sha256"),
        git_blob_sha1=fields.get("git_blob_sha1"),
        note=fields.get("note", ""),
        benchmark=fields["benchmark"],
        size=size,
        licence=fields["licence"],
        citation=fields["citation"],
    )


def cache_dir() -> Path:
    """The download cache: ``$DEBIASLAB_CACHE``, else ``~/.cache/debiaslab``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root) if root else Path.home() / ".cache" / "debiaslab"


def data_dir() -> Path | None:
    """The user's data folder: ``$DEBIASLAB_DATA_DIR``, else the ``debiaslab-data`` folder of
    an attached input (the dataset ``debiaslab kaggle build`` makes, under ``/kaggle/input``),
    else ``None``."""
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        return Path(root)
    inputs = input_root()
    if inputs is None or not inputs.is_dir():
        return None
    for depth in range(3):
        for found in sorted(inputs.glob("/".join(["*"] * depth + [BUNDLED_DATA]))):
            if found.is_dir():
                return found
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1_of(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(
    path: Path,
    remote: RemoteFile,
    *,
    shown: str | os.PathLike | None = None,
    advice: str = "delete the file and download it again",
) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches ``remote``'s published checksum.

    The one-line message names the file (``shown``, default ``path``: a download names its
    address, a copy its source), both checksums and what to do (``advice``). A registry entry
    without any checksum is refused too: an unverifiable file is not trusted.
    """
    shown = path if shown is None else shown
    if remote.sha256 is None and remote.git_blob_sha1 is None:
        raise ChecksumError(
            f"{shown}: the registry entry for {remote.relpath} publishes no checksum, so the "
            f"file cannot be verified; add its sha256 to {registry_path()}."
        )
    checks = (
        ("sha256", remote.sha256, sha256_of),
        ("git blob id", remote.git_blob_sha1, git_blob_sha1_of),
    )
    for kind, published, digest in checks:
        if published is not None and (got := digest(path)) != published:
            raise ChecksumError(
                f"{shown}: {kind} {got} does not match the published {published} "
                f"for {remote.relpath}; {advice}."
            )


def download(remote: RemoteFile, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``remote`` to ``dest`` atomically, verifying its checksum first.

    Raises:
        DataNotFoundError: ``remote`` has no download address, or the download failed.
        ChecksumError: the downloaded bytes do not match the published checksum (nothing is kept).
    """
    if not remote.url:
        how = f"; {remote.note}" if remote.note else ""
        raise DataNotFoundError(
            f"{remote.relpath} cannot be downloaded on its own{how}. Put the file at "
            f"${DATA_DIR_ENV}/{remote.relpath} or pass its path explicitly."
        )

    def fill(out) -> None:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, 1 << 20)

    def check(tmp: Path) -> None:
        verify(tmp, remote, shown=remote.url, advice="nothing was kept")

    try:
        return write_atomic(dest, fill, check)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataNotFoundError(
            f"could not download {remote.url} ({exc}). Without network access, put the file at "
            f"${DATA_DIR_ENV}/{remote.relpath} or pass its path explicitly."
        ) from exc


def copy_verified(source: Path, remote: RemoteFile, dest: Path) -> Path:
    """Copy a local ``source`` of ``remote`` to ``dest`` atomically, verifying it first.

    Raises:
        ChecksumError: ``source`` does not match the published checksum (``dest`` untouched).
    """

    def fill(out) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)

    def check(tmp: Path) -> None:
        verify(
            tmp,
            remote,
            shown=source,
            advice="nothing was copied; replace it with the published file",
        )

    return write_atomic(dest, fill, check)


def decode_utf8(data: bytes) -> tuple[str, str | None]:
    """Decode UTF-8 (a leading BOM is dropped) without losing track of undecodable bytes.

    Returns:
        ``(text, None)`` for valid UTF-8. Otherwise ``(text, where)``: ``text`` is decoded with
        ``surrogateescape`` (each bad byte becomes one lone surrogate, see
        :func:`has_undecodable`) so a loader can parse on and name the record holding the first
        bad byte; ``where`` locates that byte, e.g. ``"line 3, byte offset 120 (0xe9)"``.
    """
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        return data[start:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        pos = start + exc.start
        line = data.count(b"\n", 0, pos) + 1
        where = f"line {line}, byte offset {pos} (0x{data[pos]:02x})"
        return data[start:].decode("utf-8", "surrogateescape"), where


def parse_json(text: str, file: str | Path):
    """``json.loads`` whose syntax error names the file, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", file=file
        ) from None


def parse_yaml(text: str, file: str | Path):
    """``yaml.safe_load`` whose syntax error names the file (and the parser's position)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataFormatError(f"not valid YAML: {exc}", file=file) from None


def has_undecodable(text: str) -> bool:
    """Whether ``text`` (from :func:`decode_utf8`) holds bytes that were not valid UTF-8."""
    return _UNDECODABLE.search(text) is not None


REGISTRY: dict[str, RemoteFile] = load_registry()


def resolve(name: str, path: str | os.PathLike | None = None, *, download_ok: bool = True) -> Path:
    """Return a local path for the registered data file ``name``.

    Order: explicit ``path`` → ``$DEBIASLAB_DATA_DIR/<relpath>`` → cache → download.

    Raises:
        DataNotFoundError: an explicit path does not exist, or nothing was found or fetched.
        ChecksumError: a download or cached copy does not match the published checksum.
    """
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise DataNotFoundError(f"{explicit}: no such file")
        return explicit
    if name not in REGISTRY:
        raise DataNotFoundError(f"unknown data file {name!r}; known: {sorted(REGISTRY)}")
    remote = REGISTRY[name]
    local_root = data_dir()
    if local_root is not None and (local_root / remote.relpath).is_file():
        return local_root / remote.relpath
    cached = cache_dir() / remote.relpath
    if cached.is_file():
        verify(cached, remote)
        return cached
    if not download_ok:
        raise DataNotFoundError(
            f"{remote.relpath} is neither in ${DATA_DIR_ENV} nor in the cache {cache_dir()}"
        )
    log.info("downloading %s", remote.url)
    return download(remote, cached)
