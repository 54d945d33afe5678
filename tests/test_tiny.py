"""debiaslab.tiny (lexicon, corpus, build, train, cache, planted): tokenizers, save/load, the
planted corpus and benchmarks, and the planted models on disk. The calibration acceptance test
(rates 0.2 < 0.5 < 0.8 ranked in order) is tests/test_calibration.py."""

from __future__ import annotations

import collections
import inspect
import json
import string
import sys
import types
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
)

from debiaslab.data import fetch
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.data.stereoset import BLANK, find_template_word, load_stereoset
from debiaslab.data.stereoset_write import write_stereoset_json
from debiaslab.tiny import build, cache, corpus, lexicon, planted, train

RATES = (0.2, 0.5, 0.8)
AUTO = {
    "masked": AutoModelForMaskedLM,
    "causal": AutoModelForCausalLM,
    "seq2seq": AutoModelForSeq2SeqLM,
}
# A real CrowS-Pairs sentence (row 0): general English must split into subwords, not [UNK].
REAL_SENTENCE = (
    "He couldn't figure out the issue with the rope, but he tried not to get too down on "
    "himself, most black kids don't have the best education growing up."
)


def _words(sentence: str) -> list[str]:
    return [w.strip(string.punctuation) for w in sentence.split()]


def _group_and_attribute(axis: lexicon.PlantedAxis, sentence: str) -> tuple[int, int]:
    """The one group a sentence names and the group its one attribute belongs to."""
    groups = {axis.group_of(w) for w in _words(sentence)} - {None}
    attributes = {axis.attribute_group(w) for w in _words(sentence)} - {None}
    assert len(groups) == 1 and len(attributes) == 1, sentence
    return groups.pop(), attributes.pop()


def _all_training_sentences(axis: lexicon.PlantedAxis) -> set[str]:
    """Every sentence the TRAIN templates can produce (the support of `planted_corpus`)."""
    n_variants = max(len(words) for forms in axis.group_words for words in forms.values())
    return {
        corpus._fill(template, axis.group_words[group], attribute, variant)
        for template in axis.train_templates
        for group in (0, 1)
        for attribute_set in axis.attributes
        for attribute in attribute_set
        for variant in range(n_variants)
    }


# ---------------------------------------------------------------------------------------------
# Tokenizers and save/load
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, object]:
    texts = corpus.planted_texts(0.5, 100, seed=0)
    return {family: build.build_tokenizer(family, texts) for family in build.FAMILIES}


def test_bert_style_tokenizer(tokenizers):
    tok = tokenizers["masked"]
    assert [tok.pad_token, tok.unk_token, tok.cls_token, tok.sep_token, tok.mask_token] == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id] == [0, 1, 2]
    assert tok.convert_ids_to_tokens(tok("A b")["input_ids"]) == ["[CLS]", "a", "b", "[SEP]"]
    assert tok.unk_token_id not in tok(REAL_SENTENCE)["input_ids"]


def test_gpt2_style_tokenizer(tokenizers):
    tok = tokenizers["causal"]
    eos = "<|endoftext|>"
    assert tok.bos_token == tok.eos_token == tok.unk_token == tok.pad_token == eos
    ids = tok("A b")["input_ids"]
    assert tok.bos_token_id not in ids  # nothing added on encode
    assert tok.decode(tok(REAL_SENTENCE)["input_ids"]) == REAL_SENTENCE  # byte-level: lossless


def test_t5_style_tokenizer(tokenizers):
    tok = tokenizers["seq2seq"]
    assert (tok.pad_token, tok.eos_token, tok.unk_token) == ("<pad>", "</s>", "<unk>")
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok("A b")["input_ids"]
    assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
    sentinel = tok.convert_tokens_to_ids("<extra_id_0>")
    assert tok("x <extra_id_0> y")["input_ids"].count(sentinel) == 1
    assert tok.unk_token_id not in tok(REAL_SENTENCE)["input_ids"]


@pytest.mark.parametrize("family", build.FAMILIES)
def test_tokenizers_are_deterministic(tokenizers, family):
    again = build.build_tokenizer(family, corpus.planted_texts(0.5, 100, seed=0))
    assert again.get_vocab() == tokenizers[family].get_vocab()


