"""Hub push/pull and model cards, against ``FakeHub`` (tests/conftest.py), a local stand-in for
``huggingface_hub.HfApi`` (offline)."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from debiaslab.cards.model import model_card
from debiaslab.errors import ConfigError, DebiaslabError
from debiaslab.hub import client, scrub
from debiaslab.model_source import is_adapter_dir

TOKEN = "hf_" + "TestTokenDoNotLeak0123456789abcdefXYZ"  # a canary, built so scanners skip it
REPO = "someone/gpt2-cda-lora"


def http_error(status: int, message: str) -> HfHubHTTPError:
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(message, response=response)


def result(
    benchmark: str,
    stage: str,
    metrics: dict[str, float],
    ci: dict[str, list[float]],
    higher: dict[str, bool | None],
    ideal: dict[str, float] | None = None,
    n_items: int = 100,
) -> dict[str, Any]:
    """A hand-written result record in the schema of :mod:`debiaslab.results`."""
    return {
        "schema": "debiaslab.result/1",
        "run_id": f"gpt2__{benchmark}__{stage}__00000000",
        "benchmark": benchmark,
        "stage": stage,
        "model": {"name": "gpt2", "family": "causal", "adapter": None},
        "metrics": metrics,
        "ci": ci,
        "higher_is_better": higher,
        "ideal": ideal or {},
        "n_items": n_items,
        "config": {"benchmark": benchmark, "data": "/home/ana/data/crows.csv"},
        "timing": {"total_s": 1.0},
        "debiaslab_version": "0.1.0",
        "git_hash": "0123abc",
        "environment": {"python": "3.11"},
        "date": "2026-01-01T00:00:00+00:00",
    }


@pytest.fixture
def records() -> list[dict[str, Any]]:
    crows = {"higher": {"metric_score": None, "bias_type/race/metric_score": None}}
    crows["ideal"] = {"metric_score": 50.0, "bias_type/race/metric_score": 50.0}
    bold_higher = {"toxicity/mean": False, "gender/toxicity/gap": False}
    return [
        result(
            "crows_pairs",
            "pre",
            {"metric_score": 60.0, "bias_type/race/metric_score": 63.0, "n_pairs": 1508},
            {"metric_score": [55.0, 65.0]},
            crows["higher"],
            crows["ideal"],
            n_items=1508,
        ),
        result(
            "crows_pairs",
            "post",
            {"metric_score": 52.0, "bias_type/race/metric_score": 51.0, "n_pairs": 1508},
            {"metric_score": [47.0, 57.0]},
            crows["higher"],
            crows["ideal"],
            n_items=1508,
        ),
        result(
            "bold",
            "pre",
            {"toxicity/mean": 0.12, "gender/toxicity/gap": 0.031},
            {"toxicity/mean": [0.10, 0.14], "gender/toxicity/gap": [0.01, 0.05]},
            bold_higher,
        ),
        result(
            "bold",
            "post",
            {"toxicity/mean": 0.05, "gender/toxicity/gap": 0.04},
            {"toxicity/mean": [0.04, 0.06], "gender/toxicity/gap": [0.02, 0.06]},
            bold_higher,
        ),
    ]


TRAINING = {
    "method": "counterfactual data augmentation",
    "objective": "causal LM",
    "data": "CDA over 2,000 Wikipedia sentences",
    "steps": 500,
    "lr": 2e-4,
    "batch_size": 16,
    "lora_r": 8,
    "lora_alpha": 16,
    "target_modules": ["c_attn"],
    "quantization": None,
    "seed": 0,
    "hardware": "Kaggle T4",
    "time_s": 754,
}


def make_adapter(folder: Path, base_path: str = "/home/ana/models/gpt2") -> Path:
    folder.mkdir(parents=True)
    config = {"base_model_name_or_path": base_path, "peft_type": "LORA", "r": 8}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"\x00weights\x01" * 100)
    (folder / "tokenizer.json").write_text("{}")  # "token" inside a name is not a secret
    (folder / "special_tokens_map.json").write_text("{}")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- the fake Hub


@pytest.mark.parametrize("method", ["create_repo", "upload_folder", "snapshot_download"])
def test_the_fake_hub_takes_the_real_clients_arguments(fake_hub, method):
    """Every argument FakeHub accepts, the real HfApi accepts the same way (positional or
    keyword-only, same default), and every argument the real one requires the fake requires."""
    real = inspect.signature(getattr(HfApi, method)).parameters
    fake = inspect.signature(getattr(type(fake_hub), method)).parameters
    for name, param in fake.items():
        assert name in real, f"HfApi.{method} has no argument {name!r}"
        assert (param.kind, param.default) == (real[name].kind, real[name].default), name
    required = {n for n, p in real.items() if p.default is p.empty and p.kind != p.VAR_KEYWORD}
    assert required <= set(fake)


# --------------------------------------------------------------------------- push and pull


def test_push_then_pull_round_trips_adapter_and_card(tmp_path, records, fake_hub, caplog):
    adapter = make_adapter(tmp_path / "adapter")
    before = snapshot(adapter)
    with caplog.at_level(logging.DEBUG):
        url = client.push(
            adapter, REPO, results=records, training=TRAINING, token=TOKEN, api=fake_hub
        )
    assert url == f"https://huggingface.co/{REPO}"
    assert snapshot(adapter) == before  # the caller's folder is untouched
    assert [c[0] for c in fake_hub.calls] == ["create_repo", "upload_folder"]
    assert fake_hub.calls[0][2] == {
        "private": True,
        "exist_ok": True,
        "token": TOKEN,
        "repo_type": "model",
    }
    remote = fake_hub.folder(REPO)
    assert sorted(snapshot(remote)) == sorted([*before, "README.md"])
    # A local base path in the uploaded adapter config is replaced by the public hub id.
    uploaded_config = json.loads((remote / "adapter_config.json").read_text())
    assert uploaded_config["base_model_name_or_path"] == "openai-community/gpt2"

    # The repo is private (the default): without the token the Hub does not find it.
    with pytest.raises(ConfigError, match="local adapter directory"):
        client.pull(REPO, cache_dir=tmp_path / "cache", api=fake_hub)
    pulled = client.pull(REPO, token=TOKEN, cache_dir=tmp_path / "cache", api=fake_hub)
    assert pulled != remote and is_adapter_dir(pulled)
    got = snapshot(pulled)
    assert got["adapter_model.safetensors"] == before["adapter_model.safetensors"]
    card = got["README.md"].decode()
    assert card == (remote / "README.md").read_text()
    assert "counterfactual data augmentation" in card and f"--adapter {REPO}" in card
    assert fake_hub.calls[-1] == (
        "snapshot_download",
        REPO,
        {
            "repo_type": None,
            "revision": None,
            "cache_dir": str(tmp_path / "cache"),
            "token": TOKEN,
            "allow_patterns": list(client.PULL_PATTERNS),
        },
    )


def test_push_uses_the_secret_and_default_api(tmp_path, fake_hub, monkeypatch, caplog):
    adapter = make_adapter(tmp_path / "adapter", base_path="/home/ana/models/my-gpt2")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with caplog.at_level(logging.INFO, logger="debiaslab.hub"):
        assert client.push(adapter, REPO, private=False) == f"https://huggingface.co/{REPO}"
    # No hub id is known for a local base: the config keeps it (no guess), with a warning.
    uploaded = json.loads((fake_hub.folder(REPO) / "adapter_config.json").read_text())
    assert uploaded["base_model_name_or_path"] == "/home/ana/models/my-gpt2"
    assert "local base model (my-gpt2)" in caplog.text
    assert "--model path/to/my-gpt2 --adapter" in (fake_hub.folder(REPO) / "README.md").read_text()
    assert fake_hub.calls[0][2]["token"] == TOKEN and fake_hub.calls[0][2]["private"] is False
    assert fake_hub.calls[1][2]["commit_message"].startswith("debiaslab ")


def test_push_without_token_skips_with_a_log_line(tmp_path, records, fake_hub, caplog):
    adapter = make_adapter(tmp_path / "adapter")
    with caplog.at_level(logging.INFO, logger="debiaslab.hub"):
        assert client.push(adapter, REPO, results=records, api=fake_hub) is None
    assert fake_hub.calls == []
    assert "no token" in caplog.text and "HF_TOKEN" in caplog.text and REPO in caplog.text


def test_token_never_leaks_on_success(tmp_path, records, fake_hub, monkeypatch, caplog):
    adapter = make_adapter(tmp_path / "adapter")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    training = {**TRAINING, "note": f"token was {TOKEN}"}  # a careless value
    with caplog.at_level(logging.DEBUG):
        client.push(adapter, REPO, results=records, training=training, api=fake_hub)
    assert TOKEN not in caplog.text
    for name, data in snapshot(fake_hub.folder(REPO)).items():
        assert TOKEN.encode() not in data, name
    assert scrub.REDACTED in (fake_hub.folder(REPO) / "README.md").read_text()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (http_error(401, f"401 Client Error: Unauthorized (token {TOKEN})"), "rejected"),
        (http_error(403, "403 Forbidden"), "write token"),
        (OSError(f"Connection refused, Authorization: Bearer {TOKEN}"), "online"),
    ],
)
def test_push_errors_are_clear_and_hide_the_token(tmp_path, fake_hub, caplog, error, expected):
    adapter = make_adapter(tmp_path / "adapter")
    fake_hub.fail = error
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as info:
        client.push(adapter, REPO, token=TOKEN, api=fake_hub)
    message = str(info.value)
    assert expected in message and REPO in message
    assert TOKEN not in message and TOKEN not in caplog.text
    if TOKEN in str(error):  # the original error is dropped only when it holds the token
        assert info.value.__cause__ is None and info.value.__suppress_context__
    else:
        assert info.value.__cause__ is error


def test_push_error_without_token_in_it_keeps_the_cause(tmp_path, fake_hub):
    fake_hub.fail = OSError("Name or service not known")
    with pytest.raises(ConfigError, match="online") as info:
        client.push(make_adapter(tmp_path / "a"), REPO, token=TOKEN, api=fake_hub)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (http_error(404, "404 Client Error: Repository Not Found"), "does not exist"),
        (OSError(f"cannot reach huggingface.co with {TOKEN}"), "online"),
    ],
)
def test_pull_errors_are_clear_and_hide_the_token(tmp_path, fake_hub, error, expected):
    fake_hub.fail = error
    with pytest.raises(DebiaslabError) as info:
        client.pull(REPO, token=TOKEN, cache_dir=tmp_path / "cache", api=fake_hub)
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert expected in message and "local adapter directory" in message and REPO in message
    assert TOKEN not in message


def test_pull_a_local_directory_returns_it(tmp_path, fake_hub):
    adapter = make_adapter(tmp_path / "adapter")
    assert client.pull(str(adapter), api=fake_hub) == adapter
    assert fake_hub.calls == []
    with pytest.raises(ConfigError, match="neither a local directory nor"):
        client.pull("not a repo id!", api=fake_hub)


def test_pull_a_fine_tuning_run_directory_returns_its_weights(tmp_path, fake_hub):
    lora_run = tmp_path / "out" / "runs" / "gpt2-lora"
    adapter = make_adapter(lora_run / "adapter")
    (lora_run / "finetune.json").write_text("{}")
    assert client.pull("runs/gpt2-lora", local_root=tmp_path / "out") == adapter
    full_run = tmp_path / "full"
    (full_run / "model").mkdir(parents=True)
    (full_run / "model" / "config.json").write_text("{}")
    (full_run / "model" / "model.safetensors").write_bytes(b"w")
    (full_run / "finetune.json").write_text("{}")
    assert client.pull(str(full_run)) == full_run / "model"


def test_pull_refuses_a_repo_without_configs(tmp_path, fake_hub):
    (fake_hub.folder(REPO)).mkdir(parents=True)
    (fake_hub.folder(REPO) / "README.md").write_text("# empty")
    with pytest.raises(ConfigError, match=r"neither adapter_config\.json nor config\.json"):
        client.pull(REPO, cache_dir=tmp_path / "cache", api=fake_hub)


def test_push_refuses_folders_without_adapter_or_model(tmp_path, fake_hub):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match=r"neither adapter_config\.json"):
        client.push(empty, REPO, token=TOKEN, api=fake_hub)
    with pytest.raises(ConfigError, match="not a directory"):
        client.push(tmp_path / "missing", REPO, token=TOKEN, api=fake_hub)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no adapter weights"):
        client.push(no_weights, REPO, token=TOKEN, api=fake_hub)
    with pytest.raises(ConfigError, match="not a Hugging Face repo id"):
        client.push(make_adapter(tmp_path / "a"), "../../etc", token=TOKEN, api=fake_hub)
    assert fake_hub.calls == []


@pytest.mark.parametrize("name", [".env", "hf_token.txt", "token", "sub/secrets.json", "id_rsa"])
def test_push_refuses_files_that_look_like_secrets(tmp_path, fake_hub, name):
    adapter = make_adapter(tmp_path / "adapter")
    (adapter / name).parent.mkdir(parents=True, exist_ok=True)
    (adapter / name).write_text("x")
    with pytest.raises(ConfigError, match="look like secrets"):
        client.push(adapter, REPO, token=TOKEN, api=fake_hub)
    assert fake_hub.calls == []


def test_push_refuses_files_that_contain_the_token(tmp_path, fake_hub):
    adapter = make_adapter(tmp_path / "adapter")
    (adapter / "notes.md").write_text(f"my token: {TOKEN}")
    with pytest.raises(ConfigError, match=r"notes\.md") as info:
        client.push(adapter, REPO, token=TOKEN, api=fake_hub)
    assert TOKEN not in str(info.value) and fake_hub.calls == []


def test_push_reads_result_files_and_directories(tmp_path, records, fake_hub):
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    for record in records:
        (results_dir / f"{record['run_id']}.json").write_text(json.dumps(record))
    client.push(make_adapter(tmp_path / "a"), REPO, results=results_dir, token=TOKEN, api=fake_hub)
    card = (fake_hub.folder(REPO) / "README.md").read_text()
    assert "### crows_pairs" in card and "### bold" in card


# --------------------------------------------------------------------------- model card


def card_for(records, **kwargs) -> str:
    args = {"base_model": "gpt2", "method": TRAINING["method"], "training": TRAINING}
    return model_card(records, repo_id=REPO, **{**args, **kwargs})


def table_row(card: str, metric: str) -> str:
    return next(line for line in card.splitlines() if line.startswith(f"| `{metric}` |"))


def test_card_pairs_pre_and_post_metrics(records):
    card = card_for(records)
    crows = table_row(card, "metric_score")
    assert crows == (
        "| `metric_score` | 60.0 [55.0, 65.0] | 52.0 [47.0, 57.0] | -8.0 | yes (closer to 50) † |"
    )
    tox = table_row(card, "toxicity/mean")
    assert tox == "| `toxicity/mean` | 0.120 [0.100, 0.140] | 0.050 [0.040, 0.060] | -0.070 " + (
        "| yes (lower) |"
    )
    gap = table_row(card, "gender/toxicity/gap")
    assert "| no (higher) †" in gap and "0.0310 [0.0100, 0.0500]" in gap
    # Only headline metrics: per-type scores and counts stay in the result files.
    assert "bias_type/race" not in card and "n_pairs" not in card
    assert "### bold (pre n = 100, post n = 100)" in card
    assert "### crows_pairs (pre n = 1508, post n = 1508)" in card
    assert "Summary: 2 of 3 headline metrics with a known direction improved; 1 changed" in card


def test_card_front_matter_sections_and_limitations(records):
    card = card_for(records, limitations=["Trained on English Wikipedia only."], license="mit")
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "peft"
    assert front["base_model"] == "openai-community/gpt2"
    assert front["license"] == "mit"
    assert front["tags"][:2] == ["debiaslab", "bias-mitigation"]
    assert "counterfactual-data-augmentation" in front["tags"]
    for section in (
        "## Model details",
        "## Training configuration",
        "## Bias benchmarks before and after mitigation",
        "## How to use",
        "## Limitations",
        "## Citation",
    ):
        assert section in card
    assert (
        "| Quantization | none |" in card
        and "| LoRA r | 8 |" in card
        and "| Learning rate | 0.0002 |" in card
    )
    assert (
        "| Training time | 12 min 34 s |" in card and "| LoRA target modules | `c_attn` |" in card
    )
    assert "PeftModel.from_pretrained(base, " in card
    assert f'"{REPO}"' in card and "AutoModelForCausalLM" in card
    assert "debiaslab eval --model gpt2 --adapter someone/gpt2-cda-lora" in card
    assert "US-centric" in card and "Blodgett et al." in card
    assert "do not mean an unbiased model" in card
    assert "- Trained on English Wikipedia only." in card
    assert "classifiers that have biases of their own" in card  # BOLD toxicity was reported
    assert "debiaslab 0.1.0 (git 0123abc)" in card


def test_card_is_deterministic_and_order_free(records):
    assert card_for(records) == card_for(list(reversed(records)))


def test_card_has_no_local_paths_or_tokens(records, tmp_path):
    card = card_for(
        records,
        base_model=str(tmp_path / "models" / "my-gpt2"),
        training={**TRAINING, "data": "/home/ana/data/cda.jsonl", "note": "hf_" + "a" * 34},
        limitations=[r"Trained from C:\Users\ana\data\set.csv"],
    )
    assert str(tmp_path) not in card and "/home/" not in card and "Users" not in card
    assert "hf_aaaa" not in card
    assert "cda.jsonl" in card and "my-gpt2" in card and "set.csv" in card
    front = yaml.safe_load(card.split("---\n")[1])
    assert "base_model" not in front  # a local base is not a hub id


def test_card_without_results_and_for_a_full_model():
    card = model_card(
        [], base_model="tiny-gpt2", method="CDA", training={}, repo_id=REPO, adapter=False
    )
    assert "No pre/post benchmark results were given." in card
    assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "transformers"
    assert f'AutoModelForCausalLM.from_pretrained("{REPO}")' in card
    assert f"debiaslab eval --model {REPO} --benchmark crows_pairs" in card


# --------------------------------------------------------------------------- a real adapter


def test_real_peft_adapter_pushes_pulls_and_loads(tmp_path, records, fake_hub):
    import torch
    from peft import LoraConfig, get_peft_model

    from debiaslab.models import load_model
    from debiaslab.tiny.build import build_tiny, save_tiny

    model, tokenizer = build_tiny("causal", seed=0)
    base_dir = save_tiny(model, tokenizer, tmp_path / "base")
    peft_model = get_peft_model(
        model,
        LoraConfig(r=2, target_modules=["c_attn"], task_type="CAUSAL_LM", fan_in_fan_out=True),
    )
    with torch.no_grad():  # non-zero LoRA B, so the adapter changes the outputs
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    assert is_adapter_dir(adapter_dir) and not is_adapter_dir(base_dir)

    client.push(
        adapter_dir, REPO, results=records, base_model="tiny-gpt2", token=TOKEN, api=fake_hub
    )
    pulled = client.pull(REPO, token=TOKEN, cache_dir=tmp_path / "cache", api=fake_hub)
    assert (pulled / "README.md").is_file()

    loaded = load_model(str(base_dir), adapter=str(pulled), device="cpu")
    ids = tokenizer("the doctor said", return_tensors="pt")["input_ids"]
    base_only = load_model(str(base_dir), device="cpu").model
    with torch.no_grad():
        expected = peft_model.eval()(ids).logits
        got = loaded.model(ids).logits
        without = base_only(ids).logits
    assert type(loaded.model).__name__.startswith("PeftModel")
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, without)  # the adapter really was applied
