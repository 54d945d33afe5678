"""BOLD and HONEST end to end on tiny offline models: planted toxicity, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from debiaslab import cli, generation, generation_cache
from debiaslab.data.prompts import load_bold, sample_prompts
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import EvalConfig
from debiaslab.runner import evaluate
from debiaslab.tiny.build import save_tiny
from debiaslab.tiny.classifiers import build_tiny_classifier, classifier_lines
from debiaslab.tiny.toxicity import planted_toxicity_texts, train_planted_toxicity

ACTORS, ACTRESSES = "American_actors", "American_actresses"
N_PROMPTS = 30  # per group
SETTINGS = {"max_new_tokens": 16, "num_return_sequences": 2}  # seed: the run's (0)


@pytest.fixture(scope="session")
def tiny_classifiers(tmp_path_factory) -> dict[str, Path]:
    """The offline tiny toxicity and regard classifiers, trained once, as local directories."""
    root = tmp_path_factory.mktemp("classifiers")
    return {
        task: save_tiny(*build_tiny_classifier(task), root / task)
        for task in ("toxicity", "regard")
    }


@pytest.fixture(scope="session")
def bold_gender(shared_data) -> Path:
    return shared_data / "bold" / "prompts" / "gender_prompt.json"


@pytest.fixture(scope="session")
def toxicity_models(tmp_path_factory, bold_gender) -> dict[str, Path]:
    """Tiny LMs continuing BOLD actor/actress prompts: one group toxically, or neither.

    Continuations come from the held-out lines of the classifier file, which the tiny toxicity
    classifier never saw.
    """
    prompts = sample_prompts(
        load_bold(path=bold_gender), groups=[ACTORS, ACTRESSES], limit=N_PROMPTS, seed=0
    )
    lines = classifier_lines("toxicity")["heldout"]
    root = tmp_path_factory.mktemp("toxicity-lms")
    rates = {"planted": {ACTRESSES: 1.0}, "clean": {ACTORS: 0.5, ACTRESSES: 0.5}}
    return {
        name: save_tiny(
            *train_planted_toxicity(
                planted_toxicity_texts(
                    [(p.group, p.prompt) for p in prompts],
                    rate,
                    toxic_lines=lines["hate"],
                    clean_lines=lines["nothate"],
                )
            ),
            root / name,
        )
        for name, rate in rates.items()
    }


def run_bold(model: Path, out: Path, classifiers, bold_gender, **kwargs):
    return evaluate(
        EvalConfig.of(
            str(model),
            "bold",
            out,
            data=str(bold_gender),
            domains=["gender"],
            groups=[ACTORS, ACTRESSES],
            limit=N_PROMPTS,
            toxicity_model=str(classifiers["toxicity"]),
            regard_model=str(classifiers["regard"]),
            hurtlex=str(bold_gender.parents[2] / "hurtlex" / "hurtlex_EN.tsv"),
            **SETTINGS,
            progress=False,
            **kwargs,
        )
    )


@pytest.mark.slow
def test_planted_toxicity_gives_a_group_gap_and_equal_toxicity_does_not(
    toxicity_models, tiny_classifiers, bold_gender, tmp_path
):
    planted = run_bold(
        toxicity_models["planted"], tmp_path, tiny_classifiers, bold_gender, metrics=["toxicity"]
    ).record
    m, ci = planted["metrics"], planted["ci"]
    assert m[f"gender/toxicity/group/{ACTRESSES}/mean"] > m[f"gender/toxicity/group/{ACTORS}/mean"]
    assert ci["gender/toxicity/gap"][0] > 0 and m["gender/toxicity/gap_p_value"] < 0.01

    clean = run_bold(
        toxicity_models["clean"], tmp_path, tiny_classifiers, bold_gender, metrics=["toxicity"]
    ).record
    assert clean["ci"]["gender/toxicity/gap"][0] == 0.0
    assert clean["metrics"]["gender/toxicity/gap_p_value"] > 0.05
    # Both continue toxically: the clean model is not simply non-toxic.
    assert clean["metrics"]["toxicity/ratio"] > 0.2
    assert clean["metrics"]["gender/toxicity/gap"] < m["gender/toxicity/gap"] / 3


@pytest.mark.slow
def test_bold_run_writes_result_items_and_generations_and_resumes(
    toxicity_models, tiny_classifiers, bold_gender, tmp_path, monkeypatch
):
    model = toxicity_models["planted"]
    calls = []
    real = generation._generate_rows

    def counting(lm, rows, *args, **kwargs):
        calls.append(len(rows))
        return real(lm, rows, *args, **kwargs)

    monkeypatch.setattr(generation, "_generate_rows", counting)
    first = run_bold(model, tmp_path, tiny_classifiers, bold_gender)
    record = first.record
    assert calls == [2 * N_PROMPTS * 2]
    for key in ("toxicity/mean", "regard/negative", "honest/score", "gender/regard_negative/gap"):
        assert key in record["metrics"], key
    assert f"gender/regard/compare/{ACTORS}_vs_{ACTRESSES}/negative" in record["metrics"]
    items = pd.read_csv(first.path.with_name(record["items_file"]))
    assert len(items) == 2 * N_PROMPTS and {"toxicity", "regard_negative", "honest"} <= set(
        items.columns
    )
    lines = (tmp_path / record["config"]["generations_file"]).read_text().splitlines()
    assert len(lines) == 2 * N_PROMPTS * 2
    # Same settings, other metrics: a new result, but no generation at all.
    second = run_bold(model, tmp_path, tiny_classifiers, bold_gender, metrics=["toxicity"])
    assert calls == [2 * N_PROMPTS * 2] and second.path != first.path
    assert second.record["metrics"]["toxicity/mean"] == record["metrics"]["toxicity/mean"]
    # The run id exists: skipped without loading anything.
    again = run_bold(model, tmp_path, tiny_classifiers, bold_gender, metrics=["toxicity"])
    assert again.skipped


@pytest.mark.slow
def test_a_killed_bold_run_resumes_without_regenerating(
    toxicity_models, tiny_classifiers, bold_gender, tmp_path, monkeypatch
):
    model = toxicity_models["clean"]
    monkeypatch.setattr(generation, "GENERATION_BATCH_SIZE", 8)
    real_write, batches = generation_cache.CacheWriter.write, []

    def write_then_die(self, rows, texts):
        real_write(self, rows, texts)
        batches.append(len(rows))
        if len(batches) == 3:
            raise KeyboardInterrupt  # as a user stopping the notebook cell

    monkeypatch.setattr(generation_cache.CacheWriter, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_bold(model, tmp_path, tiny_classifiers, bold_gender, metrics=["toxicity"])
    assert not list(tmp_path.glob("*.json"))  # no result from a killed run
    (cache,) = (tmp_path / "generations").glob("*.jsonl")
    assert len(cache.read_text().splitlines()) == 24
    monkeypatch.setattr(generation_cache.CacheWriter, "write", real_write)

    real = generation._generate_rows
    rows_generated = []

    def counting(lm, rows, *args, **kwargs):
        rows_generated.append(len(rows))
        return real(lm, rows, *args, **kwargs)

    monkeypatch.setattr(generation, "_generate_rows", counting)
    resumed = run_bold(model, tmp_path, tiny_classifiers, bold_gender, metrics=["toxicity"])
    assert rows_generated == [2 * N_PROMPTS * 2 - 24]
    fresh = run_bold(
        model, tmp_path / "fresh", tiny_classifiers, bold_gender, metrics=["toxicity"]
    )
    assert resumed.record["metrics"] == fresh.record["metrics"]


@pytest.mark.parametrize(
    ("preset", "branch"),
    [("tiny-bert", "word"), ("tiny-gpt2", "sentence"), ("tiny-t5", "sentence")],
)
def test_honest_runs_each_family_with_its_branch(
    preset, branch, shared_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    result = evaluate(
        EvalConfig.of(
            preset,
            "honest",
            tmp_path,
            limit=3,
            honest_k=4,
            max_new_tokens=6,
            n_boot=50,
            progress=False,
        )
    )
    record = result.record
    assert record["config"]["branch"] == branch and record["n_items"] == 6
    assert 0.0 <= record["metrics"]["honest/score"] <= 1.0
    assert "binary/honest/gap" in record["metrics"]
    items = pd.read_csv(result.path.with_name(record["items_file"]))
    assert set(items["category"]) == {"female", "male"}
    assert all(len(c.split(" ||| ")) == 4 for c in items["completions"])


def test_bold_on_a_masked_lm_and_bad_metrics_are_clear_errors(
    tiny_dirs, shared_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    data = str(shared_data / "bold" / "prompts" / "gender_prompt.json")
    with pytest.raises(ConfigError, match="BOLD needs a causal or seq2seq model"):
        evaluate(
            EvalConfig.of(
                str(tiny_dirs["masked"]), "bold", tmp_path, data=data, limit=1, metrics=["honest"]
            )
        )
    with pytest.raises(ConfigError, match="unknown or no metrics"):
        evaluate(
            EvalConfig.of(str(tiny_dirs["causal"]), "bold", tmp_path, data=data, metrics=["bleu"])
        )


@pytest.mark.slow
def test_cli_bold_writes_json_and_prints_gaps(
    toxicity_models, tiny_classifiers, bold_gender, tmp_path, capsys
):
    code = cli.main(
        [
            "eval",
            "--benchmark",
            "bold",
            "--model",
            str(toxicity_models["planted"]),
            "--data",
            str(bold_gender),
            "--groups",
            ACTORS,
            ACTRESSES,
            "--limit",
            "10",
            "--metrics",
            "toxicity,honest",
            "--hurtlex",
            str(bold_gender.parents[2] / "hurtlex" / "hurtlex_EN.tsv"),
            "--toxicity-model",
            str(tiny_classifiers["toxicity"]),
            "--max-new-tokens",
            "12",
            "--n-boot",
            "100",
            "--output",
            str(tmp_path),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "gender/toxicity/gap" in out and "toxicity/ratio" in out
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["config"]["generation"]["max_new_tokens"] == 12
    assert record["config"]["metrics"] == ["toxicity", "honest"]
    assert record["benchmark"] == "bold" and record["n_items"] == 20


def test_cli_reports_a_missing_toxic_label_as_one_line(
    tiny_classifiers, tiny_dirs, bold_gender, tmp_path, capsys
):
    code = cli.main(
        [
            "eval",
            "--benchmark",
            "bold",
            "--model",
            str(tiny_dirs["causal"]),
            "--metrics",
            "toxicity",
            "--toxicity-model",
            str(tiny_classifiers["toxicity"]),
            "--toxic-label",
            "toxic",
            "--data",
            str(bold_gender),
            "--output",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "toxic" in err and "hate" in err
