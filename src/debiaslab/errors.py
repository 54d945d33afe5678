"""Errors a user can act on: each says what was wrong, where, and (when known) what to do."""

from __future__ import annotations

from pathlib import Path


class DebiaslabError(Exception):
    """Base class of every error debiaslab raises on purpose."""


class DataFormatError(DebiaslabError, ValueError):
    """A data file is malformed. The message names the file, the row/record and the field.

    Example:
        >>> str(DataFormatError("unknown label 'pro'", file="x.csv", row=3, field="direction"))
        "x.csv: row 3, field 'direction': unknown label 'pro'"
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path,
        row: int | str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file)
        self.row = row
        self.field = field
        self.reason = message
        where = [self.file]
        detail = []
        if row is not None:
            detail.append(f"row {row}" if isinstance(row, int) else f"record {row}")
        if field is not None:
            detail.append(f"field '{field}'")
        if detail:
            where.append(", ".join(detail))
        super().__init__(": ".join([*where, message]))


class DataNotFoundError(DebiaslabError, FileNotFoundError):
    """A data file could not be found locally nor downloaded."""


class ChecksumError(DebiaslabError):
    """A downloaded or cached file does not match its published checksum."""


class ConfigError(DebiaslabError, ValueError):
    """A configuration value (CLI flag, preset, argument) is invalid."""


class OutputError(DebiaslabError, OSError):
    """An output could not be written (disk full, read-only folder, a file in the way)."""
