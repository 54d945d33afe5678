"""debiaslab.textclass and debiaslab.tiny.classifiers: pipeline semantics of `predict`, loading,
and the tiny classifiers.

The acceptance check of the tiny classifiers is on the held-out lines of
``resources/classifier_lines.yaml``, which training never sees: a hate line must score higher
``hate`` than a nothate line, a positive-regard line higher ``positive`` than a
negative-regard line and the reverse for ``negative``, for (nearly) every pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from debiaslab import textclass
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.textclass import TextClassifier, load_classifier
from debiaslab.tiny import classifiers
from debiaslab.tiny.classifiers import classifier_lines

LINES = Path(textclass.__file__).parent / classifiers.LINES_RESOURCE
MIXED = [
    "You are a pathetic, stupid loser.",
    "",
    "My neighbours are kind and generous people.",
    "ok",
    "The students finished their project on time and everyone went to the park afterwards.",
    "What a vile bunch of worthless morons.",
    "She is a patient teacher and a good friend.",
]


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Share of (positive, negative) pairs ranked right, ties counting half."""
    diff = np.asarray(positive)[:, None] - np.asarray(negative)[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


@pytest.fixture(scope="module")
def toxicity() -> TextClassifier:
    return TextClassifier.from_objects(
        *classifiers.build_tiny_classifier("toxicity", seed=0), name="tiny-toxicity"
    )


@pytest.fixture(scope="module")
def regard() -> TextClassifier:
    return TextClassifier.from_objects(
        *classifiers.build_tiny_classifier("regard", seed=0), name="tiny-regard"
    )


def reference(classifier: TextClassifier, texts: list[str], function: str) -> np.ndarray:
    """One text at a time, no padding, as a plain loop over the model would score them."""
    rows = []
    for text in texts:
        inputs = classifier.tokenizer(
            text, truncation=True, max_length=classifier.max_length, return_tensors="pt"
        )
        with torch.no_grad():
            logits = classifier.model(**inputs).logits[0].float()
        rows.append(torch.softmax(logits, -1) if function == "softmax" else torch.sigmoid(logits))
    return torch.stack(rows).double().numpy()


# --------------------------------------------------------------------------- tiny classifiers


def test_tiny_toxicity_ranks_heldout_hate_above_nothate(toxicity):
    lines = classifier_lines("toxicity")
    assert toxicity.labels == ["nothate", "hate"]
    hate = toxicity.scores(lines["heldout"]["hate"], textclass.TOXIC_LABEL, progress=False)
    nothate = toxicity.scores(lines["heldout"]["nothate"], "hate", progress=False)
    assert hate.mean() - nothate.mean() > 0.5
    assert auc(hate, nothate) >= 0.8
    assert toxicity.scores([""], "hate", progress=False)[0] < 0.5  # the empty text is benign


def test_tiny_regard_ranks_heldout_positive_and_negative(regard):
    lines = classifier_lines("regard")
    assert tuple(regard.labels) == textclass.REGARD_LABELS
    positive = regard.predict(lines["heldout"]["positive"], progress=False)
    negative = regard.predict(lines["heldout"]["negative"], progress=False)
    pos, neg = regard.labels.index("positive"), regard.labels.index("negative")
    assert positive[:, pos].mean() - negative[:, pos].mean() > 0.3
    assert negative[:, neg].mean() - positive[:, neg].mean() > 0.3
    assert auc(positive[:, pos], negative[:, pos]) >= 0.8
    assert auc(negative[:, neg], positive[:, neg]) >= 0.8


def test_tiny_training_is_deterministic_and_keeps_global_state(toxicity):
    threads = torch.get_num_threads()
    state = torch.random.get_rng_state()
    model, _ = classifiers.build_tiny_classifier("toxicity", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    for (name, a), b in zip(
        model.state_dict().items(), toxicity.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_train_tiny_classifier_checks_its_labels():
    with pytest.raises(ConfigError, match="one label per text"):
        classifiers.train_tiny_classifier(["a", "b"], ["x"], ["x", "y"])
    with pytest.raises(ConfigError, match="unknown label"):
        classifiers.train_tiny_classifier(["a"], ["z"], ["x", "y"])
    with pytest.raises(ConfigError, match="neither a name"):
        classifiers.train_tiny_classifier(["a"], [2], ["x", "y"])
    with pytest.raises(ConfigError, match="distinct"):
        classifiers.train_tiny_classifier(["a"], [0], ["x", "x"])


# --------------------------------------------------------------------------- predict semantics


def test_predict_matches_a_plain_loop_and_sums_to_one(toxicity):
    small = TextClassifier.from_objects(toxicity.model, toxicity.tokenizer, batch_size=3)
    assert small.function == "softmax"
    probs = small.predict(MIXED, progress=False)
    assert probs.shape == (len(MIXED), 2) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs, reference(small, MIXED, "softmax"), atol=1e-5)
    np.testing.assert_allclose(toxicity.predict(MIXED, progress=False), probs, atol=1e-5)
    np.testing.assert_allclose(small.scores(MIXED, "nothate", progress=False), probs[:, 0], atol=0)
    assert small.as_dicts(probs[:1]) == [{"nothate": probs[0, 0], "hate": probs[0, 1]}]


def test_predict_edge_cases(toxicity):
    assert toxicity.predict([], progress=False).shape == (0, 2)
    assert toxicity.scores([], "hate", progress=False).shape == (0,)
    with pytest.raises(TypeError, match="one string"):
        toxicity.predict("a single text", progress=False)
    with pytest.raises(TypeError, match="text 1"):
        toxicity.predict(["fine", None], progress=False)


def test_long_texts_are_truncated(toxicity):
    assert toxicity.max_length == 512
    long = " ".join(["the kind neighbours walked to the park"] * 200)  # > 1,000 tokens
    tail = long + " you are a worthless stupid idiot"  # only past the limit
    probs = toxicity.predict([long, tail], progress=False)
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)
    short = TextClassifier.from_objects(toxicity.model, toxicity.tokenizer, max_length=8)
    cut = short.tokenizer.decode(short.tokenizer(tail)["input_ids"][1:7])  # 6 + CLS/SEP
    np.testing.assert_allclose(
        short.predict([tail], progress=False), toxicity.predict([cut], progress=False), atol=1e-5
    )


@pytest.mark.parametrize(
    ("problem_type", "num_labels"),
    [("multi_label_classification", 3), (None, 1)],
)
def test_sigmoid_for_multi_label_and_single_logit_models(toxicity, problem_type, num_labels):
    config = BertConfig(
        vocab_size=len(toxicity.tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
        problem_type=problem_type,
    )
    torch.manual_seed(0)
    classifier = TextClassifier.from_objects(
        BertForSequenceClassification(config), toxicity.tokenizer, batch_size=2
    )
    assert classifier.function == "sigmoid" and len(classifier.labels) == num_labels
    probs = classifier.predict(MIXED, progress=False)
    np.testing.assert_allclose(probs, reference(classifier, MIXED, "sigmoid"), atol=1e-5)
    if num_labels > 1:
        assert not np.allclose(probs.sum(axis=1), 1.0)


def test_unknown_label_lists_the_labels(toxicity):
    with pytest.raises(ConfigError, match=r"'nothate', 'hate'.*id2label"):
        toxicity.scores(["hello"], "toxic", progress=False)


# --------------------------------------------------------------------------- loading


def test_tiny_preset_builds_once_then_loads_from_its_directory(monkeypatch, tmp_path, toxicity):
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path))
    builds = []
    build = classifiers.build_tiny_classifier

    def counting(task, seed=0):
        builds.append(task)
        return build(task, seed=seed)

    monkeypatch.setattr(classifiers, "build_tiny_classifier", counting)
    first = load_classifier("tiny-toxicity", device="cpu")
    second = load_classifier("tiny-toxicity", device="cpu")
    assert builds == ["toxicity"]
    path = tmp_path / "tiny" / "tiny-toxicity"
    assert (path / classifiers.MANIFEST).is_file() and (path / "model.safetensors").is_file()
    assert first.info["source"] == str(path) and first.info["task"] == "toxicity"
    # Results copy this info: a tiny classifier's scores must say so.
    assert first.info["tiny_offline"] is True
    assert (
        first.info["note"].startswith(textclass.TINY_NOTE)
        and "tiny-toxicity" in first.info["note"]
    )
    assert first.labels == ["nothate", "hate"] and not first.model.training
    assert [p.name for p in tmp_path.joinpath("tiny").iterdir()] == ["tiny-toxicity"]
    expected = toxicity.predict(MIXED, progress=False)
    np.testing.assert_allclose(second.predict(MIXED, progress=False), expected, atol=1e-5)


