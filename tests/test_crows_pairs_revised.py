"""Revised English and French CrowS-Pairs: registry, loader (the docs lm-eval scores, located
errors), which data a run reads, and the fine-tuning split across data versions."""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from pathlib import Path

import datasets
import pandas as pd
import pytest

from debiaslab.data import fetch
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.data.crows_pairs_revised import (
    REVISED_BIAS_TYPES,
    load_crows_pairs_revised,
    load_pairs,
    resolve_data_version,
)
from debiaslab.errors import ChecksumError, ConfigError, DataFormatError
from debiaslab.mitigation.data import counter_stereotypical, in_heldout, split_pairs

NAMES = {"english": "crows_pairs_revised_english", "french": "crows_pairs_revised_french"}
# The Hub dataset's features (BigScienceBiasEval/crows_pairs_multilingual, test split).
HUB_FEATURES = datasets.Features(
    {
        name: datasets.Value("string")
        for name in ("template", "sent_more", "sent_less", "stereo_antistereo", "bias_type")
    }
)


def path_of(shared_data: Path, language: str) -> Path:
    return shared_data / fetch.REGISTRY[NAMES[language]].relpath


def hub_docs(path: Path) -> list[dict]:
    """The ``test`` split as the Hub dataset's loading script builds it: pandas reads the
    tab-separated file with the first column as index, and each record (plus an empty
    ``template``) is encoded with the dataset's string features."""
    frame = pd.read_csv(path, sep="\t", index_col=0)
    return [
        HUB_FEATURES.encode_example({"template": ""} | row)
        for row in frame.to_dict(orient="records")
    ]


# --- registry ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["english", "french"])
def test_registered_with_checksum_and_found_in_the_data_dir(shared_data, monkeypatch, language):
    remote = fetch.REGISTRY[NAMES[language]]
    assert remote.relpath.startswith("crows_pairs_revised/") and remote.sha256
    assert re.search(r"/[0-9a-f]{40}/", remote.url)  # pinned to a commit
    fetch.verify(path_of(shared_data, language), remote)
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(shared_data))
    assert fetch.resolve(NAMES[language]) == path_of(shared_data, language)


def test_download_is_verified(offline_data_env, shared_data, monkeypatch):
    payload = path_of(shared_data, "french").read_bytes()
    requested = []

    def serve(url, timeout=None):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(fetch.urllib.request, "urlopen", serve)
    got = fetch.resolve(NAMES["french"])
    assert got.read_bytes() == payload and requested == [fetch.REGISTRY[NAMES["french"]].url]
    got.unlink()
    monkeypatch.setattr(
        fetch.urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"x")
    )
    with pytest.raises(ChecksumError):
        fetch.resolve(NAMES["french"])


# --- the published files: exactly the docs lm-eval scores --------------------------------


@pytest.mark.parametrize("language", ["english", "french"])
def test_loader_yields_the_docs_lm_eval_scores(shared_data, language, caplog):
    path = path_of(shared_data, language)
    with caplog.at_level(logging.WARNING):
        pairs = load_crows_pairs_revised(path, language)
    docs = hub_docs(path)
    assert len(pairs) == len(docs) == 1677
    for pair, doc in zip(pairs, docs, strict=True):
        assert (pair.sent_more, pair.sent_less, pair.direction, pair.bias_type) == (
            doc["sent_more"],
            doc["sent_less"],
            doc["stereo_antistereo"],
            doc["bias_type"],
        )
    assert [p.index for p in pairs] == list(pd.read_csv(path, sep="\t", index_col=0).index)
    assert Counter(p.direction for p in pairs) == {"stereo": 1466, "antistereo": 211}
    assert set(p.bias_type for p in pairs) == set(REVISED_BIAS_TYPES)
    if language == "french":  # the one empty field, read as lm-eval reads it, with a warning
        (odd,) = [p for p in pairs if p.index == "129"]
        assert odd.sent_less == "nan"
        assert "row 129, field 'sent_less' is empty" in caplog.text
    else:
        assert "empty" not in caplog.text


def test_registered_file_is_the_default(shared_data, monkeypatch):
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(shared_data))
    assert load_pairs("revised", "french") == load_crows_pairs_revised(
        path_of(shared_data, "french")
    )
    assert len(load_pairs("original")) == 1508


# --- malformed copies: located errors --------------------------------------------------------


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    """Header and the first 20 records of the revised English file."""
    return path_of(shared_data, "english").read_text("utf-8").split("\n")[:21]


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "revised.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def with_cell(line: str, column: int, value: str) -> str:
    fields = line.split("\t")
    fields[column] = value
    return "\t".join(fields)


def located(path: Path, lines: list[str], row: int, field: str | None) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_crows_pairs_revised(write(path, lines))
    error = info.value
    assert str(error).startswith(str(path / "revised.csv"))
    assert (error.row, error.field) == (row, field)
    return error


