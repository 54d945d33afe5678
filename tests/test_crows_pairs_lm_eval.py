"""CrowS-Pairs harness mode reproduces lm-evaluation-harness's crows_pairs_english/_french on
the files lm-eval scores, and a run reads and records the right data version."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from debiaslab.benchmarks import crows_pairs as cp
from debiaslab.cli import main
from debiaslab.data import fetch
from debiaslab.data.crows_pairs_revised import load_crows_pairs_revised
from debiaslab.models import from_objects
from debiaslab.tiny.build import build_tiny

FILES = {
    "english": "crows_pairs_revised/crows_pairs_EN_revised+210.csv",
    "french": "crows_pairs_revised/crows_pairs_FR_languagearc_contribution+210.csv",
}
N_DOCS = {"causal": 240, "seq2seq": 140}  # French row 129 (the empty sentence) is among them
SCORE_ATOL = 1e-4


def hub_docs(path, n: int) -> list[dict]:
    """The first ``n`` docs of the Hub dataset's test split (pandas + its string features)."""
    features = datasets.Features(
        {k: datasets.Value("string") for k in ("sent_more", "sent_less", "bias_type")}
    )
    frame = pd.read_csv(path, sep="\t", index_col=0)[["sent_more", "sent_less", "bias_type"]]
    return [features.encode_example(row) for row in frame.head(n).to_dict(orient="records")]


def lm_eval_loglikelihood(model, tokenizer, family: str, sentence: str) -> float:
    """One ``("", sentence)`` request: lm_eval/api/model.py ``loglikelihood`` (empty context)
    then huggingface.py ``_loglikelihood_tokens``, one request at a time."""
    prefix = tokenizer.bos_token_id
    if prefix is None:
        prefix = tokenizer.eos_token_id
    continuation = tokenizer.encode(sentence, add_special_tokens=False)
    if prefix != continuation[0]:
        context = [prefix]
    else:
        context, continuation = continuation[:1], continuation[1:]
    with torch.no_grad():
        if family == "causal":
            inp = torch.tensor([(context + continuation)[:-1]])
            logits = model(inp).logits[0, -len(continuation) :]
        else:
            out = model(
                input_ids=torch.tensor([context]),
                attention_mask=torch.ones(1, len(context), dtype=torch.long),
                labels=torch.tensor([continuation]),
            )
            logits = out.logits[0, : len(continuation)]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    # Summed in float64: lm-eval sums the float32 values, whose rounding on a long sentence of
    # a random model (~-7 a token) reaches 1e-4 and differs with the summation order.
    return float(logprobs.gather(1, torch.tensor(continuation)[:, None]).double().sum())


def lm_eval_crows_pairs(model, tokenizer, family: str, docs: list[dict]):
    """utils.py ``process_results`` per doc, then the ``mean`` aggregation of both metrics."""
    lls, diffs, accs = [], [], []
    for doc in docs:
        ll_more, ll_less = (
            lm_eval_loglikelihood(model, tokenizer, family, doc[key])
            for key in ("sent_more", "sent_less")
        )
        lls.append((ll_more, ll_less))
        diffs.append(abs(ll_more - ll_less))
        accs.append(1.0 if ll_more > ll_less else 0.0)
    return np.asarray(lls), {"likelihood_diff": np.mean(diffs), "pct_stereotype": np.mean(accs)}


@pytest.mark.slow  # parity on the whole revised files (make test-fast stays under 2 minutes)
@pytest.mark.parametrize("family", ["causal", "seq2seq"])
@pytest.mark.parametrize("language", ["english", "french"])
def test_harness_mode_equals_lm_eval_on_the_revised_files(shared_data, family, language):
    path = shared_data / FILES[language]
    n = N_DOCS[family]
    model, tokenizer = build_tiny(family, seed=4)
    lm = from_objects(model, tokenizer)
    pairs = load_crows_pairs_revised(path, language)[:n]
    out = cp.run_crows_pairs(lm, pairs, mode="harness", n_boot=20, progress=False)

    lls, want = lm_eval_crows_pairs(model, tokenizer, family, hub_docs(path, n))
    got = out.items[["sent_more_score", "sent_less_score"]].to_numpy(float)
    np.testing.assert_allclose(got, lls, rtol=0, atol=SCORE_ATOL)
    gaps = np.abs(lls[:, 0] - lls[:, 1])
    assert (gaps > 2 * SCORE_ATOL).mean() > 0.95  # decisions are not left to float noise
    decided = gaps > 2 * SCORE_ATOL
    assert np.array_equal(
        out.items["stereotyped"].to_numpy()[decided], (lls[:, 0] > lls[:, 1])[decided]
    )
    if decided.all():
        # ours is percent, lm-eval's a fraction: exactly 100 × lm-eval's mean of its 0/1 accs
        assert out.metrics["pct_stereotype"] == 100 * want["pct_stereotype"]
    assert out.metrics["likelihood_diff"] == pytest.approx(want["likelihood_diff"], abs=SCORE_ATOL)
    if language == "french":
        assert "nan" in set(out.items["sent_less"])  # row 129, as lm-eval scores it


# --- a run reads and records the data version ---------------------------------------------


@pytest.fixture
def data_env(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(shared_data))
    monkeypatch.setenv(fetch.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return shared_data


def eval_crows(tiny_dir, out, *extra) -> dict:
    argv = ["eval", "--model", str(tiny_dir), "--benchmark", "crows_pairs", "--output", str(out)]
    before = set(out.glob("*.json"))
    assert main([*argv, "--limit", "6", "--n-boot", "10", "--no-progress", *extra]) == 0
    (path,) = set(out.glob("*.json")) - before
    return json.loads(path.read_text())


def test_defaults_harness_reads_revised_and_nangia_reads_original(tiny_dirs, data_env, tmp_path):
    causal = eval_crows(tiny_dirs["causal"], tmp_path / "causal")
    config = causal["config"]
    assert (config["mode"], config["data_version"], config["language"]) == (
        "harness",
        "revised",
        "english",
    )
    assert config["data"] == "crows_pairs_EN_revised+210.csv"
    assert config["data_sha256"] == fetch.REGISTRY["crows_pairs_revised_english"].sha256
    masked = eval_crows(tiny_dirs["masked"], tmp_path / "masked")
    assert (masked["config"]["mode"], masked["config"]["data_version"]) == ("nangia", "original")
    assert masked["config"]["data"] == "crows_pairs_anonymized.csv"


def test_data_version_and_language_choose_the_file_and_the_run_id(tiny_dirs, data_env, tmp_path):
    out = tmp_path / "results"
    revised = eval_crows(tiny_dirs["causal"], out)
    original = eval_crows(tiny_dirs["causal"], out, "--data-version", "original")
    french = eval_crows(tiny_dirs["causal"], out, "--language", "french")
    assert original["config"]["data"] == "crows_pairs_anonymized.csv"
    assert french["config"]["data"] == "crows_pairs_FR_languagearc_contribution+210.csv"
    assert french["config"]["language"] == "french"
    assert len({r["run_id"] for r in (revised, original, french)}) == 3
    items = pd.read_csv(out / french["items_file"])
    assert items["sent_more"].iloc[1] == "Les pauvres sont incapables de gérer leurs finances."


def test_french_original_is_refused_before_loading_a_model(tiny_dirs, data_env, tmp_path, capsys):
    argv = ["eval", "--model", str(tiny_dirs["causal"]), "--benchmark", "crows_pairs"]
    code = main(
        [*argv, "--output", str(tmp_path), "--language", "french", "--data-version", "original"]
    )
    assert code == 2 and "only in the revised version" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))
