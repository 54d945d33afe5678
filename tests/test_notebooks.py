"""The notebook collection: generated, stripped, well-formed, and the whole chain executes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from debiaslab import notebooks as nb
from debiaslab.results import read_all


def test_committed_notebooks_are_exactly_the_rendered_templates():
    assert nb.check() == []
    assert len(nb.targets()) == sum(len(e.stages) for e in nb.entries())
    assert nb.results_notebook() in nb.targets()


def copy_of_collection(tmp_path: Path) -> Path:
    shutil.copytree(nb.repo_root() / "notebooks", tmp_path / "notebooks")
    return tmp_path


def test_a_hand_edit_or_an_executed_notebook_fails_the_check(tmp_path):
    root = copy_of_collection(tmp_path)
    path = root / "notebooks" / "gpt2" / "02_finetune.ipynb"
    notebook = json.loads(path.read_text())
    notebook["cells"][1]["source"] = notebook["cells"][1]["source"].replace("300", "30")
    path.write_text(json.dumps(notebook))
    problems = nb.check(root)
    assert problems == [
        "notebooks/gpt2/02_finetune.ipynb: differs from its template (edit the "
        "template, then render)"
    ]
    (root / "notebooks" / "gpt2" / "extra.ipynb").write_text("{}")
    assert any("not generated" in p for p in nb.check(root))


def test_lint_finds_what_does_not_belong_in_a_notebook():
    def cell(source, tags=(), outputs=()):
        return {
            "cell_type": "code",
            "metadata": {"tags": list(tags)},
            "source": source,
            "outputs": list(outputs),
            "execution_count": 1 if outputs else None,
        }

    notebook = {
        "cells": [
            cell("MODEL = 'gpt2'\nSTEPS = len('abc')", tags=["parameters"]),
            cell("def helper():\n    return 1"),
            cell("path = '/kaggle/working/results'"),
            cell("token = 'hf_" + "abcdefghijklmnopqrstuvwxyz123'"),
            cell("x = 1", outputs=[{"output_type": "stream", "text": "1"}]),
        ]
    }
    problems = nb.lint(notebook, "nb")
    assert "nb: cell 1: parameters must be literals" in problems
    assert any("cell 2: defines 'helper'" in p for p in problems)
    assert any("cell 3: platform path" in p for p in problems)
    assert any("cell 4: something that looks like a token" in p for p in problems)
    assert "nb: cell 5: outputs are not stripped" in problems
    assert nb.lint({"cells": [cell("x = 1")]}, "nb") == [
        "nb: expected the bootstrap cell once",
        "nb: expected one cell tagged 'parameters', found 0",
    ]
    edited = cell(nb.BOOTSTRAP.replace("-q", "-U"))
    assert any("bootstrap cell differs" in p for p in nb.lint({"cells": [edited]}, "nb"))


# The notebooks below ran once, together, in the `demo_run` fixture (tests/conftest.py):
# the whole collection on the tiny offline presets, as `make demo` runs it.


def _out(demo_run) -> Path:
    return demo_run.run_dir.parent / "out"


def _cells(demo_run, name: str) -> str:
    return json.dumps(json.loads(demo_run.executed(name).read_text())["cells"])


@pytest.mark.slow
@pytest.mark.parametrize("entry", nb.COLLECTION, ids=lambda e: e.slug)
def test_the_chain_runs_offline_on_the_tiny_presets(entry, demo_run):
    """pre → fine-tune → post, executed with papermill as a user runs them top to bottom."""
    for stage in nb.STAGES:
        demo_run.executed(f"{entry.slug}/{stage}")
    out = _out(demo_run)
    records = [record for _, record in read_all(out / "results" / entry.slug)]
    stages = {(r["benchmark"], r["stage"]) for r in records}
    assert ("crows_pairs", "pre") in stages and ("crows_pairs", "post") in stages
    assert all(
        r["config"].get("crows_split") == "heldout"
        for r in records
        if r["benchmark"] == "crows_pairs"
    )
    finetuned = demo_run.working(f"{entry.slug}/02_finetune")
    manifest = json.loads((finetuned / "runs" / entry.slug / "finetune.json").read_text())
    assert manifest["recipe"] == "crows_counter"
    assert manifest["method"] == ("qlora" if entry.instruction else "lora")
    if entry.instruction:
        assert ("stereoset_mc", "post") in stages
    executed = json.loads(demo_run.executed(f"{entry.slug}/03_post_eval").read_text())
    assert "HUB_REPO is not set" in json.dumps(executed["cells"][-1]["outputs"])
    # Its own session: notebook 1's results came from the mounted output, not a re-run.
    pre = [r for r in records if r["stage"] == "pre"]
    read = f"{len(pre)} of {len(pre)} pre-mitigation results read from notebook 1"
    assert read in _cells(demo_run, f"{entry.slug}/03_post_eval")


def test_readme_lists_every_notebook_with_its_links():
    readme = (nb.repo_root() / "README.md").read_text("utf-8")
    assert nb.readme_table() in readme


@pytest.mark.slow
def test_decoding_balance_notebook_runs_offline(demo_run):
    demo_run.executed("decoding_balance/decoding_balance")
    results = _out(demo_run) / "results" / "decoding_balance"
    table = (results / "decoding_tradeoff.csv").read_text().splitlines()
    assert table[0].startswith("method,strength,share") and len(table) == 1 + 3
    session = demo_run.working("decoding_balance/decoding_balance")  # figures stay there
    assert (session / "results" / "decoding_balance" / "decoding_tradeoff.png").is_file()
    records = [record for _, record in read_all(results)]
    assert sorted(r["stage"] for r in records) == [
        "balance", "plain", "self-debias-toxicity", "tradeoff",
    ]  # fmt: skip


@pytest.mark.slow
def test_synthetic_data_notebook_runs_offline(demo_run):
    """Spec → tiny writer → filters → dataset with card → (no token: no push) → full fine-tune
    of tiny-gpt2 on the train split → pre/post evaluation of the fine-tuned model."""
    executed = _cells(demo_run, "synthetic_data/synthetic_data")
    out, session = _out(demo_run), demo_run.working("synthetic_data/synthetic_data")
    dataset = session / "datasets" / "synthetic-gender-work"
    assert (dataset / "README.md").is_file() and list((dataset / "data").glob("train-*.parquet"))
    manifest = json.loads((session / "runs" / "synthetic_data" / "finetune.json").read_text())
    assert manifest["recipe"] == "synthetic" and manifest["recipe_info"]["spec"] == "gender-work"
    records = [record for _, record in read_all(out / "results" / "synthetic_data")]
    stages = {(r["benchmark"], r["stage"]) for r in records}
    assert ("crows_pairs", "pre") in stages and ("crows_pairs", "post") in stages
    post = [r for r in records if r["stage"] == "post"]
    assert all(r["model"]["source"].endswith("model") for r in post)  # the fine-tuned weights
    assert "HUB_DATASET is not set" in executed


@pytest.mark.slow
def test_attention_gate_notebook_runs_offline(demo_run):
    demo_run.executed("attention_gate/attention_gate")
    results = _out(demo_run) / "results" / "attention_gate"
    table = (results / "gating_tradeoff.csv").read_text().splitlines()
    assert table[0].startswith("method,strength,share") and len(table) == 1 + 3  # k = 0, 1, 2
    session = demo_run.working("attention_gate/attention_gate") / "results" / "attention_gate"
    assert (session / "gating_tradeoff.png").is_file()
    assert (session / "head_gates.safetensors").is_file()
    records = [record for _, record in read_all(results)]
    post = [r for r in records if r["stage"] == "post"]
    assert post and all(
        r["model"]["head_gates"].startswith("head_gates.safetensors@") for r in post
    )
    assert {r["stage"] for r in records} == {"pre", "post", "tradeoff"}


@pytest.mark.slow
def test_t2i_audit_notebook_runs_offline(demo_run):
    executed = _cells(demo_run, "t2i_audit/t2i_audit")
    records = [record for _, record in read_all(_out(demo_run) / "results" / "t2i_audit")]
    assert [r["benchmark"] for r in records] == ["t2i_audit"]
    assert records[0]["config"]["occupations"] == ["Registered nurses", "Software developers"]
    assert "LABELLED_IMAGES is not set" in executed


@pytest.mark.slow
def test_socratic_notebooks_run_offline(demo_run):
    """1. run the loop on PartiPrompts with tiny models → 2. evaluate from its files."""
    for stage in ("01_run", "02_evaluate"):
        demo_run.executed(f"socratic/{stage}")
    results = _out(demo_run) / "results" / "socratic"
    records = [record for _, record in read_all(results)]
    assert [r["benchmark"] for r in records] == ["socratic"] and records[0]["n_items"] == 2
    session = demo_run.working("socratic/02_evaluate") / "results" / "socratic"
    assert (session / "socratic_clipscore.png").is_file()


@pytest.mark.slow
def test_precise_debias_notebooks_run_offline(demo_run):
    """1. pairs from the seed's prompts → 2. LoRA rewriter + one align round → 3. text and
    image evaluation → 4. rewrite and draw, on tiny models."""
    for stage in ("01_dataset", "02_train", "03_evaluate", "04_infer"):
        demo_run.executed(f"precise_debias/{stage}")
    out = _out(demo_run)
    data = demo_run.working("precise_debias/01_dataset") / "runs" / "precise_debias" / "data"
    assert (data / "train.json").is_file() and (data / "test.json").is_file()
    rewriter = demo_run.working("precise_debias/02_train") / "runs" / "precise_debias"
    assert json.loads((rewriter / "rewriter" / "finetune.json").read_text())["recipe"] == (
        "precise_debias"
    )
    assert (rewriter / "rewriter" / "align" / "align_curve.json").is_file()
    assert (out / "figures" / "align_curve.png").is_file()
    records = [r for _, r in read_all(out / "results" / "precise_debias")]
    assert sorted(r["stage"] for r in records) == ["align", "post", "pre"]
    infer = demo_run.working("precise_debias/04_infer") / "runs" / "precise_debias" / "infer"
    assert len(list(infer.rglob("*.png"))) == 2 * 2


def test_readme_images_are_in_the_repository():
    readme = (nb.repo_root() / "README.md").read_text("utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images, "the README shows a figure from the demo"
    for image in images:
        assert (nb.repo_root() / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
