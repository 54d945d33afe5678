"""The real-model track's measurements: SmolLM2-135M-Instruct through CrowS-Pairs, StereoSet
(likelihood and multiple choice), BOLD and HONEST, and a control that shows what CrowS-Pairs
measures on it is about the sentences, not the pipeline."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from debiaslab import smollm2
from debiaslab.benchmarks.crows_pairs import harness_metrics
from debiaslab.data.fetch import resolve
from debiaslab.evalconfig import EvalConfig
from debiaslab.realtrack import measure
from debiaslab.realtrack.config import track_config
from debiaslab.realtrack.run import Track
from debiaslab.runner import evaluate
from debiaslab.stats import bootstrap_vectorized

HEADLINES = {
    "crows_pairs": ["pct_stereotype", "likelihood_diff"],
    "stereoset": ["overall/ss", "overall/lms", "overall/icat"],
    "stereoset_mc": ["mc/overall/ss", "mc/overall/lms", "mc/position_bias"],
    "bold": [],  # checked by name below (per-group metrics)
    "honest": [],
}


def _track(tmp_path, logs, **limits) -> Track:
    config = track_config("full", tmp_path / "results", tmp_path / "work", **limits)
    return Track(config, log=logs.append)


def test_steps_pass_the_track_settings_to_evaluate(tmp_path, monkeypatch):
    """The wiring, without a model: each step asks evaluate for what the track config says."""
    seen: list[EvalConfig] = []

    class Done:
        skipped, record = False, {"n_items": 1}

        def __init__(self, config):
            self.path = tmp_path / f"{config.benchmark}.json"

    def fake(config):
        seen.append(config)
        return Done(config)

    monkeypatch.setattr(measure, "evaluate", fake)
    logs: list[str] = []
    track = _track(
        tmp_path, logs, crows_limit=7, stereoset_limit=5, stereoset_mc_limit=3, bold_limit=2,
        honest_limit=4, honest_k=3, max_new_tokens=9, seed=11, n_boot=77,
    )  # fmt: skip
    files = [f for step in ("crows_pairs", "stereoset", "stereoset_mc", "bold_honest")
             for f in getattr(measure, step)(track)]  # fmt: skip
    assert [f.name for f in files] == [
        "crows_pairs.json", "stereoset.json", "stereoset_mc.json", "bold.json", "honest.json"
    ]  # fmt: skip
    by = {c.benchmark: c for c in seen}
    assert {c.model for c in seen} == {"smollm2-135m-instruct"}
    assert {(c.seed, c.n_boot) for c in seen} == {(11, 77)}
    assert {c.output for c in seen} == {str(tmp_path / "results")}
    assert by["crows_pairs"].limit == 7 and by["crows_pairs"].crows.mode == "harness"
    assert by["stereoset"].limit == 5 and by["stereoset_mc"].limit == 3
    assert by["stereoset"].stereoset.splits == by["stereoset_mc"].stereoset.splits
    assert set(by["stereoset"].stereoset.splits) == {"intrasentence", "intersentence"}
    bold, honest = by["bold"].generation, by["honest"].generation
    assert by["bold"].limit == 2 and bold.max_new_tokens == 9
    assert (bold.toxicity_model, bold.regard_model) == ("tiny-toxicity", "tiny-regard")
    assert set(bold.metrics) == {"toxicity", "regard", "honest"}
    assert by["honest"].limit == 4 and honest.honest_k == 3 and honest.metrics == ("honest",)
    assert len(logs) == 5 and all("[real]" in line for line in logs)


def _check_record(path, benchmark: str) -> dict:
    record = json.loads(path.read_text())
    assert record["benchmark"] == benchmark and record["n_items"] > 0
    model = record["model"]
    # Named honestly: the dequantized Q4_1 GGUF of the registry's wheel, not the bf16 release.
    assert model["display_name"] == "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)"
    assert model["gguf_sha256"] == smollm2.GGUF_SHA256 and model["gguf"] == smollm2.GGUF_MEMBER
    for key in HEADLINES[benchmark]:
        low, high = record["ci"][key]
        assert low <= record["metrics"][key] <= high, key  # zero width: one answer letter
    assert (path.parent / record["items_file"]).is_file()
    return record


@pytest.mark.real
@pytest.mark.slow
def test_each_step_runs_smollm2_and_its_records_name_it_with_cis(tmp_path):
    logs: list[str] = []
    track = _track(
        tmp_path, logs, crows_limit=12, stereoset_limit=4, stereoset_mc_limit=3, bold_limit=1,
        honest_limit=2, honest_k=2, max_new_tokens=4, n_boot=100,
    )  # fmt: skip
    (crows,) = measure.crows_pairs(track)
    record = _check_record(crows, "crows_pairs")
    assert record["n_items"] == 12 and record["config"]["mode"] == "harness"
    assert record["config"]["data_version"] == "revised"  # lm-eval's crows_pairs_english

    (ss,) = measure.stereoset(track)
    record = _check_record(ss, "stereoset")
    assert record["n_items"] == 8 and record["config"]["stereoset_mode"] == "bos"
    assert record["metrics"]["intrasentence/overall/n_examples"] == 4

    (mc,) = measure.stereoset_mc(track)
    record = _check_record(mc, "stereoset_mc")
    assert record["n_items"] == 6 and record["config"]["chat_template"] is True
    # In SmolLM2's chat template the answer is "A" right after "assistant\n", not " A".
    assert record["config"]["letter_tokens"] == {c: [c] for c in "ABC"}

    bold, honest = measure.bold_honest(track)
    record = _check_record(bold, "bold")
    n_groups = record["n_items"]
    assert n_groups >= 40  # one prompt per BOLD group (43 groups over five domains)
    scorers = record["config"]["scorers"]
    for metric in ("toxicity", "regard"):
        assert scorers[metric]["model"] == f"tiny-{metric}"
        assert scorers[metric]["tiny_offline"] is True
        assert scorers[metric]["note"].startswith("scored by a tiny offline classifier")
    assert "tiny_offline" not in scorers["honest"]  # HurtLex: the real lexicon
    assert record["config"]["generation"]["max_new_tokens"] == 4
    for key in ("toxicity/mean", "regard/negative", "honest/score"):
        low, high = record["ci"][key]
        assert low <= record["metrics"][key] <= high, key
    assert "gender/toxicity/gap" in record["metrics"]  # the group gaps, per domain
    record = _check_record(honest, "honest")
    assert record["n_items"] == 4 and record["config"]["k"] == 2
    assert set(record["config"]["scorers"]) == {"honest"}

    # A rerun finds every result and recomputes nothing.
    again = [f for step in ("crows_pairs", "stereoset", "stereoset_mc", "bold_honest")
             for f in getattr(measure, step)(track)]  # fmt: skip
    assert again == [crows, ss, mc, bold, honest]
    assert sum("skipped" in line for line in logs) == 5


# ------------------------------------------------------------------ the shuffled-sentence control

N_CONTROL = 300  # pairs: a seeded sample of the revised English file (see the test's comment)


def _shuffled(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    rng.shuffle(words)
    return " ".join(words)


@pytest.mark.real
@pytest.mark.slow
def test_crows_pairs_preference_of_smollm2_differs_from_a_shuffled_sentence_control(tmp_path):
    """What CrowS-Pairs measures on a real LM must come from the sentences as sentences.

    Design. The same ``N_CONTROL`` pairs (a seeded sample of lm-eval's revised English file)
    are scored twice through ``evaluate`` (harness mode): as written, and with the words of
    every sentence shuffled, each sentence by its own seeded permutation. Shuffling keeps the
    words (the group term, the attribute, the length) and destroys grammar and meaning; the
    LM's choice between two word salads is then which salad happens to read better, so the
    control's ``pct_stereotype`` falls toward 50. (One permutation shared by both sentences
    is not a control: it keeps the word-level difference, and on SmolLM2 its per-pair
    preference correlates 0.5 with the real one.)

    Assertion: the real score differs from the control by more than sampling error, with a
    *paired* bootstrap over pairs (both scores on the same resampled pairs): the 95% CI of
    real - control excludes 0. Sizing from published numbers, not from this model: small
    causal LMs score ~57-62% on this file in lm-eval, ~10 points over a control at ~50; the
    per-pair difference of two weakly related 0/1 outcomes has SD ~0.7, so 300 pairs give a
    CI half-width of ~8 points. Observed when written: real 59.0 [53.7, 64.3], control 47.3
    [41.3, 53.3], real - control 11.7 [4.7, 19.3] (the real score on this sample was known
    before the test was written; the control's was not). The model, the data and every
    seed are fixed (the GGUF's sha256 is checked), so the outcome is deterministic.
    """
    source = resolve("crows_pairs_revised_english")
    frame = pd.read_csv(source, sep="\t", index_col=0)
    rows = sorted(random.Random(0).sample(range(len(frame)), N_CONTROL))
    real = frame.iloc[rows]
    control = real.copy()
    for column in ("sent_more", "sent_less"):
        control[column] = [
            _shuffled(text, random.Random(f"{column}:{index}"))
            for index, text in zip(real.index, real[column], strict=True)
        ]
    assert (control["sent_more"] != real["sent_more"]).mean() > 0.95
    items = {}
    for name, data in (("real", real), ("control", control)):
        path = tmp_path / f"{name}.csv"
        data.to_csv(path, sep="\t")
        config = EvalConfig.of(
            "smollm2-135m-instruct", "crows_pairs", tmp_path / name, data=str(path),
            mode="harness", n_boot=1000, seed=0, progress=False,
        )  # fmt: skip
        (tmp_path / name).mkdir()
        run = evaluate(config)
        assert run.record["n_items"] == N_CONTROL
        assert run.record["model"]["gguf_sha256"] == smollm2.GGUF_SHA256
        items[name] = pd.read_csv(tmp_path / name / run.record["items_file"])
    assert list(items["real"]["index"]) == list(items["control"]["index"])
    real_stat, control_stat = harness_metrics(items["real"]), harness_metrics(items["control"])

    def gap(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"gap": real_stat(idx)["pct_stereotype"] - control_stat(idx)["pct_stereotype"]}

    value, ci = bootstrap_vectorized(gap, N_CONTROL, n_boot=2000, seed=0)
    low, high = ci["gap"]
    assert low > 0 or high < 0, (value, ci)
