"""Fine-tuning mitigation: recipes, resume, QLoRA on CPU, and the planted-bias acceptance."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from debiaslab import cli
from debiaslab.benchmarks.crows_pairs import paired_difference
from debiaslab.cli import build_parser
from debiaslab.cli.training import finetune_config
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.data.swaps import load_swaps, swap_gender
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.evalconfig import EvalConfig
from debiaslab.mitigation.data import counter_stereotypical, recipe_texts, split_pairs
from debiaslab.mitigation.finetune import FinetuneConfig, finetune
from debiaslab.models import load_model
from debiaslab.runner import evaluate
from debiaslab.scoring import sentence_token_logprobs
from debiaslab.suites import compare
from debiaslab.tiny import corpus

TEXTS = corpus.planted_texts(0.5, 120, seed=0)


# ------------------------------------------------------------------------------- recipes


def test_split_is_by_pair_seeded_disjoint_and_stable(shared_data):
    pairs = load_crows_pairs(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    train, held = split_pairs(pairs, "train"), split_pairs(pairs, "heldout")
    assert {p.index for p in train}.isdisjoint({p.index for p in held})
    assert len(train) + len(held) == len(pairs) and 0.4 < len(held) / len(pairs) < 0.6
    # A pair's side does not depend on which other pairs are loaded.
    assert split_pairs(pairs[::3], "heldout") == [p for p in held if p in pairs[::3]]
    assert split_pairs(pairs, "heldout", seed=1) != held
    with pytest.raises(ConfigError, match="unknown CrowS-Pairs split"):
        split_pairs(pairs, "test")


def test_counter_stereotypical_side_follows_the_direction(shared_data):
    pairs = load_crows_pairs(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    stereo = next(p for p in pairs if p.direction == "stereo")
    anti = next(p for p in pairs if p.direction == "antistereo")
    assert counter_stereotypical(stereo) == stereo.sent_less
    assert counter_stereotypical(anti) == anti.sent_more
    texts, info = recipe_texts(
        "crows_counter", shared_data / "crows_pairs" / "crows_pairs_anonymized.csv"
    )
    assert len(texts) == info["n_train_pairs"] == len(split_pairs(pairs, "train"))


def test_cda_swaps_both_ways_with_case_and_her(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    swaps = load_swaps(
        [
            shared_data / "gendered_words" / "winobias_generalized_swaps.txt",
            shared_data / "gendered_words" / "winobias_extra_gendered_words.txt",
        ]
    )
    assert swaps["he"] == "she" and swaps["she"] == "he" and swaps["actress"] == "actor"
    assert (
        swap_gender("She told her brother that He was an actor, not her.", swaps)
        == "He told his sister that She was an actress, not him."
    )
    assert swap_gender("The table is red.", swaps) == "The table is red."
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The king thanked his mother.\n\nThe table is red.\n")
    texts, info = recipe_texts("cda", corpus)
    assert texts == [
        "The king thanked his mother.",
        "The queen thanked her father.",
        "The table is red.",
    ]
    assert info["n_original"] == 2 and info["n_texts"] == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("he she they\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt: row 1"):
        load_swaps([bad])


# ------------------------------------------------------------------------------- training


def weights(directory) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (file,) = [p for p in directory.iterdir() if p.suffix == ".safetensors"]
    return load_file(file)


@pytest.mark.slow  # trains (two runs of a tiny model)
@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_killed_run_resumed_ends_with_the_same_weights(method, tiny_dirs, tmp_path, kill_after):
    config = FinetuneConfig(method=method, steps=8, save_steps=3, batch_size=4, lr=1e-3)
    model = str(tiny_dirs["causal"])
    whole = finetune(model, tmp_path / "whole", TEXTS, config, progress=False)
    with pytest.raises(KeyboardInterrupt):
        finetune(
            model, tmp_path / "killed", TEXTS, config, progress=False, callbacks=[kill_after(5)]
        )
    assert not (tmp_path / "killed" / "finetune.json").exists()  # unfinished, and says so
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        finetune(model, tmp_path / "killed", TEXTS, config, progress=False)
    resumed = finetune(model, tmp_path / "killed", TEXTS, config, progress=False, resume=True)
    assert resumed.manifest["resumed_from"] == "checkpoint-3"
    a, b = weights(whole.weights), weights(resumed.weights)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert resumed.manifest["metrics"]["train_loss"] > 0


@pytest.mark.slow  # trains a tiny model
@pytest.mark.parametrize("family", ["causal", "masked", "seq2seq"])
def test_qlora_on_cpu_trains_saves_and_reloads(family, tiny_dirs, tmp_path):
    base = str(tiny_dirs[family])
    config = FinetuneConfig(method="qlora", steps=4, batch_size=4, lr=1e-2, save_steps=4)
    result = finetune(base, tmp_path / "run", TEXTS, config, progress=False)
    assert (result.weights / "adapter_config.json").is_file()
    assert result.manifest["method"] == "qlora" and result.manifest["family"] == family
    lm = load_model(base, quantization="4bit", adapter=str(result.weights))
    assert "Linear4bit" in {type(m).__name__ for m in lm.model.modules()}
    plain = load_model(base, quantization="4bit")
    with_adapter = sentence_token_logprobs(lm, TEXTS[:3], progress=False)
    without = sentence_token_logprobs(plain, TEXTS[:3], progress=False)
    assert all(torch.isfinite(torch.as_tensor(x)).all() for x in with_adapter)
    assert any(abs(x.sum() - y.sum()) > 1e-4 for x, y in zip(with_adapter, without, strict=True))


def test_bad_settings_are_config_errors(tiny_dirs, tmp_path):
    with pytest.raises(ConfigError, match="unknown method"):
        FinetuneConfig(method="prefix")
    with pytest.raises(ConfigError, match="steps must be a positive"):
        FinetuneConfig(steps=0)
    with pytest.raises(ConfigError, match="at least 2"):
        finetune(str(tiny_dirs["causal"]), tmp_path, ["one"], progress=False)


def test_prompts_put_the_loss_on_the_completion_only(tiny_dirs, tmp_path):
    from debiaslab.mitigation.encoding import encode_rows
    from debiaslab.t2i.precise_debias import align, rewriter

    lm = load_model(str(tiny_dirs["causal"]))
    pair = {"instruction": "Expand.", "input": "A nurse at work", "output": "A Black male nurse"}
    prompt, completion = rewriter.prompt_and_completion(**pair, tokenizer=lm.tokenizer)
    [row] = encode_rows(lm, [prompt + completion], 256, prompts=[prompt])
    [whole] = encode_rows(lm, [prompt + completion], 256)
    assert row["input_ids"] == whole["input_ids"] and "labels" not in whole
    # The same tokens and the same masking as the align loop's further training.
    assert (row["input_ids"], row["labels"]) == align._encode_pair(lm.tokenizer, pair)
    n = row["labels"].count(-100)
    assert set(row["labels"][:n]) == {-100} and row["labels"][n:] == row["input_ids"][n:]
    assert lm.tokenizer.decode(row["input_ids"][n:], skip_special_tokens=True) == completion
    assert row["labels"][-1] == lm.tokenizer.eos_token_id  # the end is learned (pad is EOS)

    texts = [prompt + completion, prompt + " A White female nurse"]
    small = FinetuneConfig(steps=2, batch_size=2, seq_len=256, save_steps=2, eval_fraction=0)
    run = finetune(str(tiny_dirs["causal"]), tmp_path / "run", texts, small, prompts=[prompt] * 2)
    assert run.manifest["loss"] == "completion" and run.manifest["metrics"]["steps"] == 2
    # Another loss is another run: the finished one is not taken for it.
    with pytest.raises(ConfigError, match="loss"):
        finetune(str(tiny_dirs["causal"]), tmp_path / "run", texts, small, resume=True)
    with pytest.raises(ConfigError, match=r"prompts\[1\] is not the beginning"):
        finetune(str(tiny_dirs["causal"]), tmp_path / "x", texts, small, prompts=["", "Z"])
    with pytest.raises(ConfigError, match="one per text"):
        finetune(str(tiny_dirs["causal"]), tmp_path / "x", texts, small, prompts=[prompt])
    with pytest.raises(ConfigError, match="need a causal LM"):
        finetune(str(tiny_dirs["masked"]), tmp_path / "m", texts, small, prompts=[prompt] * 2)


# ------------------------------------------------------------------------------- acceptance

# LoRA settings that move a planted rate-0.8 model within seconds on a CPU (measured: causal
# harness score 83.7 → 33.1; masked metric score 69.1 → 41.6, on 178 held-out pairs).
ACCEPTANCE = {
    "causal": FinetuneConfig(method="lora", steps=300, lr=3e-3, batch_size=16, save_steps=1000),
    "masked": FinetuneConfig(
        method="lora", steps=400, lr=3e-3, batch_size=32, mlm_probability=0.3, save_steps=1000
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["causal", "masked"])
def test_counter_stereotypical_finetuning_lowers_held_out_bias(family, planted_models, tmp_path):
    data = corpus.write_planted_crows_pairs(tmp_path / "planted.csv", n_pairs=300, seed=1)
    texts, info = recipe_texts("crows_counter", data)
    model = str(planted_models[(family, 0.8)])
    run = finetune(
        model,
        tmp_path / "ft",
        texts,
        ACCEPTANCE[family],
        recipe="crows_counter",
        recipe_info=info,
        progress=False,
    )
    common = {"data": str(data), "crows_split": "heldout", "n_boot": 1000, "progress": False}
    pre = evaluate(EvalConfig.of(model, "crows_pairs", tmp_path / "res", **common))
    post = evaluate(
        EvalConfig.of(model, "crows_pairs", tmp_path / "res", adapter=str(run.weights), **common)
    )
    mode = pre.record["config"]["mode"] if pre.record["config"]["mode"] != "auto" else None
    mode = mode or ("nangia" if family == "masked" else "harness")
    key = "metric_score" if family == "masked" else "pct_stereotype"

    def items(result):
        return pd.read_csv(result.path.with_name(result.record["items_file"]))

    change, ci = paired_difference(items(pre), items(post), mode=mode, n_boot=1000, seed=0)
    assert post.record["metrics"][key] < pre.record["metrics"][key]
    assert ci[key][1] < 0, (change[key], ci[key])
    # The notebooks' comparison table reports the same paired interval.
    table = compare([pre], [post], n_boot=1000, seed=0).set_index("metric")
    assert table.loc[key, "change"] == pytest.approx(change[key])
    assert (table.loc[key, "change_ci_low"], table.loc[key, "change_ci_high"]) == ci[key]
    # The training pairs are off limits for this model.
    with pytest.raises(ConfigError, match="fine-tuned on CrowS-Pairs"):
        evaluate(
            EvalConfig.of(
                model, "crows_pairs", tmp_path / "res", adapter=str(run.weights), data=str(data)
            )
        )


def test_cli_finetune_on_a_text_file(tiny_dirs, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS[:20]))
    code = cli.main(
        [
            "finetune",
            "--model",
            str(tiny_dirs["masked"]),
            "--recipe",
            "texts",
            "--data",
            str(corpus),
            "--method",
            "lora",
            "--steps",
            "3",
            "--output",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 0 and "adapter written" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "run" / "finetune.json").read_text())
    assert manifest["recipe"] == "texts" and manifest["n_train_texts"] == 18


def test_cli_push_uploads_the_run_with_its_card_or_skips_without_a_token(
    tiny_dirs, tmp_path, capsys, monkeypatch, fake_hub
):
    config = FinetuneConfig(method="lora", steps=2, batch_size=4, save_steps=2)
    run = finetune(str(tiny_dirs["causal"]), tmp_path / "run", TEXTS, config, progress=False)
    argv = ["push", "--folder", str(run.weights), "--repo-id", "someone/tiny-lora"]
    assert cli.main(argv) == 0 and "not pushed" in capsys.readouterr().out
    assert fake_hub.calls == []
    monkeypatch.setenv("HF_TOKEN", "hf_" + "secretvalue123456789")
    assert cli.main(argv) == 0 and "pushed to" in capsys.readouterr().out
    card = (fake_hub.folder("someone/tiny-lora") / "README.md").read_text()
    assert "Training configuration" in card and "hf_secretvalue" not in card
    assert (fake_hub.folder("someone/tiny-lora") / "adapter_model.safetensors").is_file()


def test_the_launched_command_line_parses_back_into_the_same_settings():
    """What each process under `accelerate launch` runs (the launch itself: test_distributed)."""
    from debiaslab.mitigation import finetune as ft

    config = FinetuneConfig(
        method="qlora", steps=7, lr=3e-4, lora_targets=["q", "v"], fp16=True, seed=3
    )
    arguments = ft.launch_arguments("flan-t5-base", "run", config, "cda", "corpus.txt", 0, True)
    assert arguments[:2] == ["debiaslab.cli", "finetune"]
    args = build_parser().parse_args(arguments[1:])
    assert finetune_config(args) == config
    assert (args.model, args.recipe, args.data, args.resume) == (
        "flan-t5-base",
        "cda",
        "corpus.txt",
        True,
    )
