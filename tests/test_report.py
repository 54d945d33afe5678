"""The report: numbers come from the result files (change one, rebuild, the paper follows),
tiny offline results are told apart from real checkpoints, and bad input says what is wrong."""

from __future__ import annotations

import json

import pytest

from debiaslab import report
from debiaslab.benchmarks import crows_pairs
from debiaslab.errors import ConfigError
from debiaslab.report import paper, tables
from debiaslab.results import BenchmarkOutput, make_record, write_result


def _crows(stage: str, value: float, model: str, source: str):
    output = BenchmarkOutput(
        "crows_pairs",
        {"pct_stereotype": value, "n_pairs": 100.0},
        {"pct_stereotype": (value - 5, value + 5)},
        crows_pairs.METRICS,
        n_items=100,
    )
    info = {"name": model, "source": source, "family": "causal", "n_parameters": 124_000_000}
    return make_record(output, model=info, config={"limit": None}, timing={}, stage=stage)


def _write(results, stage, value, model="gpt2", source="openai-community/gpt2"):
    return write_result(_crows(stage, value, model, source), results / "gpt2")


def _pdf_text(path) -> str:
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(str(path))
    try:
        pages = (document[i].get_textpage().get_text_range() for i in range(len(document)))
        return " ".join(" ".join(pages).split())  # line breaks fall anywhere
    finally:
        document.close()


@pytest.mark.slow
def test_changing_a_result_file_changes_the_number_in_the_rebuilt_report(tmp_path):
    pytest.importorskip("typst")
    results = tmp_path / "results"
    pre = _write(results, "pre", 62.34)
    _write(results, "post", 55.12)
    pdf = report.build(results, tmp_path / "figures", tmp_path / "report", log=lambda _: None)
    text = _pdf_text(pdf)
    assert "62.3 [57.3, 67.3]" in text and "55.1 [50.1, 60.1]" in text
    # openai-community/gpt2 is a real model; it leads the results with its pre/post change
    assert "1 experiment–model combinations from real models (gpt2)" in text
    assert text.index("Real-model findings (gpt2)") < text.index("No calibration results")
    record = json.loads(pre.read_text())
    record["metrics"]["pct_stereotype"] = 70.71
    pre.write_text(json.dumps(record))
    text = _pdf_text(report.build(results, tmp_path / "figures", tmp_path / "report"))
    assert "70.7 [57.3, 67.3]" in text and "62.3 [57.3, 67.3]" not in text
    assert (tmp_path / "figures" / "prepost_forest.png").is_file()


def test_tiny_offline_results_are_told_apart_from_real_checkpoints():
    assert tables.is_tiny({"model": {"name": "tiny-gpt2", "source": "/c/tiny/tiny-gpt2"}})
    assert tables.is_tiny({"model": {"name": "tiny-causal-planted0.2"}})
    assert tables.is_tiny({"model": {"name": "m", "source": "/root/.cache/debiaslab/tiny/x"}})
    assert tables.is_tiny({"model": {"name": "tiny-sd"}, "config": {"pipeline": "tiny-sd"}})
    assert tables.is_tiny({"model": {"name": "bert-mini-random"}})  # a speed benchmark's
    assert not tables.is_tiny({"model": {"name": "gpt2", "source": "openai-community/gpt2"}})
    assert not tables.is_tiny({"model": {"name": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}})
    assert not tables.is_tiny({"model": {"name": "bert-base-uncased", "adapter": "u/destiny"}})


def test_pre_and_post_pair_within_an_experiment_and_provenance(tmp_path):
    results = tmp_path / "results"
    _write(results, "pre", 62.0)
    _write(results, "post", 55.0)
    _write(results, "pre", 70.0, model="tiny-gpt2", source="/c/tiny/tiny-gpt2")
    loaded = report.load(results)
    table = tables.prepost(loaded)
    assert set(table["experiment"]) == {"gpt2 (gpt2)"}  # the tiny pre has no post to pair with
    pre, post = (table[table["stage"] == s].iloc[0] for s in ("pre", "post"))
    assert (pre["value"], post["value"], pre["ideal"]) == pytest.approx((62.0, 55.0, 50.0))
    effect = tables.size_effect(table)
    assert effect.iloc[0]["reduction"] == pytest.approx(7.0)
    assert effect.iloc[0]["n_parameters"] == 124_000_000
    kinds = report.provenance(loaded).set_index("model")["kind"]
    assert kinds["gpt2"] == "real checkpoint" and kinds["tiny-gpt2"] == "tiny offline"


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"no result files under .*make demo"):
        report.load(tmp_path / "results")


def test_text_from_results_cannot_break_the_typst_source(tmp_path):
    pytest.importorskip("typst")
    name = 'org/we*ird_#model "x" $y$ <z> @w // [a]'
    results = tmp_path / "results"
    _write(results, "pre", 62.0, model=name)
    _write(results, "post", 0.55, model=name)
    pdf = report.build(results, tmp_path / "figures", tmp_path / "report", log=lambda _: None)
    text = _pdf_text(pdf)
    # verbatim in the abstract, the results' lead, its table and the provenance table
    assert text.count(name) >= 4
    assert "62.0 [57.0, 67.0]" in text


def test_every_number_the_prose_cites_is_in_numbers_json(tmp_path):
    """The sections read their numbers from ``generated/numbers.json``; a section without
    results is ``None`` there, and the shipped sections come with it."""
    results = tmp_path / "results"
    _write(results, "pre", 62.34)
    _write(results, "post", 55.12)
    loaded = report.load(results)
    out = tmp_path / "generated"
    written = paper.write_generated(loaded, {}, out)
    assert {p.name for p in written} == {"numbers.json", paper.DIGEST, *paper.SECTIONS}
    data = json.loads((out / "numbers.json").read_text())
    abstract = {k: data["abstract"][k] for k in ("files", "tiny", "real", "calibration")}
    assert abstract == {"files": 2, "tiny": 0, "real": 1, "calibration": None}
    assert data["abstract"]["real_models"] == "gpt2"
    assert data["results"]["prepost"] is None  # tiny models' pre/post only; gpt2 is real
    prepost = data["results"]["real_prepost"]
    assert (prepost["improved"], prepost["comparisons"], prepost["kinds"]) == (1, 1, "real")
    assert prepost["table"]["rows"] == [
        ["gpt2 (gpt2)", "CrowS-Pairs % stereotype preferred", "62.3 [57.3, 67.3]",
         "55.1 [50.1, 60.1]", "50.0", "7.22"],
    ]  # fmt: skip
    assert data["results"]["calibration"] is None and data["results"]["speed"] is None
    assert "#r.files result files" in (out / "results.typ").read_text()
