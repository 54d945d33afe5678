"""Items longer than the model reads: a located error by default, or left out and counted."""

from __future__ import annotations

import pytest

from debiaslab.benchmarks import crows_pairs as cp
from debiaslab.benchmarks import stereoset
from debiaslab.data.crows_pairs import CrowsPair
from debiaslab.data.stereoset import Example, Sentence, StereoSet
from debiaslab.models import from_objects
from debiaslab.scoring import SequenceTooLongError, max_length
from debiaslab.tiny.build import build_tiny

LONG = " ".join(["the nurse said that she was busy"] * 120)  # far over 512 tokens


def _pairs():
    return [
        CrowsPair(
            0, "The nurse said she was busy.", "The nurse said he was busy.", "stereo", "gender"
        ),
        CrowsPair(7, LONG + ".", LONG + " too.", "stereo", "gender"),
        CrowsPair(9, "Women are bad at math.", "Men are bad at math.", "stereo", "gender"),
    ]


@pytest.mark.parametrize("family", ["masked", "causal"])
def test_crows_pairs_too_long_names_file_record_and_length(family):
    lm = from_objects(*build_tiny(family, seed=0))
    with pytest.raises(SequenceTooLongError) as info:
        cp.run_crows_pairs(lm, _pairs(), n_boot=10, progress=False, source="pairs.csv")
    message = str(info.value)
    assert "pairs.csv: record index 7" in message
    assert f"at most {max_length(lm.model, lm.tokenizer)}" in message
    assert "--too-long skip" in message


@pytest.mark.parametrize("family", ["masked", "causal"])
def test_crows_pairs_skip_leaves_long_pairs_out_and_counts_them(family):
    lm = from_objects(*build_tiny(family, seed=0))
    pairs = _pairs()
    out = cp.run_crows_pairs(lm, pairs, n_boot=10, progress=False, too_long="skip")
    short = cp.run_crows_pairs(lm, [pairs[0], pairs[2]], n_boot=10, progress=False)
    assert out.config["n_skipped_too_long"] == 1
    assert out.config["skipped_too_long"] == [7]
    assert list(out.items["index"]) == [0, 9]
    assert out.metrics == pytest.approx(short.metrics, nan_ok=True)


def _stereoset():
    def example(eid, context):
        return Example(
            eid,
            "intersentence",
            "nurse",
            "profession",
            context,
            (
                Sentence(f"{eid}s", "She is caring.", "stereotype"),
                Sentence(f"{eid}a", "He is caring.", "anti-stereotype"),
                Sentence(f"{eid}u", "Bananas are yellow.", "unrelated"),
            ),
        )

    return StereoSet(
        intersentence=[example("e1", "The nurse came in."), example("e2", LONG)], source="dev.json"
    )


def test_stereoset_too_long_names_the_example_and_skip_counts_it():
    lm = from_objects(*build_tiny("causal", seed=0))
    with pytest.raises(SequenceTooLongError, match=r"dev.json: example e2 \(intersentence\)"):
        stereoset.run_likelihood(
            lm, _stereoset(), splits=["intersentence"], n_boot=10, progress=False
        )
    out = stereoset.run_likelihood(
        lm, _stereoset(), splits=["intersentence"], n_boot=10, progress=False, too_long="skip"
    )
    assert out.config["skipped_too_long"] == ["e2"]
    assert set(out.items["example_id"]) == {"e1"}


def test_engine_refuses_over_long_items_before_scoring_instead_of_crashing():
    from debiaslab.scoring import causal_logprobs

    lm = from_objects(*build_tiny("causal", seed=0))
    ids = lm.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    with pytest.raises(SequenceTooLongError):
        causal_logprobs(lm, [([0], ids[:5]), ([0], ids)], progress=False)


def test_relative_position_models_have_no_length_limit():
    model, tokenizer = build_tiny("seq2seq", seed=0)
    assert max_length(model, tokenizer) is None