@pytest.mark.parametrize("column, field", [(1, "sent_more"), (2, "sent_less")])
def test_empty_sentence_outside_the_published_files(tmp_path, lines, column, field):
    bad = [*lines[:4], with_cell(lines[4], column, ""), *lines[5:]]
    error = located(tmp_path, bad, 4, field)
    assert "empty value" in str(error)


def test_unknown_direction(tmp_path, lines):
    bad = [*lines[:3], with_cell(lines[3], 3, "pro"), *lines[4:]]
    assert "unknown label 'pro'" in str(located(tmp_path, bad, 3, "stereo_antistereo"))


def test_duplicate_and_malformed_ids(tmp_path, lines):
    duplicate = [*lines[:6], with_cell(lines[6], 0, "1"), *lines[7:]]
    assert "duplicate index 1:" in str(located(tmp_path, duplicate, 6, "index"))
    spaced = [*lines[:2], with_cell(lines[2], 0, " LA1"), *lines[3:]]
    assert "surrounding spaces" in str(located(tmp_path, spaced, 2, "index"))


def test_missing_tab(tmp_path, lines):
    fields = lines[5].split("\t")
    bad = [*lines[:5], "\t".join(fields[:3]) + " " + "\t".join(fields[3:]), *lines[6:]]
    error = located(tmp_path, bad, 5, "bias_type")
    assert "4 fields but the header has 5" in str(error) and "tabs" in str(error)


def test_the_original_csv_is_not_read_as_revised(tmp_path, shared_data):
    original = shared_data / "crows_pairs" / "crows_pairs_anonymized.csv"
    with pytest.raises(DataFormatError, match="required column missing") as info:
        load_crows_pairs_revised(original)
    assert info.value.row == 0


def test_empty_file(tmp_path):
    path = tmp_path / "revised.csv"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="tab-separated columns") as info:
        load_crows_pairs_revised(path)
    assert info.value.row == 0


# --- which data a run reads ----------------------------------------------------------------


def test_default_data_per_mode_and_language(tmp_path, lines):
    assert resolve_data_version("harness") == "revised"
    assert resolve_data_version("nangia") == "original"
    assert resolve_data_version("nangia", language="french") == "revised"
    assert resolve_data_version("harness", "original") == "original"
    revised_file = write(tmp_path, lines)
    original_file = tmp_path / "original.csv"
    original_file.write_text(",sent_more,sent_less,stereo_antistereo,bias_type\n")
    assert resolve_data_version("nangia", path=revised_file) == "revised"
    assert resolve_data_version("harness", path=original_file) == "original"
    with pytest.raises(ConfigError, match="only in the revised version"):
        resolve_data_version("harness", "original", "french")
    with pytest.raises(ConfigError, match="unknown CrowS-Pairs data version"):
        resolve_data_version("harness", "v2")
    with pytest.raises(ConfigError, match="unknown CrowS-Pairs language"):
        resolve_data_version("harness", language="german")


# --- the fine-tuning split holds across data versions --------------------------------------


@pytest.mark.parametrize("language", ["english", "french"])
def test_split_is_keyed_by_a_pair_id_shared_across_versions(shared_data, language):
    original = load_crows_pairs(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    revised = load_crows_pairs_revised(path_of(shared_data, language), language)
    by_index = {p.index: p for p in original}
    carried = [p for p in revised if not p.index.startswith("LA")]
    # the revised ids are the original indices of the same pairs: same direction throughout
    assert len(carried) == 1467
    assert all(by_index[int(p.index)].direction == p.direction for p in carried)
    assert all(in_heldout(p.index) == in_heldout(int(p.index)) for p in carried)
    # a model trained on the original's training half never meets a training sentence in the
    # revised held-out half
    trained_on = {counter_stereotypical(p).strip().lower() for p in split_pairs(original, "train")}
    heldout = split_pairs(revised, "heldout")
    assert 0.4 < len(heldout) / len(revised) < 0.6
    seen = [
        p
        for p in heldout
        if {p.sent_more.strip().lower(), p.sent_less.strip().lower()} & trained_on
    ]
    assert seen == []
    train_ids = {str(p.index) for p in split_pairs(original, "train")}
    assert not train_ids & {p.index for p in heldout}


def test_finetune_reads_a_revised_file(shared_data, tmp_path):
    from debiaslab.mitigation.data import recipe_texts

    texts, info = recipe_texts("crows_counter", path_of(shared_data, "english"))
    assert info["data_version"] == "revised" and info["n_pairs"] == 1677
    assert (
        len(texts)
        == info["n_train_pairs"]
        == 1677
        - len(split_pairs(load_crows_pairs_revised(path_of(shared_data, "english")), "heldout"))
    )
