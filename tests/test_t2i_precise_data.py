"""PreciseDebias data: placeholder replacement on tricky sentences, fill, pairs, splits, seed data.

The seed-file tests use the PreciseDebias seed project's data in ``shared/data/precise_debias``
(skipped when absent) and pin what its replacement and split got wrong next to what ours does.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.t2i.precise_debias.fill import fill, subject_template
from debiaslab.t2i.precise_debias.pairs import (
    DEFAULT_GROUPS,
    SEED_INSTRUCTION,
    instruction_pairs,
    leaked_prompts,
    load_seed_pairs,
    load_seed_prompts,
    parse_group,
    split_by_prompt,
)
from debiaslab.t2i.precise_debias.replace import find_demographic_words, replace_demographics
from debiaslab.t2i.precise_debias.words import WORDS_RESOURCE, load_words

E, G = "[ETHNICITY]", "[GENDER]"

# (prompt, expected template). Grouped by what makes them tricky.
TRICKY = [
    # Colour words naming things, hair or skin: never an ethnicity.
    ("A white truck parked outside a hospital.", "A white truck parked outside a hospital."),
    ("A barista pouring black coffee.", "A barista pouring black coffee."),
    ("A black and white photo of a doctor.", "A black and white photo of a doctor."),
    ("A doctor in a white coat.", "A doctor in a white coat."),
    ("A sommelier pouring white wine.", "A sommelier pouring white wine."),
    ("Shoppers on Black Friday.", "Shoppers on Black Friday."),
    ("A brown bag on a kitchen table.", "A brown bag on a kitchen table."),
    ("A scientist in a crisp white lab coat.", "A scientist in a crisp white lab coat."),
    ("A woman with long black hair.", f"A {G} person with long black hair."),
    ("A black cab driver waiting.", "A black cab driver waiting."),
    # Colour words describing people.
    ("A white woman smiling.", f"A {E} {G} person smiling."),
    ("A Black doctor reading a chart.", f"A {E} doctor reading a chart."),
    ("A black man walking his dog.", f"A {E} {G} person walking their dog."),
    ("A photo of a white male nurse.", f"A photo of a {E} {G} nurse."),
    ("A white middle-aged man.", f"A {E} middle-aged {G} person."),
    ("A Black reggae artist on stage.", f"A {E} reggae artist on stage."),
    ("A Black and Latino man.", f"A {E} {G} person."),
    # Multi-word and hyphenated ethnicities: one placeholder each.
    ("An African American teacher.", f"A {E} teacher."),
    ("An African-American firefighter.", f"A {E} firefighter."),
    ("A Middle Eastern chef in a white apron.", f"A {E} chef in a white apron."),
    ("A South Asian software engineer.", f"A {E} software engineer."),
    ("A Pacific Islander farmer tending his crops.", f"A {E} farmer tending their crops."),
    ("A Chinese-American architect.", f"A {E} architect."),
    ("An Afro-Latina dancer.", f"A {E} dancer."),
    ("A Black British doctor.", f"A {E} doctor."),
    ("A Korean-born chef.", f"A {E} chef."),
    ("A teacher of Middle Eastern descent.", f"A teacher of {E} descent."),
    ("A scientist with South Asian heritage.", f"A scientist with {E} heritage."),
    # Nationalities: people versus food, places, instruments and sports.
    ("A Chinese doctor eating Chinese food.", f"A {E} doctor eating Chinese food."),
    ("A ship sailing the Indian Ocean.", "A ship sailing the Indian Ocean."),
    ("French fries and Turkish coffee on a tray.", "French fries and Turkish coffee on a tray."),
    ("A French horn player in an orchestra.", "A French horn player in an orchestra."),
    ("An American football player.", "An American football player."),
    (
        "A traditional Chinese medicine practitioner.",
        "A traditional Chinese medicine practitioner.",
    ),
    ("An Asian-inspired dish.", "An Asian-inspired dish."),
    ("The food is distinctly Mexican.", "The food is distinctly Mexican."),
    ("A young Nigerian, smiling at the camera.", f"A young {E} person, smiling at the camera."),
    ("Two Nigerians talking.", f"Two {E} people talking."),
    ("A Latina artist and a Latino dancer.", f"A {E} artist and a {E} dancer."),
    ("A Polish plumber.", f"A {E} plumber."),
    ("Polish the silver.", "Polish the silver."),
    ("A photo of an Indian woman.", f"A photo of a {E} {G} person."),
    # Gender words and pronoun conflicts.
    ("A woman doctor checks her notes.", f"A {G} doctor checks their notes."),
    ("A mother and her son.", f"A {G} parent and their {G} child."),
    ("A businesswoman's briefcase.", f"A {G} businessperson's briefcase."),
    ("A female with short hair.", f"A {G} person with short hair."),
    ("Male and female doctors.", f"{G} doctors."),
    ("Women and men dancing.", f"{G} people and {G} people dancing."),
    ("An actress on stage.", f"A {G} actor on stage."),
    (
        "A firefighter rushing in, his face covered in soot.",
        "A firefighter rushing in, their face covered in soot.",
    ),
    ("She smiles and waves at her students.", "They smile and wave at their students."),
    ("He is proud of himself.", "They are proud of themselves."),
    ("She's been teaching for years.", "They've been teaching for years."),
    ("He's smiling.", "They're smiling."),
    ("She always carries her bag.", "They always carry their bag."),
    ("She doesn't stop.", "They don't stop."),
    ("A nurse helping her.", "A nurse helping them."),
    ("He gave her a book.", "They gave them a book."),
    ("A dancer hugging her tightly.", "A dancer hugging them tightly."),
    ("Her lovely smile.", "Their lovely smile."),
    ("A doctor, he or she carries a bag.", "A doctor, they carry a bag."),
    ("His/her coat.", "Their coat."),
    ("her/his coat, given to him/her.", "their coat, given to them."),
    ("The book is his.", "The book is theirs."),
    ("He watches and she studies.", "They watch and they study."),
    ("HER eyes", "THEIR eyes"),
    ("Spider-Man swinging between towers.", "Spider-Man swinging between towers."),
    # Already a template: unchanged.
    (f"A {E} {G} doctor and their {G} child.", f"A {E} {G} doctor and their {G} child."),
    (f"a Black {G} doctor", f"a {E} {G} doctor"),
]

# Known failures, pinned so that a change of rule is a conscious one (see the module docstring).
KNOWN_FAILURES = [
    ("A doctor who is Black.", "A doctor who is Black."),  # predicate use is not replaced
    ("A Spanish teacher.", f"A {E} teacher."),  # teacher *of* Spanish also reads as a person
    ("He watches her dance.", "They watch their dance."),  # "her" before a bare verb
    ("She smiles, nods and waves.", "They smile, nods and waves."),  # only the first verb
    ("A brown-skinned woman.", f"A brown-skinned {G} person."),  # skin tone is kept
]


@pytest.mark.parametrize(("prompt", "expected"), TRICKY + KNOWN_FAILURES)
def test_replace_demographics_tricky_sentences(prompt, expected):
    assert replace_demographics(prompt) == expected


def test_tricky_suite_is_large_and_varied():
    assert len(TRICKY) >= 30
    assert sum(prompt == expected for prompt, expected in TRICKY) >= 12  # left alone on purpose


@pytest.mark.parametrize(("prompt", "expected"), TRICKY + KNOWN_FAILURES)
def test_replace_demographics_is_idempotent(prompt, expected):
    assert replace_demographics(expected) == expected


@pytest.mark.parametrize(
    ("descriptors"), [("Black", "female"), ("Hispanic", "male"), ("Asian", "female")]
)
def test_fill_then_replace_gives_the_template_back(descriptors):
    for prompt, _ in TRICKY:
        template = replace_demographics(prompt)
        if E in template and G in template:
            assert replace_demographics(fill(template, *descriptors)) == template, prompt


@pytest.mark.parametrize(
    ("template", "ethnicity", "gender", "expected"),
    [
        (f"A {E} {G} person smiling.", "Asian", "female", "An Asian woman smiling."),
        (f"A {E} {G} person smiling.", None, None, "A person smiling."),
        (f"a {E} {G} engineer", "Asian", None, "an Asian engineer"),
        (f"a {E} {G} engineer", None, None, "an engineer"),
        (f"a {E} {G} engineer", "European", "male", "a European male engineer"),
        (f"An {E} doctor", "Black", None, "A Black doctor"),
        (f"A {E} {G} actor", "Black", "female", "A Black female actor"),
        (f"{G} people dancing", None, "male", "Men dancing"),
        (f"{E} {G} person at work", "Hispanic", "male", "Hispanic man at work"),
        (f"A teacher of {E} descent smiles.", None, None, "A teacher smiles."),
        (
            f"A teacher of {E} descent smiles.",
            "Korean",
            None,
            "A teacher of Korean descent smiles.",
        ),
        (f"A scientist with {E} heritage, working.", None, "male", "A scientist, working."),
        (f"A {G} parent and their {G} child", None, "female", "A mother and their girl"),
        (f"A {E} {G} businessperson's bag", "White", "male", "A White businessman's bag"),
        (f"A {E} {G} hour-long shift", None, None, "An hour-long shift"),
        ("No placeholder here.", "Black", "female", "No placeholder here."),
    ],
)
def test_fill(template, ethnicity, gender, expected):
    assert fill(template, ethnicity, gender) == expected


@pytest.mark.parametrize("bad", ["", "  ", "[ETHNICITY]", 3])
def test_fill_rejects_bad_descriptors(bad):
    with pytest.raises(ConfigError, match="descriptor"):
        fill(f"A {E} doctor", bad)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "A firefighter rushes in, his face covered in soot.",
            f"A {E} {G} firefighter rushes in, their face covered in soot.",
        ),
        (
            "An architect of Indian heritage presents her design",
            f"A {E} {G} architect presents their design",
        ),
        ("A doctor talking to a Black woman", f"A {E} {G} doctor talking to a person"),
        (
            "A skilled wildlife photographer at dawn",
            f"A skilled {E} {G} wildlife photographer at dawn",
        ),
        ("A young software engineer", f"A young {E} {G} software engineer"),
        ("A white middle-aged man.", f"A middle-aged {E} {G} person."),
        (
            "A Muslim scientist with Middle Eastern heritage, joyfully working.",
            f"A {E} {G} Muslim scientist, joyfully working.",
        ),
        ("In a busy kitchen, a Mexican chef cooks.", f"In a busy kitchen, a {E} {G} chef cooks."),
        ("She smiles at her students.", None),  # no subject noun: only possessed ones
        ("A white truck.", None),
    ],
)
def test_subject_template(prompt, expected):
    assert subject_template(prompt) == expected


def test_find_demographic_words_ignores_context():
    assert find_demographic_words("A white coat on her Nigerian-born colleague, a mother") == [
        ("white", "colour"),
        ("her", "pronoun"),
        ("Nigerian", "nationality"),
        ("mother", "gender"),
    ]


def test_parse_group():
    assert parse_group("white male") == ("White", "male")
    assert parse_group(("Black", "female")) == ("Black", "female")
    with pytest.raises(ConfigError):
        parse_group("white")
    with pytest.raises(ConfigError):
        parse_group(("Black",))


def test_instruction_pairs():
    prompts = [
        "A nurse, her hands gentle",
        "An Indian woman eating Chinese food.",
        "A Black doctor.",
        "A White doctor.",  # the same generic prompt as the line before: kept once
        "a white truck",  # no person: skipped
        "   ",
    ]
    pairs = instruction_pairs(prompts, instruction="Add a demographic descriptor")
    assert len(pairs) == 3 * len(DEFAULT_GROUPS)
    assert {tuple(p) for p in pairs} == {("instruction", "input", "output")}
    assert {p["instruction"] for p in pairs} == {"Add a demographic descriptor"}
    by_input = {}
    for pair in pairs:
        by_input.setdefault(pair["input"], []).append(pair["output"])
    assert list(by_input) == [
        "A nurse, their hands gentle",
        "A person eating Chinese food.",
        "A doctor.",
    ]
    assert by_input["A person eating Chinese food."] == [
        "A White man eating Chinese food.",
        "A White woman eating Chinese food.",
        "A Black man eating Chinese food.",
        "A Black woman eating Chinese food.",
        "An Asian man eating Chinese food.",
        "An Asian woman eating Chinese food.",
        "A Hispanic man eating Chinese food.",
        "A Hispanic woman eating Chinese food.",
    ]
    assert by_input["A doctor."][:2] == ["A White male doctor.", "A White female doctor."]


def test_instruction_pairs_needs_groups():
    with pytest.raises(ConfigError, match="no groups"):
        instruction_pairs(["A doctor"], groups=[])


def _pairs(n_prompts: int, per_prompt: int = 8) -> list[dict[str, str]]:
    return [
        {"input": f"prompt {p}", "output": f"prompt {p} / group {g}"}
        for p in range(n_prompts)
        for g in range(per_prompt)
    ]


def test_split_by_prompt_keeps_each_prompt_on_one_side():
    pairs = _pairs(101)
    train, test = split_by_prompt(pairs, test_fraction=0.2, seed=3)
    assert leaked_prompts(train, test) == []
    assert len(train) + len(test) == len(pairs)
    assert len({r["input"] for r in test}) == 20  # round(101 * 0.2)
    # Independent of the order of the pairs; a different seed gives a different split.
    shuffled = pairs[:]
    random.Random(0).shuffle(shuffled)
    assert {r["input"] for r in split_by_prompt(shuffled, 0.2, seed=3)[1]} == {
        r["input"] for r in test
    }
    assert split_by_prompt(pairs, 0.2, seed=4)[1] != test


def test_a_pair_list_cut_leaks_where_split_by_prompt_does_not():
    # The seed cut its pair list at int(0.8 * len): with 101 prompts x 8 groups the cut falls
    # inside prompt 80, whose groups land on both sides.
    pairs = _pairs(101)
    cut = int(len(pairs) * 0.8)
    assert leaked_prompts(pairs[:cut], pairs[cut:]) == ["prompt 80"]
    assert leaked_prompts(*split_by_prompt(pairs, 0.2)) == []


@pytest.mark.parametrize(
    ("pairs", "fraction", "match"),
    [
        (_pairs(5), 0.0, "test_fraction"),
        (_pairs(5), 1.0, "test_fraction"),
        (_pairs(1), 0.2, "at least 2"),
        ([{"output": "x"}], 0.2, "no string field 'input'"),
    ],
)
def test_split_by_prompt_errors(pairs, fraction, match):
    with pytest.raises(ConfigError, match=match):
        split_by_prompt(pairs, fraction)


# ---------------------------------------------------------------------------------------------
# Readers and word lists
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "row", "field", "match"),
    [
        ('{"a": 1}', None, None, "non-empty JSON list"),
        ("[]", None, None, "non-empty JSON list"),
        ('["a prompt", "another", 3]', "[2]", None, "expected a prompt string"),
        ('[{"input": "a", "output": "b"}, "x"]', "[1]", None, "input, output"),
        ('[{"input": "a", "output": "b"}, {"input": "c"}]', "[1]", "output", "missing"),
        ('[{"input": 1, "output": "b"}]', "[0]", "input", "found int"),
        ('["a", ', None, None, "invalid JSON at line 1"),
    ],
)
def test_load_seed_prompts_locates_errors(tmp_path, content, row, field, match):
    path = tmp_path / "seed.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=re.escape(match)) as info:
        load_seed_prompts(path)
    assert info.value.file == str(path)
    assert info.value.row == row
    assert info.value.field == field


def test_load_seed_prompts_rejects_bad_utf8(tmp_path):
    path = tmp_path / "seed.json"
    path.write_bytes(b'["caf\xe9"]')
    with pytest.raises(DataFormatError, match="UTF-8"):
        load_seed_prompts(path)


def test_load_seed_readers_on_small_files(tmp_path):
    prompts = tmp_path / "synthetic.json"
    prompts.write_text(json.dumps([" A doctor.", "", "A doctor.", "A nurse."]), "utf-8")
    assert load_seed_prompts(prompts) == ["A doctor.", "A nurse."]
    pairs = tmp_path / "pairs.json"
    records = [
        {"input": "A doctor.", "output": f"A {g} doctor.\n###\n"} for g in ("Black", "White")
    ]
    pairs.write_text(json.dumps(records), "utf-8")
    assert load_seed_prompts(pairs) == ["A doctor."]
    assert load_seed_pairs(pairs)[1] == {"input": "A doctor.", "output": "A White doctor."}


def test_word_list_rejects_unquoted_yaml_booleans(tmp_path):
    from importlib import resources

    text = resources.files("debiaslab").joinpath(WORDS_RESOURCE).read_text("utf-8")
    assert 'with, without, in, into, "on", onto' in text
    path = tmp_path / "words.yaml"
    path.write_text(text.replace('with, without, in, into, "on", onto', "with, on"), "utf-8")
    with pytest.raises(DataFormatError, match="quote YAML booleans") as info:
        load_words(path)
    assert info.value.field == "grammar.stop_words"


def test_word_lists_are_consistent():
    words = load_words()
    assert load_words() is words  # the packaged lists are read once
    # Every neutral noun a gender noun becomes is a person noun, so the subject is found.
    for neutral in words.gender_nouns.values():
        assert words.person_nouns.get(neutral.split()[0]), neutral
    # Colour words are ethnicity terms but not nationalities.
    kinds = {entry[1] for entry in words.ethnicity["black"]}
    assert kinds == {"colour"}


# ---------------------------------------------------------------------------------------------
# The seed project's files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_dir(shared_data: Path) -> Path:
    folder = shared_data / "precise_debias"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (see shared/data/SOURCES.md)")
    return folder


@pytest.fixture(scope="module")
def synthetic(seed_dir) -> list[str]:
    return load_seed_prompts(seed_dir / "synthetic_prompts.json")


def test_seed_files_load(seed_dir, synthetic):
    assert len(synthetic) == 660  # 665 lines: 4 duplicates once stripped, 1 empty
    assert len(load_seed_prompts(seed_dir / "replaced_prompts.json")) == 560
    assert len(load_seed_prompts(seed_dir / "fine_tune_data.json")) == 448
    assert len(load_seed_prompts(seed_dir / "evaluation_data.json")) == 112
    assert len(load_seed_pairs(seed_dir / "fine_tune_data.json")) == 448 * 8
    instruction = (seed_dir / "instruction.txt").read_text("utf-8").strip()
    assert instruction == SEED_INSTRUCTION


def test_default_groups_are_the_seed_bls_stats_groups(seed_dir):
    keys = json.loads((seed_dir / "bls_stats.json").read_text("utf-8"))
    assert tuple(parse_group(key) for key in keys) == DEFAULT_GROUPS


def test_replacement_over_the_seed_prompts(synthetic):
    templates = [replace_demographics(p) for p in synthetic]
    assert sum(t != p for t, p in zip(templates, synthetic, strict=True)) == 648
    assert sum(E in t for t in templates) == 642
    # What survives is context-free list words in object uses, reviewed by hand: no gender
    # word or pronoun at all, and no ethnicity term before a person noun.
    left = []
    for template in templates:
        for word, kind in find_demographic_words(template):
            follower = template[template.index(word) + len(word) :].split()[0].lower()
            left.append((kind, word.lower(), follower.strip(",.")))
    assert sorted(set(left)) == [
        ("colour", "black", "hair"),
        ("colour", "brown", "eyes"),
        ("colour", "white", "apron"),
        ("colour", "white", "culinary"),  # "a white culinary uniform"
        ("colour", "white", "lab"),  # "a white lab coat"
        ("colour", "white", "uniform"),
        ("nationality", "chinese", "medicine"),  # "traditional Chinese medicine practitioner"
        ("race", "indigenous", "ingredients"),
        ("race", "indigenous", "traditions"),
    ]
    assert len(left) == 20
    assert all(replace_demographics(t) == t for t in templates)


def test_seed_replacement_flaws_that_ours_avoids(seed_dir, synthetic):
    seed = load_seed_prompts(seed_dir / "replaced_prompts.json")
    # 1. Nationalities outside the seed's list survive before a person noun ("Korean").
    survivors = [
        word
        for template in seed
        for word, kind in find_demographic_words(template)
        if kind == "nationality"
        and word not in {w for w, _ in find_demographic_words(replace_demographics(template))}
    ]
    assert survivors == ["Korean"] * 3
    # 2. Colour words of objects and parts of place names became the placeholder.
    assert any("crisp [ETHNICITY] apron" in t for t in seed)
    assert any("from [ETHNICITY] America" in t for t in seed)
    assert sum("East [ETHNICITY]" in t for t in seed) == 7  # "East Asian" half replaced
    ours = {p: replace_demographics(p) for p in synthetic}
    apron = next(p for p in synthetic if "Korean pastry chef" in p)
    assert ours[apron].startswith(f"A {E} pastry chef, adorned in a crisp white apron")
    america = next(p for p in synthetic if "from South America" in p)
    assert "from South America" in ours[america]
    assert sum(f"of {E} heritage" in t or f"of {E} descent" in t for t in ours.values()) >= 2
    # 3. Gender words and pronouns stay in the seed's templates; ours have none.
    gendered = [
        t for t in seed if any(k in ("gender", "pronoun") for _, k in find_demographic_words(t))
    ]
    assert len(gendered) == 373
    assert not any(
        k in ("gender", "pronoun") for t in ours.values() for _, k in find_demographic_words(t)
    )


def test_seed_pairs_flaws_and_ours(seed_dir, synthetic):
    train = load_seed_pairs(seed_dir / "fine_tune_data.json")
    evaluation = load_seed_pairs(seed_dir / "evaluation_data.json")
    # The seed's cut was on the pair list, but with 560 prompts x 8 groups int(0.8 * 4480) is a
    # multiple of 8, so in these files no prompt happens to be on both sides.
    assert leaked_prompts(train, evaluation) == []
    eval_inputs = list(dict.fromkeys(r["input"] for r in evaluation))
    gendered = [
        i
        for i in eval_inputs
        if any(k in ("gender", "pronoun") for _, k in find_demographic_words(i))
    ]
    assert (len(gendered), len(eval_inputs)) == (80, 112)  # as SOURCES.md says
    assert sum(r["output"].startswith("A Asian") for r in train + evaluation) == 442

    pairs = instruction_pairs(synthetic)
    inputs = list(dict.fromkeys(p["input"] for p in pairs))
    assert len(inputs) == 656 and len(pairs) == 656 * len(DEFAULT_GROUPS)
    assert not any(
        k in ("gender", "pronoun") for i in inputs for _, k in find_demographic_words(i)
    )
    assert all(E not in i and G not in i for i in inputs)
    assert not any(p["output"].startswith("A Asian") for p in pairs)
    # The same pair-list cut on our 656 prompts (5248 pairs, cut at 4198) splits a prompt.
    cut = int(len(pairs) * 0.8)
    assert len(leaked_prompts(pairs[:cut], pairs[cut:])) == 1
    train_ours, test_ours = split_by_prompt(pairs, 0.2, seed=0)
    assert leaked_prompts(train_ours, test_ours) == []
    assert len({p["input"] for p in test_ours}) == round(656 * 0.2)


def test_prompt_synthesis_asks_per_occupation_cleans_and_resumes(tmp_path):
    from debiaslab.t2i.precise_debias.pairs import save_pairs, synthesize_prompts

    class Backend:
        name = "table"

        def __init__(self):
            self.asked = 0

        def answer(self, requests, raw, *, progress=True):
            self.asked += len(requests)
            return {
                r.id: f'  "A {r.topic} at work, scene {r.sample % 2}."\n\nSure!' for r in requests
            }

    backend = Backend()
    prompts = synthesize_prompts(backend, ["nurse", "welder"], 3, tmp_path / "raw.jsonl")
    assert backend.asked == 6
    assert prompts == [
        "A nurse at work, scene 0.", "A nurse at work, scene 1.",
        "A welder at work, scene 0.", "A welder at work, scene 1.",
    ]  # fmt: skip
    pairs = instruction_pairs(prompts[:2])
    path = save_pairs(pairs, tmp_path / "pairs.json")
    assert load_seed_pairs(path) == pairs
