"""Attention-head gates: the hook's arithmetic, save/load, and attribution by ablation."""

from __future__ import annotations

import pytest
import torch

from debiaslab import tiny
from debiaslab.errors import ConfigError
from debiaslab.mitigation.heads import HeadGates, attribute, gate_top_k
from debiaslab.models import from_objects


@pytest.fixture(scope="module")
def lm():
    model, tok = tiny.build_tiny("causal", seed=0, arch={"n_layer": 2, "n_head": 4})
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
        HeadGates(tiny.build_tiny("masked", seed=0)[0])


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
    assert float(scores[name][3]) == pytest.approx(full - objective(one_off), abs=1e-5)
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
