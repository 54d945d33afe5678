"""The generation cache: finished continuations in a JSON-lines file, so a killed run resumes.

One line per output, ``{"key", "model", "prompt", "index", "settings", "text"}``, appended and
fsync'ed after every batch (:class:`CacheWriter`); :func:`read_cache` reads every line back,
drops a torn last line (a kill mid-write) and names the file and line of any other bad one.
Keys and the conventional file name come from :mod:`debiaslab.generation`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from debiaslab.errors import DataFormatError
from debiaslab.io import write_bytes_atomic

log = logging.getLogger(__name__)


def read_cache(path: Path) -> dict[str, str]:
    """Key → text of every line of a cache file (all models and settings).

    A torn last line is dropped with a warning and the file rewritten without it (and with a
    final newline), so appends start on a clean line.

    Raises:
        DataFormatError: a line other than the last is not a JSON object with string ``key``
            and ``text``.
    """
    if not path.exists():
        return {}
    data = path.read_bytes()
    lines = data.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    done: dict[str, str] = {}
    offset, good_end = 0, 0
    for i, raw in enumerate(lines):
        end = offset + len(raw)
        if raw.strip():
            try:
                record = json.loads(raw.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
                if i == last:
                    log.warning(
                        "%s: line %d is incomplete (an interrupted write?); ignoring it and "
                        "generating that output again",
                        path,
                        i + 1,
                    )
                    break
                raise DataFormatError(
                    f"line {i + 1} is not valid JSON: the generation cache is corrupt (delete "
                    "that line, or the file to start over)",
                    file=path,
                    row=i + 1,
                ) from None
            if not isinstance(record, dict):
                raise DataFormatError(
                    f"line {i + 1}: expected a JSON object", file=path, row=i + 1
                )
            for field in ("key", "text"):
                if not isinstance(record.get(field), str):
                    raise DataFormatError(
                        f"line {i + 1}: missing or not a string", file=path, row=i + 1, field=field
                    )
            done[record["key"]] = record["text"]
            good_end = end
        offset = end + 1
    clean = data[:good_end]
    if clean:
        clean += b"\n"
    if clean != data:
        write_bytes_atomic(path, clean)
    return done


class JsonlAppender:
    """Appends JSON records to a file, one per line, durably (flush + fsync) after each call:
    a crash loses at most the batch being written, and a torn last line is what readers
    (:func:`read_cache`, the image manifest) repair."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered, append mode: each call is one write(2) at the end of the file, so the
        # processes of a launched run (one per GPU) can append to one file without tearing
        # each other's lines.
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 (closed by close())

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        written = 0
        while written < len(data):
            written += self.file.write(data[written:])
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


class CacheWriter(JsonlAppender):
    """Appends finished outputs to a cache file, durably after every batch."""

    def __init__(self, path: Path, model_key: str, settings: dict[str, Any]) -> None:
        super().__init__(path)
        self.model_key = model_key
        self.settings = settings

    def write(self, rows: Sequence[tuple[str, str, int]], texts: Sequence[str]) -> None:
        """Append ``(key, prompt, index)`` rows with their texts; flush and fsync."""
        self.append(
            [
                {
                    "key": key,
                    "model": self.model_key,
                    "prompt": prompt,
                    "index": index,
                    "settings": self.settings,
                    "text": text,
                }
                for (key, prompt, index), text in zip(rows, texts, strict=True)
            ]
        )
