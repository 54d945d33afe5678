"""Result files: self-describing, atomic, and loadable as one tidy frame."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from debiaslab import results
from debiaslab.benchmarks import crows_pairs
from debiaslab.errors import DataFormatError
from debiaslab.results import BenchmarkOutput, load_all, make_record, run_id, write_result


def _output(value=55.0):
    return BenchmarkOutput(
        benchmark="crows_pairs",
        metrics={"metric_score": value, "bias_type/gender/metric_score": 60.0},
        ci={"metric_score": (50.0, 60.0), "bias_type/gender/metric_score": (40.0, 80.0)},
        declared=crows_pairs.METRICS,
        n_items=10,
        items=pd.DataFrame(
            {
                "sent_more": ["a"],
                "sent_less": ["b"],
                "bias_type": ["gender"],
                "sent_more_score": [-1.0],
                "sent_less_score": [-2.0],
            }
        ),
        config={"mode": "nangia"},
    )


def _record(value=55.0, model="m"):
    return make_record(
        _output(value),
        model={"name": model, "family": "masked"},
        config={"limit": 10},
        timing={"load_seconds": 1.0, "score_seconds": 2.0},
    )


def test_record_describes_itself():
    record = _record()
    for key in (
        "metrics",
        "ci",
        "higher_is_better",
        "config",
        "model",
        "benchmark",
        "n_items",
        "timing",
        "debiaslab_version",
        "git_hash",
        "environment",
        "date",
        "run_id",
    ):
        assert key in record, key
    assert record["environment"]["torch"] and record["environment"]["transformers"]
    assert record["config"] == {"mode": "nangia", "limit": 10}
    assert record["run_id"] == run_id("m", "crows_pairs", {"limit": 10})


def test_run_id_is_deterministic_and_config_sensitive():
    assert run_id("gpt2", "stereoset", {"a": 1}) == run_id("gpt2", "stereoset", {"a": 1})
    assert run_id("gpt2", "stereoset", {"a": 1}) != run_id("gpt2", "stereoset", {"a": 2})
    assert "/" not in run_id("google/flan-t5-base", "crows_pairs", {})


def test_write_and_load_all(tmp_path):
    write_result(_record(55.0, "m1"), tmp_path, _output().items)
    write_result(_record(45.0, "m2"), tmp_path / "sub", None)
    frame = load_all(tmp_path)
    assert set(frame["model"]) == {"m1", "m2"}
    row = frame[(frame["model"] == "m1") & (frame["metric"] == "metric_score")].iloc[0]
    assert (row["value"], row["ci_low"], row["ci_high"], row["ideal"]) == (55.0, 50, 60, 50)
    items = pd.read_csv(next(tmp_path.glob("*.items.csv")))
    assert list(items.columns) == [
        "sent_more",
        "sent_less",
        "bias_type",
        "sent_more_score",
        "sent_less_score",
    ]


def test_failed_write_leaves_previous_result_intact(tmp_path, monkeypatch):
    path = write_result(_record(55.0), tmp_path, _output().items)
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_result(_record(99.0), tmp_path, _output().items)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, path.name.replace(".json", ".items.csv")]
    )


def test_unserialisable_record_writes_nothing(tmp_path):
    record = _record()
    record["metrics"]["bad"] = object()
    with pytest.raises(TypeError):
        write_result(record, tmp_path, _output().items)
    assert list(tmp_path.iterdir()) == []


def test_load_all_names_a_broken_file(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"x\.json"):
        load_all(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(DataFormatError, match="field 'schema'"):
        load_all(tmp_path)


def test_nan_metrics_become_null(tmp_path):
    record = _record()
    record = make_record(
        BenchmarkOutput(
            "crows_pairs", {"antistereo_score": float("nan")}, {}, crows_pairs.METRICS, 1
        ),
        model={"name": "m"},
        config={},
        timing={},
    )
    path = write_result(record, tmp_path)
    assert json.loads(path.read_text())["metrics"]["antistereo_score"] is None
    assert load_all(tmp_path)["value"].isna().all()


def test_read_all_skips_json_that_is_not_a_result_but_not_a_broken_result(tmp_path):
    """A planted benchmark or a curve beside the results is not read as a result; a result
    whose schema is wrong, or a truncated JSON file, is still an error naming the file."""
    write_result(_record(), tmp_path)
    (tmp_path / "planted_data").mkdir()
    (tmp_path / "planted_data" / "planted_stereoset.json").write_text('{"version": "1"}')
    (tmp_path / "curve.json").write_text("[1, 2, 3]")
    assert [r["benchmark"] for _, r in results.read_all(tmp_path)] == ["crows_pairs"]
    (tmp_path / "other.json").write_text('{"schema": "someone-else/2"}')
    with pytest.raises(DataFormatError, match=r"other\.json"):
        results.read_all(tmp_path)
    (tmp_path / "other.json").write_text('{"schema": "debiaslab.result/1", "run_id"')
    with pytest.raises(DataFormatError, match=r"other\.json"):
        results.read_all(tmp_path)
