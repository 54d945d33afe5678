"""PreciseDebias rewriter: prompt format, group detection and shares, rewriting, the align loop.

The acceptance test plants a rewriter that names "black female" in 2 % of its rewrites (the
other 7 groups uniform) and checks that `align` closes the gap to a uniform target.
"""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.generation import GenerationSettings
from debiaslab.models import from_objects
from debiaslab.results import read_all
from debiaslab.t2i.precise_debias import align, groups, rewriter
from debiaslab.t2i.precise_debias import tiny as tiny_rw
from debiaslab.t2i.precise_debias.pairs import instruction_pairs
from debiaslab.t2i.precise_debias.words import load_words
from debiaslab.t2i.targets import PRECISE_DEBIAS_RAW
from debiaslab.tiny.build import build_tiny

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_causal():
    """An untrained tiny GPT-2 and its tokenizer (rewrites are noise, but shaped right)."""
    return build_tiny("causal", seed=0)


def _with_lora(model):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True, lora_dropout=0.0)
    return get_peft_model(model, config)


# ------------------------------------------------------------------------------- format


def test_alpaca_format_round_trip():
    prompt, completion = rewriter.prompt_and_completion(
        "Expand.", " A doctor ", "A Black male doctor"
    )
    assert prompt == rewriter.ALPACA_PROMPT.format(instruction="Expand.", input="A doctor")
    assert prompt.startswith("Below is an instruction") and prompt.endswith("### Response:\n")
    assert completion == "A Black male doctor"
    text = rewriter.format_example("Expand.", "A doctor", "A Black male doctor")
    assert text == rewriter.format_example("Expand.", "A doctor") + completion
    # The prompt parts can be read back out of the text.
    assert text.split("### Input:\n")[1].split("\n")[0] == "A doctor"
    assert text.rsplit("### Response:\n", 1)[1] == "A Black male doctor"


def test_chat_template_path_is_shared_by_training_and_inference(tiny_causal):
    tok = copy.deepcopy(tiny_causal[1])
    tok.chat_template = CHAT_TEMPLATE
    prompt, completion = rewriter.prompt_and_completion(
        "Expand.", "A doctor", "A Black male doctor", tokenizer=tok
    )
    assert prompt == "<|user|>Expand.\n\nA doctor<|end|>\n<|assistant|>"
    assert completion == "A Black male doctor<|end|>\n"
    assert rewriter.format_example("Expand.", "A doctor", tokenizer=tok) == prompt
    # Training encodes exactly the prompt `rewrite` sends, then the completion and EOS. The
    # tokenizer adds no BOS, so both put the one `finetune` reads texts after in front.
    sent = rewriter.model_prompt("Expand.", "A doctor", tok)
    assert sent == tok.bos_token + prompt
    pair = {"instruction": "Expand.", "input": "A doctor", "output": "A Black male doctor"}
    ids, labels = align._encode_pair(tok, pair)
    n_prompt = len(tok(sent)["input_ids"])
    assert ids[:n_prompt] == tok(sent)["input_ids"] and set(labels[:n_prompt]) == {-100}
    assert ids[0] == tok.bos_token_id
    assert ids[-1] == tok.eos_token_id and labels[n_prompt:] == ids[n_prompt:]
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True).startswith("A Black male doctor")


def test_chat_template_that_rewrites_finished_turns_falls_back_to_the_output(tiny_causal):
    tok = copy.deepcopy(tiny_causal[1])
    # A template that marks the last assistant turn (as reasoning templates do).
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}<think></think>{% endif %}"
        "<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    prompt, completion = rewriter.prompt_and_completion(
        "Expand.", "A doctor", "A man", tokenizer=tok
    )
    assert prompt.endswith("<|assistant|>") and completion == "A man"


def test_clean_rewrite_keeps_the_first_line():
    assert rewriter.clean_rewrite("\n A White male pilot.\n### Input:\nx") == "A White male pilot."
    assert rewriter.clean_rewrite("A nurse.\n###\n") == "A nurse."
    assert rewriter.clean_rewrite("   \n") == ""


def test_pairs_are_checked_with_their_position():
    with pytest.raises(DataFormatError, match=r"row 1, field 'output'"):
        groups.pairs_by_group(
            [{"input": "A doctor", "output": "A Black male doctor"}, {"input": "x"}]
        )


