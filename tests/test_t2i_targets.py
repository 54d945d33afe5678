"""Occupation targets from the real BLS CPS table 11 copies; presets; per-axis normalisation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from debiaslab.data import fetch
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.t2i import occupations
from debiaslab.t2i.occupations import Occupation, find_occupation, load_occupations
from debiaslab.t2i.targets import (
    PRECISE_DEBIAS_GLOBAL,
    PRECISE_DEBIAS_RAW,
    UNIFORM,
    get_target,
    occupation_targets,
)

HEADER_2022 = (
    '\ufeff"Occupation","Total employed",Women,White,"Black or African American",Asian,'
    '"Hispanic or Latino"\r\n'
)


@pytest.fixture(scope="module")
def occ_dir(shared_data: Path) -> Path:
    return shared_data / "occupations"


@pytest.fixture(scope="module")
def table_2022(occ_dir: Path) -> occupations.OccupationTable:
    return load_occupations(occ_dir / "bls_cpsaat11_2022.csv", year=2022)


@pytest.fixture(scope="module")
def table_2020(occ_dir: Path) -> occupations.OccupationTable:
    return load_occupations(occ_dir / "bls_cpsaat11_2020.csv")


def shares(occ: Occupation) -> tuple:
    return (occ.employed_thousands, occ.women, occ.white, occ.black, occ.asian, occ.hispanic)


# ---------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("name", "commit"),
    [
        ("bls_cpsaat11_2022", "785175931611a6a3d08f7165367d64b6f0408160"),
        ("bls_cpsaat11_2020", "95583d7ffabbb09eefcda0828c4d7924b02074c8"),
    ],
)
def test_registry_entries_are_pinned_and_match_the_shared_copies(shared_data, name, commit):
    remote = fetch.REGISTRY[name]
    assert remote.relpath == f"occupations/{name}.csv"
    assert remote.url.startswith("https://raw.githubusercontent.com/") and commit in remote.url
    fetch.verify(shared_data / remote.relpath, remote)  # raises on a sha256 mismatch


def test_default_resolves_the_2022_table_through_the_data_dir(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(shared_data))
    monkeypatch.setenv(fetch.CACHE_DIR_ENV, str(tmp_path / "cache"))
    table = load_occupations()
    assert table.source["year"] == 2022
    assert table.source["file"] == str(shared_data / "occupations" / "bls_cpsaat11_2022.csv")
    assert load_occupations(year=2020).source["year"] == 2020
    # Names resolve through the same default table.
    assert get_target("Registered nurses")["gender"]["female"] == pytest.approx(0.879)


def test_unregistered_year_is_refused():
    with pytest.raises(ConfigError, match="2019"):
        load_occupations(year=2019)


# ------------------------------------------------------------------------- real files


def test_2022_total_row(table_2022):
    total = table_2022.total
    assert total.name == "Total, 16 years and over"
    assert shares(total) == (158291, 0.468, 0.770, 0.126, 0.067, 0.185)
    assert total.is_aggregate and total.year == 2022 and total.tree_level is None
    assert table_2022.source == {
        "table": occupations.TABLE_NAME,
        "year": 2022,
        "year_stated_in_file": False,
        "file": table_2022.source["file"],
        "aggregate_rule": "name",
    }


def test_2020_total_row_and_stated_year(table_2020):
    total = table_2020.total
    assert shares(total) == (147795, 0.468, 0.780, 0.121, 0.064, 0.176)
    assert total.tree_level == 0 and total.line == 13  # below a 12-line header block
    assert table_2020.source["year"] == 2020 and table_2020.source["year_stated_in_file"]
    assert table_2020.source["aggregate_rule"] == "tree level"


def test_detailed_occupations_match_the_file_by_eye(table_2022, table_2020):
    # 2022 line: Registered nurses,"3,363",87.9,73.6,14.5,8.9,8.1
    nurses = table_2022.find("Registered nurses")
    assert shares(nurses) == (3363, 0.879, 0.736, 0.145, 0.089, 0.081)
    assert not nurses.is_aggregate
    # 2022 line: Software developers,"2,085",21.5,55.0,5.7,36.4,5.7
    assert shares(table_2022.find("software developers")) == (
        2085,
        0.215,
        0.55,
        0.057,
        0.364,
        0.057,
    )
    # 2020 line: Chief executives,"1,669",29.3,88.0,4.3,5.4,7.4,4
    ceo = table_2020.find("Chief executives")
    assert shares(ceo) == (1669, 0.293, 0.88, 0.043, 0.054, 0.074)
    assert ceo.tree_level == 4 and ceo.year == 2020


def test_row_counts_and_aggregates(table_2022, table_2020):
    assert len(table_2022) == len(table_2020) == 595
    for table in (table_2022, table_2020):
        aggregates = [occ.name for occ in table if occ.is_aggregate]
        assert len(aggregates) == 30 and len(table.detailed()) == 565
        assert "Management occupations" in aggregates
        assert "Other mathematical science occupations" not in aggregates  # detailed


def test_name_rule_reproduces_the_2020_tree(table_2020):
    by_tree = {occ.name for occ in table_2020 if occ.is_aggregate}
    by_name = {occ.name for occ in table_2020 if occupations._is_aggregate_by_name(occ.name)}
    assert by_tree == by_name


def test_suppressed_cells_are_none(table_2022, table_2020):
    for table in (table_2022, table_2020):
        legislators = table.find("Legislators")
        assert legislators.employed_thousands < 50
        assert shares(legislators)[1:] == (None,) * 5 and legislators.suppressed
    assert sum(occ.suppressed for occ in table_2022) == 203
    with pytest.raises(ConfigError, match=r"Legislators.*suppresses"):
        occupation_targets(table_2022.find("Legislators"))


def test_names_are_whitespace_normalised(table_2022):
    # the 2022 file has a double space after "Management,"
    assert table_2022[1].name == "Management, professional, and related occupations"


def test_2020_file_with_another_year_is_refused(occ_dir):
    with pytest.raises(DataFormatError, match="states annual averages of 2020"):
        load_occupations(occ_dir / "bls_cpsaat11_2020.csv", year=2022)


def test_file_without_a_year_needs_one(occ_dir):
    with pytest.raises(ConfigError, match="does not state its year"):
        load_occupations(occ_dir / "bls_cpsaat11_2022.csv")


# --------------------------------------------------------------------- malformed files


def write(tmp_path: Path, body: str, header: str = HEADER_2022) -> Path:
    path = tmp_path / "cpsaat11.csv"
    path.write_bytes((header + body).encode("utf-8"))
    return path


def test_small_lf_file_without_bom_reads(tmp_path):
    header = HEADER_2022.lstrip("\ufeff").replace("\r\n", "\n")
    path = write(tmp_path, 'Chief executives,"1,780",29.2,85.9,5.9,6.7,6.8\n,,,,,,\n', header)
    (ceo,) = load_occupations(path, year=2022)
    assert shares(ceo) == (1780, 0.292, 0.859, 0.059, 0.067, 0.068) and ceo.line == 2


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ('Chief executives,"1,780",abc,85.9,5.9,6.7,6.8', "women", "percentage"),
        ('Chief executives,"1,780",29.2,185.9,5.9,6.7,6.8', "white", "outside"),
        ("Chief executives,–,29.2,85.9,5.9,6.7,6.8", "Total employed", "count"),
        (",10,29.2,85.9,5.9,6.7,6.8", "Occupation", "empty occupation"),
        ('Chief executives,"1,780",29.2,85.9,5.9,6.7', None, "expected 7 fields"),
    ],
)
def test_malformed_rows_are_located(tmp_path, row, field, message):
    path = write(tmp_path, f"Total,10,1,1,1,1,1\r\n{row}\r\n")
    with pytest.raises(DataFormatError, match=message) as err:
        load_occupations(path, year=2022)
    assert err.value.file == str(path) and err.value.row == 3 and err.value.field == field


def test_missing_column_is_named(tmp_path):
    header = '"Occupation","Total employed",Women,White,Asian,"Hispanic or Latino"\n'
    path = write(tmp_path, "x,1,1,1,1,1\n", header)
    with pytest.raises(DataFormatError, match="black or african american"):
        load_occupations(path, year=2022)


def test_not_a_bls_table(tmp_path):
    path = write(tmp_path, "", "a,b,c\n1,2,3\n")
    with pytest.raises(DataFormatError, match="Women"):
        load_occupations(path, year=2022)


def test_bad_tree_level_and_bad_utf8(tmp_path):
    header = HEADER_2022.rstrip("\r\n") + ',"Tree level"\n'
    path = write(tmp_path, "Total,10,1,1,1,1,1,zero\n", header)
    with pytest.raises(DataFormatError, match="tree level") as err:
        load_occupations(path, year=2022)
    assert err.value.field == "Tree level"
    path.write_bytes(HEADER_2022.encode() + b"Caf\xe9,1,1,1,1,1,1\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        load_occupations(path, year=2022)


# -------------------------------------------------------------------------- targets


def test_find_occupation_errors_list_close_names(table_2022):
    with pytest.raises(ConfigError, match="Registered nurses"):
        find_occupation("nurse", table_2022)
    with pytest.raises(ConfigError, match="Software developers"):
        find_occupation("softwar developer", table_2022)
    twins = [Occupation("A", 1, *[0.5] * 5, line=1), Occupation("a", 1, *[0.5] * 5, line=2)]
    with pytest.raises(ConfigError, match="2 rows"):
        find_occupation("A", twins)


def test_targets_are_per_axis_and_never_sum_hispanic_with_race(table_2022):
    total = table_2022.total
    target = occupation_targets(total)
    assert set(target) == {"gender", "race", "hispanic"}
    for axis in target.values():
        assert math.isclose(sum(axis.values()), 1.0)
    assert target["gender"] == pytest.approx({"female": 0.468, "male": 0.532})
    shown = 0.770 + 0.126 + 0.067
    assert target["race"] == pytest.approx(
        {"white": 0.770 / shown, "black": 0.126 / shown, "asian": 0.067 / shown}
    )
    assert target["hispanic"] == pytest.approx({"hispanic": 0.185, "not_hispanic": 0.815})
    assert "hispanic" not in target["race"]  # never a fourth race
    # the BLS race columns plus Hispanic overshoot 1: the double count we avoid
    assert total.white + total.black + total.asian + total.hispanic > 1


def test_race_other_keeps_the_residual(table_2022):
    total = table_2022.total
    race = occupation_targets(total, race_other=True)["race"]
    assert race == pytest.approx(
        {"white": 0.770, "black": 0.126, "asian": 0.067, "other": 1 - 0.963}
    )
    full = Occupation("x", 1, 0.5, 0.6, 0.3, 0.11, 0.1)  # rounding above 100 %
    assert occupation_targets(full, race_other=True)["race"]["other"] == 0.0
    assert math.isclose(sum(occupation_targets(full, race_other=True)["race"].values()), 1.0)


def test_axes_parameter(table_2022):
    assert list(occupation_targets(table_2022.total, axes=["gender"])) == ["gender"]
    with pytest.raises(ConfigError, match="unknown axes"):
        occupation_targets(table_2022.total, axes=["age"])


def test_precise_debias_raw_matches_the_seed_project(shared_data):
    raw = json.loads((shared_data / "precise_debias" / "bls_stats.json").read_text())
    assert dict(PRECISE_DEBIAS_RAW) == raw
    assert math.isclose(sum(raw.values()), 1.146)  # Hispanic overlaps the races


def test_precise_debias_preset_per_axis():
    target = get_target("precise_debias")
    assert target["gender"] == {"female": 0.5, "male": 0.5}
    assert target["race"] == pytest.approx(
        {"white": 0.77 / 0.962, "black": 0.126 / 0.962, "asian": 0.066 / 0.962}
    )
    assert target["hispanic"] == pytest.approx({"hispanic": 0.184, "not_hispanic": 0.816})
    assert target == {axis: dict(groups) for axis, groups in PRECISE_DEBIAS_GLOBAL.items()}
    other = get_target("Precise_Debias", race_other=True)["race"]
    assert other == pytest.approx({"white": 0.77, "black": 0.126, "asian": 0.066, "other": 0.038})


def test_uniform_preset_and_immutability():
    assert get_target("uniform") == {
        "gender": {"female": 0.5, "male": 0.5},
        "race": {"white": 1 / 3, "black": 1 / 3, "asian": 1 / 3},
        "hispanic": {"hispanic": 0.5, "not_hispanic": 0.5},
    }
    assert get_target("uniform", race_other=True)["race"]["other"] == 0.25
    with pytest.raises(TypeError):
        UNIFORM["gender"]["female"] = 1.0  # type: ignore[index]
    fresh = get_target("uniform")
    fresh["gender"]["female"] = 1.0
    assert get_target("uniform")["gender"]["female"] == 0.5


def test_get_target_resolves_rows_and_names(table_2022):
    nurses = table_2022.find("Registered nurses")
    assert get_target(nurses) == occupation_targets(nurses)
    by_name = get_target("registered NURSES", occupations=table_2022, axes=["hispanic"])
    assert by_name == {"hispanic": pytest.approx({"hispanic": 0.081, "not_hispanic": 0.919})}
    with pytest.raises(ConfigError, match="close matches"):
        get_target("registered nurse", occupations=table_2022)
