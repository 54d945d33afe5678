"""The real track's generation steps on SmolLM2 at tiny sizes, and the pieces they rely on."""

from __future__ import annotations

import json

import pytest

from debiaslab import smollm2
from debiaslab.realtrack import generate
from debiaslab.realtrack.config import SIZES, track_config
from debiaslab.realtrack.run import Track
from debiaslab.t2i.precise_debias.align import align_record, curve_from_record
from debiaslab.t2i.precise_debias.groups import GROUPS, normalise_target


def _track(tmp_path, **sizes) -> Track:
    config = track_config("full", tmp_path / "results", tmp_path / "work", n_boot=50, **sizes)
    return Track(config, log=lambda _line: None)


def _record(path):
    return json.loads(path.read_text("utf-8"))


def _honest_model(record) -> None:
    model = record["model"]
    assert model["display_name"] == smollm2.DISPLAY_NAME
    assert model["gguf_sha256"] == smollm2.GGUF_SHA256
    assert smollm2.HUB_ID not in json.dumps(model)  # never named as the bf16 Hub release


def test_align_record_adds_gender_and_ethnicity_shares_that_sum_the_group_shares():
    groups = list(GROUPS)
    first = {g: (k + 1) / 36 for k, g in enumerate(groups)}  # 1..8 / 36: sums to 1
    last = normalise_target()
    curve = [
        {"iteration": i, "shares": s, "max_abs_delta": 0.1, "tv": 0.2, "undetected": 0.3,
         "n_rewrites": 8}
        for i, s in enumerate((first, last))
    ]  # fmt: skip
    record = align_record({"curve": curve, "target": normalise_target()}, lm=None)
    metrics = record["metrics"]
    for i, shares in enumerate((first, last)):
        female = sum(v for g, v in shares.items() if g.endswith(" female"))
        assert metrics[f"iteration/{i}/gender/female"] == pytest.approx(female)
        assert metrics[f"iteration/{i}/gender/male"] == pytest.approx(1 - female)
        for race in ("white", "black", "asian", "hispanic"):
            want = shares[f"{race} female"] + shares[f"{race} male"]
            assert metrics[f"iteration/{i}/ethnicity/{race}"] == pytest.approx(want)
    assert metrics["target/gender/female"] == pytest.approx(0.5)
    assert metrics["target/ethnicity/white"] == pytest.approx(2 * normalise_target()["white male"])
    back = curve_from_record(record)["curve"]
    assert [sorted(e["shares"]) for e in back] == [sorted(groups)] * 2  # marginals stay apart


def test_demo_size_of_precise_debias_is_the_small_one():
    demo = track_config("demo", "r", "w")
    assert "precise_debias" in demo.steps
    assert (demo.align_prompts, demo.align_n, demo.align_iterations) == (8, 4, 2)
    assert set(SIZES["demo"]) <= set(demo.as_dict())


@pytest.mark.real
@pytest.mark.slow
def test_decoding_tradeoff_on_the_real_model(tmp_path):
    track = _track(
        tmp_path,
        decoding_prompts=3,
        decoding_continuations=2,
        decoding_held_out=3,
        decoding_alphas=(0.0, 1.0),
        max_new_tokens=12,
    )
    files = generate.decoding_tradeoff(track)
    results = [f for f in files if f.suffix == ".json"]
    assert len(results) == 1 and all(f.parent == track.results for f in files)
    record = _record(results[0])
    assert record["benchmark"] == "decoding_tradeoff"
    _honest_model(record)
    assert record["config"]["n_prompts"] == 3
    table = (track.results / "decoding_tradeoff.csv").read_text().splitlines()
    assert table[0].startswith("method,strength,share")
    assert [line.split(",")[:2] for line in table[1:]] == [
        ["balance", "0.0"], ["balance", "1.0"], ["self-debias", "50.0"]
    ]  # fmt: skip
    ratios = [float(line.split(",")[-1]) for line in table[1:]]
    # alpha 0 is plain decoding: the base perplexity comes from the batched engine, alpha 0's
    # from the per-token loop, float32 sums in another order (4e-6 apart here)
    assert ratios[0] == pytest.approx(1.0, abs=1e-4)
    assert all(r > 0 for r in ratios)


@pytest.mark.real
@pytest.mark.slow
def test_synthetic_data_is_written_by_the_real_model_and_filtered_by_tiny_classifiers(tmp_path):
    track = _track(
        tmp_path,
        synthetic_n=6,
        synthetic_max_new_tokens=24,
        synthetic_steps=2,
        synthetic_crows_limit=8,
    )
    summary, pre, post = generate.synthetic(track)
    facts = _record(summary)
    assert facts["written_by"]["display_name"] == smollm2.DISPLAY_NAME
    assert facts["manifest"]["backend"]["name"] == f"hf:{track.config.model}"
    assert facts["manifest"]["backend"]["chat_template"] is True
    assert facts["filters"]["toxicity"] == "tiny-toxicity"
    assert facts["filters"]["regard"] == "tiny-regard"
    assert "tiny offline classifiers" in facts["filters"]["note"]
    assert facts["n_generated"] >= 6
    before, after = _record(pre), _record(post)
    assert before["benchmark"] == after["benchmark"] == "crows_pairs"
    assert (before["stage"], after["stage"]) == ("synthetic-pre", "synthetic-post")
    assert before["n_items"] == after["n_items"] == 8
    for record in (before, after):
        _honest_model(record)
    assert after["model"]["adapter_data_written_by"] == track.config.model
    assert after["model"]["adapter_data_filters"]["toxicity"] == "tiny-toxicity"
    assert "adapter_data_written_by" not in before["model"]


@pytest.mark.real
@pytest.mark.slow
def test_precise_debias_aligns_on_train_pairs_and_measures_held_out_prompts(tmp_path):
    track = _track(
        tmp_path,
        precise_prompts_per_occupation=1,
        rewriter_steps=2,
        align_prompts=3,
        align_n=2,
        align_iterations=2,
        align_steps=1,
    )
    (result,) = generate.precise_debias(track)
    record = _record(result)
    assert record["benchmark"] == "precise_debias_align" and result.parent == track.results
    _honest_model(record)
    prompts = record["config"]["prompts"]
    assert prompts["written_by"]["display_name"] == smollm2.DISPLAY_NAME
    metrics = record["metrics"]
    n = int(metrics["iterations"])
    assert 1 <= n <= 2 and record["n_items"] == n * record["config"]["n_prompts"] * 2
    for i in range(n):
        shares = [metrics[f"iteration/{i}/share/{g}"] for g in GROUPS]
        gender = [metrics[f"iteration/{i}/gender/{g}"] for g in ("female", "male")]
        detected = sum(shares)
        assert detected == pytest.approx(1.0) or detected == 0.0  # shares of detected rewrites
        assert sum(gender) == pytest.approx(detected)
        assert 0.0 <= metrics[f"iteration/{i}/undetected"] <= 1.0
    assert metrics["target/gender/female"] == pytest.approx(0.5)
    held_out = {p["input"] for p in _record(track.work / "precise_debias" / "test.json")}
    trained = {p["input"] for p in _record(track.work / "precise_debias" / "train.json")}
    rewrites = json.loads(
        (track.work / "precise_debias" / "align" / "rewrites" / "iteration_00.json").read_text()
    )
    assert set(rewrites) <= held_out and not set(rewrites) & trained
