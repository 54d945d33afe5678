"""Decoding-time group balancing: exactness at α = 0, the arithmetic, and the planted check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings, generate
from debiaslab.mitigation.decoding import (
    BalanceTerms,
    GroupBalance,
    balance,
    load_group_words,
    mention_shares,
    perplexity,
)
from debiaslab.models import from_objects, load_model
from debiaslab.stats import bootstrap_ci
from debiaslab.tiny import build, corpus, lexicon

GROUPS = {
    "male": ["he", "his", "him", "man", "father", "brother"],
    "female": ["she", "her", "woman", "mother", "sister"],
}


def test_alpha_zero_is_exactly_plain_generate():
    lm = from_objects(*build.build_tiny("causal", seed=0))
    settings = GenerationSettings(max_new_tokens=6, num_return_sequences=2, seed=3)
    prompts = ["The nurse said", "I called the pilot and", "She"]
    factory, key = balance(lm.tokenizer, GROUPS, alpha=0.0)
    plain = generate(lm, prompts, settings, progress=False)
    assert (
        generate(lm, prompts, settings, progress=False, processors=[factory], processors_key=key)
        == plain
    )
    factory, key = balance(lm.tokenizer, GROUPS, alpha=1.0)
    steered = generate(
        lm, prompts, settings, progress=False, processors=[factory], processors_key=key
    )
    assert len(steered) == 3  # runs batched; its own cache key
    with pytest.raises(ConfigError, match="processors_key"):
        generate(lm, prompts, settings, progress=False, processors=[factory])


def test_shift_gives_the_desired_shares_and_keeps_the_group_mass():
    # Vocabulary of 6: tokens 1, 2 start male terms (2-token term (2, 5)), token 3 a female one.
    terms = BalanceTerms({"male": {(1,), (2, 5)}, "female": {(3,)}})
    scores = torch.log(torch.tensor([[0.4, 0.05, 0.05, 0.3, 0.1, 0.1]]))
    prompt = torch.tensor([[0, 4]])
    out = GroupBalance(terms, prompt_length=2, alpha=1.0)(prompt, scores.clone())
    p = torch.softmax(out, dim=-1)[0]
    male, female = float(p[1] + p[2]), float(p[3])
    assert male / (male + female) == pytest.approx(0.5) and male + female == pytest.approx(0.4)
    assert float(p[0]) == pytest.approx(0.4)  # other tokens keep their probability
    # After two female mentions (one in the prompt, not counted), the next should be male:
    # desired male share = max(0.5·3 − 0, ε) vs female max(0.5·3 − 2, ε) → almost all male.
    history = torch.tensor([[3, 4, 3, 3]])
    out = GroupBalance(terms, prompt_length=1, alpha=1.0)(history, scores.clone())
    p = torch.softmax(out, dim=-1)[0]
    assert float(p[1] + p[2]) / float(p[1] + p[2] + p[3]) > 0.99
    # Multi-token terms count once they are complete; half strength moves half-way (in logs).
    assert terms.counts(torch.tensor([[9, 2, 5, 1, 2]]), 1).tolist() == [[2.0, 0.0]]
    half = GroupBalance(terms, prompt_length=2, alpha=0.5)(prompt, scores.clone())
    p = torch.softmax(half, dim=-1)[0]
    odds = float(p[1] + p[2]) / float(p[3])
    assert odds == pytest.approx((0.1 / 0.3) ** 0.5, rel=1e-6)
    with pytest.raises(ConfigError, match="alpha"):
        GroupBalance(terms, 1, alpha=-1)
    with pytest.raises(ConfigError, match="two groups"):
        BalanceTerms({"male": {(1,)}})


def test_default_word_lists_resolve_and_count_mentions(shared_data, monkeypatch):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    words = load_group_words()
    assert len(words["male"]) == len(words["female"]) == 222
    shares, n = mention_shares(["She told him.", "The nurse said she was tired."], GROUPS)
    assert n == 3 and shares["female"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_balancing_moves_a_planted_model_toward_parity(planted_models):
    """Rate-0.8 planted model, female-stereotyped occupations: mostly "she" unless balanced."""
    lm = load_model(str(planted_models[("causal", 0.8)]), device="cpu")
    templates = ("The {attr} said", "I called the {attr} and", "The {attr} lost")
    prompts = [t.format(attr=a) for a in lexicon.GENDER.attributes[1] for t in templates]
    settings = GenerationSettings(max_new_tokens=4, num_return_sequences=6, seed=0)

    def female_share(alpha):
        factory, key = balance(lm.tokenizer, GROUPS, alpha=alpha)
        out = generate(
            lm, prompts, settings, progress=False, processors=[factory], processors_key=key
        )
        texts = [t for row in out for t in row]
        flags = []
        for text in texts:
            shares, n = mention_shares([text], GROUPS)
            if n:
                flags.append(shares["female"])
        values = np.array(flags)
        ci = bootstrap_ci(lambda idx: {"share": float(values[idx].mean())}, len(values))
        return float(values.mean()), ci["share"]

    plain, plain_ci = female_share(0.0)
    balanced, balanced_ci = female_share(1.0)
    print(f"female share: plain {plain:.3f} {plain_ci}, balanced {balanced:.3f} {balanced_ci}")
    assert plain_ci[0] > 0.6  # the planted skew
    assert balanced_ci[0] < 0.5 < balanced_ci[1]  # parity within the CI at the default strength
    held_out = corpus.planted_texts(0.5, 40, seed=7)
    factory, _ = balance(lm.tokenizer, GROUPS, alpha=1.0)
    cost = perplexity(lm, held_out, [factory]) / perplexity(lm, held_out)
    print(f"perplexity ratio balanced/plain on held-out planted text: {cost:.3f}")
    # Bounded either way: on gender-balanced held-out text, balancing can even help (0.994
    # measured), as the planted skew is what it removes.
    assert 0.8 < cost < 1.25, cost


@pytest.mark.slow  # generates at every strength (make test-fast stays under 2 minutes)
def test_tradeoff_table_and_plot(tmp_path):
    from debiaslab import plots
    from debiaslab.mitigation.decoding import tradeoff
    from debiaslab.mitigation.tradeoff import tradeoff_from_record
    from debiaslab.results import read_all

    lm = from_objects(*build.build_tiny("causal", texts=corpus.planted_texts(0.5, 50, 0), seed=0))
    prompts = ["The nurse said", "I called the pilot and", "My mother"]
    table = tradeoff(
        lm,
        prompts,
        ["He is a nurse.", "She is a pilot."],
        GROUPS,
        alphas=(0.0, 1.0),
        self_debias_decays=(50.0,),
        settings=GenerationSettings(max_new_tokens=5, num_return_sequences=3),
        n_boot=50,
        output=tmp_path / "results" / "decoding_tradeoff.csv",
    )
    assert list(table["method"]) == ["balance", "balance", "self-debias"]
    # Beside the CSV, a result file that gives the same table back (the results notebook's).
    ((_, record),) = read_all(tmp_path / "results")
    assert record["benchmark"] == "decoding_tradeoff" and record["stage"] == "tradeoff"
    back = tradeoff_from_record(record)
    columns = ["method", "strength", "share", "ci_low", "ci_high", "n", "ppl_ratio"]
    pd.testing.assert_frame_equal(back[columns], table[columns], check_dtype=False)
    # alpha 0 is plain decoding (the base goes through the batched engine, the strengths
    # through the per-token loop: the same sums in another order)
    assert table.loc[0, "ppl_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert (table["ppl"] > 0).all()
    written = plots.tradeoff(table, tmp_path / "tradeoff")
    assert [p.suffix for p in written] == [".png", ".pdf"] and all(
        p.stat().st_size for p in written
    )


def test_self_debias_is_off_at_zero_decay_and_lowers_prefixed_tokens():
    from debiaslab.mitigation.decoding import SelfDebias

    lm = from_objects(*build.build_tiny("causal", seed=0))
    ids = torch.tensor([lm.tokenizer("The nurse said")["input_ids"]])
    scores = lm.model(input_ids=ids).logits[:, -1]
    off = SelfDebias(lm, ["Bias:\n"], decay=0.0)
    assert off(ids, scores) is scores
    on = SelfDebias(lm, ["Bias:\n"], decay=50.0)(ids, scores)
    plain, debiased = torch.softmax(scores, -1), torch.softmax(on, -1)
    # Only tokens the prefix makes more likely lose probability (before renormalisation).
    assert torch.isfinite(on).all() and not torch.equal(plain, debiased)
    with pytest.raises(ConfigError, match="causal"):
        SelfDebias(from_objects(*build.build_tiny("masked", seed=0)), ["x"])


@pytest.mark.slow  # generates BOLD continuations (make test-fast stays under 2 minutes)
def test_bold_runs_with_decoding_time_balancing(tiny_dirs, shared_data, tmp_path, monkeypatch):
    from debiaslab.evalconfig import EvalConfig
    from debiaslab.runner import evaluate

    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path / "cache"))
    common = {
        "domains": ["gender"],
        "limit": 2,
        "metrics": ["toxicity"],
        "toxicity_model": "tiny-toxicity",
        "max_new_tokens": 8,
        "n_boot": 20,
        "progress": False,
    }
    model = str(tiny_dirs["causal"])
    plain = evaluate(EvalConfig.of(model, "bold", tmp_path / "out", **common))
    steered = evaluate(
        EvalConfig.of(model, "bold", tmp_path / "out", decoding="balance", **common)
    )
    assert steered.path != plain.path
    assert steered.record["config"]["decoding"] == "balance"
    assert len(list((tmp_path / "out" / "generations").glob("*.jsonl"))) == 1  # one file...
    lines = (tmp_path / "out" / "generations").glob("*.jsonl").__next__().read_text()
    assert "processors=group-balance" in lines  # ...two keyed sets of generations
    with pytest.raises(ConfigError, match="unknown decoding"):
        evaluate(EvalConfig.of(model, "bold", tmp_path / "out", decoding="nucleus", **common))
    with pytest.raises(ConfigError, match="applies to generation benchmarks"):
        evaluate(EvalConfig.of(model, "crows_pairs", tmp_path / "out", decoding="balance"))


# ------------------------------------------------------------- where a decoding method applies


def _honest(model, out, **kwargs):
    from debiaslab.evalconfig import EvalConfig
    from debiaslab.runner import evaluate

    return evaluate(
        EvalConfig.of(
            model, "honest", out, limit=1, honest_k=2, n_boot=10, progress=False, **kwargs
        )
    )


@pytest.mark.parametrize("method", ["balance", "self-debias-gender", "self-debias-toxicity"])
def test_decoding_on_a_masked_lm_is_refused_before_loading(
    method, tiny_dirs, shared_data, tmp_path, monkeypatch
):
    """Fill-mask ignores logits processors: the 'steered' run would be the plain one."""
    from debiaslab import models

    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(models, "load_model", no_load)
    out = tmp_path / "out"
    for model in (str(tiny_dirs["masked"]), "tiny-bert"):  # a local folder, a preset
        with pytest.raises(ConfigError) as info:
            _honest(model, out, decoding=method)
        message = str(info.value)
        assert f"--decoding {method} does not apply to {model!r}, a masked LM" in message
        assert "causal" in message and "\n" not in message
    assert not out.exists()


def test_decoding_refused_right_after_loading_when_only_the_model_knows(
    tiny_dirs, shared_data, tmp_path, monkeypatch
):
    """A hub id's family is known once loaded: refused then, before generating or writing."""
    from debiaslab.mitigation import decoding_families

    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setattr(decoding_families, "known_family", lambda model, family=None: None)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"does not apply to .*a masked LM"):
        _honest(str(tiny_dirs["masked"]), out, decoding="balance")
    assert not out.exists() or not any(out.rglob("*"))