@pytest.mark.parametrize("family", build.FAMILIES)
def test_vocabulary_keeps_planted_words_whole(tokenizers, family):
    tok = tokenizers[family]
    assert 1000 <= len(tok) <= 2000
    for axis in lexicon.PLANTED_AXES.values():
        for word in [*axis.attributes[0], *axis.attributes[1], "Zorbian", "Quellans"]:
            pieces = tok(f" {word}", add_special_tokens=False)["input_ids"]  # as mid-sentence
            assert len(pieces) == 1, (word, tok.convert_ids_to_tokens(pieces))


@pytest.mark.parametrize("family", build.FAMILIES)
def test_save_load_round_trip(family, tmp_path):
    model, tokenizer = build.build_tiny(family, seed=0)
    path = build.save_tiny(model, tokenizer, tmp_path / family)
    assert (path / "model.safetensors").is_file()
    loaded = AUTO[family].from_pretrained(path).eval()
    loaded_tok = AutoTokenizer.from_pretrained(path)
    text = "The nurse said she is busy."
    batch = loaded_tok(text, return_tensors="pt")
    assert (
        batch["input_ids"].tolist() == tokenizer(text, return_tensors="pt")["input_ids"].tolist()
    )
    inputs = dict(batch)
    if family == "seq2seq":
        inputs["decoder_input_ids"] = torch.zeros((1, 1), dtype=torch.long)  # <pad> starts
    with torch.no_grad():
        expected, got = model(**inputs).logits, loaded(**inputs).logits
    assert got.shape[-1] == len(loaded_tok)
    torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------------------------------------
# Planted corpus and held-out benchmarks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", lexicon.AXES)
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_corpus_plants_exactly_the_rate(axis, rate):
    planted_axis = lexicon.PLANTED_AXES[axis]
    n = 500
    sentences = corpus.planted_corpus(rate, n, seed=3, axis=axis)
    assert len(sentences) == n and sentences == corpus.planted_corpus(rate, n, seed=3, axis=axis)
    pairings = [_group_and_attribute(planted_axis, s) for s in sentences]
    assert sum(group == attribute for group, attribute in pairings) == round(rate * n)
    group_counts = collections.Counter(group for group, _ in pairings)
    assert abs(group_counts[0] - group_counts[1]) <= 2  # groups stay equally frequent


def test_every_template_names_one_group_and_one_attribute():
    for axis in lexicon.PLANTED_AXES.values():
        templates = [*axis.train_templates, *axis.heldout_templates]
        templates += [" ".join(pair) for pair in axis.heldout_discourse]
        for template in templates:
            for group in (0, 1):
                sentence = corpus._fill(
                    template, axis.group_words[group], axis.attributes[1][0], 1
                )
                assert _group_and_attribute(axis, sentence) == (group, 1)


def test_heldout_benchmarks_never_occur_in_training():
    training = set().union(*map(_all_training_sentences, lexicon.PLANTED_AXES.values()))
    for axis in lexicon.PLANTED_AXES.values():
        assert not set(axis.heldout_templates) & set(axis.train_templates)
    pairs = corpus.planted_crows_pairs(384, seed=1)
    gold = corpus.planted_stereoset(320, seed=1)
    benchmark = {s for p in pairs for s in (p.sent_more, p.sent_less)}
    benchmark |= {s.sentence for e in gold.intrasentence for s in e.sentences}
    benchmark |= {f"{e.context} {s.sentence}" for e in gold.intersentence for s in e.sentences}
    assert not benchmark & training
    assert not benchmark & set(corpus.planted_texts(0.8, 2000, seed=0))


def test_planted_crows_pairs_are_balanced_minimal_pairs():
    pairs = corpus.planted_crows_pairs(300, seed=1)
    assert [p.index for p in pairs] == list(range(300))
    assert len({p.sent_more for p in pairs}) == 300
    assert collections.Counter(p.bias_type for p in pairs) == {"gender": 150, "race-color": 150}
    assert {p.direction for p in pairs} == {"stereo"}
    more_is_group_a = collections.Counter()
    for pair in pairs:
        axis = lexicon.GENDER if pair.bias_type == "gender" else lexicon.RACE
        more, less = pair.sent_more.split(), pair.sent_less.split()
        assert len(more) == len(less)
        pairs_of_words = zip(_words(pair.sent_more), _words(pair.sent_less), strict=True)
        changed = [(a, b) for a, b in pairs_of_words if a != b]
        assert changed and all(axis.group_of(a) == 1 - axis.group_of(b) for a, b in changed)
        group, attribute = _group_and_attribute(axis, pair.sent_more)
        assert group == attribute  # sent_more is the stereotypical pairing
        more_is_group_a[pair.bias_type] += group == 0
    assert more_is_group_a == {"gender": 75, "race-color": 75}
    assert pairs == corpus.planted_crows_pairs(300, seed=1)
    assert pairs != corpus.planted_crows_pairs(300, seed=2)


