"""The batched engine equals plain, one-sequence-at-a-time computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    ElectraConfig,
    ElectraForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
)

from debiaslab.batching import length_batches
from debiaslab.models import from_objects
from debiaslab.scoring import (
    MaskedQuery,
    causal_logprobs,
    masked_logprobs,
    prefix_token_id,
    sentence_token_logprobs,
    seq2seq_logprobs,
)
from debiaslab.tiny.build import build_tiny

# Log-probabilities from two computation paths (batched vs one at a time, head at one position
# vs the full model) agree to float32 noise, which depends on the CPU's kernels and on batch
# shapes; a real error (wrong position, token or context) is orders of magnitude larger.
LOGPROB_ATOL = 1e-4

SENTENCES = [
    "The nurse said that she was tired.",
    "He fixed the car.",
    "My neighbour, a quiet engineer from the north, was always punctual on Mondays.",
    "They sang.",
    "Poor people are lazy.",
]


@pytest.fixture(scope="module")
def masked():
    return from_objects(*build_tiny("masked", seed=1))


@pytest.fixture(scope="module")
def causal():
    return from_objects(*build_tiny("causal", seed=1))


@pytest.fixture(scope="module")
def seq2seq():
    return from_objects(*build_tiny("seq2seq", seed=1))


def plain_masked_logprobs(model, mask_id: int, queries) -> list[float]:
    """One query per forward pass through the whole model (LM head at every position)."""
    out = []
    for q in queries:
        ids = torch.tensor([q.input_ids])
        ids[0, q.position] = mask_id
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, q.position]
        out.append(torch.log_softmax(logits, -1)[q.target].item())
    return out


def _queries(tok, sentences):
    out = []
    for s in sentences:
        ids = tok(s)["input_ids"]
        out += [MaskedQuery(tuple(ids), p, ids[p]) for p in range(1, len(ids) - 1)]
    return out


@pytest.mark.slow  # one forward pass per masked token (make test-fast stays under 2 minutes)
def test_masked_engine_equals_one_query_per_pass(masked):
    queries = _queries(masked.tokenizer, SENTENCES)
    engine = masked_logprobs(masked, queries, progress=False)
    plain = plain_masked_logprobs(masked.model, masked.tokenizer.mask_token_id, queries)
    np.testing.assert_allclose(engine, plain, atol=LOGPROB_ATOL)
    assert len({len(q.input_ids) for q in queries}) > 1  # several length buckets exercised


def test_masked_engine_is_batch_invariant(masked):
    queries = _queries(masked.tokenizer, SENTENCES)
    big = masked_logprobs(masked, queries, progress=False)
    single = from_objects(masked.model, masked.tokenizer)
    single.batch_size = 1
    np.testing.assert_allclose(
        masked_logprobs(single, queries, progress=False), big, atol=LOGPROB_ATOL
    )
    np.testing.assert_allclose(masked_logprobs(masked, queries, progress=False), big, atol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: RobertaForMaskedLM(
            RobertaConfig(
                vocab_size=v,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=80,
            )
        ),
        lambda v: DistilBertForMaskedLM(
            DistilBertConfig(vocab_size=v, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
        ),
        lambda v: ElectraForMaskedLM(
            ElectraConfig(
                vocab_size=v,
                embedding_size=16,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
            )
        ),
        lambda v: BertForMaskedLM(
            BertConfig(
                vocab_size=v,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
            )
        ),
    ],
    ids=["roberta-head", "distilbert-head", "electra-full-logits-fallback", "bert-head"],
)
def test_masked_head_shortcut_matches_full_logits(masked, make):
    torch.manual_seed(0)
    model = make(len(masked.tokenizer)).eval()
    lm = from_objects(model, masked.tokenizer)
    queries = _queries(masked.tokenizer, SENTENCES[:3])
    engine = masked_logprobs(lm, queries, progress=False)
    plain = plain_masked_logprobs(model, masked.tokenizer.mask_token_id, queries)
    np.testing.assert_allclose(engine, plain, atol=LOGPROB_ATOL)


def test_causal_engine_equals_unbatched_and_unpadded(causal):
    tok = causal.tokenizer
    bos = prefix_token_id(tok)
    items = [([bos], tok(s, add_special_tokens=False)["input_ids"]) for s in SENTENCES]
    items.append(
        (
            [bos, *tok("Context first.", add_special_tokens=False)["input_ids"]],
            tok(" then this", add_special_tokens=False)["input_ids"],
        )
    )
    engine = causal_logprobs(causal, items, progress=False)
    for (context, continuation), got in zip(items, engine, strict=True):
        ids = torch.tensor([[*context, *continuation]])
        with torch.inference_mode():
            logp = torch.log_softmax(causal.model(input_ids=ids).logits[0], -1)
        want = [logp[len(context) - 1 + j, t].item() for j, t in enumerate(continuation)]
        np.testing.assert_allclose(got, want, atol=LOGPROB_ATOL)


def test_seq2seq_engine_equals_unbatched(seq2seq):
    tok = seq2seq.tokenizer
    items = [(tok("Describe the nurse.")["input_ids"], tok(s)["input_ids"]) for s in SENTENCES]
    items.append(([prefix_token_id(tok)], tok("short")["input_ids"]))
    engine = seq2seq_logprobs(seq2seq, items, progress=False)
    for (source, target), got in zip(items, engine, strict=True):
        with torch.inference_mode():
            out = seq2seq.model(input_ids=torch.tensor([source]), labels=torch.tensor([target]))
        logp = torch.log_softmax(out.logits[0], -1)
        want = [logp[j, t].item() for j, t in enumerate(target)]
        np.testing.assert_allclose(got, want, atol=LOGPROB_ATOL)


def test_sentence_scores_condition_causal_on_bos_and_seq2seq_on_prefix(causal, seq2seq):
    text = "The nurse said that she was tired."
    got = sentence_token_logprobs(causal, [text], progress=False)[0]
    tok = causal.tokenizer
    ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    with torch.inference_mode():
        logp = torch.log_softmax(causal.model(input_ids=torch.tensor([ids])).logits[0], -1)
    assert len(got) == len(ids) - 1
    assert got.sum() == pytest.approx(
        sum(logp[i - 1, ids[i]].item() for i in range(1, len(ids))), abs=1e-4
    )
    got_t5 = sentence_token_logprobs(seq2seq, [text], progress=False)[0]
    target = seq2seq.tokenizer(text, add_special_tokens=False)["input_ids"]  # lm-eval: no </s>
    assert len(got_t5) == len(target)


def test_causal_items_with_one_model_input_share_a_forward_pass(causal, monkeypatch):
    """Three one-token answers to one question (a multiple-choice item), plus a longer
    continuation of the same context: the answers share one row, every score as if alone."""
    tok = causal.tokenizer
    context = [prefix_token_id(tok), *tok("The nurse said", add_special_tokens=False)["input_ids"]]
    answers = [
        tok(f" {w}", add_special_tokens=False)["input_ids"][:1] for w in ("he", "she", "it")
    ]
    longer = tok(" that he was", add_special_tokens=False)["input_ids"]
    items = [(context, a) for a in answers] + [(context, longer)] + [(context, answers[0])]
    rows = []  # rows the model embeds: every forward pass, whichever head path reads it
    hook = causal.model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: rows.append(args[0].shape[0])
    )
    try:
        got = causal_logprobs(causal, items, progress=False)
    finally:
        hook.remove()
    assert sum(rows) == 2  # the context alone (answers and the repeat) and the longer one
    for item, value in zip(items, got, strict=True):
        alone = causal_logprobs(causal, [item], progress=False)[0]
        np.testing.assert_allclose(value, alone, atol=LOGPROB_ATOL)
        assert len(value) == len(item[1])
    assert len({float(v[0]) for v in got[:3]}) == 3 and got[4] == pytest.approx(got[0])


def test_out_of_memory_halves_the_batch_and_gives_the_same_scores(masked, monkeypatch, caplog):
    queries = _queries(masked.tokenizer, SENTENCES * 4)
    want = masked_logprobs(masked, queries, progress=False)
    encoder = masked.model.bert
    real_forward = encoder.forward
    calls = []

    def forward(*args, **kwargs):
        n = kwargs["input_ids"].shape[0]
        calls.append(n)
        if n > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(encoder, "forward", forward)
    got = masked_logprobs(masked, queries, progress=False)
    np.testing.assert_allclose(got, want, atol=LOGPROB_ATOL)
    assert max(calls) > 3 and "out of memory" in caplog.text


def test_other_runtime_errors_are_not_swallowed(masked, monkeypatch):
    def forward(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(masked.model.bert, "forward", forward)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        masked_logprobs(masked, _queries(masked.tokenizer, SENTENCES[:1]), progress=False)


def test_length_batches_respect_token_budget_and_exact_lengths():
    lengths = [5, 7, 5, 5, 7, 3, 5]
    batches = length_batches(lengths, max_tokens=10, exact=True)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len({lengths[i] for i in batch}) == 1
        assert len(batch) * lengths[batch[0]] <= 10 or len(batch) == 1
    padded = length_batches(lengths, max_tokens=100, exact=False, max_size=2)
    assert all(len(b) <= 2 for b in padded)


def test_empty_context_is_rejected(causal):
    with pytest.raises(ValueError, match="non-empty"):
        causal_logprobs(causal, [([], [5, 6])], progress=False)
