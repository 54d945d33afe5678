"""Atomic file writes: the one helper every writer of results, figures and data shares.

A write goes to a temp file in the destination's directory and is moved into place with
``os.replace``, so readers see the old file or the new one, never a partial one, and a failed
write (full disk, read-only folder) leaves the previous file intact.

Layer: base (imports nothing from debiaslab), so every other layer may use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o644  # mkstemp creates 0600; published data and written benchmarks are shareable


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``.

    Readers see the old file or the new one, never a partial one. Parent directories are
    created. The file gets mode 0644.

    Returns:
        The path written.
    """
    return write_atomic(path, lambda out: out.write(data))


def write_atomic(
    path: str | os.PathLike,
    fill: Callable[[BinaryIO], object],
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``path`` atomically from ``fill(out)``, which writes the bytes to ``out``.

    ``check`` (if given) inspects the finished temp file and raises to abandon it, e.g. a
    checksum: the temp file is removed and ``path`` is left as it was. Otherwise as
    :func:`write_bytes_atomic`.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        if check is not None:
            check(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
