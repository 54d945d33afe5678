"""Build a model folder once: a manifest records what it was made from, a rename publishes it.

`save_beside` trains or builds into a temporary folder beside the target, writes the manifest
last and renames the folder into place, so a half-written model is never found and a changed
recipe (another manifest) rebuilds. Every tiny model saved in the debiaslab cache uses it: the
planted models, the tiny presets, the tiny classifiers and the tiny text-to-image models.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "planted.json"  # written last: its presence marks a complete saved model


def manifest_matches(path: Path, record: dict[str, Any], manifest: str = MANIFEST) -> bool:
    """Whether ``path`` holds a complete saved model made from ``record`` (its manifest)."""
    try:
        found = json.loads((path / manifest).read_text())
    except (OSError, ValueError):
        return False
    return {key: found.get(key) for key in record} == record


def save_beside(
    path: Path,
    record: dict[str, Any],
    write: Callable[[Path], None],
    manifest: str = MANIFEST,
) -> Path:
    """Build a model directory at ``path`` unless one made from ``record`` is already there.

    ``write(tmp)`` fills a temporary directory beside ``path``; the manifest (``record`` plus
    the build seconds) is written last and the directory renamed into place, so a half-written
    model is never found. A stale directory (other record) is replaced; when another process
    renamed a complete one into place first, that one is kept.
    """
    if manifest_matches(path, record, manifest):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        write(tmp)
        seconds = round(time.perf_counter() - started, 1)
        (tmp / manifest).write_text(json.dumps({**record, "build_seconds": seconds}, indent=2))
        if manifest_matches(path, record, manifest):
            return path  # another process put a complete one there while this one trained
        if path.exists():
            shutil.rmtree(path)
        try:
            os.rename(tmp, path)
        except OSError:
            if not manifest_matches(path, record, manifest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