# ------------------------------------------------------------------------------- groups


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("A Black male doctor holding a stethoscope.", "black male"),
        ("An Asian female engineer at a desk.", "asian female"),
        ("A Hispanic man cooking pasta.", "hispanic male"),
        ("A White female nurse in a white coat.", "white female"),  # the coat is no person
        ("A white male nurse reading a chart.", "white male"),
        ("A Caucasian woman in a lab.", "white female"),
        ("An African-American businessman on a phone.", "black male"),
        ("A South Asian actress on a stage.", "asian female"),
        ("A Latina teacher in a classroom.", "hispanic female"),  # gender from "Latina"
        ("A Latino male chef.", "hispanic male"),
        ("A doctor holding a stethoscope.", None),  # nothing named
        ("A Black doctor.", None),  # no gender
        ("A female pilot.", None),  # no race
        ("A Chinese woman reading.", None),  # a nationality: none of the 4 races
        ("A Black man talking to a White woman.", None),  # two people
        ("A black cab driver.", None),  # a black cab
        ("", None),
    ],
)
def test_detect_group(text, group):
    assert groups.detect_group(text) == group


def test_every_gendered_noun_of_the_word_lists_has_a_gender():
    lex = load_words()
    assert {
        w: groups._gender_of(w) for w in lex.gender_nouns if groups._gender_of(w) is None
    } == {}
    female = [groups._gender_of(w) for w in ("woman", "actress", "schoolgirl", "wives", "mum")]
    male = [groups._gender_of(w) for w in ("man", "waiter", "schoolboy", "husbands", "foreman")]
    assert set(female) == {"female"} and set(male) == {"male"}


def test_group_shares_arithmetic():
    rows = [
        ["A Black male nurse", "A Black male chef", "A White female pilot", "A nurse"],
        ["An Asian female doctor", "A Black male doctor", "gibberish", "A Chinese man"],
    ]
    shares = groups.group_shares(rows)
    assert shares["n"] == 8.0 and shares["undetected"] == 3 / 8
    assert shares["black male"] == pytest.approx(3 / 5)
    assert shares["white female"] == shares["asian female"] == pytest.approx(1 / 5)
    assert sum(shares[g] for g in groups.GROUPS) == pytest.approx(1.0)
    # A flat list reads the same; groups outside `groups` count as undetected.
    subset = groups.group_shares([t for row in rows for t in row], ["black male", "white female"])
    assert subset == {"black male": 0.75, "white female": 0.25, "undetected": 0.5, "n": 8.0}
    empty = groups.group_shares([])
    assert (
        empty["n"] == 0 and empty["undetected"] == 0 and not any(empty[g] for g in groups.GROUPS)
    )
    with pytest.raises(ConfigError, match="groups must be distinct keys"):
        groups.group_shares(rows, ["black male", "purple male"])


def test_normalise_target_divides_by_the_overlapping_sum():
    goal = groups.normalise_target(PRECISE_DEBIAS_RAW)
    assert sum(PRECISE_DEBIAS_RAW.values()) == pytest.approx(1.146)
    assert goal["hispanic female"] == pytest.approx(0.092 / 1.146)
    assert sum(goal.values()) == pytest.approx(1.0) and list(goal) == list(groups.GROUPS)
    with pytest.raises(ConfigError, match="no share for"):
        groups.normalise_target({"white male": 1.0})


def test_pairs_by_group_and_planted_rates():
    pairs = instruction_pairs(tiny_rw.TINY_PROMPTS)
    by_group = groups.pairs_by_group(pairs)
    assert {g: len(p) for g, p in by_group.items()} == dict.fromkeys(groups.GROUPS, 20)
    texts = tiny_rw.planted_rewrite_examples(pairs, ["black female"], 0.02, per_prompt=200, seed=0)
    counts = Counter(groups.detect_group(t.rsplit("### Response:\n", 1)[1]) for t in texts)
    assert sum(counts.values()) == 20 * 200
    assert counts["black female"] / 4000 == pytest.approx(0.02, abs=0.01)
    assert counts["white male"] / 4000 == pytest.approx(0.98 / 7, abs=0.02)
    with pytest.raises(ConfigError, match="under must name groups"):
        tiny_rw.planted_rewrite_examples(pairs, ["purple female"])


# ------------------------------------------------------------------------------- rewriting