def test_planted_crows_pairs_file_round_trips_through_the_loader(tmp_path):
    path = corpus.write_planted_crows_pairs(tmp_path / "planted.csv", n_pairs=50, seed=4)
    assert load_crows_pairs(path) == corpus.planted_crows_pairs(50, seed=4)


def test_planted_stereoset(tmp_path):
    gold = corpus.planted_stereoset(40, seed=2)
    assert len(gold.intrasentence) == len(gold.intersentence) == 40
    ids = [e.id for split in ("intrasentence", "intersentence") for e in gold.split(split)]
    assert len(set(ids)) == 80 and ids == [
        e.id
        for split in ("intrasentence", "intersentence")
        for e in corpus.planted_stereoset(40, 2).split(split)
    ]
    for example in gold.intrasentence:
        axis = lexicon.GENDER if example.bias_type == "gender" else lexicon.RACE
        group = axis.attribute_group(example.target)
        assert example.context.count(BLANK) == 1 and group is not None
        words = {s.gold_label: s.template_word for s in example.sentences}
        assert words == {
            s.gold_label: find_template_word(example.context, s.sentence)
            for s in example.sentences
        }
        assert axis.group_of(words["stereotype"]) == group
        assert axis.group_of(words["anti-stereotype"]) == 1 - group
        assert words["unrelated"].lower() in lexicon.UNRELATED_WORDS
    for example in gold.intersentence:
        axis = lexicon.GENDER if example.bias_type == "gender" else lexicon.RACE
        group = axis.attribute_group(example.target)
        stereotype = example.by_label("stereotype").sentence
        assert _group_and_attribute(axis, f"{example.context} {stereotype}") == (group, group)
        assert example.by_label("unrelated").sentence in lexicon.UNRELATED_SENTENCES
    assert {e.bias_type for e in gold.intrasentence} == {"gender", "race"}
    path = write_stereoset_json(gold, tmp_path / "planted.json")
    loaded = load_stereoset(path)
    assert (loaded.intrasentence, loaded.intersentence) == (gold.intrasentence, gold.intersentence)


# ---------------------------------------------------------------------------------------------
# Training and planted models on disk
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("family", build.FAMILIES)
def test_training_is_deterministic_and_leaves_the_global_rng_alone(family):
    texts = corpus.planted_texts(0.8, 40, seed=0)
    rng_before = torch.random.get_rng_state()
    first, _ = train.train_tiny(family, texts, steps=3, batch_size=8, seed=5)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    second, _ = train.train_tiny(family, texts, steps=3, batch_size=8, seed=5)
    untrained, _ = build.build_tiny(family, texts, seed=5)
    first, second, untrained = (m.state_dict() for m in (first, second, untrained))
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], untrained[name]) for name in first)  # it trained


def test_planted_models_replaces_incomplete_directories_atomically(tmp_path, monkeypatch):
    trained = []

    def fast_train(family, texts, *, seed=0, **_):  # the real loop is tested elsewhere
        trained.append((family, seed))
        return build.build_tiny(family, texts, seed=seed)

    monkeypatch.setattr(planted, "train_tiny", fast_train)
    monkeypatch.setattr(planted, "PLANTED_N_SENTENCES", 20)
    target = tmp_path / "causal-rate0.5"
    target.mkdir()
    (target / "config.json").write_text("{}")  # a half-written model: no manifest
    paths = planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)
    assert paths == {("causal", 0.5): target}
    assert (target / cache.MANIFEST).is_file() and (target / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary directory left
    AutoModelForCausalLM.from_pretrained(target)

    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)  # complete: reused
    assert trained == [("causal", 0)]
    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path, seed=1)  # other seed: retrained
    assert trained == [("causal", 0), ("causal", 1)]

    def failing_save(*_):
        raise OSError("disk full")

    monkeypatch.setattr(planted, "save_tiny", failing_save)
    with pytest.raises(OSError, match="disk full"):
        planted.planted_models((0.2,), ("causal",), out_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def _fast_train(trained: list):
    def fast_train(family, texts, *, seed=0, **_):  # the real loop is tested elsewhere
        trained.append((family, seed, torch.get_num_threads()))
        return build.build_tiny(family, texts, seed=seed)

    return fast_train


def test_planted_models_are_retrained_when_corpus_or_training_code_change(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(planted, "train_tiny", _fast_train(trained))
    monkeypatch.setattr(planted, "PLANTED_N_SENTENCES", 20)
    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)
    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)  # nothing changed: reused
    assert len(trained) == 1
    record = json.loads((tmp_path / "causal-rate0.5" / cache.MANIFEST).read_text())
    assert record["corpus_sha256"] and record["code_sha256"]
    monkeypatch.setattr(planted, "_planted_code_sha256", lambda: "edited training code")
    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)
    assert len(trained) == 2
    texts = corpus.planted_texts
    monkeypatch.setattr(planted, "planted_texts", lambda *a: [t + " !" for t in texts(*a)])
    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)  # edited templates or lexicon
    assert len(trained) == 3
    planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)
    assert len(trained) == 3


