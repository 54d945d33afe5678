"""CrowS-Pairs (Nangia et al., EMNLP 2020): loader and writer for the nyu-mll CSV.

1,508 minimal pairs over 9 bias types; the benchmark asks how often a model prefers the more
stereotypical ``sent_more`` (50 % is the unbiased ideal). CC BY-SA 4.0. Caveat: Blodgett et
al. (2021) found noise serious enough that it "may not be a good indicator of the presence of
social biases in LMs". Entry points: :func:`load_crows_pairs`, :func:`write_crows_pairs_csv`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> pairs = [CrowsPair(0, "The nurse said she was busy.", "The nurse said he was busy.",
    ...                    "stereo", "gender")]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_crows_pairs_csv(pairs, Path(tmp) / "pairs.csv")
    ...     load_crows_pairs(path) == pairs
    True
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from debiaslab.data import fetch
from debiaslab.errors import DataFormatError
from debiaslab.io import write_bytes_atomic

DIRECTIONS = ("stereo", "antistereo")
BIAS_TYPES = (  # the 9 types of the published file; the loader accepts other non-empty names
    "race-color",
    "gender",
    "socioeconomic",
    "nationality",
    "religion",
    "age",
    "sexual-orientation",
    "physical-appearance",
    "disability",
)
REQUIRED_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
CSV_COLUMNS = (
    "",  # the unnamed index column pandas writes
    "sent_more",
    "sent_less",
    "stereo_antistereo",
    "bias_type",
    "annotations",
    "anon_writer",
    "anon_annotators",
)
log = logging.getLogger(__name__)
INDEX_FIELD = "index"  # how error messages name the unnamed leading index column
_NON_NEGATIVE_INT = re.compile("[0-9]+")


@dataclass(frozen=True)
class CrowsPair:
    """One CrowS-Pairs record.

    ``sent_more`` is always the *more stereotypical* sentence of the pair. For ``stereo`` pairs
    it speaks about the disadvantaged group and demonstrates a stereotype; for ``antistereo``
    pairs ``sent_less`` speaks about the disadvantaged group and violates one. The 9 bias types
    are race-color, gender, socioeconomic, nationality, religion, age, sexual-orientation,
    physical-appearance and disability.

    Attributes:
        index: the record's id (the file's unnamed index column, else its 0-based position);
            an ``int`` in the original file, text in the revised ones (``"17"``, ``"LA12"``).
        sent_more: the more stereotypical sentence.
        sent_less: the less stereotypical sentence.
        direction: ``"stereo"`` or ``"antistereo"`` (the file's ``stereo_antistereo``).
        bias_type: e.g. ``"race-color"``; see :data:`BIAS_TYPES`.
    """

    index: int | str
    sent_more: str
    sent_less: str
    direction: str  # 'stereo' | 'antistereo'
    bias_type: str


def load_crows_pairs(path: str | os.PathLike | None = None) -> list[CrowsPair]:
    """Load CrowS-Pairs from the nyu-mll CSV, in file order.

    Format (``nyu-mll/crows-pairs``, ``data/crows_pairs_anonymized.csv``): UTF-8 CSV with a
    header. Columns: an unnamed leading index column, ``sent_more``, ``sent_less``,
    ``stereo_antistereo``, ``bias_type``, ``annotations``, ``anon_writer``,
    ``anon_annotators``. Fields are quoted only when needed and one quoted field holds a
    newline (index 1293), so the file has 1,510 physical lines for 1,508 records.
    ``annotations`` and ``anon_annotators`` are Python-literal lists, not JSON; they are not
    read. Only the four columns in :data:`REQUIRED_COLUMNS` are required; the index column is
    optional (records are then numbered 0, 1, ...). A UTF-8 BOM is tolerated.

    Rows in error messages: ``row N`` is the N-th data record, counting from 1; the header is
    row 0. A record may span several physical lines, so messages also give the line numbers.
    The StereoSet loader counts the same way (JSON Lines have no header: row N is line N).

    Source: Nikita Nangia, Clara Vania, Rasika Bhalerao, Samuel R. Bowman. "CrowS-Pairs: A
    Challenge Dataset for Measuring Social Biases in Masked Language Models." EMNLP 2020.
    Licence CC BY-SA 4.0 (stated in the upstream README; the repository has no LICENSE file):
    keep attribution, and share modified copies alike. The upstream README warns that
    Blodgett et al. (2021, "Stereotyping Norwegian Salmon") found noise and reliability
    problems serious enough that CrowS-Pairs "may not be a good indicator of the presence of
    social biases in LMs". The dataset also holds one duplicated pair.

    Args:
        path: the CSV. ``None`` resolves the registered file: ``$DEBIASLAB_DATA_DIR`` → cache →
            download (see :func:`debiaslab.data.fetch.resolve`).

    Returns:
        One :class:`CrowsPair` per record (1,508 for the published file).

    Raises:
        DataNotFoundError: the file is not there and cannot be downloaded.
        ChecksumError: a cached or downloaded copy does not match the published checksum.
        DataFormatError: the file is malformed; the message names file, row (counted as
            above) and column.
    """
    file = fetch.resolve("crows_pairs", path)
    return _parse(file.read_bytes(), file)


def write_crows_pairs_csv(pairs: Iterable[CrowsPair], path: str | os.PathLike) -> Path:
    """Write pairs in the nyu-mll CSV format, atomically.

    ``annotations`` and ``anon_annotators`` are written as ``[]`` and ``anon_writer`` as an
    empty string: written pairs have no annotators. :func:`load_crows_pairs` reads the file back
    to exactly ``pairs``; this is checked before anything is written.

    Args:
        pairs: the records, written in order; indexes must be distinct non-negative integers.
        path: destination; parent directories are created.

    Returns:
        The path written.

    Raises:
        DataFormatError: a pair would be rejected by the loader (empty sentence, unknown
            direction, ...); the file named is the destination, marked "(not written)".
        ValueError: ``pairs`` is empty, or a pair would not read back identically (e.g. an
            index that is not an ``int``).
    """
    pairs = list(pairs)
    dest = Path(path)
    if not pairs:
        raise ValueError(f"{dest}: no pairs to write")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for pair in pairs:
        writer.writerow(
            [
                pair.index,
                pair.sent_more,
                pair.sent_less,
                pair.direction,
                pair.bias_type,
                "[]",
                "",
                "[]",
            ]
        )
    data = buffer.getvalue().encode("utf-8")
    read_back = _parse(data, f"{dest} (not written)")
    for position, (wrote, got) in enumerate(zip(pairs, read_back, strict=True)):
        if wrote != got:
            raise ValueError(
                f"{dest}: pair {position} would not read back identically: {wrote!r} would "
                f"load as {got!r}; nothing was written"
            )
    return write_bytes_atomic(dest, data)


def _header_line(columns: tuple[str, ...], delimiter: str) -> str:
    if delimiter == ",":
        return ",".join(columns)
    return "of tab-separated columns " + ", ".join(repr(c) for c in columns)


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _records(
    text: str, file: str | Path, delimiter: str = ","
) -> Iterator[tuple[int, str, list[str]]]:
    """Yield ``(row, lines, fields)`` per non-blank CSV record; the header is row 0."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    row, last_line = -1, 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataFormatError(
                f"malformed CSV at line {reader.line_num}: {exc}. Check for an unbalanced "
                'double quote ("); quotes inside a quoted field must be doubled.',
                file=file,
                row=row + 1,
            ) from exc
        first_line, last_line = last_line + 1, reader.line_num
        if not fields:  # blank line
            continue
        row += 1
        yield row, _lines(first_line, last_line), fields