def test_rewrite_returns_n_per_prompt_seeded_and_cached(tiny_causal, tmp_path):
    lm = from_objects(*tiny_causal, name="tiny-untrained")
    prompts = ["A doctor holding a stethoscope.", "A nurse reading a chart."]
    settings = GenerationSettings(max_new_tokens=8, top_p=1.0, seed=3)
    cache = tmp_path / "rewrites.jsonl"
    first = rewriter.rewrite(lm, prompts, n=3, settings=settings, cache=cache)
    assert [len(row) for row in first] == [3, 3] and all(isinstance(t, str) for t in first[0])
    assert all("\n" not in t for row in first for t in row)
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["prompt"].startswith("<|endoftext|>Below is")
    assert rewriter.rewrite(lm, prompts[::-1], n=3, settings=settings) == first[::-1]
    assert rewriter.rewrite(lm, prompts, n=3, settings=settings, cache=cache) == first
    other = GenerationSettings(max_new_tokens=8, top_p=1.0, seed=4)
    assert rewriter.rewrite(lm, prompts, n=3, settings=other) != first
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        rewriter.rewrite(lm, prompts, n=0)


def test_train_rewriter_records_the_recipe(tiny_dirs, tmp_path):
    from debiaslab.mitigation.finetune import FinetuneConfig

    pairs = instruction_pairs(tiny_rw.TINY_PROMPTS[:4], [("Black", "female"), ("White", "male")])
    config = FinetuneConfig(steps=2, batch_size=2, seq_len=256, save_steps=2, eval_fraction=0)
    result = rewriter.train_rewriter(str(tiny_dirs["causal"]), pairs, tmp_path / "run", config)
    info = json.loads((tmp_path / "run" / "finetune.json").read_text())["recipe_info"]
    assert info["method"] == "precise_debias" and info["n_pairs"] == 8
    assert info["groups"] == {"black female": 4, "white male": 4}
    assert info["prompt_format"] == "alpaca" and (result.weights / "adapter_config.json").is_file()
    assert info["loss"] == result.manifest["loss"] == "completion"
    # Rerunning the notebook takes the finished run as it is (nothing trained) instead of refusing.
    again = rewriter.train_rewriter(str(tiny_dirs["causal"]), pairs, tmp_path / "run", config)
    assert again.skipped and again.manifest["metrics"]["steps"] == 2
    with pytest.raises(ConfigError, match="already holds a finished run"):
        rewriter.train_rewriter(
            str(tiny_dirs["causal"]), pairs, tmp_path / "run", config, resume=False
        )
    short = FinetuneConfig(steps=2, seq_len=16)
    with pytest.raises(ConfigError, match="longer than seq_len=16"):
        rewriter.train_rewriter(str(tiny_dirs["causal"]), pairs, tmp_path / "short", short)


# ------------------------------------------------------------------------------- align


def test_align_needs_an_adapter(tiny_causal, tmp_path):
    lm = from_objects(*tiny_causal, name="tiny-untrained")
    with pytest.raises(ConfigError, match="has none"):
        align.align(lm, ["A doctor."], pairs_by_group={}, output=tmp_path)


def test_align_stops_at_once_under_threshold_and_writes_its_curve(tmp_path):
    model, tok = build_tiny("causal", seed=0)
    lm = from_objects(_with_lora(model), tok, name="tiny-lora", family="causal")
    before = {k: v.clone() for k, v in lm.model.named_parameters() if "lora_" in k}
    settings = GenerationSettings(max_new_tokens=4, top_p=1.0)
    result = align.align(
        lm,
        ["A doctor."],
        pairs_by_group={},
        output=tmp_path / "out",
        figures=tmp_path / "figures",
        results=tmp_path / "results",
        n=2,
        threshold=0.99,
        settings=settings,
    )
    assert result.stopped == "threshold" and len(result.curve) == 1
    assert result.curve[0]["learning_rates"] == {} and result.curve[0]["train_loss"] is None
    after = dict(lm.model.named_parameters())
    assert all((after[k] == v).all() for k, v in before.items())  # no training round
    saved = json.loads((tmp_path / "out" / align.CURVE_FILE).read_text())
    assert saved["stopped"] == "threshold" and saved["curve"][0]["iteration"] == 0
    assert sorted(p.name for p in result.figures) == ["align_curve.pdf", "align_curve.png"]
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    # The curve is also a result file, and reads back as it was measured.
    ((_, record),) = read_all(tmp_path / "results")
    assert record["benchmark"] == align.ALIGN_BENCHMARK and record["stage"] == "align"
    back = align.curve_from_record(record)
    assert back["stopped"] == "threshold" and back["threshold"] == 0.99
    for got, measured in zip(back["curve"], result.curve, strict=True):
        assert got["shares"] == measured["shares"] and got["tv"] == measured["tv"]
    low, high = record["ci"]["final/tv"]
    assert low <= record["metrics"]["final/tv"] <= high
    assert record["ci"]["iteration/0/undetected"] == result.curve[0]["ci"]["undetected"]
    # With a gap left and no pairs for it, the loop says which group lacks them.
    with pytest.raises(ConfigError, match="no training pairs"):
        align.align(lm, ["A doctor."], pairs_by_group={}, output=tmp_path / "o2", n=2,
                 threshold=0.01, max_iterations=2, settings=settings)  # fmt: skip