def test_self_debias_on_seq2seq_is_refused_and_balance_runs(
    tiny_dirs, shared_data, tmp_path, monkeypatch
):
    """Self-Debias is defined for causal LMs; group balancing steers a seq2seq decoder too."""
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    seq2seq, out = str(tiny_dirs["seq2seq"]), tmp_path / "out"
    with pytest.raises(ConfigError, match="a seq2seq LM: it steers the generation of causal LMs"):
        _honest(seq2seq, out, decoding="self-debias-toxicity")
    assert not out.exists()
    steered = _honest(seq2seq, out, decoding="balance")
    assert steered.record["config"]["decoding"] == "balance"


def test_decoding_families_cover_every_method():
    from debiaslab.evalconfig import DECODING
    from debiaslab.mitigation.decoding_families import DECODING_FAMILIES

    assert set(DECODING_FAMILIES) == set(DECODING)


def test_cli_refuses_decoding_on_a_masked_lm_in_one_line(
    shared_data, tmp_path, capsys, monkeypatch
):
    from debiaslab.cli import main

    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    out = tmp_path / "out"
    argv = ["eval", "--model", "tiny-bert", "--benchmark", "honest", "--decoding", "balance"]
    code = main([*argv, "--limit", "1", "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert err[-1].startswith("debiaslab eval: error: --decoding balance does not apply to")


def _plain_logprob_sum(model, ids: list[int], start: int) -> float:
    """log p(ids[start:] | ids[:start]) by the definition: one forward pass, no batching."""
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return float(sum(logprobs[t - 1, ids[t]] for t in range(start, len(ids))))


def test_perplexity_reads_one_bos_on_a_tokenizer_that_adds_its_own():
    from debiaslab.tiny.llama import build_tiny_llama

    lm = from_objects(*build_tiny_llama(seed=0))
    tok = lm.tokenizer
    assert tok("The nurse")["input_ids"][0] == tok.bos_token_id  # Llama adds <s> itself
    texts = ["The nurse said hello.", "A doctor walked in."]
    total, count = 0.0, 0
    for text in texts:
        ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            total -= _plain_logprob_sum(lm.model, ids, 1)
        count += len(ids) - 1
    assert perplexity(lm, texts) == pytest.approx(np.exp(total / count), rel=1e-5)


def test_self_debias_keeps_a_tokenizer_added_bos_first_before_the_prefix():
    from debiaslab.mitigation.decoding import SelfDebias
    from debiaslab.tiny.llama import build_tiny_llama

    lm = from_objects(*build_tiny_llama(seed=0))
    tok = lm.tokenizer
    prompt = tok("The nurse said")["input_ids"]  # as the generation engine encodes it: <s> first
    prefix = tok("Bias:\n", add_special_tokens=False)["input_ids"]
    seen = []
    hook = lm.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen.append(kwargs["input_ids"][0].tolist()), with_kwargs=True
    )
    ids = torch.tensor([prompt])
    try:
        SelfDebias(lm, ["Bias:\n"], decay=50.0)(ids, torch.zeros(1, lm.model.config.vocab_size))
    finally:
        hook.remove()
    assert seen == [[tok.bos_token_id, *prefix, *prompt[1:]]]


def test_head_attribution_logprobs_read_one_bos_on_a_llama_tokenizer():
    from debiaslab.mitigation.heads import _continuation_logprobs
    from debiaslab.tiny.llama import build_tiny_llama

    lm = from_objects(*build_tiny_llama(seed=0))
    tok = lm.tokenizer
    pairs = [("The nurse said", " hello there"), ("A doctor", " walked in")]
    with torch.no_grad():
        got = _continuation_logprobs(lm, pairs)
        for k, (prompt, continuation) in enumerate(pairs):
            context = [tok.bos_token_id, *tok(prompt, add_special_tokens=False)["input_ids"]]
            target = tok(continuation, add_special_tokens=False)["input_ids"]
            want = _plain_logprob_sum(lm.model, context + target, len(context))
            assert float(got[k]) == pytest.approx(want, rel=1e-5, abs=1e-5)
