"""What one notebook hands the next: found in an upstream output, else here, else the Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from debiaslab import handoff
from debiaslab.env import INPUT_ENV, OUTPUT_ENV
from debiaslab.errors import ConfigError
from debiaslab.results import SCHEMA


@pytest.fixture
def session(tmp_path, monkeypatch):
    """An emulated Kaggle session: /kaggle/input (with notebook outputs) and /kaggle/working."""
    inputs, working = tmp_path / "input", tmp_path / "working"
    inputs.mkdir()
    working.mkdir()
    monkeypatch.setenv(INPUT_ENV, str(inputs))
    monkeypatch.setenv(OUTPUT_ENV, str(working))
    return inputs, working


def _result(folder: Path, name: str, stage: str = "pre") -> Path:
    record = {
        "schema": SCHEMA, "run_id": name, "benchmark": "crows_pairs", "stage": stage,
        "metrics": {"stereotype_score": 55.0}, "model": {"name": "m"}, "config": {},
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"m__crows_pairs__{stage}__{name}.json"
    path.write_text(json.dumps(record))
    return path


def test_an_upstream_output_comes_first_then_this_session(session):
    inputs, working = session
    (working / "runs" / "gpt2").mkdir(parents=True)
    assert handoff.locate("runs/gpt2", upstream="gpt2/02_finetune") == working / "runs" / "gpt2"
    mounted = inputs / "debiaslab-gpt2-02-finetune" / "runs" / "gpt2"
    mounted.mkdir(parents=True)
    assert handoff.locate("runs/gpt2", upstream="gpt2/02_finetune") == mounted
    # Newer mounts sit deeper (/kaggle/input/notebooks/<user>/<slug>); a fork's slug differs.
    deeper = inputs / "notebooks" / "ada" / "debiaslab-gpt2-02-finetune" / "runs" / "gpt2"
    deeper.mkdir(parents=True)
    assert handoff.mounted_outputs("gpt2/02_finetune")[:2] == [
        inputs / "debiaslab-gpt2-02-finetune", deeper.parents[1]
    ]  # fmt: skip


def test_missing_input_says_what_to_attach(session):
    with pytest.raises(ConfigError, match=r"Add Input → Notebook output → notebook "
                       r"debiaslab-precise-debias-01-dataset"):  # fmt: skip
        handoff.locate("runs/precise_debias/data", upstream="precise_debias/01_dataset")
    assert handoff.locate("runs/x", upstream="a/b", required=False) is None


def test_a_repo_id_found_nowhere_here_goes_to_the_hub(session, monkeypatch):
    asked = []
    monkeypatch.setattr(handoff, "pull", lambda value: asked.append(value) or Path("/hub"))
    assert handoff.adapter("ada/gpt2-debiased", upstream="gpt2/02_finetune") == Path("/hub")
    assert asked == ["ada/gpt2-debiased"]
    with pytest.raises(ConfigError, match="neither in an attached notebook output"):
        handoff.adapter("runs/gpt2/adapter", upstream="gpt2/02_finetune")  # a path only


def test_an_input_found_nowhere_and_not_on_the_hub_says_both(session, monkeypatch):
    def offline(value):
        raise ConfigError(f"could not download {value}: the Hub cannot be reached")

    monkeypatch.setattr(handoff, "pull", offline)
    with pytest.raises(ConfigError) as caught:
        handoff.adapter("runs/gpt2", upstream="gpt2/02_finetune")  # also a repo id's shape
    message = str(caught.value)
    assert "Add Input → Notebook output → notebook debiaslab-gpt2-02-finetune" in message
    assert "As a Hub repo id: could not download runs/gpt2" in message


def test_upstream_results_are_copied_here_where_a_rerun_reads_them(session):
    inputs, working = session
    source = _result(inputs / "debiaslab-gpt2-01-pre-eval" / "results" / "gpt2", "aaaa1111")
    here = handoff.bring_results(
        "results/gpt2", upstream="gpt2/01_pre_eval", into="results/gpt2-post"
    )
    assert here == working / "results" / "gpt2-post"
    assert (here / source.name).read_bytes() == source.read_bytes()
    assert handoff.bring_results("results/bert", upstream="bert/01_pre_eval") is None


def test_the_results_notebook_gathers_every_upstream_output_and_says_from_where(session):
    inputs, working = session
    _result(inputs / "debiaslab-gpt2-01-pre-eval" / "results" / "gpt2", "aaaa1111")
    copy = _result(inputs / "debiaslab-gpt2-03-post-eval" / "results" / "gpt2", "aaaa1111")
    _result(inputs / "debiaslab-gpt2-03-post-eval" / "results" / "gpt2", "bbbb2222", "post")
    (inputs / "debiaslab").mkdir()  # the wheel and data dataset: no results
    sources = handoff.gather_results("results")
    assert sources == [
        "debiaslab-gpt2-01-pre-eval: 1 result files",
        "debiaslab-gpt2-03-post-eval: 2 result files",
    ]
    assert sorted(p.name for p in (working / "results" / "gpt2").iterdir()) == sorted(
        [copy.name, copy.name.replace("pre__aaaa1111", "post__bbbb2222")]
    )


def test_no_results_anywhere_names_the_three_places(session):
    with pytest.raises(ConfigError, match=r"no attached notebook output.*RESULTS_REPO"):
        handoff.gather_results("results")
