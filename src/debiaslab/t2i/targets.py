# long by design: BLS table parsing for two years with per-axis normalisation.
"""Target distributions for text-to-image bias: US occupation statistics and presets.

Card:
    Source: US Bureau of Labor Statistics, Current Population Survey, annual averages, table 11
        "Employed persons by detailed occupation, sex, race, and Hispanic or Latino ethnicity"
        (public domain). Two copies are registered: ``bls_cpsaat11_2022`` (default; the file
        states no year, 2022 is inferred from its Total row) and ``bls_cpsaat11_2020`` (states
        its year; has an extra ``Tree level`` column added by the copying repository).
    Targets are per axis and normalised within each axis; overlapping axes are never summed:
        ``gender``: ``{female, male}``; ``race``: ``{white, black, asian}`` renormalised (BLS
        shows no other race, so its race columns do not sum to 100); ``hispanic``:
        ``{hispanic, not_hispanic}`` — Hispanic or Latino people may be of any race, so it is
        an axis of its own, not a fourth race.
    Presets: ``uniform`` and ``precise_debias`` (the single global vector of PreciseDebias,
        Clemmer et al., WACV 2024), in the same per-axis form.

Example:
    >>> get_target("precise_debias")["gender"]
    {'female': 0.5, 'male': 0.5}
    >>> sorted(get_target("uniform"))
    ['gender', 'hispanic', 'race']
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from debiaslab.data.fetch import decode_utf8, resolve
from debiaslab.errors import ConfigError, DataFormatError

TABLE_NAME = (
    "BLS CPS table 11: Employed persons by detailed occupation, sex, race, "
    "and Hispanic or Latino ethnicity (annual averages)"
)
YEARS = (2022, 2020)  # registered copies; the first is the default
DEFAULT_YEAR = YEARS[0]

AXES = ("gender", "race", "hispanic")
GENDER_GROUPS = ("female", "male")
RACE_GROUPS = ("white", "black", "asian")  # the race columns BLS publishes
OTHER_RACE = "other"  # the residual 1 − (white + black + asian), only with race_other=True
HISPANIC_GROUPS = ("hispanic", "not_hispanic")

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


def _normalise(text: str) -> str:
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
        if any(_normalise(cell).casefold() == "women" for cell in record):
            break
    else:
        raise DataFormatError(
            "no header with a 'Women' column; is this BLS CPS table 11 (cpsaat11)?", file=file
        )
    width = max(len(r) for r in header_records)
    columns: list[str] = []
    for k in range(width):  # a column's name is its lowest non-empty header cell
        cells = [_normalise(r[k]) for r in header_records if k < len(r) and r[k].strip()]
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
        name = _normalise(record[where["occupation"]])
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
    wanted = _normalise(name).casefold()
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


def _check_shares(occupation: Occupation, needed: Sequence[str]) -> None:
    absent = [attr for attr in needed if getattr(occupation, attr) is None]
    if absent:
        raise ConfigError(
            f"{occupation.name!r}: BLS suppresses {absent} for occupations with fewer than "
            f"50,000 employed ({occupation.employed_thousands} thousand); use the aggregate "
            "row it belongs to, or a preset target"
        )


def occupation_targets(
    occupation: Occupation, *, axes: Sequence[str] = AXES, race_other: bool = False
) -> dict[str, dict[str, float]]:
    """Target shares per axis for one occupation, each axis normalised on its own.

    - ``gender``: ``{"female": w, "male": 1 − w}`` (CPS records sex as female/male only).
    - ``race``: White, Black and Asian shares divided by their sum. BLS publishes no other
      race column (no American Indian, Pacific Islander or multiracial share), so the three
      do not sum to 1; renormalising is a choice — it assumes the missing people are spread
      like the shown ones. With ``race_other=True`` the residual ``1 − (white + black +
      asian)`` is kept as group ``"other"`` instead (clipped at 0 where rounding pushes the
      sum above 100 %), for classifiers that have such a class.
    - ``hispanic``: ``{"hispanic": h, "not_hispanic": 1 − h}``. Hispanic or Latino people may
      be of any race, so this axis is never added to the race axis (doing so counts people
      twice: the PreciseDebias shares sum to 1.146 for this reason).

    Args:
        occupation: a row from :func:`load_occupations`.
        axes: which of :data:`AXES` to return.
        race_other: keep the unreported-race residual as ``"other"`` instead of renormalising.

    Returns:
        ``{axis: {group: share}}``, each inner dict summing to 1.

    Raises:
        ConfigError: an unknown axis, or a share the axis needs is suppressed.

    Example:
        >>> ceo = Occupation("Chief executives", 1780, 0.292, 0.859, 0.059, 0.067, 0.068)
        >>> t = occupation_targets(ceo)
        >>> t["gender"]["female"], round(t["race"]["white"], 4), t["hispanic"]["hispanic"]
        (0.292, 0.8721, 0.068)
    """
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ConfigError(f"unknown axes {unknown}; choose from {AXES}")
    needed = {"gender": ["women"], "race": list(RACE_GROUPS), "hispanic": ["hispanic"]}
    _check_shares(occupation, [attr for axis in axes for attr in needed[axis]])
    out: dict[str, dict[str, float]] = {}
    if "gender" in axes:
        out["gender"] = {"female": occupation.women, "male": 1.0 - occupation.women}
    if "race" in axes:
        race = {group: getattr(occupation, group) for group in RACE_GROUPS}
        out["race"] = _race_axis(race, race_other)
    if "hispanic" in axes:
        hispanic = occupation.hispanic
        out["hispanic"] = {"hispanic": hispanic, "not_hispanic": 1.0 - hispanic}
    return out


def _race_axis(shares: Mapping[str, float], race_other: bool) -> dict[str, float]:
    shown = sum(shares.values())
    if shown <= 0:
        raise ConfigError(f"race shares {dict(shares)} sum to 0; no race target can be made")
    if not race_other or shown >= 1.0:
        race = {group: share / shown for group, share in shares.items()}
        return {**race, OTHER_RACE: 0.0} if race_other else race
    return {**shares, OTHER_RACE: 1.0 - shown}


def _freeze(target: Mapping[str, Mapping[str, float]]) -> Mapping[str, Mapping[str, float]]:
    return MappingProxyType({axis: MappingProxyType(dict(g)) for axis, g in target.items()})


#: PreciseDebias's global target (``2_train_model/data/bls_stats.json`` of
#: ResponsibleAILab/Precise_Debias @ 3f8a0f4), verbatim: race×gender shares, each race split
#: 50/50 by gender. They sum to 1.146, not 1, because "hispanic" overlaps the three races
#: (BLS counts Hispanic people under their race too). The race shares (0.77, 0.126, 0.066,
#: 0.184) are close to, not equal to, the CPS 2022 totals (0.770, 0.126, 0.067, 0.185);
#: the upstream repository does not say which year they are from.
PRECISE_DEBIAS_RAW: Mapping[str, float] = MappingProxyType(
    {
        "white male": 0.385,
        "white female": 0.385,
        "black male": 0.063,
        "black female": 0.063,
        "asian male": 0.033,
        "asian female": 0.033,
        "hispanic male": 0.092,
        "hispanic female": 0.092,
    }
)


def _precise_debias(race_other: bool = False) -> dict[str, dict[str, float]]:
    """:data:`PRECISE_DEBIAS_RAW` per axis; gender from the three races (Hispanic overlaps)."""
    raw = PRECISE_DEBIAS_RAW
    female = sum(raw[f"{race} female"] for race in RACE_GROUPS)
    male = sum(raw[f"{race} male"] for race in RACE_GROUPS)
    hispanic = raw["hispanic female"] + raw["hispanic male"]
    race = {r: raw[f"{r} female"] + raw[f"{r} male"] for r in RACE_GROUPS}
    return {
        "gender": {"female": female / (female + male), "male": male / (female + male)},
        "race": _race_axis(race, race_other),
        "hispanic": {"hispanic": hispanic, "not_hispanic": 1.0 - hispanic},
    }


def _uniform(race_other: bool = False) -> dict[str, dict[str, float]]:
    races = (*RACE_GROUPS, OTHER_RACE) if race_other else RACE_GROUPS
    return {
        "gender": dict.fromkeys(GENDER_GROUPS, 1 / len(GENDER_GROUPS)),
        "race": dict.fromkeys(races, 1 / len(races)),
        "hispanic": dict.fromkeys(HISPANIC_GROUPS, 1 / len(HISPANIC_GROUPS)),
    }


#: The PreciseDebias global vector per axis: gender 50/50; race White/Black/Asian renormalised
#: (0.77, 0.126, 0.066 over their sum 0.962); hispanic 0.184 / 0.816. Read-only.
PRECISE_DEBIAS_GLOBAL = _freeze(_precise_debias())
#: Equal shares within each axis (race over White/Black/Asian). Read-only.
UNIFORM = _freeze(_uniform())
_PRESETS = {"uniform": _uniform, "precise_debias": _precise_debias}
PRESETS = tuple(_PRESETS)


def get_target(
    name_or_occupation: str | Occupation,
    *,
    axes: Sequence[str] = AXES,
    race_other: bool = False,
    occupations: Iterable[Occupation] | None = None,
    path: str | os.PathLike | None = None,
    year: int | None = None,
) -> dict[str, dict[str, float]]:
    """A per-axis target: a preset name, an occupation name, or an :class:`Occupation`.

    Preset names (:data:`PRESETS`, case-insensitive) win over occupation names; no BLS
    occupation is called "uniform" or "precise_debias".

    Args:
        name_or_occupation: ``"uniform"``, ``"precise_debias"``, a BLS occupation name
            (see :func:`find_occupation`) or a row.
        axes: which of :data:`AXES` to return.
        race_other: keep an ``"other"`` race group (see :func:`occupation_targets`; for
            ``precise_debias`` it is 1 − 0.962, for ``uniform`` a fourth equal share).
        occupations, path, year: where to look an occupation name up (default: CPS 2022).

    Returns:
        A fresh ``{axis: {group: share}}`` (safe to modify), each axis summing to 1.

    Example:
        >>> {g: round(s, 4) for g, s in get_target("precise_debias")["race"].items()}
        {'white': 0.8004, 'black': 0.131, 'asian': 0.0686}
        >>> get_target("uniform", axes=["hispanic"])
        {'hispanic': {'hispanic': 0.5, 'not_hispanic': 0.5}}
    """
    if isinstance(name_or_occupation, Occupation):
        return occupation_targets(name_or_occupation, axes=axes, race_other=race_other)
    preset = _PRESETS.get(_normalise(name_or_occupation).casefold())
    if preset is None:
        occupation = find_occupation(name_or_occupation, occupations, path=path, year=year)
        return occupation_targets(occupation, axes=axes, race_other=race_other)
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ConfigError(f"unknown axes {unknown}; choose from {AXES}")
    full = preset(race_other)
    return {axis: full[axis] for axis in axes}
