"""The generation engine: batched output equals one-prompt-at-a-time generation, sampling is
reproducible per prompt whatever the batch, and a killed run resumes from its cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.generation import (
    GenerationSettings,
    RowSeededSampling,
    cache_path,
    fill_mask,
    generate,
)
from debiaslab.models import from_objects
from debiaslab.tiny.build import build_tiny

PROMPTS = [
    "He",
    "The nurse said that she was tired because the engineer fixed the car",
    "Zorbians are",
    "My neighbour is a quiet",
    "The librarian",
]
GREEDY = GenerationSettings(max_new_tokens=6, do_sample=False)
SAMPLE = GenerationSettings(max_new_tokens=6, num_return_sequences=2, seed=3)


@pytest.fixture(scope="module")
def causal():
    return from_objects(*build_tiny("causal", seed=0), name="tiny-causal")


@pytest.fixture(scope="module")
def seq2seq():
    model, tokenizer = build_tiny("seq2seq", seed=0)
    # A random T5 ties its output layer to the embeddings, and greedy decoding then repeats
    # <pad> (the decoder start token) for every prompt. With that row zeroed greedy output
    # depends on the prompt, so the greedy comparisons below test something.
    with torch.no_grad():
        model.shared.weight[tokenizer.pad_token_id] = 0
    return from_objects(model, tokenizer, name="tiny-seq2seq")


@pytest.fixture(scope="module")
def masked():
    return from_objects(*build_tiny("masked", seed=0), name="tiny-masked")


@pytest.fixture(params=["causal", "seq2seq"])
def lm(request):
    return request.getfixturevalue(request.param)


class CountingGenerate:
    """Stands in for ``model.generate``: counts the rows it is given, fails on a chosen call."""

    def __init__(self, generate, fail_on: int | None = None) -> None:
        self.generate = generate
        self.fail_on = fail_on
        self.calls: list[int] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs["input_ids"].shape[0])
        if len(self.calls) == self.fail_on:
            raise RuntimeError("killed")
        return self.generate(**kwargs)

    @property
    def rows(self) -> int:
        return sum(self.calls)


def count_generate(monkeypatch, lm, fail_on: int | None = None) -> CountingGenerate:
    counter = CountingGenerate(lm.model.generate, fail_on)
    monkeypatch.setattr(lm.model, "generate", counter)
    return counter


def plain_greedy(lm, prompt: str, max_new_tokens: int) -> str:
    """One prompt, no padding, straight through transformers."""
    enc = lm.tokenizer(prompt, return_tensors="pt")
    out = lm.model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=lm.tokenizer.pad_token_id,
    )
    new = out[0, enc["input_ids"].shape[1] :] if lm.family == "causal" else out[0]
    return lm.tokenizer.decode(new, skip_special_tokens=True)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"num_return_sequences": 0}, "num_return_sequences"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"do_sample": "yes"}, "do_sample"),
        ({"seed": 1.5}, "seed"),
        ({"do_sample": False, "num_return_sequences": 2}, "num_return_sequences"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        GenerationSettings(**kwargs)


def test_settings_round_trip_and_greedy_ignores_temperature():
    settings = GenerationSettings(max_new_tokens=7, top_k=5, seed=9)
    assert GenerationSettings(**settings.as_dict()) == settings
    GenerationSettings(do_sample=False, temperature=0.0)  # unused when greedy: allowed


def test_cache_path():
    path = cache_path("out", "google/flan-t5-base", GREEDY)
    assert path.parent == Path("out") / "generations"
    assert path.name.startswith("google--flan-t5-base__") and path.suffix == ".jsonl"
    assert path == cache_path("out", "google/flan-t5-base", GREEDY)
    assert path != cache_path("out", "google/flan-t5-base", SAMPLE)
    pre, post = (cache_path("out", "google/flan-t5-base", GREEDY, s) for s in ("pre", "post"))
    assert pre.name.startswith("google--flan-t5-base__pre__") and pre != post


# --------------------------------------------------------------------------- generate


def test_generate_refuses_a_masked_lm(masked):
    with pytest.raises(ConfigError, match="fill_mask"):
        generate(masked, ["The nurse is [MASK]."], progress=False)


def test_output_shape(lm):
    out = generate(lm, PROMPTS[:3], SAMPLE, progress=False)
    assert len(out) == 3
    assert all(len(texts) == 2 and all(isinstance(t, str) for t in texts) for texts in out)


def test_greedy_equals_one_unpadded_prompt_at_a_time(lm):
    # The batch mixes a 1-token prompt with a long one: the short one is heavily padded
    # (LEFT-padded for the causal model), and must still decode exactly as when alone.
    out = generate(lm, PROMPTS, GREEDY, progress=False)
    expected = [plain_greedy(lm, p, GREEDY.max_new_tokens) for p in PROMPTS]
    assert [texts[0] for texts in out] == expected
    assert any(text.strip() for text in expected)  # not trivially empty


def test_causal_output_is_the_continuation_only(causal):
    out = generate(causal, PROMPTS[:1], GREEDY, progress=False)[0][0]
    enc = causal.tokenizer(PROMPTS[0], return_tensors="pt")
    full = causal.model.generate(
        **enc, max_new_tokens=GREEDY.max_new_tokens, do_sample=False, pad_token_id=0
    )
    assert causal.tokenizer.decode(full[0], skip_special_tokens=True) == PROMPTS[0] + out


def test_short_prompt_batched_with_a_long_one_equals_alone(causal):
    short, long = PROMPTS[0], PROMPTS[1]
    alone = generate(causal, [short], GREEDY, progress=False)
    assert generate(causal, [short, long], GREEDY, progress=False)[0] == alone[0]
    assert (
        generate(causal, [long, short], SAMPLE, progress=False)[1]
        == generate(causal, [short], SAMPLE, progress=False)[0]
    )


def test_sampling_is_reproducible_per_prompt_whatever_the_batch(lm):
    batched = generate(lm, PROMPTS, SAMPLE, progress=False)
    assert batched == generate(lm, PROMPTS, SAMPLE, progress=False)
    assert batched == generate(lm, PROMPTS[::-1], SAMPLE, progress=False)[::-1]
    assert batched == generate(lm, PROMPTS, SAMPLE, progress=False, batch_size=3)
    assert batched == [generate(lm, [p], SAMPLE, progress=False)[0] for p in PROMPTS]
    # the k-th output does not depend on how many are asked for
    more = GenerationSettings(**{**SAMPLE.as_dict(), "num_return_sequences": 3})
    assert [texts[:2] for texts in generate(lm, PROMPTS, more, progress=False)] == batched


def test_seeds_and_return_indices_give_different_texts(lm):
    out = generate(lm, PROMPTS, SAMPLE, progress=False)
    other = GenerationSettings(**{**SAMPLE.as_dict(), "seed": SAMPLE.seed + 1})
    assert generate(lm, PROMPTS, other, progress=False) != out
    assert all(texts[0] != texts[1] for texts in out)


def test_sampling_with_top_k_1_is_greedy(lm):
    top1 = GenerationSettings(max_new_tokens=6, top_k=1, num_return_sequences=2)
    greedy = generate(lm, PROMPTS, GREEDY, progress=False)
    assert generate(lm, PROMPTS, top1, progress=False) == [t * 2 for t in greedy]


def test_duplicate_prompts_are_generated_once(monkeypatch, causal):
    counter = count_generate(monkeypatch, causal)
    out = generate(causal, ["He", "She", "He"], SAMPLE, progress=False)
    assert counter.rows == 4  # 2 distinct prompts × 2 return sequences
    assert out[0] == out[2]


# --------------------------------------------------------------------------- the sampler


def test_sampler_draws_only_from_the_top_p_nucleus():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])  # nucleus at top_p=0.7: tokens 1 and 3
    scores = probs.log().repeat(400, 1)
    sampler = RowSeededSampling(range(400), top_p=0.7)
    out = sampler(torch.zeros((400, 1), dtype=torch.long), scores.clone())
    finite = torch.isfinite(out)
    assert finite.sum(dim=1).eq(1).all()  # -inf everywhere but the drawn token
    assert out[finite].eq(0).all()
    drawn = out.argmax(dim=1)
    assert set(drawn.tolist()) == {1, 3}
    # renormalised nucleus: p(1) = 0.5 / 0.8
    assert abs(drawn.eq(1).float().mean().item() - 0.625) < 0.08


def test_sampler_rows_are_independent_and_follow_the_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    scores = probs.log().repeat(2000, 1)
    ids = torch.zeros((2000, 1), dtype=torch.long)
    drawn = RowSeededSampling(range(2000))(ids, scores.clone()).argmax(dim=1)
    freq = torch.bincount(drawn, minlength=4).float() / 2000
    assert torch.allclose(freq, probs, atol=0.04)
    # row 7 alone, with the same seed, draws what it drew within the batch (two steps)
    alone = RowSeededSampling([7])
    batch = RowSeededSampling(range(10))
    for _ in range(2):
        one = alone(ids[:1], scores[:1].clone()).argmax(dim=1)
        many = batch(ids[:10], scores[:10].clone()).argmax(dim=1)
        assert one.item() == many[7].item()


def test_sampler_with_top_k_keeps_the_top_tokens():
    scores = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]]).repeat(200, 1)
    out = RowSeededSampling(range(200), top_k=2, temperature=5.0)(None, scores)
    assert set(out.argmax(dim=1).tolist()) == {1, 3}


# --------------------------------------------------------------------------- cache


def test_killed_run_resumes_from_the_cache(monkeypatch, tmp_path, causal):
    uninterrupted = generate(causal, PROMPTS, SAMPLE, progress=False)
    path = tmp_path / "nested" / "dir" / "gen.jsonl"  # parents are created

    counter = count_generate(monkeypatch, causal, fail_on=2)
    with pytest.raises(RuntimeError, match="killed"):
        generate(causal, PROMPTS, SAMPLE, cache=path, batch_size=4, progress=False)
    first = counter.calls[0]
    lines = read_lines(path)
    assert len(lines) == first == 4
    assert set(lines[0]) == {"key", "model", "prompt", "index", "settings", "text"}
    assert lines[0]["model"] == "tiny-causal" and lines[0]["settings"] == SAMPLE.as_dict()

    counter = count_generate(monkeypatch, causal)
    resumed = generate(causal, PROMPTS, SAMPLE, cache=path, batch_size=4, progress=False)
    assert counter.rows == len(PROMPTS) * 2 - first
    assert resumed == uninterrupted
    assert len(read_lines(path)) == len(PROMPTS) * 2

    counter = count_generate(monkeypatch, causal)
    assert generate(causal, PROMPTS, SAMPLE, cache=path, progress=False) == uninterrupted
    assert counter.rows == 0


def test_a_torn_last_line_is_dropped_and_regenerated(monkeypatch, tmp_path, causal, caplog):
    path = tmp_path / "gen.jsonl"
    full = generate(causal, PROMPTS, SAMPLE, cache=path, progress=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 15])  # a kill in the middle of the last write

    counter = count_generate(monkeypatch, causal)
    with caplog.at_level(logging.WARNING, logger="debiaslab.generation"):
        again = generate(causal, PROMPTS, SAMPLE, cache=path, progress=False)
    assert "line 10" in caplog.text
    assert counter.rows == 1
    assert again == full
    assert len(read_lines(path)) == len(PROMPTS) * 2  # no garbage left in the file


def test_a_corrupt_middle_line_raises(tmp_path, causal):
    path = tmp_path / "gen.jsonl"
    generate(causal, PROMPTS[:2], SAMPLE, cache=path, progress=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][:20]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2") as info:
        generate(causal, PROMPTS[:2], SAMPLE, cache=path, progress=False)
    assert str(path) in str(info.value)


def test_other_settings_and_models_regenerate_and_keep_old_lines(monkeypatch, tmp_path, causal):
    path = tmp_path / "gen.jsonl"
    generate(causal, PROMPTS[:2], SAMPLE, cache=path, progress=False)
    counter = count_generate(monkeypatch, causal)
    longer = GenerationSettings(**{**SAMPLE.as_dict(), "max_new_tokens": 8})
    generate(causal, PROMPTS[:2], longer, cache=path, progress=False)
    assert counter.rows == 4
    generate(causal, PROMPTS[:2], SAMPLE, cache=path, model_key="another", progress=False)
    assert counter.rows == 8
    assert len(read_lines(path)) == 12
    generate(causal, PROMPTS[:2], longer, cache=path, progress=False)
    assert counter.rows == 8


# --------------------------------------------------------------------------- fill_mask


def plain_top_k(lm, text: str, k: int) -> list[str]:
    enc = lm.tokenizer(text, return_tensors="pt")
    position = enc["input_ids"][0].tolist().index(lm.tokenizer.mask_token_id)
    with torch.no_grad():
        logits = lm.model(**enc).logits[0, position]
    return [lm.tokenizer.decode([t]).strip() for t in logits.topk(k).indices.tolist()]


def test_fill_mask_equals_the_plain_model(masked):
    texts = [
        "The nurse said [MASK] was tired.",
        "[MASK] fixed the car.",
        "My neighbour, a quiet engineer from the north, was always [MASK] on Mondays.",
    ]
    out = fill_mask(masked, texts, top_k=5, progress=False, batch_size=3)
    assert out == [plain_top_k(masked, text, 5) for text in texts]
    assert all(len(set(tokens)) == 5 for tokens in out)
    assert fill_mask(masked, texts[:1], top_k=1, progress=False) == [out[0][:1]]


@pytest.mark.parametrize("bad", ["No mask here.", "[MASK] and [MASK]."])
def test_fill_mask_needs_exactly_one_mask(masked, bad):
    with pytest.raises(DataFormatError, match="text 1"):
        fill_mask(masked, ["The [MASK] is here.", bad], progress=False)


def test_fill_mask_refuses_other_families_and_bad_top_k(causal, masked):
    with pytest.raises(ConfigError, match="masked LM"):
        fill_mask(causal, ["He is"], progress=False)
    with pytest.raises(ConfigError, match="top_k"):
        fill_mask(masked, ["The [MASK] is here."], top_k=0, progress=False)