def test_measurement_intervals_resample_prompts_as_a_plain_bootstrap_does():
    import numpy as np

    rows = [
        ["A Black male nurse", "A White female nurse", "A nurse"],
        ["An Asian female pilot", "An Asian female pilot", "A Hispanic male pilot"],
        ["A White male chef", "A chef", "A chef"],
        ["A Black female doctor", "A White male doctor", "A Black female doctor"],
    ]
    goal = groups.normalise_target()
    ci = groups.measurement_ci(rows, goal, n_boot=300, seed=3)
    # Plain: draw prompts with replacement (the same seeded draws), pool their rewrites, count.
    labels = [[groups.detect_group(t) for t in row] for row in rows]
    draws = np.random.default_rng(3).integers(0, len(rows), size=(300, len(rows)))
    tvs, undetected, female = [], [], []
    for draw in draws:
        pooled = [label for i in draw for label in labels[i]]
        named = [label for label in pooled if label is not None]
        share = {g: named.count(g) / len(named) if named else 0.0 for g in groups.GROUPS}
        tvs.append(0.5 * sum(abs(share[g] - goal[g]) for g in groups.GROUPS))
        undetected.append(1 - len(named) / len(pooled))
        female.append(sum(v for g, v in share.items() if g.endswith(" female")))
    for key, values in (("tv", tvs), ("undetected", undetected), ("gender/female", female)):
        assert ci[key] == pytest.approx(list(np.percentile(values, [2.5, 97.5])))


@pytest.mark.slow
def test_align_closes_a_planted_gap(tmp_path):
    """Planted: "black female" at 2 %, the other 7 groups at 14 % each; target uniform 12.5 %.

    Measured on this machine (2 cores; tiny seeds 0/1/2, base_lr 6e-4, 10 steps, 400 rewrites
    per iteration): max |Δ| 0.110 -> 0.092 -> 0.085 -> 0.071 (stop), 0.104 -> 0.090 -> 0.081
    -> 0.073 (stop), 0.102 -> 0.092 -> 0.081 -> 0.071 (stop); black female 0.015 -> 0.057,
    0.021 -> 0.052, 0.023 -> 0.054. About 25 s here, most of it training the tiny model.
    """
    lm = tiny_rw.tiny_rewriter(under=("black female",), rate=0.02, seed=0)
    by_group = groups.pairs_by_group(instruction_pairs(tiny_rw.TINY_PROMPTS))
    settings = GenerationSettings(max_new_tokens=24, top_p=1.0)
    result = align.align(
        lm,
        tiny_rw.TINY_PROMPTS,
        dict.fromkeys(groups.GROUPS, 1 / 8),
        pairs_by_group=by_group,
        output=tmp_path / "align",
        figures=tmp_path / "figures",
        n=20,
        threshold=0.075,
        max_iterations=10,
        base_lr=6e-4,
        steps=10,
        settings=settings,
    )
    curve = result.curve
    gaps = [entry["max_abs_delta"] for entry in curve]
    black_female = [entry["shares"]["black female"] for entry in curve]
    # The planted gap is what the first measurement sees ...
    assert gaps[0] > 0.09 and black_female[0] < 0.04
    assert max(curve[0]["delta"], key=curve[0]["delta"].get) == "black female"
    assert curve[0]["learning_rates"]["black female"] == pytest.approx(6e-4)
    # ... the loop trains it away and stops early, below the threshold.
    assert result.stopped == "threshold" and 1 < len(curve) < 10
    assert gaps[-1] < 0.075 and gaps[-1] < gaps[0] - 0.02
    assert black_female[-1] > black_female[0] + 0.02
    assert all(entry["undetected"] < 0.1 for entry in curve)
    # One adapter, trained in place; the curve and the figure are on disk.
    assert list(lm.model.peft_config) == ["default"]
    saved = json.loads((tmp_path / "align" / align.CURVE_FILE).read_text())
    assert [e["max_abs_delta"] for e in saved["curve"]] == gaps
    assert saved["target"]["black female"] == pytest.approx(0.125)
    assert all(p.is_file() and p.stat().st_size > 0 for p in result.figures)
    assert len(list((tmp_path / "align" / "rewrites").glob("iteration_*.json"))) == len(curve)