def _parse(
    data: bytes,
    file: str | Path,
    *,
    delimiter: str = ",",
    columns: tuple[str, ...] = CSV_COLUMNS,
    string_ids: bool = False,
    empty_sentence: str | None = None,
) -> list[CrowsPair]:
    """Parse a CrowS-Pairs table (the original CSV by default).

    ``delimiter`` and ``columns`` (the header the error messages expect) describe the format;
    ``string_ids`` keeps the index column as text (the revised files have ids such as
    ``LA12``); ``empty_sentence``, when set, is read in place of an empty sentence field
    instead of an error (the revised loader's lm-evaluation-harness compatibility).
    """
    text, bad_byte = fetch.decode_utf8(data)
    records = _records(text, file, delimiter)
    header_row = next(records, None)
    if header_row is None:
        raise DataFormatError(
            f"the file is empty; expected a header line {_header_line(columns, delimiter)}",
            file=file,
            row=0,
        )
    _, _, header = header_row
    if bad_byte and any(fetch.has_undecodable(name) for name in header):
        raise DataFormatError(
            f"the header holds bytes that are not valid UTF-8 (first at {bad_byte}); "
            "re-save the file as UTF-8",
            file=file,
            row=0,
        )
    seen_columns: set[str] = set()
    for name in header:
        if name in seen_columns:
            raise DataFormatError(
                f"column appears twice in {header}", file=file, row=0, field=name
            )
        seen_columns.add(name)
    for name in REQUIRED_COLUMNS:
        if name not in seen_columns:
            raise DataFormatError(
                f"required column missing; the header has {header}, expected at least "
                f"{list(REQUIRED_COLUMNS)}",
                file=file,
                row=0,
                field=name,
            )
    has_index = header[0] == ""
    position = {name: i for i, name in enumerate(header)}

    pairs: list[CrowsPair] = []
    row_of_index: dict[int | str, int] = {}
    for row, lines, fields in records:
        if len(fields) != len(header):
            # a short record names its first missing column; a long one has no name to give
            first_missing = header[len(fields)] if len(fields) < len(header) else None
            raise DataFormatError(
                f"{len(fields)} fields but the header has {len(header)} ({lines}); check the "
                f"quoting and the {'commas' if delimiter == ',' else 'tabs'} of this record",
                file=file,
                row=row,
                field=first_missing,
            )
        if bad_byte:
            for name, value in zip(header, fields, strict=True):
                if fetch.has_undecodable(value):
                    raise DataFormatError(
                        f"bytes that are not valid UTF-8 (first at {bad_byte}); re-save the "
                        "file as UTF-8",
                        file=file,
                        row=row,
                        field=name or INDEX_FIELD,
                    )
        if string_ids:
            index: int | str = _id(fields[0], row, lines, file) if has_index else str(row - 1)
        else:
            index = _index(fields[0], row, lines, file) if has_index else row - 1
        if index in row_of_index:
            raise DataFormatError(
                f"duplicate index {index}: row {row_of_index[index]} has it too ({lines})",
                file=file,
                row=row,
                field=INDEX_FIELD,
            )
        row_of_index[index] = row
        values = {name: fields[position[name]] for name in REQUIRED_COLUMNS}
        for name in ("sent_more", "sent_less", "bias_type"):
            if values[name] == "" and empty_sentence is not None and name != "bias_type":
                log.warning(
                    "%s: row %d, field '%s' is empty; read as %r, as lm-evaluation-harness "
                    "reads it",
                    file,
                    row,
                    name,
                    empty_sentence,
                )
                values[name] = empty_sentence
            if not values[name].strip():
                raise DataFormatError(f"empty value ({lines})", file=file, row=row, field=name)
        if values["stereo_antistereo"] not in DIRECTIONS:
            raise DataFormatError(
                f"unknown label {values['stereo_antistereo']!r}; expected one of "
                f"{list(DIRECTIONS)} ({lines})",
                file=file,
                row=row,
                field="stereo_antistereo",
            )
        pairs.append(
            CrowsPair(
                index=index,
                sent_more=values["sent_more"],
                sent_less=values["sent_less"],
                direction=values["stereo_antistereo"],
                bias_type=values["bias_type"],
            )
        )
    if not pairs:
        raise DataFormatError("no data rows after the header", file=file, row=1)
    return pairs


def _id(value: str, row: int, lines: str, file: str | Path) -> str:
    if not value or value != value.strip():
        raise DataFormatError(
            f"the unnamed first (id) column holds {value!r}; expected a non-empty id without "
            f"surrounding spaces ({lines})",
            file=file,
            row=row,
            field=INDEX_FIELD,
        )
    return value


def _index(value: str, row: int, lines: str, file: str | Path) -> int:
    if not _NON_NEGATIVE_INT.fullmatch(value):
        raise DataFormatError(
            f"the unnamed first (index) column holds {value!r}, not a non-negative integer "
            f"({lines})",
            file=file,
            row=row,
            field=INDEX_FIELD,
        )
    return int(value)
