"""BOLD prompts, HONEST templates and HurtLex from the real files; malformed input named."""

from __future__ import annotations

from collections import Counter

import pytest

from debiaslab.data.prompts import (
    load_bold,
    load_honest_templates,
    load_hurtlex,
    sample_prompts,
)
from debiaslab.errors import ConfigError, DataFormatError


@pytest.fixture
def data_env(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path / "cache"))
    return shared_data


def test_bold_totals_match_the_paper_less_the_empty_prompts(data_env, caplog):
    prompts = load_bold()
    counts = Counter(p.domain for p in prompts)
    # The paper's 23,679 prompts include 5 empty strings (2 religious, 3 political).
    assert counts == {
        "gender": 3204,
        "race": 7657,
        "profession": 10195,
        "religious_ideology": 639 - 2,
        "political_ideology": 1984 - 3,
    }
    assert "skipped 2 empty prompt(s)" in caplog.text
    assert len({p.group for p in prompts if p.domain == "profession"}) == 18
    assert {p.group for p in prompts if p.domain == "gender"} == {
        "American_actors",
        "American_actresses",
    }


def test_bold_sampling_is_seeded_and_balanced(data_env):
    race = load_bold(["race"])
    sample = sample_prompts(race, limit=25, seed=3)
    assert Counter(p.group for p in sample) == {g: 25 for g in {p.group for p in race}}
    assert sample == sample_prompts(race, limit=25, seed=3)
    assert sample != sample_prompts(race, limit=25, seed=4)
    only = sample_prompts(race, groups=["Asian_Americans"])
    assert {p.group for p in only} == {"Asian_Americans"} and len(only) > 25
    with pytest.raises(DataFormatError, match="no prompts for groups"):
        sample_prompts(race, groups=["Martians"])


def test_honest_templates_read_by_header_name(data_env):
    binary = load_honest_templates("binary")
    queer = load_honest_templates("queer_nonqueer")
    assert len(binary) == 810 and len(queer) == 705
    assert Counter(t.category for t in binary) == {"female": 405, "male": 405}
    assert Counter(t.category for t in queer)["queer_gender"] == 270
    # The two files order number/category differently; values must not be swapped.
    assert {t.number for t in queer} <= {"singular", "plural"}


def test_hurtlex_conservative_lexicon(data_env):
    conservative = load_hurtlex()
    everything = load_hurtlex(level=None)
    assert 0 < len(conservative) < len(everything)
    assert all(w == w.encode("ascii", "ignore").decode() or not w.isascii() for w in conservative)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("gender_prompt.json", "", "empty"),
        ("gender_prompt.json", "[1, 2]", "expected a non-empty object"),
        ("gender_prompt.json", '{"g": {"e": ["ok", 3]}}', "record g/e, field '1'"),
        ("gender_prompt.json", '{"g": {"e": [" "]}}', "no prompts"),
        ("gender_prompt.json", '{"g": {"e": "not a list"}}', "record g/e"),
        ("gender_prompt.json", '{"g": ', "invalid JSON at line 1"),
        ("races.json", '{"g": {"e": ["x"]}}', "<domain>_prompt.json"),
    ],
)
def test_malformed_bold_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFormatError) as info:
        load_bold(path=path)
    assert name in str(info.value) and message in str(info.value)


def test_malformed_honest_and_hurtlex_files(tmp_path):
    honest = tmp_path / "honest.tsv"
    honest.write_text("template_masked\traw\tidentity\tnumber\tcategory\n")
    with pytest.raises(DataFormatError, match=r"honest\.tsv: row 0, field 'type'"):
        load_honest_templates("binary", honest)
    honest.write_text(
        "template_masked\traw\tidentity\tnumber\tcategory\ttype\n"
        "the woman is a.\t[I] is a [M]\tthe woman\tsingular\tfemale\tx\n"
    )
    with pytest.raises(DataFormatError, match="row 1, field 'template_masked'"):
        load_honest_templates("binary", honest)
    hurt = tmp_path / "hurtlex.tsv"
    hurt.write_bytes(b"id\tpos\tcategory\tstereotype\tlemma\tlevel\nEN1\tn\tps\tno\tcaf\xe9\tx\n")
    with pytest.raises(DataFormatError, match="not valid UTF-8"):
        load_hurtlex(hurt)
    hurt.write_text("id\tpos\tcategory\tstereotype\tlemma\tlevel\nEN1\tn\tps\tno\tidiot\tstrict\n")
    with pytest.raises(DataFormatError, match="row 1, field 'level'"):
        load_hurtlex(hurt)


def test_partiprompts_load_by_header_with_categories_and_a_balanced_limit(shared_data):
    from debiaslab.data.prompts import load_partiprompts

    path = shared_data / "partiprompts" / "PartiPrompts.tsv"
    prompts = load_partiprompts(path)
    assert len(prompts) == 1632 and prompts[0].prompt == "bond"
    assert prompts[0].category == "Abstract" and prompts[0].challenge == "Basic"
    people = load_partiprompts(path, categories=["People"])
    assert people and {p.category for p in people} == {"People"}
    sample = load_partiprompts(path, limit=3, seed=1)
    counts = {c: sum(p.category == c for p in sample) for c in {p.category for p in prompts}}
    assert set(counts.values()) == {3} and sample == load_partiprompts(path, limit=3, seed=1)
    with pytest.raises(ConfigError, match="unknown PartiPrompts categories"):
        load_partiprompts(path, categories=["Peopel"])


def test_coco_captions_one_per_image_with_located_errors(tmp_path):
    import json

    from debiaslab.data.prompts import load_coco_captions

    file = tmp_path / "captions_val2017.json"
    annotations = [
        {"image_id": 1, "id": 10, "caption": "A man  riding a horse."},
        {"image_id": 1, "id": 11, "caption": "Someone on a horse."},
        {"image_id": 2, "id": 12, "caption": "Two cats on a sofa."},
    ]
    file.write_text(json.dumps({"images": [], "annotations": annotations}))
    prompts = load_coco_captions(file)
    assert [(p.image_id, p.prompt) for p in prompts] == [
        ("1", "A man riding a horse."),
        ("2", "Two cats on a sofa."),
    ]
    assert len(load_coco_captions(file, limit=1)) == 1
    file.write_text(json.dumps({"annotations": [{"image_id": 3}]}))
    with pytest.raises(DataFormatError, match=r"row 0.*annotations"):
        load_coco_captions(file)
    with pytest.raises(ConfigError, match=r"cocodataset\.org"):
        load_coco_captions(tmp_path / "missing.json")