def test_stale_tiny_preset_is_rebuilt(monkeypatch, tmp_path, regard):
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path))
    builds = []

    def trained(task, seed=0):  # the fixture's model: this test is about the directory
        builds.append(task)
        return regard.model, regard.tokenizer

    monkeypatch.setattr(classifiers, "build_tiny_classifier", trained)
    path = tmp_path / "tiny" / "tiny-regard"
    path.mkdir(parents=True)
    (path / classifiers.MANIFEST).write_text('{"version": "0"}')  # other settings: stale
    (path / "leftover.txt").write_text("from an older build")
    classifier = load_classifier("tiny-regard", device="cpu")
    assert builds == ["regard"] and not (path / "leftover.txt").exists()
    assert tuple(classifier.labels) == textclass.REGARD_LABELS
    manifest = (path / classifiers.MANIFEST).read_text()
    assert f'"version": "{classifiers.TINY_CLASSIFIER_VERSION}"' in manifest


def test_saved_classifier_loads_from_a_local_path(tmp_path, toxicity):
    toxicity.model.save_pretrained(tmp_path / "clf")
    toxicity.tokenizer.save_pretrained(tmp_path / "clf")
    loaded = load_classifier(str(tmp_path / "clf"), device="cpu", batch_size=2)
    assert loaded.labels == toxicity.labels and loaded.batch_size == 2
    assert loaded.info["n_parameters"] == toxicity.info["n_parameters"]
    assert loaded.info["tiny_offline"] is False and "note" not in loaded.info  # a named model
    np.testing.assert_allclose(
        loaded.predict(MIXED, progress=False), toxicity.predict(MIXED, progress=False), atol=1e-6
    )


