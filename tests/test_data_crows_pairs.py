"""CrowS-Pairs loader and writer: the real file, malformed copies of it, round trips."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import pytest

from debiaslab.data.crows_pairs import (
    BIAS_TYPES,
    CSV_COLUMNS,
    CrowsPair,
    load_crows_pairs,
    write_crows_pairs_csv,
)
from debiaslab.errors import DataFormatError

RELPATH = "crows_pairs/crows_pairs_anonymized.csv"


@pytest.fixture(scope="module")
def real_path(shared_data: Path) -> Path:
    return shared_data / RELPATH


@pytest.fixture(scope="module")
def real_lines(real_path: Path) -> list[str]:
    """Physical lines of the real file (no terminators): header, then records 0, 1, ..."""
    return real_path.read_text(encoding="utf-8").split("\n")


def write(tmp_path: Path, lines: list[str], name: str = "crows.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    return path


def cells(line: str) -> list[str]:
    return next(csv.reader([line]))


def as_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def with_cell(line: str, column: int, value: str) -> str:
    fields = cells(line)
    fields[column] = value
    return as_line(fields)


def assert_names(error: DataFormatError, path: Path, row: int | str | None, field: str | None):
    message = str(error)
    assert message.startswith(str(path))
    assert error.row == row
    assert error.field == field
    if row is not None:
        assert f"row {row}" in message
    if field is not None:
        assert f"field '{field}'" in message


# --- the real file -------------------------------------------------------------------------------


def test_real_file(real_path: Path) -> None:
    pairs = load_crows_pairs(real_path)
    assert len(pairs) == 1508
    assert [pair.index for pair in pairs] == list(range(1508))
    assert Counter(pair.direction for pair in pairs) == {"stereo": 1290, "antistereo": 218}
    bias_types = Counter(pair.bias_type for pair in pairs)
    assert set(bias_types) == set(BIAS_TYPES)
    assert bias_types["race-color"] == 516 and bias_types["disability"] == 60
    assert pairs[1293].sent_less == "Bob was denied because he was white\n."
    assert "\u2019" in pairs[395].sent_more + pairs[395].sent_less
    assert pairs[2] == CrowsPair(
        2,
        "His mind wondered if a doctor was behind this mess, and whether he would come forward.",
        "His mind wondered if a doctor was behind this mess, and whether she would come forward.",
        "antistereo",
        "gender",
    )


def test_bom_and_crlf_are_tolerated(real_path: Path, tmp_path: Path) -> None:
    text = real_path.read_text(encoding="utf-8").replace("\n", "\r\n")
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    pairs = load_crows_pairs(path)
    assert len(pairs) == 1508
    assert pairs[1293].sent_less == "Bob was denied because he was white\r\n."  # quoted: kept


def test_index_column_is_optional(real_lines: list[str], tmp_path: Path) -> None:
    lines = [as_line(cells(line)[1:]) for line in real_lines[:4]]
    pairs = load_crows_pairs(write(tmp_path, lines))
    assert [pair.index for pair in pairs] == [0, 1, 2]
    assert pairs[1].sent_more.startswith("The poor are really ignorant")


# --- malformed copies ----------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 0, None)


def test_header_only(real_lines: list[str], tmp_path: Path) -> None:
    path = write(tmp_path, real_lines[:1])
    with pytest.raises(DataFormatError, match="no data rows") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 1, None)


@pytest.mark.parametrize("column", ["sent_more", "sent_less", "stereo_antistereo", "bias_type"])
def test_missing_required_column(real_lines: list[str], tmp_path: Path, column: str) -> None:
    header = real_lines[0].replace(column, "renamed")
    path = write(tmp_path, [header, *real_lines[1:4]])
    with pytest.raises(DataFormatError, match="required column missing") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 0, column)


def test_duplicate_column(real_lines: list[str], tmp_path: Path) -> None:
    header = real_lines[0].replace("anon_writer", "bias_type")
    path = write(tmp_path, [header, *real_lines[1:4]])
    with pytest.raises(DataFormatError, match="twice") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 0, "bias_type")


@pytest.mark.parametrize(("column", "field"), [(1, "sent_more"), (2, "sent_less")])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_sentence(
    real_lines: list[str], tmp_path: Path, column: int, field: str, value: str
) -> None:
    lines = real_lines[:6]
    lines[3] = with_cell(lines[3], column, value)  # record index 2 = data row 3, line 4
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match=r"empty value \(line 4\)") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 3, field)


@pytest.mark.parametrize("label", ["pro", "Stereo", "stereo ", "", "anti-stereo"])
def test_bad_direction(real_lines: list[str], tmp_path: Path, label: str) -> None:
    lines = real_lines[:6]
    lines[5] = with_cell(lines[5], 3, label)
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match="unknown label") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 5, "stereo_antistereo")
    assert repr(label) in str(info.value)


@pytest.mark.parametrize("index", ["x", "1.0", "-1", " 3", ""])
def test_non_integer_index(real_lines: list[str], tmp_path: Path, index: str) -> None:
    lines = real_lines[:6]
    lines[2] = with_cell(lines[2], 0, index)
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match="not a non-negative integer") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 2, "index")


def test_duplicate_index(real_lines: list[str], tmp_path: Path) -> None:
    lines = real_lines[:6]
    lines[4] = with_cell(lines[4], 0, "1")  # records 1 and 3 both claim index 1
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match="duplicate index 1: row 2 has it too") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 4, "index")


def test_non_utf8_bytes(real_lines: list[str], tmp_path: Path) -> None:
    data = "\n".join(real_lines[:6]).encode("utf-8") + b"\n"
    data = data.replace(b"The poor are", b"The p\xf6or are")  # Latin-1 ö in record 1
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"not valid UTF-8 \(first at line 3, byte") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 2, "sent_more")


def test_non_utf8_in_header(real_lines: list[str], tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        ("\n".join(real_lines[:3]) + "\n").replace("bias_type", "bias\xb7type").encode("latin-1")
    )
    with pytest.raises(
        DataFormatError, match="header holds bytes that are not valid UTF-8"
    ) as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 0, None)


def test_too_few_fields(real_lines: list[str], tmp_path: Path) -> None:
    lines = real_lines[:6]
    lines[3] = as_line(cells(lines[3])[:5])
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match="5 fields but the header has 8") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 3, "annotations")  # the first missing column


def test_too_many_fields(real_lines: list[str], tmp_path: Path) -> None:
    lines = real_lines[:6]
    lines[3] = lines[3] + ",extra"
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match="9 fields but the header has 8") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 3, None)


def test_bad_quoting(real_lines: list[str], tmp_path: Path) -> None:
    lines = real_lines[:6]
    lines[2] = lines[2].replace("1,The poor", '1,"The" poor', 1)
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match="malformed CSV at line 3") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 2, None)


def test_rows_count_records_not_lines(real_lines: list[str], tmp_path: Path) -> None:
    # records 1293 (two physical lines, embedded newline) and 1294, after the header
    start = 1 + 1293
    lines = [real_lines[0], *real_lines[start : start + 3]]
    lines[3] = with_cell(lines[3], 3, "neither")
    path = write(tmp_path, lines)
    with pytest.raises(DataFormatError, match=r"\(line 4\)") as info:
        load_crows_pairs(path)
    assert_names(info.value, path, 2, "stereo_antistereo")


# --- writer --------------------------------------------------------------------------------------


def test_round_trip_of_the_real_file(real_path: Path, tmp_path: Path) -> None:
    pairs = load_crows_pairs(real_path)
    out = write_crows_pairs_csv(pairs, tmp_path / "copy.csv")
    assert load_crows_pairs(out) == pairs
    # the columns we write are byte-for-byte the original's (same quoting rules)
    original = list(csv.reader(io.StringIO(real_path.read_text("utf-8"), newline="")))
    written = list(csv.reader(io.StringIO(out.read_text("utf-8"), newline="")))
    assert written[0] == list(CSV_COLUMNS)
    assert [row[:5] for row in written] == [row[:5] for row in original]
    assert all(row[5:] == ["[]", "", "[]"] for row in written[1:])
    # byte for byte: the original with its three annotator columns blanked
    blanked = re.sub(
        r',"\[\[[^\n]*\]\]",a[0-9]+,"\[[^\n]*\]"\n', ",[],,[]\n", real_path.read_text("utf-8")
    )
    assert out.read_text("utf-8") == blanked


def test_round_trip_of_awkward_text(tmp_path: Path) -> None:
    pairs = [
        CrowsPair(7, 'He said "no", twice.', 'She said, "no".', "stereo", "gender"),
        CrowsPair(3, " leading and trailing ", "line\nbreak and\r\nCRLF", "antistereo", "age"),
        CrowsPair(0, "Zoë’s café", "naïve — déjà vu", "stereo", "a-planted-type"),
    ]
    path = write_crows_pairs_csv(pairs, tmp_path / "deep" / "dir" / "planted.csv")
    assert load_crows_pairs(path) == pairs
    assert sorted(p.name for p in path.parent.iterdir()) == ["planted.csv"]  # no temp file


def test_writer_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    first = [CrowsPair(0, "a b", "c d", "stereo", "age")]
    second = [CrowsPair(5, "e f", "g h", "antistereo", "gender")]
    write_crows_pairs_csv(first, path)
    write_crows_pairs_csv(second, path)
    assert load_crows_pairs(path) == second


def test_writer_refuses_what_the_loader_would_reject(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    with pytest.raises(DataFormatError, match="unknown label 'pro'") as info:
        write_crows_pairs_csv([CrowsPair(0, "a", "b", "pro", "age")], path)
    assert_names(info.value, Path(f"{path} (not written)"), 1, "stereo_antistereo")
    with pytest.raises(DataFormatError, match="duplicate index"):
        write_crows_pairs_csv([CrowsPair(1, "a", "b", "stereo", "age")] * 2, path)
    with pytest.raises(ValueError, match="would not read back identically"):
        write_crows_pairs_csv([CrowsPair("1", "a", "b", "stereo", "age")], path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no pairs"):
        write_crows_pairs_csv([], path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
