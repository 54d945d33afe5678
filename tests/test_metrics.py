"""Metric declarations: every metric a benchmark emits is declared in its module's ``METRICS``,
results take ``higher_is_better``/``ideal`` from those declarations, an undeclared key fails."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

import debiaslab
from debiaslab.benchmarks import crows_pairs, stereoset, stereoset_mc, stereoset_official
from debiaslab.errors import ConfigError
from debiaslab.metrics import SCALES, Metric, UndeclaredMetricError, declaration, directions
from debiaslab.models import from_objects
from debiaslab.results import BenchmarkOutput, load_all, make_record, write_result
from debiaslab.tiny import corpus
from debiaslab.tiny.build import build_tiny

PACKAGE = Path(debiaslab.__file__).resolve().parent
SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"
# Modules known to write result records; the discovery below must find each one's declarations.
EMITTERS = {
    "debiaslab.benchmarks.crows_pairs",
    "debiaslab.benchmarks.stereoset_official",
    "debiaslab.benchmarks.stereoset_mc",
    "debiaslab.benchmarks.generation_metrics",
    "debiaslab.t2i.metrics",
    "debiaslab.t2i.audit",
    "debiaslab.t2i.socratic",
    "debiaslab.t2i.precise_debias.align",
    "debiaslab.mitigation.tradeoff",
    "crows_speed",
    "generation_speed",
}


def _declaring_files() -> dict[str, Path]:
    """Module name → file of every module (package and speed scripts) that calls ``Metric``."""
    found = {}
    for path in [*sorted(PACKAGE.rglob("*.py")), *sorted(SCRIPTS.glob("*.py"))]:
        if path.name == "metrics.py" and path.parent == PACKAGE:
            continue  # the vocabulary itself (its docstring example declares two)
        tree = ast.parse(path.read_text("utf-8"))
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Metric"
        ]
        if calls:
            if path.is_relative_to(PACKAGE):
                parts = ["debiaslab", *path.relative_to(PACKAGE).with_suffix("").parts]
                found[".".join(parts)] = path
            else:
                found[path.stem] = path
    return found


def _import(name: str, path: Path):
    if name.startswith("debiaslab"):
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(f"speed_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declarations(module) -> dict[str, dict[str, Metric]]:
    """Every module-level mapping of Metric declarations (also inside TRADEOFF_KINDS)."""
    out = {}
    for attr, value in vars(module).items():
        if not isinstance(value, dict) or not value:
            continue
        if all(isinstance(m, Metric) for m in value.values()):
            out[attr] = value
        else:
            for key, inner in value.items():
                if isinstance(inner, dict) and isinstance(inner.get("metrics"), dict):
                    out[f"{attr}[{key}]"] = inner["metrics"]
    return out


def test_every_declaration_has_a_description_and_a_scale_from_the_vocabulary():
    files = _declaring_files()
    assert set(files) >= EMITTERS, f"no Metric(...) found in {EMITTERS - set(files)}"
    checked = 0
    for name, path in files.items():
        declared = _declarations(_import(name, path))
        assert declared, f"{name} calls Metric(...) but holds no mapping of declarations"
        for attr, metrics in declared.items():
            for pattern, metric in metrics.items():
                where = f"{name}.{attr}[{pattern!r}]"
                assert metric.scale in SCALES, where
                assert metric.description.strip(), where
                assert metric.higher_is_better in (True, False, None), where
                assert metric.ideal is None or math.isfinite(metric.ideal), where
                assert pattern and all(pattern.split("/")), where  # no empty segment
                checked += 1
    assert checked >= 60


def test_a_declaration_outside_the_vocabulary_or_without_description_is_refused():
    with pytest.raises(ConfigError, match="unknown metric scale 'percentage'"):
        Metric(None, 50.0, "percentage", "x")
    with pytest.raises(ConfigError, match="needs a description"):
        Metric(None, 50.0, "percent", "  ")


def test_lookup_matches_the_last_segments_and_prefers_the_longest_pattern():
    declared = {
        "ss": Metric(None, 50.0, "percent", "ss"),
        "position/*": Metric(None, 100 / 3, "percent", "letter share"),
        "negative": Metric(False, None, "fraction", "negative"),
        "regard/compare/*/negative": Metric(None, 0.0, "fraction", "difference"),
    }

    def find(key):
        return declaration(declared, key, benchmark="b")

    assert find("mc/intrasentence/gender/ss") is declared["ss"]
    assert find("mc/position/A") is declared["position/*"]
    assert find("d/regard/compare/a_vs_b/negative") is declared["regard/compare/*/negative"]
    assert find("d/regard/group/a/negative") is declared["negative"]
    # "*" is exactly one segment: position/A/x is not a position share
    with pytest.raises(UndeclaredMetricError, match=r"'b' emitted metric 'position/A/x'"):
        find("position/A/x")
    higher, ideal = directions(declared, ["ss", "negative", "mc/position/B"], benchmark="b")
    assert higher == {"ss": None, "negative": False, "mc/position/B": None}
    assert ideal == {"ss": 50.0, "mc/position/B": 100 / 3}  # only declared ideals
    with pytest.raises(ConfigError, match="equally"):
        declaration({"a/*": declared["ss"], "*/b": declared["ss"]}, "a/b", benchmark="b")


def test_an_undeclared_key_names_the_benchmark_and_the_key():
    with pytest.raises(UndeclaredMetricError) as err:
        declaration(crows_pairs.METRICS, "bias_type/race/made_up_score", benchmark="crows_pairs")
    message = str(err.value)
    assert "'crows_pairs'" in message and "'bias_type/race/made_up_score'" in message
    with pytest.raises(UndeclaredMetricError, match="made_up"):
        BenchmarkOutput("crows_pairs", {"made_up": 1.0}, {}, crows_pairs.METRICS, 1)


def test_a_real_run_that_emits_an_undeclared_metric_fails(monkeypatch):
    lm = from_objects(*build_tiny("causal", seed=0))
    pairs = corpus.planted_crows_pairs(4, seed=1)
    assert (
        "likelihood_diff"
        in crows_pairs.run_crows_pairs(lm, pairs, n_boot=5, progress=False).metrics
    )
    monkeypatch.delitem(crows_pairs.METRICS, "likelihood_diff")
    with pytest.raises(UndeclaredMetricError, match=r"'crows_pairs'.*'likelihood_diff'"):
        crows_pairs.run_crows_pairs(lm, pairs, n_boot=5, progress=False)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Result files of real runs on tiny models: CrowS-Pairs in both modes, StereoSet's
    likelihood and multiple-choice forms."""
    out = tmp_path_factory.mktemp("results")
    masked = from_objects(*build_tiny("masked", seed=0))
    causal = from_objects(*build_tiny("causal", seed=0))
    pairs = corpus.planted_crows_pairs(6, seed=1)
    gold = corpus.planted_stereoset(4, seed=1)
    outputs = [
        crows_pairs.run_crows_pairs(masked, pairs, n_boot=10, progress=False),
        crows_pairs.run_crows_pairs(causal, pairs, n_boot=10, progress=False),
        stereoset.run_likelihood(masked, gold, n_boot=10, progress=False),
        stereoset_mc.run_multiple_choice(causal, gold, n_boot=10, progress=False),
    ]
    for k, output in enumerate(outputs):
        record = make_record(output, model={"name": f"m{k}"}, config={"k": k}, timing={})
        write_result(record, out)
    return out


