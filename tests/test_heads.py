"""Attention-head gates: the hook's arithmetic, save/load, attribution by ablation, and the
acceptance check on a tiny LM planted to turn toxic after a trigger word."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from debiaslab.errors import ConfigError
from debiaslab.mitigation.heads import HeadGates, attribute, gate_top_k
from debiaslab.models import from_objects
from debiaslab.tiny import build, toxicity


@pytest.fixture(scope="module")
def lm():
    model, tok = build.build_tiny("causal", seed=0, arch={"n_layer": 2, "n_head": 4})
    return from_objects(model, tok)


def logits(lm, text="The nurse said she was tired."):
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return lm.model(input_ids=ids).logits


def test_open_gates_change_nothing_and_a_closed_head_equals_zeroing_its_slice(lm):
    plain = logits(lm)
    gates = HeadGates(lm.model)
    assert len(gates.modules) == 2 and gates.n_heads == 4
    with gates:
        torch.testing.assert_close(logits(lm), plain)
    name = "transformer.h.1.attn.c_proj"
    gates.gates[name][2] = 0.0
    with gates:
        gated = logits(lm)
    # The same by hand: zero head 2's slice of the projection's input.
    head_dim = lm.model.config.n_embd // 4

    def zero_slice(module, args):
        x = args[0].clone()
        x[..., 2 * head_dim : 3 * head_dim] = 0
        return (x,)

    handle = dict(lm.model.named_modules())[name].register_forward_pre_hook(zero_slice)
    try:
        by_hand = logits(lm)
    finally:
        handle.remove()
    torch.testing.assert_close(gated, by_hand)
    assert not torch.allclose(gated, plain)
    torch.testing.assert_close(logits(lm), plain)  # detached: the model is as before
    assert gates.closed() == [(name, 2)]


def test_gates_save_and_load(lm, tmp_path):
    gates = HeadGates(lm.model)
    gates.gates["transformer.h.0.attn.c_proj"][1] = 0.25
    path = gates.save(tmp_path / "gates.safetensors")
    loaded = HeadGates.load(lm.model, path)
    assert torch.equal(loaded.gates["transformer.h.0.attn.c_proj"], torch.tensor([1, 0.25, 1, 1]))
    with pytest.raises(ConfigError, match="expected 4 gates"):
        HeadGates(lm.model, {"transformer.h.0.attn.c_proj": torch.ones(3)})
    with pytest.raises(ConfigError, match="unknown modules"):
        HeadGates(lm.model, {"nope": torch.ones(4)})
    with pytest.raises(ConfigError, match="supports"):
        HeadGates(build.build_tiny("masked", seed=0)[0])


def test_ablation_attribution_is_the_objective_drop_of_each_head(lm):
    toxic = [("The nurse said", " you are a stupid fool.")]
    clean = [("The nurse said", " she was kind.")]
    scores = attribute(lm, toxic, clean)
    from debiaslab.mitigation.heads import _continuation_logprobs

    def objective(gates):
        with torch.no_grad(), gates:
            return float(
                _continuation_logprobs(lm, toxic).mean() - _continuation_logprobs(lm, clean).mean()
            )

    full = objective(HeadGates(lm.model))
    name = "transformer.h.0.attn.c_proj"
    one_off = HeadGates(lm.model)
    one_off.gates[name][3] = 0.0
    assert float(scores[name][3]) == pytest.approx(full - objective(one_off), abs=1e-4)
    gradient = attribute(lm, toxic, clean, method="gradient")
    assert set(gradient) == set(scores) and all(v.shape == (4,) for v in gradient.values())
    top = gate_top_k(lm.model, scores, k=3)
    assert len(top.closed()) == 3
    best = max(((float(s), n, h) for n, v in scores.items() for h, s in enumerate(v)))
    assert (best[1], best[2]) in top.closed()


def test_greedy_gates_close_distinct_heads_starting_with_the_best(lm):
    from debiaslab.mitigation.heads import greedy_gates

    toxic = [("The nurse said", " you are a stupid fool.")]
    clean = [("The nurse said", " she was kind.")]
    scores = attribute(lm, toxic, clean)
    best = max((float(s), n, h) for n, v in scores.items() for h, s in enumerate(v))
    gates = greedy_gates(lm, toxic, clean, k=3)
    closed = gates.closed()
    assert len(set(closed)) == 3 and (best[1], best[2]) in closed


def test_attribution_can_score_only_the_first_continuation_tokens(lm):
    from debiaslab.mitigation.heads import _continuation_logprobs, greedy_gates

    pairs = [("The nurse said", " you are a stupid fool."), ("He", " was kind.")]
    with torch.no_grad():
        first = _continuation_logprobs(lm, pairs, tokens=1)
        whole = _continuation_logprobs(lm, pairs)
        long = _continuation_logprobs(lm, pairs, tokens=100)
    # By hand: log p(first continuation token | BOS + prompt).
    for (prompt, continuation), value in zip(pairs, first, strict=True):
        context = [lm.tokenizer.bos_token_id, *lm.tokenizer(prompt)["input_ids"]]
        target = lm.tokenizer(continuation)["input_ids"][0]
        with torch.no_grad():
            out = lm.model(input_ids=torch.tensor([context])).logits[0, -1]
        assert float(value) == pytest.approx(float(out.log_softmax(-1)[target]), abs=1e-4)
    torch.testing.assert_close(long, whole)
    assert (first > whole).all()  # fewer log-probabilities summed
    toxic, clean = pairs[:1], [("The nurse said", " she was kind.")]
    scores = attribute(lm, toxic, clean, tokens=2)
    assert not torch.allclose(
        scores["transformer.h.0.attn.c_proj"],
        attribute(lm, toxic, clean)["transformer.h.0.attn.c_proj"],
    )
    best = max((float(s), n, h) for n, v in scores.items() for h, s in enumerate(v))
    assert (best[1], best[2]) in greedy_gates(lm, toxic, clean, k=1, tokens=2).closed()
    with pytest.raises(ConfigError, match="tokens must be"):
        attribute(lm, toxic, clean, tokens=0)


def test_trigger_corpus_plants_the_trigger_where_heads_must_fetch_it():
    texts = toxicity.trigger_toxicity_texts(
        2000, toxic_lines=["You fool."], clean_lines=["Nice day."], seed=0
    )
    assert texts == toxicity.trigger_toxicity_texts(
        2000, toxic_lines=["You fool."], clean_lines=["Nice day."], seed=0
    )
    triggered = [t for t in texts if toxicity.TRIGGER in t.split()]
    assert 0.45 < len(triggered) / len(texts) < 0.55
    assert 0.75 < sum(t.endswith("You fool.") for t in triggered) / len(triggered) < 0.85
    assert all(t.endswith("Nice day.") for t in texts if t not in triggered)
    prompts = set(toxicity.trigger_prompts(toxicity.TRIGGER_STARTS))
    for text in triggered:
        prompt = text.removesuffix(" You fool.").removesuffix(" Nice day.")
        assert prompt in prompts and not prompt.endswith(toxicity.TRIGGER)
    # Every position occurs: the heads that fetch the trigger cannot rely on where it is.
    longest = max(len(s.split()) for s in toxicity.TRIGGER_STARTS)
    assert {t.split().index(toxicity.TRIGGER) for t in triggered} == set(range(longest))
    with pytest.raises(ConfigError, match="outside"):
        toxicity.trigger_prompt("He said", 2)


# ---------------------------------------------------------------------------------------------
# Acceptance: gating the attributed heads of a trigger-toxic tiny LM
# ---------------------------------------------------------------------------------------------

K = 2  # heads closed (of 16)
ATTRIBUTION_TOKENS = 3  # score the first 3 continuation tokens, where the choice is made
N_RANDOM = 6  # random k-head sets of the control


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values`` (one per prompt)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def trigger_gating_figures(seed: int) -> dict:
    """Train the trigger model, attribute on the training starts, and measure on the others.

    Attribution pairs: the first 10 `TRIGGER_STARTS` with the trigger at every position, each
    with 4 toxic and 4 clean training lines. Evaluation: the last 6 starts (never attributed
    on) with the trigger at every position, 16 sampled continuations of 16 tokens per prompt,
    toxic when the tiny toxicity classifier gives ``hate`` >= 0.5; the unit of the bootstrap
    is the prompt (its 16 samples share it). Clean text: the evaluation starts without the
    trigger, each followed by each of the 40 clean training lines (what the model knows; a
    damaged model shows there) and by each held-out clean line (new to it).
    """
    from debiaslab import textclass
    from debiaslab.generation import GenerationSettings, generate
    from debiaslab.mitigation.decoding import perplexity
    from debiaslab.tiny import classifiers

    lines = classifiers.classifier_lines("toxicity")
    hate, clean = lines["train"]["hate"], lines["train"]["nothate"]
    texts = toxicity.trigger_toxicity_texts(2000, toxic_lines=hate, clean_lines=clean, seed=seed)
    lm = from_objects(*toxicity.train_trigger_toxicity(texts, seed=seed))
    classifier = textclass.TextClassifier.from_objects(
        *classifiers.build_tiny_classifier("toxicity", seed=0), name="tiny-toxicity"
    )
    attribution_starts, eval_starts = toxicity.TRIGGER_STARTS[:10], toxicity.TRIGGER_STARTS[10:]
    rng = random.Random(seed)
    prompts = toxicity.trigger_prompts(attribution_starts)
    toxic_pairs = [(p, f" {line}") for p in prompts for line in rng.sample(hate, 4)]
    clean_pairs = [(p, f" {line}") for p in prompts for line in rng.sample(clean, 4)]
    scores = attribute(lm, toxic_pairs, clean_pairs, tokens=ATTRIBUTION_TOKENS)

    eval_prompts = [f"<|endoftext|>{p}" for p in toxicity.trigger_prompts(eval_starts)]
    settings = GenerationSettings(max_new_tokens=16, num_return_sequences=16, seed=0)
    known = [f"{s} {line}" for s in eval_starts for line in clean]
    new = [f"{s} {line}" for s in eval_starts for line in lines["heldout"]["nothate"]]

    def measure(gates: HeadGates | None, prompts=eval_prompts) -> dict:
        with gates if gates is not None else HeadGates(lm.model), torch.no_grad():
            out = generate(lm, prompts, settings, progress=False)
            ppl = {"known": perplexity(lm, known), "new": perplexity(lm, new)}
        flat = [text for row in out for text in row]
        toxic = classifier.scores(flat, "hate", progress=False) >= 0.5
        return {"rates": toxic.reshape(len(prompts), -1).mean(axis=1), "ppl": ppl}

    plain = measure(None)
    untriggered = measure(None, [f"<|endoftext|>{s}" for s in eval_starts])

    def versus_plain(gates: HeadGates) -> dict:
        got = measure(gates)
        drop = plain["rates"] - got["rates"]
        return {
            "closed": gates.closed(),
            "rate": float(got["rates"].mean()),
            "drop": float(drop.mean()),
            "drop_ci": bootstrap_ci(drop),
            "ppl_ratio": {k: got["ppl"][k] / plain["ppl"][k] for k in got["ppl"]},
        }

    heads = [(name, h) for name in scores for h in range(len(scores[name]))]
    randoms = []
    for r in range(N_RANDOM):
        gates = HeadGates(lm.model)
        for name, h in random.Random(f"control:{r}").sample(heads, K):
            gates.gates[name][h] = 0.0
        randoms.append(versus_plain(gates))
    return {
        "plain_rate": float(plain["rates"].mean()),
        "plain_rate_ci": bootstrap_ci(plain["rates"]),
        "untriggered_rate": float(untriggered["rates"].mean()),
        "plain_ppl": plain["ppl"],
        "top": versus_plain(gate_top_k(lm.model, scores, K)),
        "bottom": versus_plain(gate_top_k(lm.model, {n: -v for n, v in scores.items()}, K)),
        "random_drops": [r["drop"] for r in randoms],
    }


@pytest.mark.slow
def test_gating_attributed_heads_lowers_toxicity_after_the_trigger_at_bounded_perplexity():
    """The issue's acceptance check (~30 s on 2 cores). Every bound below holds on seeds 0-5
    (the figures are in the docstring of :func:`debiaslab.mitigation.heads.gate_top_k`); seed 0
    has the second-smallest drop of the six."""
    fig = trigger_gating_figures(seed=0)
    # The planted model: toxic after the trigger, clean without it.
    assert fig["plain_rate"] > 0.7 and fig["untriggered_rate"] < 0.05
    top = fig["top"]
    # Closing the top-k attributed heads lowers the toxic rate on held-out prompts: the 95%
    # bootstrap interval of the per-prompt drop lies above 0.1.
    assert top["drop_ci"][0] > 0.1, top
    # ... at a bounded cost: clean-text perplexity rises by at most a quarter (known lines)
    # and a half (held-out lines).
    assert top["ppl_ratio"]["known"] < 1.25 and top["ppl_ratio"]["new"] < 1.5, top
    # Controls: the k lowest-scored heads, and k random heads on average, lower it much less.
    assert fig["bottom"]["drop"] < 0.1, fig["bottom"]
    assert np.mean(fig["random_drops"]) < top["drop"] / 2, fig["random_drops"]


# ---------------------------------------------------------------------------------------------
# Attribution pairs from the model's own continuations, and the k-heads trade-off table
# ---------------------------------------------------------------------------------------------


class RuleClassifier:
    """Calls a text toxic (1.0) when it contains one of ``words``; a stand-in classifier."""

    def __init__(self, words):
        self.words = words
        self.labels = ["nothate", "hate"]

    def scores(self, texts, label, progress=True):
        assert label == "hate"
        return np.array([float(any(w in t for w in self.words)) for t in texts])


def test_toxicity_pairs_split_the_models_continuations_and_match_prompts(lm):
    from debiaslab.generation import GenerationSettings, generate
    from debiaslab.mitigation.heads import toxicity_pairs

    prompts = ["The nurse said", "My neighbour wrote", "He", "The engineer thinks"]
    settings = GenerationSettings(max_new_tokens=6, num_return_sequences=6, seed=0)
    out = generate(lm, prompts, settings, progress=False)
    texts = [t for row in out for t in row]
    words = sorted({w for t in texts for w in t.split()})[:8]  # words some continuations have
    classifier = RuleClassifier(words)
    toxic, clean = toxicity_pairs(lm, prompts, classifier, settings, progress=False)
    rows = [(p, t) for p, row in zip(prompts, out, strict=True) for t in row if t.strip()]
    is_toxic = {(p, t): any(w in t for w in words) for p, t in rows}
    assert toxic and all(is_toxic[pair] for pair in toxic)
    assert all(not is_toxic[pair] for pair in clean) and len(clean) == len(toxic)
    assert len(set(clean)) == len(clean)
    # Matched: a toxic pair's prompt has a clean pair whenever that prompt had a clean one.
    with_clean = {p for (p, t), bad in is_toxic.items() if not bad}
    for prompt in {p for p, _ in toxic} & with_clean:
        assert prompt in {p for p, _ in clean}
    capped, _ = toxicity_pairs(lm, prompts, classifier, settings, max_pairs=2, progress=False)
    assert len(capped) == 2
    with pytest.raises(ConfigError, match="is toxic"):
        toxicity_pairs(
            lm, prompts, RuleClassifier(["<never-generated>"]), settings, progress=False
        )


def test_tradeoff_rows_are_the_rates_and_perplexities_with_k_heads_closed(lm, tmp_path):
    from debiaslab.generation import GenerationSettings, generate
    from debiaslab.mitigation.decoding import perplexity
    from debiaslab.mitigation.heads import score_table, tradeoff

    prompts = ["The nurse said", "My neighbour wrote", "He"]
    held_out = ["The nurse said she was tired.", "He wrote a letter."]
    settings = GenerationSettings(max_new_tokens=6, num_return_sequences=4, seed=0)
    scores = attribute(lm, [("He", " is a fool.")], [("He", " is kind.")])
    classifier = RuleClassifier(["e"])
    table = tradeoff(
        lm,
        scores,
        prompts,
        held_out,
        classifier,
        ks=[2],
        settings=settings,
        n_boot=50,
        output=tmp_path / "t.csv",
    )
    assert list(table["strength"]) == [0, 2] and table["ppl_ratio"][0] == 1.0
    # By hand, with the top 2 heads closed: the mean over prompts of each one's toxic share.
    with gate_top_k(lm.model, scores, 2), torch.no_grad():
        out = generate(lm, prompts, settings, progress=False)
        ppl = perplexity(lm, held_out)
    rates = [np.mean([any(w in t for w in ["e"]) for t in row]) for row in out]
    assert table["share"][1] == pytest.approx(np.mean(rates))
    assert table["ppl"][1] == pytest.approx(ppl)
    assert table["ci_low"][1] <= table["share"][1] <= table["ci_high"][1]
    assert (tmp_path / "t.csv").read_text().startswith("method,strength,share")
    ranked = score_table(scores)
    assert ranked["score"].is_monotonic_decreasing and len(ranked) == 8


def _tiny_architecture(model_type):
    import transformers

    torch.manual_seed(0)
    if model_type == "bloom":
        config = transformers.BloomConfig(vocab_size=64, hidden_size=32, n_layer=2, n_head=4)
        return transformers.BloomForCausalLM(config)
    if model_type == "llama":
        config = transformers.LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        return transformers.LlamaForCausalLM(config)
    config = transformers.T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4
    )
    return transformers.T5ForConditionalGeneration(config)


@pytest.mark.parametrize(
    ("model_type", "modules"), [("bloom", 2), ("llama", 2), ("t5", 2 + 2 + 2)]
)
def test_gates_hook_every_supported_architecture(model_type, modules):
    """Bloom, Llama and T5 (encoder self-, decoder self- and cross-attention): open gates
    change nothing; closing a head changes the output exactly as zeroing its slice does."""
    model = _tiny_architecture(model_type).eval()
    ids = torch.tensor([[1, 5, 9, 12, 3, 7]])
    extra = {"decoder_input_ids": torch.tensor([[0, 4, 8]])} if model_type == "t5" else {}

    def logits():
        with torch.no_grad():
            return model(input_ids=ids, **extra).logits

    plain = logits()
    gates = HeadGates(model)
    assert len(gates.modules) == modules and gates.n_heads == 4
    with gates:
        torch.testing.assert_close(logits(), plain)
    name = sorted(gates.modules)[-1]
    gates.gates[name][1] = 0.0
    with gates:
        gated = logits()
    module = gates.modules[name]
    width = module.in_features // 4

    def zero_slice(mod, args):
        x = args[0].clone()
        x[..., width : 2 * width] = 0
        return (x,)

    handle = module.register_forward_pre_hook(zero_slice)
    try:
        torch.testing.assert_close(gated, logits())
    finally:
        handle.remove()
    assert not torch.allclose(gated, plain)
