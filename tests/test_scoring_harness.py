"""Whole-sentence scores follow lm-evaluation-harness's empty-context request, and masked PLL
scores every token of the sentence ([UNK] included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debiaslab.models import from_objects
from debiaslab.scoring import (
    MaskedQuery,
    masked_logprobs,
    sentence_lengths,
    sentence_token_logprobs,
)
from debiaslab.tiny.build import build_tiny

TEXT = "The nurse said that she was tired."


@pytest.fixture(scope="module")
def causal():
    return from_objects(*build_tiny("causal", seed=2))


@pytest.fixture(scope="module")
def seq2seq():
    return from_objects(*build_tiny("seq2seq", seed=2))


@pytest.fixture(scope="module")
def masked():
    return from_objects(*build_tiny("masked", seed=2))


def lm_eval_request(tokenizer, sentence: str) -> tuple[list[int], list[int]]:
    """lm_eval/api/model.py ``loglikelihood`` for ``context == ""``, written out plainly."""
    prefix = tokenizer.bos_token_id
    if prefix is None:
        prefix = tokenizer.eos_token_id
    continuation = tokenizer.encode(sentence, add_special_tokens=False)
    if continuation[0] != prefix:
        return [prefix], continuation
    return continuation[:1], continuation[1:]


def plain_causal(lm, context, continuation) -> list[float]:
    ids = torch.tensor([[*context, *continuation][:-1]])
    with torch.inference_mode():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), -1)
    start = len(context) - 1
    return [logp[start + j, t].item() for j, t in enumerate(continuation)]


def plain_seq2seq(lm, context, continuation) -> list[float]:
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([context]), labels=torch.tensor([continuation]))
    logp = torch.log_softmax(out.logits[0].float(), -1)
    return [logp[j, t].item() for j, t in enumerate(continuation)]


def test_causal_sentence_that_starts_with_the_prefix_token_does_not_score_it(causal):
    tok = causal.tokenizer
    led = f"{tok.bos_token}{TEXT}"
    assert tok.encode(led, add_special_tokens=False)[0] == tok.bos_token_id
    got = sentence_token_logprobs(causal, [led, TEXT], progress=False)
    for sentence, values in zip((led, TEXT), got, strict=True):
        context, continuation = lm_eval_request(tok, sentence)
        assert context == [tok.bos_token_id]
        np.testing.assert_allclose(values, plain_causal(causal, context, continuation), atol=1e-4)
    assert len(got[0]) == len(got[1])  # the leading <|endoftext|> is context, not a term
    assert sentence_lengths(causal, [led]) == [len(got[0])]


def test_seq2seq_sentence_is_encoded_without_eos_as_lm_eval_does(seq2seq):
    tok = seq2seq.tokenizer
    assert tok(TEXT)["input_ids"][-1] == tok.eos_token_id  # the tokenizer appends </s> ...
    (got,) = sentence_token_logprobs(seq2seq, [TEXT], progress=False)
    context, continuation = lm_eval_request(tok, TEXT)
    assert (
        context == [tok.eos_token_id] and continuation[-1] != tok.eos_token_id
    )  # ... lm-eval not
    assert len(got) == len(continuation)
    np.testing.assert_allclose(got, plain_seq2seq(seq2seq, context, continuation), atol=1e-4)


def test_seq2seq_sentence_that_starts_with_the_prefix_token(seq2seq):
    tok = seq2seq.tokenizer
    led = f"{tok.eos_token}{TEXT}"  # T5 has no BOS: </s> is the prefix token
    context, continuation = lm_eval_request(tok, led)
    assert context == [tok.eos_token_id] and continuation == lm_eval_request(tok, TEXT)[1]
    (got,) = sentence_token_logprobs(seq2seq, [led], progress=False)
    np.testing.assert_allclose(got, plain_seq2seq(seq2seq, context, continuation), atol=1e-4)


def test_nothing_left_to_score_is_a_clear_error(causal):
    with pytest.raises(ValueError, match="no tokens to score"):
        sentence_token_logprobs(causal, [causal.tokenizer.bos_token], progress=False)


def test_masked_pll_scores_unknown_tokens(masked):
    tok = masked.tokenizer
    sentence = "the nurse ☃ is here"  # the snowman is not in the tiny vocabulary
    ids = tok(sentence)["input_ids"]
    assert tok.unk_token_id in ids
    (got,) = sentence_token_logprobs(masked, [sentence], progress=False)
    # every token but [CLS] and [SEP] is a term, the [UNK] included
    assert len(got) == len(ids) - 2
    where = ids.index(tok.unk_token_id)
    (unk_term,) = masked_logprobs(
        masked, [MaskedQuery(tuple(ids), where, tok.unk_token_id)], progress=False
    )
    assert got[where - 1] == pytest.approx(unk_term, abs=1e-4)
