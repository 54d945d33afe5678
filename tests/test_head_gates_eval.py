"""Head gates applied to a whole evaluation (``evaluate(head_gates=...)``, ``--head-gates``)."""

from __future__ import annotations

import pandas as pd

from debiaslab import runner
from debiaslab.evalconfig import EvalConfig
from debiaslab.generation import default_model_key
from debiaslab.mitigation.heads import HeadGates
from debiaslab.models import load_model


def test_evaluation_with_head_gates_scores_the_gated_model_and_records_the_file(
    tmp_path, shared_data
):
    lm = load_model("tiny-gpt2")
    closed = HeadGates(lm.model)
    for name in list(closed.gates)[:1]:
        closed.gates[name][:] = 0.0  # the first layer's heads removed
    closed_file = closed.save(tmp_path / "closed.safetensors")
    open_file = HeadGates(lm.model).save(tmp_path / "open.safetensors")
    data = str(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    common = {"data": data, "limit": 30, "n_boot": 50, "progress": False}
    out = tmp_path / "results"
    plain = runner.evaluate(EvalConfig.of("tiny-gpt2", "crows_pairs", out, **common))
    gated = runner.evaluate(
        EvalConfig.of("tiny-gpt2", "crows_pairs", out, head_gates=str(closed_file), **common)
    )
    opened = runner.evaluate(
        EvalConfig.of("tiny-gpt2", "crows_pairs", out, head_gates=str(open_file), **common)
    )
    ids = {r.record["run_id"] for r in (plain, gated, opened)}
    assert len(ids) == 3  # gates are part of the run id: no result is mistaken for another
    assert gated.record["model"]["head_gates"].startswith("closed.safetensors@")
    assert gated.record["config"]["head_gates"] == gated.record["model"]["head_gates"]

    def scores(result):
        items = pd.read_csv(str(result.path).replace(".json", ".items.csv"))
        return items.select_dtypes("number").to_numpy()

    assert (scores(opened) == scores(plain)).all()  # gates of 1 change nothing
    assert (scores(gated) != scores(plain)).any()  # the closed heads were applied
    assert "head_gates" not in plain.record["config"]  # old run ids are unchanged


def test_generation_cache_keys_tell_gated_models_apart():
    lm = load_model("tiny-gpt2")
    plain = default_model_key(lm)
    lm.info["head_gates"] = "closed.safetensors@0123456789ab"
    assert default_model_key(lm) != plain and "closed.safetensors" in default_model_key(lm)
