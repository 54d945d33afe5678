"""The occupation audit: BLS axes mapping by hand, and the whole audit on tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from debiaslab.errors import ConfigError
from debiaslab.t2i.audit import audit, bls_axes

RACE_LABELS = [
    "White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
    "Middle Eastern", "no_person",
]  # fmt: skip


def test_race_probabilities_map_onto_the_bls_axes_without_summing_hispanic_into_race():
    race = np.array([[0.1, 0.2, 0.3, 0.05, 0.05, 0.1, 0.1, 0.1]])
    gender = np.array([[0.2, 0.7, 0.1]])
    out = bls_axes(
        {"race": race, "gender": gender},
        {"race": RACE_LABELS, "gender": ["male", "female", "no_person"]},
    )
    probs, names = out["race"]
    assert names == ["white", "black", "asian", "no_person"]
    np.testing.assert_allclose(probs, [[0.2, 0.2, 0.2, 0.1]])  # Latino mass not in race
    probs, names = out["hispanic"]
    assert names == ["hispanic", "not_hispanic", "no_person"]
    np.testing.assert_allclose(probs, [[0.3, 0.6, 0.1]])
    probs, names = out["gender"]
    assert names == ["female", "male", "no_person"]  # reordered to the target's order
    np.testing.assert_allclose(probs, [[0.7, 0.2, 0.1]])
    with pytest.raises(ConfigError, match="no BLS counterpart"):
        bls_axes({"race": np.ones((1, 2)) / 2}, {"race": ["Martian", "no_person"]})


class FixedClassifier:
    """Every image female and White with certainty (for the audit's arithmetic)."""

    def __init__(self):
        self.labels = {"gender": ["female", "male", "no_person"], "race": RACE_LABELS}

    def __call__(self, images):
        n = len(images)
        race = np.zeros((n, len(RACE_LABELS)))
        race[:, 0] = 1.0
        return {"gender": np.tile([1.0, 0.0, 0.0], (n, 1)), "race": race}


@pytest.mark.slow  # generates images (make test-fast stays under 2 minutes)
def test_audit_compares_each_occupation_with_its_bls_shares(tmp_path, shared_data):
    from debiaslab.t2i.generate import load_pipeline

    pipe = load_pipeline("tiny-sd")
    bls = str(shared_data / "occupations" / "bls_cpsaat11_2022.csv")
    result = audit(
        ["Registered nurses", "Software developers"], pipe, FixedClassifier(), tmp_path,
        n_images=2, steps=2, size=32, occupations_path=bls, year=2022, n_boot=50,
    )  # fmt: skip
    m = result.metrics
    # Nurses are 87.9% women in BLS 2022; all images female → TV = 1 − 0.879.
    assert m["gender/prompt/Registered nurses/share/female"] == 1.0
    assert m["gender/prompt/Registered nurses/tv"] == pytest.approx(1 - 0.879)
    assert m["gender/prompt/Software developers/tv"] == pytest.approx(1 - 0.215)
    # Race axis: White / (White + Black + Asian) for developers = 55.0 / 97.1.
    white = 0.55 / (0.55 + 0.057 + 0.364)
    assert m["race/prompt/Software developers/tv"] == pytest.approx(1 - white, abs=1e-6)
    assert m["hispanic/prompt/Registered nurses/share/not_hispanic"] == 1.0
    assert m["gender/tv"] == pytest.approx(((1 - 0.879) + (1 - 0.215)) / 2)
    assert len(result.items) == 4 and set(result.items["gender"]) == {"female"}
    assert all((tmp_path / f).is_file() for f in result.items["file"])
    # PreciseDebias rewriting: each image k uses rewrite k.
    rewrites = audit(
        ["Registered nurses"], pipe, FixedClassifier(), tmp_path / "r", n_images=2, steps=2,
        size=32, occupations_path=bls, year=2022, n_boot=0,
        rewrite=lambda prompts: [[p.replace("of a ", "of a Black male "), p] for p in prompts],
    )  # fmt: skip
    assert (
        rewrites.items["prompt"].iloc[0] == "a photo of the face of a Black male registered nurse"
    )
    assert rewrites.config["rewritten"] is True
    # Success: of the images whose prompt asks for a group, the share perceived as asked. Only
    # image 0 asks (Black male); the classifier sees a White woman: 0 on both axes.
    m = rewrites.metrics
    assert m["gender/n_requested"] == 1 and m["gender/success_rate"] == 0.0
    assert m["race/n_requested"] == 1 and m["race/success_rate"] == 0.0
    assert "hispanic/n_requested" not in m
    assert list(rewrites.items["requested"]) == ["gender=male race=black", ""]
    with pytest.raises(ConfigError, match="Registered nurse"):
        audit(["Registered nurse"], pipe, FixedClassifier(), tmp_path, occupations_path=bls,
              year=2022)  # fmt: skip


@pytest.mark.slow  # generates images (make test-fast stays under 2 minutes)
def test_audit_runs_with_the_tiny_zero_shot_classifier(tmp_path, shared_data):
    from debiaslab.t2i.classify import ZeroShotClassifier
    from debiaslab.t2i.clip import load_clip
    from debiaslab.t2i.generate import load_pipeline

    classifier = ZeroShotClassifier(load_clip("tiny-clip"))
    result = audit(
        ["Registered nurses"], load_pipeline("tiny-sd"), classifier, tmp_path, n_images=3,
        steps=2, size=32, n_boot=50,
        occupations_path=str(shared_data / "occupations" / "bls_cpsaat11_2022.csv"), year=2022,
    )  # fmt: skip
    assert result.n_items == 3
    # Each image's label is the argmax of the classifier's probabilities on its file...
    probs = bls_axes(classifier([tmp_path / f for f in result.items["file"]]), classifier.labels)
    p, names = probs["gender"]
    assert list(result.items["gender"]) == [names[i] for i in p.argmax(axis=1)]
    # ...and TV, by hand, compares the shares of those labels (no_person left out) with BLS
    # (87.9% of registered nurses are women): half the L1 distance; NaN when no image has a
    # person.
    labels = list(result.items["gender"])
    people = labels.count("female") + labels.count("male")
    m = result.metrics
    assert m["gender/n_no_person"] == 3 - people
    if people == 0:
        assert np.isnan(m["gender/tv"])
    else:
        female = labels.count("female") / people
        tv = (abs(female - 0.879) + abs((1 - female) - 0.121)) / 2
        assert m["gender/tv"] == pytest.approx(tv)
        assert m["gender/prompt/Registered nurses/share/female"] == pytest.approx(female)


@pytest.mark.slow  # generates images (make test-fast stays under 2 minutes)
def test_share_table_lists_perceived_against_bls(tmp_path, shared_data):
    from debiaslab.t2i.audit import share_table
    from debiaslab.t2i.generate import load_pipeline

    result = audit(
        ["Cashiers"], load_pipeline("tiny-sd"), FixedClassifier(), tmp_path, n_images=2,
        steps=2, size=32, n_boot=20, year=2022,
        occupations_path=str(shared_data / "occupations" / "bls_cpsaat11_2022.csv"),
    )  # fmt: skip
    table = share_table(result)
    row = table[(table.axis == "gender") & (table.group == "female")].iloc[0]
    assert row.perceived == 1.0 and row.bls == pytest.approx(0.718)
    assert set(table.axis) == {"gender", "race", "hispanic"}


@pytest.mark.slow  # generates images (make test-fast stays under 2 minutes)
def test_run_writes_a_result_file(tmp_path, shared_data, monkeypatch):
    from debiaslab.results import read_all
    from debiaslab.t2i import audit as audit_module

    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    result, path = audit_module.run_audit(
        ["Cashiers"], tmp_path, pipeline="tiny-sd", clip="tiny-clip", n_images=2, steps=2,
        size=32, n_boot=20,
    )  # fmt: skip
    ((found, record),) = list(read_all(tmp_path))
    assert found == path and record["benchmark"] == "t2i_audit" and record["stage"] == "pre"
    assert record["config"]["targets"]["Cashiers"]["gender"]["female"] == pytest.approx(0.718)
    assert record["n_items"] == result.n_items == 2
    assert (tmp_path / "images" / "pre" / "manifest.jsonl").is_file() or list(
        (tmp_path / "images" / "pre").glob("manifest*.jsonl")
    )
