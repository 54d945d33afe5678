"""Precision of likelihood benchmarks: float32 by default, fp16_ok honoured, the fp32 re-check.

The fp32 re-check is compared with an independent count: the same items scored with the plain
scoring functions once in bfloat16 and once in float32 (CPU has bfloat16).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from debiaslab import env
from debiaslab.benchmarks import crows_pairs, precision
from debiaslab.benchmarks import stereoset as ss
from debiaslab.benchmarks import stereoset_mc as mc
from debiaslab.config import presets
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.data.fetch import DATA_DIR_ENV
from debiaslab.data.stereoset import load_stereoset
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import EvalConfig
from debiaslab.models import load_model
from debiaslab.runner import evaluate

A100 = ((8, 0), "NVIDIA A100")
T4 = ((7, 5), "Tesla T4")
NO_FP16 = next(name for name, p in presets().items() if not p.fp16_ok)  # FLAN-T5


def _fake_gpu(monkeypatch, gpu):
    capability, name = gpu
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=0: name)


@pytest.fixture
def data_dir(shared_data, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data))
    return shared_data


# --------------------------------------------------------------------------- dtype resolution


@pytest.mark.parametrize("gpu, generation_dtype", [(A100, torch.bfloat16), (T4, torch.float16)])
def test_auto_is_float32_for_likelihood_benchmarks_on_any_gpu(monkeypatch, gpu, generation_dtype):
    _fake_gpu(monkeypatch, gpu)
    cuda = torch.device("cuda")
    assert env.select_dtype(cuda, "auto", likelihood=True) is torch.float32
    assert env.select_dtype(cuda, "auto", likelihood=False) is generation_dtype  # as before
    # Half precision for a likelihood benchmark only when asked for by name.
    assert env.select_dtype(cuda, "float16", likelihood=True) is torch.float16


def test_evaluate_loads_likelihood_benchmarks_in_float32_on_a_bf16_gpu(
    monkeypatch, tmp_path, data_dir
):
    import debiaslab.models

    _fake_gpu(monkeypatch, A100)
    monkeypatch.setattr(env, "select_device", lambda requested=None: torch.device("cuda"))
    real_load, asked = debiaslab.models.load_model, []

    def load_on_cpu(name, *, dtype="auto", device=None, **kwargs):  # no GPU here
        asked.append(dtype)
        return real_load(name, dtype=dtype, device="cpu", **kwargs)

    monkeypatch.setattr(debiaslab.models, "load_model", load_on_cpu)
    run = evaluate(
        EvalConfig.of("tiny-gpt2", "crows_pairs", tmp_path, limit=6, n_boot=10, progress=False)
    )
    assert asked == ["float32"]
    assert run.record["config"]["dtype"] == "float32"
    assert run.record["model"]["dtype"] == "float32"


def test_fp16_refused_for_a_preset_with_fp16_ok_false(monkeypatch, tmp_path):
    from debiaslab.mitigation.finetune import FinetuneConfig, finetune

    _fake_gpu(monkeypatch, T4)
    cuda = torch.device("cuda")
    with pytest.raises(ConfigError, match=rf"{NO_FP16}.*fp16_ok is false.*bfloat16"):
        env.select_dtype(cuda, "float16", model=NO_FP16)
    # auto never picks float16 for it: float32 on a T4, bfloat16 where the GPU has it.
    assert env.select_dtype(cuda, "auto", model=NO_FP16) is torch.float32
    _fake_gpu(monkeypatch, A100)
    assert env.select_dtype(cuda, "auto", model=NO_FP16) is torch.bfloat16
    assert env.select_dtype(cuda, "bfloat16", model=NO_FP16) is torch.bfloat16
    # Refused before anything is loaded (the preset's weights are not on this machine).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for call in (
        lambda: evaluate(
            EvalConfig.of(NO_FP16, "crows_pairs", tmp_path, dtype="float16", device="cpu")
        ),
        lambda: load_model(NO_FP16, dtype="fp16", device="cpu"),
        lambda: finetune(NO_FP16, tmp_path / "ft", ["a b", "c d"], FinetuneConfig(fp16=True)),
    ):
        with pytest.raises(ConfigError, match="fp16_ok is false"):
            call()


# --------------------------------------------------------------------------- the result


def test_result_records_the_loaded_dtype_and_half_precision_gets_its_own_run(tmp_path, data_dir):
    common = {"limit": 6, "n_boot": 10, "device": "cpu", "progress": False}
    auto = evaluate(EvalConfig.of("tiny-gpt2", "crows_pairs", tmp_path, **common))
    half = evaluate(
        EvalConfig.of("tiny-gpt2", "crows_pairs", tmp_path, dtype="bfloat16", **common)
    )
    fp32 = evaluate(EvalConfig.of("tiny-gpt2", "crows_pairs", tmp_path, dtype="float32", **common))
    assert auto.record["config"]["dtype"] == auto.record["model"]["dtype"] == "float32"
    assert half.record["config"]["dtype"] == half.record["model"]["dtype"] == "bfloat16"
    assert half.path != auto.path and auto.path.is_file() and half.path.is_file()
    # auto and float32 load the same weights: one run, found again.
    assert fp32.skipped and fp32.path == auto.path
    assert "fp32_check" not in json.loads(half.path.read_text())


@pytest.mark.parametrize(
    "benchmark, dtype, fp32_check, message",
    [
        ("crows_pairs", "auto", 5, "already float32"),
        ("crows_pairs", "bfloat16", 0, "fp32_check must be an integer >= 1"),
        ("bold", "bfloat16", 5, "likelihood benchmarks"),
    ],
)
def test_fp32_check_refused_where_it_is_meaningless(
    tmp_path, benchmark, dtype, fp32_check, message
):
    # A model that does not exist: the refusal comes before any loading.
    with pytest.raises(ConfigError, match=message):
        evaluate(
            EvalConfig.of(
                "no-such-model",
                benchmark,
                tmp_path,
                dtype=dtype,
                device="cpu",
                fp32_check=fp32_check,
            )
        )


# --------------------------------------------------------------------------- the fp32 re-check


def _crows_flips(half: pd.DataFrame, full: pd.DataFrame) -> list[int]:
    a = np.sign(half["sent_more_score"] - half["sent_less_score"]).to_numpy()
    b = np.sign(full["sent_more_score"] - full["sent_less_score"]).to_numpy()
    return [int(i) for i in half["index"][a != b]]


@pytest.mark.slow  # two full precision runs (make test-fast stays under 2 minutes)
def test_fp32_check_counts_the_crows_pairs_flips_of_a_bf16_run(tmp_path, shared_data):
    data = shared_data / "crows_pairs" / "crows_pairs_anonymized.csv"
    pairs = load_crows_pairs(data)[:40]
    run = evaluate(
        EvalConfig.of(
            "tiny-bert",
            "crows_pairs",
            tmp_path,
            data=str(data),
            limit=40,
            device="cpu",
            dtype="bfloat16",
            n_boot=10,
            progress=False,
            fp32_check=100,  # more than there are: every pair
        )
    )
    # Independently: score the same pairs with the plain engine in both precisions.
    half = crows_pairs.score_nangia(load_model("tiny-bert", device="cpu", dtype="bf16"), pairs)
    full = crows_pairs.score_nangia(load_model("tiny-bert", device="cpu", dtype="fp32"), pairs)
    flips = _crows_flips(half, full)
    deltas = np.abs(np.r_[half["sent_more_score"] - full["sent_more_score"],
                          half["sent_less_score"] - full["sent_less_score"]])  # fmt: skip
    check = json.loads(run.path.read_text())["fp32_check"]
    assert check["n_compared"] == 40 and check["unit"] == "pairs"
    assert check["half_dtype"] == "bfloat16"
    assert check["flipped"] == len(flips) and check["flipped_items"] == flips
    assert check["max_abs_delta"] == pytest.approx(deltas.max(), abs=1e-9)
    assert check["max_abs_delta"] > 0  # bfloat16 did change the scores
    assert run.record["config"]["fp32_check"] == 100


def test_fp32_check_samples_n_items_with_the_seed(tmp_path, data_dir):
    common = {"limit": 30, "device": "cpu", "dtype": "bfloat16", "n_boot": 10, "progress": False}
    a = evaluate(
        EvalConfig.of("tiny-gpt2", "crows_pairs", tmp_path / "a", fp32_check=7, seed=1, **common)
    )
    b = evaluate(
        EvalConfig.of("tiny-gpt2", "crows_pairs", tmp_path / "b", fp32_check=7, seed=1, **common)
    )
    assert a.record["fp32_check"]["n_compared"] == 7 == a.record["fp32_check"]["n_requested"]
    items = pd.read_csv(a.path.with_name(a.record["items_file"]))
    keys = precision.sample_keys("crows_pairs", items, 7, seed=1)
    assert keys == precision.sample_keys("crows_pairs", items, 7, seed=1)
    assert keys != precision.sample_keys("crows_pairs", items, 7, seed=2)
    assert len(set(keys)) == 7 and set(keys) <= set(items["index"])
    assert {k: v for k, v in a.record["fp32_check"].items() if k != "seconds"} == {
        k: v for k, v in b.record["fp32_check"].items() if k != "seconds"
    }


def _stereoset_decisions(items: pd.DataFrame) -> dict:
    out = {}
    for (split, example), group in items.groupby(["split", "example_id"]):
        s = dict(zip(group["gold_label"], group["score"], strict=True))
        pro, anti, unrelated = s["stereotype"], s["anti-stereotype"], s["unrelated"]
        pairs = ((pro, anti), (pro, unrelated), (anti, unrelated))
        out[split, example] = [(x > y, x < y) for x, y in pairs]
    return out


@pytest.mark.slow  # two full precision runs (make test-fast stays under 2 minutes)
@pytest.mark.parametrize("benchmark", ["stereoset", "stereoset_mc"])
def test_fp32_check_counts_stereoset_flips_of_a_bf16_run(tmp_path, data_dir, benchmark):
    run = evaluate(
        EvalConfig.of(
            "tiny-gpt2",
            benchmark,
            tmp_path,
            limit=8,
            device="cpu",
            dtype="bfloat16",
            n_boot=10,
            progress=False,
            fp32_check=1000,
        )
    )
    gold = load_stereoset()
    gold = type(gold)(intrasentence=gold.intrasentence[:8], intersentence=gold.intersentence[:8])
    lms = {d: load_model("tiny-gpt2", device="cpu", dtype=d) for d in ("bfloat16", "float32")}
    if benchmark == "stereoset":
        runs = {d: ss.run_likelihood(lm, gold, n_boot=10, progress=False) for d, lm in lms.items()}
        half, full = (_stereoset_decisions(runs[d].items) for d in lms)
    else:
        choices = {d: mc.mc_choices(lm, gold, progress=False) for d, lm in lms.items()}
        half, full = (
            {
                key: tuple(rows.sort_values("order")["chosen_label"])  # the choice in each order
                for key, rows in c.groupby(["split", "example_id"])
            }
            for c in choices.values()
        )
    flips = sorted([list(k) for k in half if half[k] != full[k]])
    check = run.record["fp32_check"]
    assert check["n_compared"] == 16 and check["unit"] == "examples"
    assert check["flipped"] == len(flips) and sorted(check["flipped_items"]) == flips
    assert check["max_abs_delta"] > 0


def test_flip_rules_per_benchmark():
    crows = pd.DataFrame(
        {"index": [1, 2, 3], "sent_more_score": [-5.0, -4.0, -3.0], "sent_less_score": [-6.0] * 3}
    )
    moved = crows.assign(sent_more_score=[-5.1, -6.0, -7.0])  # same side, tie, other side
    got = precision.compare("crows_pairs", crows, moved)
    assert got["flipped_items"] == [2, 3] and got["n_compared"] == 3
    assert got["max_abs_delta"] == pytest.approx(4.0)

    labels = ["stereotype", "anti-stereotype", "unrelated"]
    stereo = pd.DataFrame(
        {
            "split": ["intrasentence"] * 6,
            "example_id": ["a"] * 3 + ["b"] * 3,
            "gold_label": labels * 2,
            "score": [0.5, 0.4, 0.1, 0.5, 0.4, 0.1],
        }
    )
    # a: the unrelated option overtakes the anti-stereotype (LMS changes, SS does not);
    # b: scores move but every ordering stays.
    moved = stereo.assign(score=[0.5, 0.3, 0.35, 0.45, 0.41, 0.2])
    got = precision.compare("stereoset", stereo, moved)
    assert got["flipped_items"] == [["intrasentence", "a"]] and got["n_compared"] == 2

    mc = pd.DataFrame(
        {
            "split": ["intersentence"] * 2,
            "example_id": ["x", "y"],
            "logprob_A": [-1.0, -2.0],
            "logprob_B": [-2.0, -1.0],
            "logprob_C": [-3.0, -3.0],
            "chosen_label": ["stereotype", "unrelated"],
        }
    )
    moved = mc.assign(logprob_A=[-2.5, -2.5], chosen_label=["anti-stereotype", "unrelated"])
    got = precision.compare("stereoset_mc", mc, moved)
    assert got["flipped_items"] == [["intersentence", "x"]]
    assert got["max_abs_delta"] == pytest.approx(1.5)
    # Only items scored both ways are compared (a sample, or an item one scoring skipped).
    assert precision.compare("crows_pairs", crows, crows[:1])["n_compared"] == 1


def test_cli_eval_prints_the_fp32_check(tmp_path, data_dir, capsys):
    from debiaslab import cli

    argv = ["eval", "--model", "tiny-gpt2", "--benchmark", "crows_pairs", "--limit", "5"]
    argv += ["--output", str(tmp_path), "--device", "cpu", "--dtype", "bfloat16"]
    assert cli.main([*argv, "--n-boot", "10", "--no-progress", "--fp32-check", "5"]) == 0
    out = capsys.readouterr().out
    assert "fp32 check: " in out and " of 5 pairs flipped between bfloat16 and float32" in out
    assert cli.main([*argv[:-2], "--fp32-check", "5"]) == 2  # auto: already float32
    assert "already float32" in capsys.readouterr().err