DECLARED = {
    "crows_pairs": crows_pairs.METRICS,
    "stereoset": stereoset_official.METRICS,
    "stereoset_mc": stereoset_mc.METRICS,
}


def test_directions_in_result_files_are_the_declarations(results_dir):
    frame = load_all(results_dir)
    assert set(frame["benchmark"]) == set(DECLARED) and len(frame) > 50
    for row in frame.itertuples():
        metric = declaration(DECLARED[row.benchmark], row.metric, benchmark=row.benchmark)
        assert row.higher_is_better == metric.higher_is_better, row.metric
        if metric.ideal is None:  # no ideal: absent from the record, NaN in the frame
            assert pd.isna(row.ideal), row.metric
        else:
            assert row.ideal == metric.ideal, row.metric


def test_result_files_carry_the_cards_directions_and_one_scale_for_preference_rates(results_dir):
    frame = load_all(results_dir).set_index(["run_id", "metric"])
    by_metric = {m: frame.xs(m, level="metric").iloc[0] for m in frame.index.levels[1]}
    # what the cards say, written out by hand
    for key, higher, ideal in [
        ("metric_score", None, 50.0),
        ("bias_type/gender/metric_score", None, 50.0),
        ("pct_stereotype", None, 50.0),  # percent, like metric_score (lm-eval's fraction x 100)
        ("likelihood_diff", False, None),
        ("intrasentence/overall/ss", None, 50.0),
        ("overall/icat", True, None),
        ("mc/overall/lms", True, None),
        ("mc/position/A", None, 100 / 3),
        ("mc/position_bias", False, 0.0),
        ("n_pairs", None, None),
    ]:
        row = by_metric[key]
        assert row["higher_is_better"] == higher, key
        assert pd.isna(row["ideal"]) if ideal is None else row["ideal"] == ideal, key
    # preference rates are percent: values and ideals on one 0-100 scale
    for key in ("metric_score", "pct_stereotype", "intrasentence/overall/ss", "mc/position/A"):
        assert 0 <= by_metric[key]["value"] <= 100
    assert sum(by_metric[f"mc/position/{c}"]["value"] for c in "ABC") == pytest.approx(100.0)
