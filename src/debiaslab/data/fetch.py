"""Find a benchmark file: explicit path → ``DEBIASLAB_DATA_DIR`` → local cache → download.

Downloads come from the dataset's canonical repository at a pinned commit and are verified
(sha256, or git's blob SHA-1 where only that is published) before they are moved, atomically,
into the cache. Nothing half-downloaded is ever left under a name the loaders would read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from debiaslab.errors import ChecksumError, DataNotFoundError

log = logging.getLogger(__name__)

DATA_DIR_ENV = "DEBIASLAB_DATA_DIR"
CACHE_DIR_ENV = "DEBIASLAB_CACHE"


@dataclass(frozen=True)
class RemoteFile:
    """A data file with a canonical source.

    Attributes:
        relpath: where the file lies below a data directory or the cache.
        url: canonical download address, pinned to a commit.
        sha256: hex sha256 of the file's bytes, when published.
        git_blob_sha1: git's blob id (SHA-1 of ``"blob <size>\\0" + bytes``), when only that is.
    """

    relpath: str
    url: str
    sha256: str | None = None
    git_blob_sha1: str | None = None


_RAW = "https://raw.githubusercontent.com"

REGISTRY: dict[str, RemoteFile] = {
    "crows_pairs": RemoteFile(
        "crows_pairs/crows_pairs_anonymized.csv",
        f"{_RAW}/nyu-mll/crows-pairs/8aaac11c485473159ec9328a65253a5be9a479dc"
        "/data/crows_pairs_anonymized.csv",
        sha256="dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c",
    ),
    "stereoset_dev": RemoteFile(
        "stereoset/dev.json",
        f"{_RAW}/moinnadeem/StereoSet/ead7d086a64a192a1eca88e0dd2fd163de375218/data/dev.json",
        git_blob_sha1="637b1e3d284a3c629b74a4659c583b8eca9bd13e",
    ),
    "stereoset_gpt2_predictions": RemoteFile(
        "stereoset/predictions/predictions_gpt2_ModelNSP_GPT2LM.json",
        f"{_RAW}/moinnadeem/StereoSet/ead7d086a64a192a1eca88e0dd2fd163de375218"
        "/code/predictions/predictions_gpt2_ModelNSP_GPT2LM.json",
        sha256=None,
    ),
}


def cache_dir() -> Path:
    """The download cache: ``$DEBIASLAB_CACHE``, else ``~/.cache/debiaslab``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root) if root else Path.home() / ".cache" / "debiaslab"


def data_dir() -> Path | None:
    """The user's local data directory from ``$DEBIASLAB_DATA_DIR``, if set."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root) if root else None


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


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches ``remote``'s published checksum."""
    if remote.sha256 is not None:
        got = sha256_of(path)
        if got != remote.sha256:
            raise ChecksumError(
                f"{path}: sha256 {got} does not match the published {remote.sha256} "
                f"for {remote.url}; delete the file and download it again."
            )
    if remote.git_blob_sha1 is not None:
        got = git_blob_sha1_of(path)
        if got != remote.git_blob_sha1:
            raise ChecksumError(
                f"{path}: git blob id {got} does not match the published "
                f"{remote.git_blob_sha1} for {remote.url}; delete the file and download it again."
            )


def download(remote: RemoteFile, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``remote`` to ``dest`` atomically, verifying its checksum first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=timeout) as r:
            while block := r.read(1 << 20):
                out.write(block)
        verify(tmp, remote)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataNotFoundError(
            f"could not download {remote.url} ({exc}). Without network access, put the file at "
            f"$DEBIASLAB_DATA_DIR/{remote.relpath} or pass its path explicitly."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


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
