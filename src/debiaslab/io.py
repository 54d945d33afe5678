"""Atomic file writes: the one helper every writer of results, figures and data shares.

A write goes to a temp file in the destination's directory and is moved into place with
``os.replace``, so readers see the old file or the new one, never a partial one, and a failed
write (full disk, read-only folder) leaves the previous file intact.

Layer: base (imports nothing from debiaslab), so every other layer may use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644  # mkstemp creates 0600; published data and written benchmarks are shareable


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``.

    Readers see the old file or the new one, never a partial one. Parent directories are
    created. The file gets mode 0644.

    Returns:
        The path written.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