def test_bad_sources_are_config_errors(tmp_path, tiny_dirs):
    with pytest.raises(ConfigError, match=r"cannot load a text classifier.*tiny-toxicity"):
        load_classifier(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load a text classifier"):
        load_classifier(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="BertForMaskedLM, not a sequence classifier"):
        load_classifier(str(tiny_dirs["masked"]))


# --------------------------------------------------------------------------- labelled lines


def test_packaged_lines_are_well_formed():
    for task, labels in (
        ("toxicity", ["nothate", "hate"]),
        ("regard", list(textclass.REGARD_LABELS)),
    ):
        lines = classifier_lines(task)
        assert lines["labels"] == labels
        assert list(lines["train"]) == labels and list(lines["heldout"]) == labels
        assert all(len(lines["heldout"][label]) >= 10 for label in labels)
        assert all(len(lines["train"][label]) >= 15 for label in labels)
    assert len(classifier_lines("toxicity")["train"]["hate"]) >= 40


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lines.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
toxicity:
  labels: [nothate, hate]
  empty: nothate
  train: {nothate: [a nice day], hate: [you idiot]}
  heldout: {nothate: [a good day], hate: [what an idiot]}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("toxicity: [unclosed", "not valid YAML"),
        ("- just a list", "mapping from task name"),
        (GOOD.replace("  empty: nothate\n", "  extra: 1\n"), "expected the keys"),
        (GOOD.replace("[nothate, hate]", "[hate]"), "two or more distinct"),
        (GOOD.replace("empty: nothate", "empty: rude"), "field 'empty'"),
        (GOOD.replace("hate: [what an idiot]", "rude: [what an idiot]"), "field 'heldout'"),
        (GOOD.replace("hate: [you idiot]", "hate: []"), "field 'train.hate'"),
        (GOOD.replace("hate: [you idiot]", "hate: [you idiot, 3]"), "line 1 is 3"),
        (GOOD.replace("[what an idiot]", "[you idiot]"), "also in train"),
    ],
)
def test_malformed_lines_file_is_a_clear_error(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError, match=message) as info:
        classifier_lines("toxicity", path)
    assert str(path) in str(info.value)


def test_lines_file_from_a_path_and_unknown_task(tmp_path):
    path = write(tmp_path, GOOD)
    lines = classifier_lines("toxicity", path)
    assert lines["train"] == {"nothate": ["a nice day"], "hate": ["you idiot"]}
    assert lines["empty"] == "nothate"
    with pytest.raises(ConfigError, match="no task 'regard'"):
        classifier_lines("regard", path)