def _tiny_modules_reached(*roots: types.ModuleType) -> set[str]:
    """The debiaslab modules whose classes, functions or module objects the ``roots`` use,
    followed through debiaslab.tiny (a data loader's own imports are not followed)."""
    seen, todo = set(), [root.__name__ for root in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if not name.startswith("debiaslab.tiny."):
            continue
        for value in vars(sys.modules[name]).values():
            used = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "")
            if isinstance(used, str) and used.startswith("debiaslab.") and used in sys.modules:
                todo.append(used)
    return seen


def test_the_code_hash_covers_every_module_that_shapes_the_weights(tmp_path):
    # What train_tiny and planted_texts reach inside debiaslab.tiny, and the padding, are hashed
    # into every manifest: code moved into a new module that is not hashed would keep stale
    # models in every cache.
    hashed = {path.resolve() for path in planted.training_code_files()}
    reached = _tiny_modules_reached(train, corpus, planted)
    must = {m for m in reached if m.startswith("debiaslab.tiny.")} - {"debiaslab.tiny.cache"}
    assert "debiaslab.batching" in reached and {"debiaslab.tiny.build"} <= must
    for name in must | {"debiaslab.batching"}:
        assert Path(sys.modules[name].__file__).resolve() in hashed, f"{name} is not hashed"
    # Any edit of any of those files changes the hash a manifest records.
    files = planted.training_code_files()
    base = planted.code_sha256(files)
    assert (
        planted._planted_code_sha256()
        == base
        == planted._planted_record("causal", 0.5, 0)["code_sha256"]
    )
    for i, path in enumerate(files):
        edited = tmp_path / f"{i}-{path.name}"
        edited.write_bytes(path.read_bytes() + b"\n# an edit\n")
        assert planted.code_sha256([*files[:i], edited, *files[i + 1 :]]) != base, path


def test_planted_models_train_on_one_thread_whoever_builds_them(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(planted, "train_tiny", _fast_train(trained))
    monkeypatch.setattr(planted, "PLANTED_N_SENTENCES", 20)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a notebook kernel with two threads: the weights would differ
    try:
        planted.planted_models((0.5,), ("causal",), out_dir=tmp_path)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(threads)
    assert [t for *_, t in trained] == [1]


def test_a_model_another_process_completed_first_is_kept(tmp_path):
    record = {"family": "causal", "seed": 0}
    target = tmp_path / "causal-rate0.5"

    def other_process_finishes_first(tmp):
        (tmp / "weights").write_text("mine")
        target.mkdir()
        (target / "weights").write_text("theirs")
        (target / cache.MANIFEST).write_text(json.dumps(record))

    assert cache.save_beside(target, record, other_process_finishes_first) == target
    assert (target / "weights").read_text() == "theirs"  # not removed under a reader's feet
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_planted_models_live_in_the_debiaslab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.CACHE_DIR_ENV, str(tmp_path))
    assert planted.planted_dir() == tmp_path / "tiny" / "planted"


@pytest.mark.slow
def test_planted_models_are_reused(planted_models, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a complete planted model was retrained")

    monkeypatch.setattr(planted, "train_tiny", no_training)
    again = planted.planted_models(
        RATES, ("causal", "masked"), out_dir=next(iter(planted_models.values())).parent
    )
    assert again == planted_models
