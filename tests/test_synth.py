"""The synthetic-data tool: spec, filters (against plain reference implementations), the whole
pipeline on a tiny planted-bias writer, the dataset it writes, the recipe and the Hub push."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest
import yaml

from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.synth import filters as F
from debiaslab.synth.spec import FilterSettings, load_spec, parse_spec

SPEC = {
    "name": "tiny-gender",
    "description": "A tiny spec for tests.",
    "license": "cc-by-4.0",
    "attribute": "gender",
    "groups": {
        "female": {"mention": "a woman", "terms": ["woman", "she", "her", "herself"]},
        "male": {"mention": "a man", "terms": ["man", "he", "his", "himself"]},
    },
    "topics": ["nursing", "engineering"],
    "templates": ["Write one short sentence about {group} who works in {topic}."],
}


# --------------------------------------------------------------------------- spec


def test_the_shipped_example_spec_loads_and_requests_fill_every_cell_equally():
    spec = load_spec("gender-work")
    requests = spec.requests(50)
    cells = Counter((r.group, r.topic, r.template) for r in requests)
    assert len(cells) == spec.n_cells and len(set(cells.values())) == 1
    assert len(requests) >= 50 and len(requests) - 50 < spec.n_cells
    assert len({r.id for r in requests}) == len(requests)
    assert [r.id for r in spec.requests(50)] == [r.id for r in requests]  # stable ids (resume)
    assert "a woman" in requests[0].prompt and "{" not in requests[0].prompt


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"topics": None}, "missing 'topics'"),
        ({"templates": ["About {group}."]}, r"exactly the fields \{group\} and \{topic\}"),
        ({"templates": ["About {group} and {topci}."]}, "uses"),
        ({"groups": {"female": {"mention": "a woman"}}}, "at least two"),
        (
            {"groups": {**SPEC["groups"], "male": {"mention": "a man", "terms": ["man"]}}},
            "aligned list",
        ),
        ({"filters": {"toxicity_treshold": 0.5}}, "unknown filters"),
        ({"filters": {"near_duplicate": 1.5}}, "near_duplicate must be in"),
        ({"colour": "blue"}, "unknown keys"),
    ],
)
def test_bad_specs_fail_with_the_file_and_the_problem(tmp_path, change, message):
    data = {**SPEC, **change}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DataFormatError, match=message) as info:
        load_spec(path)
    assert "spec.yaml" in str(info.value)


def test_a_missing_spec_names_the_examples():
    with pytest.raises(ConfigError, match="gender-work"):
        load_spec("no-such-spec")


# --------------------------------------------------------------------------- filters


def brute_force_near_duplicates(texts, threshold):
    """The definition, plainly: keep a text unless a kept earlier one has Jaccard >= threshold."""

    def grams(text):
        norm = " ".join(
            "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()
        )
        return {norm[i : i + 5] for i in range(len(norm) - 4)} or {norm}

    kept, keep = [], []
    for text in texts:
        g = grams(text)
        dup = any(len(g & k) / len(g | k) >= threshold for k in kept)
        keep.append(not dup)
        if not dup:
            kept.append(g)
    return keep


def test_near_duplicates_match_the_brute_force_definition():
    rng = random.Random(0)
    vocabulary = "the a woman man nurse engineer leads team works hospital site plans bridge "
    words = (vocabulary + "patients careful kind tired early late night shift code design").split()
    base = [" ".join(rng.choice(words) for _ in range(14)) for _ in range(150)]
    texts = list(base)
    for text in rng.sample(base, 60):  # planted near duplicates: one word changed or added
        tokens = text.split()
        i = rng.randrange(len(tokens))
        tokens[i] = tokens[i] + "s" if rng.random() < 0.5 else tokens[i]
        texts.append(" ".join(tokens) + rng.choice(["", ".", "!"]))
    rng.shuffle(texts)
    for threshold in (0.6, 0.8):
        assert F.near_duplicates(texts, threshold) == brute_force_near_duplicates(texts, threshold)
    assert sum(F.near_duplicates(texts, 0.8)) < len(texts) - 40  # the planted ones are found


def test_near_duplicates_never_remove_a_text_below_the_threshold():
    rng = random.Random(1)
    syllables = ["ab", "cd", "ef", "gh", "ij", "kl", "mn"]
    texts = [" ".join(rng.choice(syllables) for _ in range(8)) for _ in range(300)]
    keep = F.near_duplicates(texts, 0.7)
    kept = [F.shingles(t) for t, k in zip(texts, keep, strict=True) if k]
    for text, k in zip(texts, keep, strict=True):
        if not k:
            assert max(F.jaccard(F.shingles(text), other) for other in kept) >= 0.7


def test_exact_duplicates_ignore_case_spacing_and_punctuation():
    texts = ["She leads the team.", "she  leads the team", "He leads the team.", "She leads!"]
    assert F.exact_duplicates(texts) == [True, False, True, True]


def test_regard_balance_equalises_label_counts_per_group_and_stratum_and_keeps_the_most():
    rng = random.Random(2)
    groups = [rng.choice("fm") for _ in range(400)]
    labels = [
        rng.choice(["neg", "pos", "neu"] + (["neg"] * 2 if g == "f" else [])) for g in groups
    ]
    strata = [rng.choice(["t1", "t2"]) for _ in groups]
    keep = F.balance_by_label(groups, labels, strata, seed=0)
    before = Counter(zip(strata, labels, groups, strict=True))
    cells = list(zip(strata, labels, groups, strict=True))
    after = Counter(cell for cell, kept in zip(cells, keep, strict=True) if kept)
    for s in ("t1", "t2"):
        for label in ("neg", "pos", "neu"):
            assert after[(s, label, "f")] == after[(s, label, "m")]
            assert after[(s, label, "f")] == min(before[(s, label, "f")], before[(s, label, "m")])
    assert F.balance_by_label(groups, labels, strata, seed=0) == keep  # seeded


def test_counterfactuals_swap_aligned_terms_and_keep_case():
    swaps = F.swap_table(["woman", "she", "her"], ["man", "he", "his"])
    out = F.counterfactuals(["She told the Woman about her plan.", "It rained."], swaps)
    assert out == ["He told the Man about his plan.", None]
    back = F.swap_table(["man", "he", "his"], ["woman", "she", "her"])
    assert F.counterfactuals(["HE lost his keys."], back) == ["SHE lost her keys."]


def test_clean_text_keeps_the_first_paragraph():
    assert F.clean_text("  “A nurse.”  ") == "A nurse."
    assert F.clean_text("One\nline.\n\nAnother paragraph.") == "One line."


# --------------------------------------------------------------------------- pipeline


class CountingBackend:
    """A backend that answers from a table and counts what it was asked (for resume)."""

    name = "table"

    def __init__(self, answer, fail_after=None):
        self.answer_for = answer
        self.asked = 0
        self.fail_after = fail_after

    def settings(self):
        return {"kind": "table"}

    def answer(self, requests, raw, *, progress=True):
        from debiaslab.generation_cache import CacheWriter, read_cache

        done = read_cache(Path(raw))
        writer = CacheWriter(Path(raw), self.name, {})
        try:
            for r in requests:
                if r.id in done:
                    continue
                if self.fail_after is not None and self.asked >= self.fail_after:
                    raise RuntimeError("backend went away")
                self.asked += 1
                done[r.id] = self.answer_for(r)
                writer.write([(r.id, r.prompt, 0)], [done[r.id]])
        finally:
            writer.close()
        return {r.id: done[r.id] for r in requests}


def table_answer(r):
    subject = "She" if r.group == "female" else "He"
    verb = ["enjoys it", "is tired", "trains others"][r.sample % 3]
    return f"{subject} works in {r.topic} and {verb} (case {r.sample})."


def test_a_failed_run_leaves_the_previous_dataset_intact_and_a_rerun_resumes(tmp_path):
    from debiaslab.synth.pipeline import synthesize

    spec = parse_spec({**SPEC, "filters": {"near_duplicate": None}})
    out = tmp_path / "ds"
    first = synthesize(
        spec,
        CountingBackend(table_answer),
        8,
        out,
        toxicity_model="tiny-toxicity",
        regard_model="tiny-regard",
        progress=False,
    )
    before = {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and "raw" not in p.parts
    }
    failing = CountingBackend(table_answer, fail_after=3)
    with pytest.raises(RuntimeError):
        synthesize(
            spec,
            failing,
            16,
            out,
            toxicity_model="tiny-toxicity",
            regard_model="tiny-regard",
            progress=False,
        )
    after = {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and "raw" not in p.parts
    }
    assert after == before and first["n_generated"] == 8
    assert not list(out.glob(".synth-staging-*"))
    resumed = CountingBackend(table_answer)
    manifest = synthesize(
        spec,
        resumed,
        16,
        out,
        toxicity_model="tiny-toxicity",
        regard_model="tiny-regard",
        progress=False,
    )
    assert resumed.asked == 16 - 8 - 3  # only what neither earlier run answered
    assert manifest["n_generated"] == 16


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """The whole chain on a tiny writer trained to speak negatively of women more often."""
    from debiaslab.generation import GenerationSettings
    from debiaslab.synth.backends import TransformersBackend
    from debiaslab.synth.examples import tiny_writer
    from debiaslab.synth.pipeline import synthesize

    spec = parse_spec(SPEC, "tiny-gender.yaml")
    lm = tiny_writer(spec, negative={"female": 0.6}, steps=300)
    backend = TransformersBackend(lm, GenerationSettings(max_new_tokens=20, top_p=0.95))
    out = tmp_path_factory.mktemp("synth") / "tiny-gender"
    manifest = synthesize(
        spec,
        backend,
        160,
        out,
        toxicity_model="tiny-toxicity",
        regard_model="tiny-regard",
        progress=False,
    )
    return spec, out, manifest


@pytest.mark.slow
def test_tiny_spec_end_to_end_generated_filtered_carded_and_saved(tiny_dataset):
    import datasets

    _, out, manifest = tiny_dataset
    steps = {s["step"]: s for s in manifest["steps"]}
    assert list(steps) == [
        "length",
        "exact duplicates",
        "near duplicates",
        "toxicity",
        "regard balance",
        "counterfactual pairs",
    ]
    # The planted faults were there and the filters took them out.
    assert steps["toxicity"]["removed"] > 0 and steps["exact duplicates"]["removed"] > 0
    before = manifest["regard_before_balance"]
    assert before["female"].get("negative", 0) > before["male"].get("negative", 0)
    # The dataset folder is a Hugging Face dataset that loads offline.
    ds = datasets.load_dataset(str(out))
    rows = [dict(r, split=name) for name in ds for r in ds[name]]
    assert set(ds) <= {"train", "test"} and len(rows) == manifest["n_rows"]
    assert all(r["toxicity"] < 0.5 for r in rows if r["source"] == "generated")
    generated = [r for r in rows if r["source"] == "generated"]
    counts = Counter((r["topic"], r["regard"], r["group"]) for r in generated)
    for topic, label, _ in counts:
        assert counts[(topic, label, "female")] == counts[(topic, label, "male")]
    # Every counterfactual is its generated text with the group words swapped, same split.
    by_id = {r["id"]: r for r in generated}
    swaps = {
        ("female", "male"): F.swap_table(
            ["woman", "she", "her", "herself"], ["man", "he", "his", "himself"]
        ),
        ("male", "female"): F.swap_table(
            ["man", "he", "his", "himself"], ["woman", "she", "her", "herself"]
        ),
    }
    counterfactual = [r for r in rows if r["source"] == "counterfactual"]
    assert len(counterfactual) == steps["counterfactual pairs"]["added"] > 0
    for r in counterfactual:
        original = by_id[r["pair_id"]]
        assert r["group"] != original["group"] and r["split"] == original["split"]
        assert (
            r["text"]
            == F.counterfactuals([original["text"]], swaps[(original["group"], r["group"])])[0]
        )
    # The card states the spec, the models, the filters and the counts.
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert (
        front["license"] == "cc-by-4.0"
        and front["configs"][0]["data_files"][0]["split"] == "train"
    )
    assert "tiny-writer-tiny-gender" in card and "tiny-toxicity" in card and "tiny-regard" in card
    for name, step in steps.items():
        assert f"| {name} |" in card and f"| {step['removed']} |" in card
    assert f"| train | {manifest['splits']['train']['n']} |" in card
    assert json.loads((out / "synth.json").read_text())["n_rows"] == manifest["n_rows"]


@pytest.mark.slow
def test_the_synthetic_recipe_trains_on_the_train_split(tiny_dataset, tmp_path):
    from debiaslab.mitigation.data import recipe_texts
    from debiaslab.synth.pipeline import load_texts

    _, out, manifest = tiny_dataset
    texts, info = recipe_texts("synthetic", out)
    assert texts == load_texts(out, "train") and len(texts) == manifest["splits"]["train"]["n"]
    assert info["spec"] == "tiny-gender" and info["n_texts"] == len(texts)
    with pytest.raises(ConfigError, match="synth generate"):
        recipe_texts("synthetic", tmp_path)


def test_push_dataset_uploads_data_and_card_but_not_the_raw_generations(tmp_path, fake_hub):
    from debiaslab.hub.client import push_dataset
    from debiaslab.synth.pipeline import synthesize

    spec = parse_spec({**SPEC, "filters": {"toxicity_threshold": None}})
    out = tmp_path / "ds"
    synthesize(
        spec, CountingBackend(table_answer), 8, out, regard_model="tiny-regard", progress=False
    )
    assert push_dataset(out, "someone/tiny-gender") is None  # no token: skipped
    assert fake_hub.calls == []

    token = "hf_" + "A" * 30
    url = push_dataset(out, "someone/tiny-gender", token=token)
    assert url == "https://huggingface.co/datasets/someone/tiny-gender"
    assert [(c[0], c[2]["repo_type"]) for c in fake_hub.calls] == [
        ("create_repo", "dataset"),
        ("upload_folder", "dataset"),
    ]
    uploaded = fake_hub.files("someone/tiny-gender", "dataset")
    # The card goes up as written: scrubbing paths must not eat slashes in "*his*/*him*".
    assert uploaded["README.md"] == (out / "README.md").read_bytes()
    assert (
        uploaded["README.md"].startswith(b"---\nlicense:") and b"/*him*" in uploaded["README.md"]
    )
    assert "synth.json" in uploaded
    assert any(p.startswith("data/") and p.endswith(".parquet") for p in uploaded)
    assert not any(p.startswith("raw") for p in uploaded) and (out / "raw").is_dir()


def test_filter_settings_reject_bad_values():
    with pytest.raises(ConfigError, match="test_fraction"):
        FilterSettings(test_fraction=1.0)


def test_all_texts_filtered_out_is_an_error_and_writes_nothing(tmp_path):
    from debiaslab.synth.pipeline import synthesize

    spec = parse_spec({**SPEC, "filters": {"min_words": 50, "toxicity_threshold": None}})
    with pytest.raises(ConfigError, match="removed by the filters"):
        synthesize(
            spec,
            CountingBackend(table_answer),
            4,
            tmp_path / "ds",
            regard_model="tiny-regard",
            progress=False,
        )
    assert not (tmp_path / "ds" / "synth.json").exists()


def test_group_pairs_cover_both_directions():
    from debiaslab.synth.pipeline import group_swaps

    spec = parse_spec(SPEC)
    pairs = group_swaps(spec)
    assert set(pairs) == {(a, b) for a, b in combinations(["female", "male"], 2)} | {
        ("male", "female")
    }
    no_terms = parse_spec(
        {**SPEC, "attribute": "religion", "groups": {"a": {"mention": "x"}, "b": {"mention": "y"}}}
    )
    with pytest.raises(ConfigError, match="aligned 'terms'"):
        group_swaps(no_terms)


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_transformers_backend_answers_every_request_and_resumes_from_its_cache(family, tmp_path):
    from debiaslab.generation import GenerationSettings
    from debiaslab.models import from_objects
    from debiaslab.synth.backends import TransformersBackend
    from debiaslab.tiny.build import build_tiny

    lm = from_objects(*build_tiny(family, seed=0))
    backend = TransformersBackend(lm, GenerationSettings(max_new_tokens=5))
    requests = parse_spec(SPEC).requests(8)
    raw = tmp_path / "raw.jsonl"
    answers = backend.answer(requests, raw, progress=False)
    assert set(answers) == {r.id for r in requests}
    assert len({answers[r.id] for r in requests if r.sample == 0}) > 1  # not one text for all
    lines = raw.read_text().splitlines()
    assert backend.answer(requests, raw, progress=False) == answers
    assert raw.read_text().splitlines() == lines  # answered from the cache


def test_transformers_backend_applies_the_chat_template(tmp_path):
    from debiaslab.models import from_objects
    from debiaslab.synth.backends import TransformersBackend
    from debiaslab.tiny.build import build_tiny

    lm = from_objects(*build_tiny("causal", seed=0))
    assert not TransformersBackend(lm).chat
    with pytest.raises(ConfigError, match="no chat template"):
        TransformersBackend(lm, chat=True)
    lm.tokenizer.chat_template = (
        "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<assistant>"
    )
    backend = TransformersBackend(lm)
    assert backend.chat and backend.settings()["chat_template"] is True
    assert backend.format("Hi.") == "<user>Hi.</user><assistant>"
    request = parse_spec(SPEC).requests(1)[:1]
    backend.answer(request, tmp_path / "raw.jsonl", progress=False)
    record = json.loads((tmp_path / "raw.jsonl").read_text().splitlines()[0])
    assert record["prompt"] == f"<user>{request[0].prompt}</user><assistant>"
    masked = from_objects(*build_tiny("masked", seed=0))
    with pytest.raises(ConfigError, match="causal or seq2seq"):
        TransformersBackend(masked)
