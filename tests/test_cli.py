"""The command line: eval and stereoset-score write result files; bad input fails cleanly."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from debiaslab.cli import build_parser, main


@pytest.fixture
def data_env(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path / "cache"))
    return shared_data


def test_every_verb_has_help(capsys):
    for verb in ("eval", "stereoset-score", "demo", "calibrate", "report", "results", "models"):
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        assert "usage: debiaslab " + verb in capsys.readouterr().out


def test_python_dash_m_debiaslab_is_the_command_and_says_its_version():
    import subprocess
    import sys

    from debiaslab import __version__

    run = [sys.executable, "-m", "debiaslab"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"debiaslab {__version__}"
    helped = subprocess.run([*run, "eval", "--help"], capture_output=True, text=True, check=True)
    assert helped.stdout.startswith("usage: debiaslab eval")
    wrong = subprocess.run([*run, "no-such-verb"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "invalid choice: 'no-such-verb'" in wrong.stderr


def test_eval_crows_pairs_writes_result_and_items(tiny_dirs, data_env, tmp_path, capsys):
    out = tmp_path / "results"
    argv = [
        "eval",
        "--model",
        str(tiny_dirs["masked"]),
        "--benchmark",
        "crows_pairs",
        "--output",
        str(out),
        "--limit",
        "12",
        "--n-boot",
        "50",
        "--no-progress",
    ]
    assert main(argv) == 0
    (result,) = out.glob("*.json")
    record = json.loads(result.read_text())
    assert record["benchmark"] == "crows_pairs" and record["n_items"] == 12
    assert {"metric_score", "stereo_score", "antistereo_score", "neutral"} <= set(
        record["metrics"]
    )
    assert record["model"]["family"] == "masked" and record["timing"]["score_seconds"] >= 0
    items = pd.read_csv(out / f"{record['run_id']}.items.csv")
    assert {"sent_more", "sent_less", "bias_type", "sent_more_score", "sent_less_score"} <= set(
        items.columns
    )
    assert len(items) == 12
    # A rerun with the same settings finds the result and skips the work.
    assert main(argv) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "family,benchmark",
    [("causal", "stereoset"), ("masked", "stereoset"), ("seq2seq", "stereoset_mc")],
)
def test_eval_stereoset_forms(tiny_dirs, data_env, tmp_path, family, benchmark):
    out = tmp_path / "results"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_dirs[family]),
                "--benchmark",
                benchmark,
                "--output",
                str(out),
                "--limit",
                "8",
                "--n-boot",
                "20",
                "--no-progress",
            ]
        )
        == 0
    )
    (result,) = [p for p in out.glob("*.json") if not p.name.endswith(".predictions.json")]
    record = json.loads(result.read_text())
    metrics = record["metrics"]
    prefix = "mc/" if benchmark == "stereoset_mc" else ""
    assert f"{prefix}intrasentence/overall/ss" in metrics
    assert f"{prefix}intrasentence/gender/ss" in metrics
    if benchmark == "stereoset":
        (predictions,) = out.glob("*.predictions.json")
        content = json.loads(predictions.read_text())
        assert len(content["intrasentence"]) == 3 * 8
        assert ("intersentence" in content) == (family == "causal")
    else:
        assert {"mc/position/A", "mc/position/B", "mc/position/C", "mc/position_bias"} <= set(
            metrics
        )
        assert record["config"]["mc_orders"] == "cyclic" and record["n_items"] == 2 * 8


def test_our_predictions_file_scores_to_the_same_metrics(tiny_dirs, data_env, tmp_path):
    out = tmp_path / "results"
    gold = data_env / "stereoset" / "dev_excerpt.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_dirs["causal"]),
                "--benchmark",
                "stereoset",
                "--data",
                str(gold),
                "--output",
                str(out),
                "--n-boot",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    (predictions,) = out.glob("*.predictions.json")
    (evaluated,) = [p for p in out.glob("*.json") if p != predictions]
    assert (
        main(
            [
                "stereoset-score",
                "--gold",
                str(gold),
                "--predictions",
                str(predictions),
                "--output",
                str(tmp_path / "scored"),
                "--n-boot",
                "0",
            ]
        )
        == 0
    )
    (scored,) = (tmp_path / "scored").glob("*.json")
    assert (
        json.loads(scored.read_text())["metrics"] == json.loads(evaluated.read_text())["metrics"]
    )


def test_stereoset_score_official_gpt2_predictions(data_env, tmp_path):
    assert (
        main(
            [
                "stereoset-score",
                "--gold",
                str(data_env / "stereoset" / "dev_excerpt.json"),
                "--predictions",
                str(
                    data_env
                    / "stereoset"
                    / "predictions"
                    / "predictions_gpt2_ModelNSP_GPT2LM.json"
                ),
                "--output",
                str(tmp_path),
            ]
        )
        == 0
    )
    (result,) = tmp_path.glob("*.json")
    record = json.loads(result.read_text())
    assert record["n_items"] == 9 and 0 <= record["metrics"]["overall/icat"] <= 100


@pytest.mark.parametrize(
    "benchmark,name,content,where",
    [
        (
            "crows_pairs",
            "bad.csv",
            ",sent_more,sent_less,stereo_antistereo,bias_type\n0,A man.,A woman.,pro,gender\n",
            ["row 1", "stereo_antistereo"],
        ),
        (
            "stereoset",
            "bad.json",
            '{"version": "1", "data": {"intrasentence": [{"id": "e1", "target": "t", '
            '"bias_type": "gender", "context": "no blank here", "sentences": []}]}}',
            ["intrasentence[0]"],
        ),
    ],
)
def test_malformed_data_fails_with_location_and_writes_nothing(
    tiny_dirs, tmp_path, capsys, benchmark, name, content, where
):
    bad = tmp_path / name
    bad.write_text(content)
    out = tmp_path / "results"
    out.mkdir()
    (out / "previous.json").write_text("{}")  # an earlier result stays as it was
    code = main(
        [
            "eval",
            "--model",
            str(tiny_dirs["causal"]),
            "--benchmark",
            benchmark,
            "--data",
            str(bad),
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert name in err and all(w in err for w in where), err
    assert [p.name for p in out.iterdir()] == ["previous.json"]
    assert (out / "previous.json").read_text() == "{}"


def test_unknown_model_is_a_clear_error(tmp_path, data_env, capsys):
    code = main(
        [
            "eval",
            "--model",
            str(tmp_path / "nowhere"),
            "--benchmark",
            "crows_pairs",
            "--output",
            str(tmp_path / "r"),
            "--limit",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"model folder {tmp_path / 'nowhere'} does not exist" in err


def test_parser_rejects_unknown_benchmark():
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["eval", "--model", "x", "--benchmark", "winobias", "--output", "o"]
        )


def test_plan_prints_a_table_for_a_preset(capsys):
    from debiaslab import cli

    assert cli.main(["plan", "--model", "tiny-gpt2", "--hardware", "cpu-ci"]) == 0
    out = capsys.readouterr().out
    assert "| tiny-gpt2" in out and "qlora" in out
