"""US occupation statistics: BLS CPS table 11 (employed persons by occupation, sex, race and
Hispanic ethnicity), read from either registered copy, and occupations found by name.

Source: US Bureau of Labor Statistics, Current Population Survey, annual averages (public
domain). ``bls_cpsaat11_2022`` (default; the file states no year, 2022 is inferred from its
Total row) and ``bls_cpsaat11_2020`` (states its year; an extra ``Tree level`` column added by
the copying repository). :mod:`debiaslab.t2i.targets` turns a row into target shares.

Example:
    >>> rows = [Occupation("Chief executives", 1780, 0.292, 0.859, 0.059, 0.067, 0.068)]
    >>> find_occupation("Chief executives", rows).women
    0.292
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from debiaslab.data.fetch import decode_utf8, resolve
from debiaslab.errors import ConfigError, DataFormatError

TABLE_NAME = (
    "BLS CPS table 11: Employed persons by detailed occupation, sex, race, "
    "and Hispanic or Latino ethnicity (annual averages)"
)
YEARS = (2022, 2020)  # registered copies; the first is the default
DEFAULT_YEAR = YEARS[0]

SUPPRESSED = "–"  # U+2013: BLS shows no percentages where the base is below 50,000
_SHARE_COLUMNS = {  # Occupation attribute ← normalised header name
    "women": "women",
    "white": "white",
    "black": "black or african american",
    "asian": "asian",
    "hispanic": "hispanic or latino",
}
_REQUIRED_COLUMNS = ("occupation", "total employed", *_SHARE_COLUMNS.values())
_TREE_LEVEL = "tree level"
_SPACES = re.compile(r"\s+")
_YEAR = re.compile(r"(19|20)\d\d")


@dataclass(frozen=True)
class Occupation:
    """One row of CPS table 11: an occupation, or an aggregate of occupations.

    Shares are fractions in [0, 1] (the file's percentages / 100); None where BLS suppresses
    them (fewer than 50,000 employed).

    Attributes:
        name: the occupation as BLS names it, runs of whitespace collapsed.
        employed_thousands: total employed, in thousands.
        women, white, black, asian, hispanic: shares of the employed. ``white``, ``black``
            and ``asian`` do not sum to 1 (other races are not shown); ``hispanic`` overlaps
            them (any race).
        is_aggregate: a total or major/minor group row ("Management occupations") rather
            than a detailed occupation; see :func:`load_occupations` for how it is told.
        tree_level: depth in the table's hierarchy (0 = total … 4), when the file has it.
        year: the annual average the row belongs to.
        line: the line in the file where the row ends (for tracing a number to its source).
    """

    name: str
    employed_thousands: int
    women: float | None
    white: float | None
    black: float | None
    asian: float | None
    hispanic: float | None
    is_aggregate: bool = False
    tree_level: int | None = None
    year: int | None = None
    line: int | None = None

    @property
    def suppressed(self) -> bool:
        """Whether any share is suppressed (then targets cannot be made from this row)."""
        return None in (self.women, self.white, self.black, self.asian, self.hispanic)


@dataclass(frozen=True)
class OccupationTable:
    """All rows of one CPS table 11 file, in file order, with where they came from.

    Iterates, indexes and measures like the tuple of :class:`Occupation` it holds.

    Attributes:
        occupations: the rows, aggregate rows included (filter with ``is_aggregate``).
        source: ``{"table", "year", "year_stated_in_file", "file", "aggregate_rule"}``;
            ``aggregate_rule`` is ``"tree level"`` or ``"name"`` (see :func:`load_occupations`).
    """

    occupations: tuple[Occupation, ...]
    source: dict[str, str | int | bool | None] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Occupation]:
        return iter(self.occupations)

    def __len__(self) -> int:
        return len(self.occupations)

    def __getitem__(self, index: int) -> Occupation:
        return self.occupations[index]

    @property
    def total(self) -> Occupation:
        """The "Total, 16 years and over" row: all employed persons."""
        for occupation in self.occupations:
            if occupation.name.casefold().startswith("total,"):
                return occupation
        raise LookupError(f"no 'Total, …' row in {self.source.get('file', 'this table')}")

    def detailed(self) -> list[Occupation]:
        """The detailed occupations (aggregate rows left out)."""
        return [occ for occ in self.occupations if not occ.is_aggregate]

    def find(self, name: str) -> Occupation:
        """See :func:`find_occupation`."""
        return find_occupation(name, self)


def normalise_name(text: str) -> str:
    """``text`` with runs of whitespace collapsed to one space and the ends stripped."""
    return _SPACES.sub(" ", text).strip()


def _is_aggregate_by_name(name: str) -> bool:
    """The table's totals and groups are "Total, …" or "… occupations" (not "Other … occupations").

    On the 2020 file, which has tree levels, this rule finds exactly the rows that have children.
    """
    lower = name.casefold()
    return lower.startswith("total,") or (
        lower.endswith(" occupations") and not lower.startswith("other ")
    )


def _parse_share(cell: str, file: Path, line: int, column: str) -> float | None:
    cell = cell.strip()
    if cell == SUPPRESSED:
        return None
    try:
        percent = float(cell)
    except ValueError:
        raise DataFormatError(
            f"expected a percentage or {SUPPRESSED!r} (suppressed), got {cell!r}",
            file=file,
            row=line,
            field=column,
        ) from None
    if not 0.0 <= percent <= 100.0:
        raise DataFormatError(
            f"percentage {percent} is outside [0, 100]", file=file, row=line, field=column
        )
    return round(percent / 100.0, 6)  # 87.4 / 100 is 0.8740000000000001


def _parse_count(cell: str, file: Path, line: int, column: str) -> int:
    digits = cell.strip().replace(",", "")  # thousands separators: "1,669"
    if not digits.isdigit():
        raise DataFormatError(
            f"expected a count in thousands such as '1,669', got {cell!r}",
            file=file,
            row=line,
            field=column,
        )
    return int(digits)


def load_occupations(
    path: str | os.PathLike | None = None, year: int | None = None
) -> OccupationTable:
    """Read a BLS CPS table 11 CSV: every occupation and aggregate row, in file order.

    Columns are found by header name, so both registered layouts read: the 2022 copy (one
    header line, CRLF) and the 2020 copy (a title block and a header spread over three
    records with line breaks inside quoted cells, plus ``Tree level``). A UTF-8 BOM, blank
    separator records and the closing ``NOTE:`` record are skipped.

    Aggregate rows: with a ``Tree level`` column (2020), a row is an aggregate when the next
    row sits deeper in the tree. Without one (2022) the row's name decides: "Total, …" and
    "… occupations" except "Other … occupations" (which are detailed occupations). On the
    2020 file both rules mark the same 30 rows; the 2022 file lists the same 595 rows in the
    same order, so the name rule is expected to hold there too, but it cannot be checked
    against the file itself. ``source["aggregate_rule"]`` says which rule was used.

    Args:
        path: an explicit CSV file; otherwise the registered copy for ``year`` is resolved
            (``$DEBIASLAB_DATA_DIR`` → cache → checksum-verified download).
        year: the annual average wanted, one of :data:`YEARS` when no path is given
            (default 2022). With a path, a year the file states wins and a different
            ``year`` is an error; a file that states none (the 2022 layout) needs ``year``.

    Returns:
        An :class:`OccupationTable` with ``source`` recording table, year and file.

    Raises:
        ConfigError: ``year`` is not registered, or a path without a stated year got no year.
        DataFormatError: a malformed file; the message names the file, line and column.
    """
    if path is None:
        chosen = DEFAULT_YEAR if year is None else year
        if chosen not in YEARS:
            raise ConfigError(f"no CPS table 11 registered for {chosen}; choose one of {YEARS}")
        file = resolve(f"bls_cpsaat11_{chosen}")
    else:
        file = resolve(f"bls_cpsaat11_{year or DEFAULT_YEAR}", path)
    text, bad = decode_utf8(file.read_bytes())
    if bad is not None:
        raise DataFormatError(f"not valid UTF-8 ({bad})", file=file)
    reader = csv.reader(io.StringIO(text, newline=""))

    header_records: list[list[str]] = []
    for record in reader:
        header_records.append(record)
        if any(normalise_name(cell).casefold() == "women" for cell in record):
            break
    else:
        raise DataFormatError(
            "no header with a 'Women' column; is this BLS CPS table 11 (cpsaat11)?", file=file
        )
    width = max(len(r) for r in header_records)
    columns: list[str] = []
    for k in range(width):  # a column's name is its lowest non-empty header cell
        cells = [normalise_name(r[k]) for r in header_records if k < len(r) and r[k].strip()]
        columns.append(cells[-1].casefold() if cells else "")
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataFormatError(
            f"missing column(s) {missing}; header found: {columns}",
            file=file,
            row=reader.line_num,
        )
    where = {
        name: columns.index(name) for name in (*_REQUIRED_COLUMNS, _TREE_LEVEL) if name in columns
    }
    stated = sorted(
        {cell.strip() for r in header_records for cell in r if _YEAR.fullmatch(cell.strip())}
    )
    if len(stated) > 1:
        raise DataFormatError(f"the header states several years {stated}", file=file)
    if stated:
        if year is not None and int(stated[0]) != year:
            raise DataFormatError(
                f"the file states annual averages of {stated[0]}, but year={year} was asked "
                f"for; pass year={stated[0]} or the right file",
                file=file,
            )
        table_year = int(stated[0])
    elif path is None:
        table_year = DEFAULT_YEAR if year is None else year
    elif year is not None:
        table_year = year
    else:
        raise ConfigError(
            f"{file}: the file does not state its year; pass year= (the registered copy "
            f"without a stated year is {DEFAULT_YEAR})"
        )

    rows: list[Occupation] = []
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # blank separator
        if record[0].lstrip().startswith("NOTE"):
            continue  # footer
        if len(record) != width:
            raise DataFormatError(
                f"expected {width} fields like the header, got {len(record)}", file=file, row=line
            )
        name = normalise_name(record[where["occupation"]])
        if not name:
            raise DataFormatError("empty occupation name", file=file, row=line, field="Occupation")
        shares = {
            attr: _parse_share(record[where[column]], file, line, column)
            for attr, column in _SHARE_COLUMNS.items()
        }
        level = None
        if _TREE_LEVEL in where:
            cell = record[where[_TREE_LEVEL]].strip()
            if not cell.isdigit():
                raise DataFormatError(
                    f"expected a tree level 0, 1, 2, …, got {cell!r}",
                    file=file,
                    row=line,
                    field="Tree level",
                )
            level = int(cell)
        occupation = Occupation(
            name=name,
            employed_thousands=_parse_count(
                record[where["total employed"]], file, line, "Total employed"
            ),
            **shares,
            is_aggregate=_is_aggregate_by_name(name),
            tree_level=level,
            year=table_year,
            line=line,
        )
        rows.append(occupation)
    if not rows:
        raise DataFormatError("no occupation rows below the header", file=file)

    has_tree = _TREE_LEVEL in where
    if has_tree:  # a row with children is an aggregate: the next row sits deeper
        rows = [
            replace(
                occ, is_aggregate=k + 1 < len(rows) and rows[k + 1].tree_level > occ.tree_level
            )
            for k, occ in enumerate(rows)
        ]
    return OccupationTable(
        tuple(rows),
        {
            "table": TABLE_NAME,
            "year": table_year,
            "year_stated_in_file": bool(stated),
            "file": str(file),
            "aggregate_rule": "tree level" if has_tree else "name",
        },
    )


@functools.lru_cache(maxsize=8)
def _cached_table(file: str, year: int | None, mtime_ns: int) -> OccupationTable:
    return load_occupations(file, year)


def _table_for(path: str | os.PathLike | None, year: int | None) -> OccupationTable:
    """:func:`load_occupations`, read once per resolved file (and its modification time)."""
    if path is None:
        year = DEFAULT_YEAR if year is None else year
        if year not in YEARS:
            raise ConfigError(f"no CPS table 11 registered for {year}; choose one of {YEARS}")
    file = resolve(f"bls_cpsaat11_{year or DEFAULT_YEAR}", path)
    return _cached_table(str(file), year, file.stat().st_mtime_ns)


def find_occupation(
    name: str,
    occupations: Iterable[Occupation] | None = None,
    *,
    path: str | os.PathLike | None = None,
    year: int | None = None,
) -> Occupation:
    """The occupation called ``name``, matched exactly but ignoring case and extra spaces.

    No fuzzy match is ever *returned* — a near miss ("nurse" for "Registered nurses") would
    silently change the target — but the error lists the closest names to pick from.

    Args:
        name: the occupation as BLS names it, e.g. ``"Registered nurses"``.
        occupations: rows to search (an :class:`OccupationTable` or any iterable); default
            the table :func:`load_occupations` gives for ``path`` and ``year`` (read once).
        path, year: passed to :func:`load_occupations` when ``occupations`` is None.

    Raises:
        ConfigError: no row or several rows have that name; the message lists close names.

    Example:
        >>> rows = [Occupation("Chief executives", 1780, 0.292, 0.859, 0.059, 0.067, 0.068)]
        >>> find_occupation("chief  EXECUTIVES", rows).employed_thousands
        1780
    """
    if occupations is None:
        occupations = _table_for(path, year)
    rows = list(occupations)
    wanted = normalise_name(name).casefold()
    hits = [occ for occ in rows if occ.name.casefold() == wanted]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        lines = [occ.line for occ in hits]
        raise ConfigError(f"{len(hits)} rows are named {name!r} (lines {lines}); pick one row")
    names = [occ.name for occ in rows]
    by_fold = {n.casefold(): n for n in names}
    contains = [n for n in names if wanted and wanted in n.casefold()]
    close = [by_fold[n] for n in difflib.get_close_matches(wanted, list(by_fold), n=5)]
    suggestions = list(dict.fromkeys([*contains[:5], *close]))
    hint = f"; close matches: {suggestions}" if suggestions else ""
    raise ConfigError(
        f"no occupation named {name!r} in {TABLE_NAME}{hint}. Names are matched exactly "
        "(ignoring case and spacing) so that a target never silently comes from another row."
    )
