"""Figures are drawn from results tables and written as PNG and PDF; bad tables are refused."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from debiaslab import plots, plots_t2i

NAN = float("nan")


def _assert_written(written, stem: str) -> None:
    assert [p.name for p in written] == [f"{stem}.png", f"{stem}.pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_bytes()[:5] == b"%PDF-"


def test_calibration_figure_writes_png_and_pdf(tmp_path):
    frame = pd.DataFrame(
        {
            "family": ["causal"] * 3 + ["masked"] * 3,
            "rate": [0.2, 0.5, 0.8] * 2,
            "value": [20, 50, 80, 25, 45, 70],
            "ci_low": [15, 45, 75, 20, 40, 65],
            "ci_high": [25, 55, 85, 30, 50, 75],
        }
    )
    written = plots.calibration(
        [("planted crows-pairs", frame), ("planted stereoset", frame)], tmp_path / "calibration"
    )
    assert [p.name for p in written] == ["calibration.png", "calibration.pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.pdf", "calibration.png"]


EXPERIMENTS = ["gpt2 (tiny-gpt2)", "bert (tiny-bert)", "t5 (tiny-t5)"]
LABELS = ["CrowS-Pairs % stereotyped", "StereoSet SS", "HONEST score", "toxicity gap"]


def _forest_frame() -> pd.DataFrame:
    """Four metrics (so the panels wrap), t5 absent from StereoSet, one metric with no CIs and
    no ideal value."""
    rows = []
    ideals = {LABELS[0]: 50.0, LABELS[1]: 50.0, LABELS[2]: 0.0, LABELS[3]: NAN}
    for k, experiment in enumerate(EXPERIMENTS):
        for label in LABELS:
            if experiment.startswith("t5") and label == "StereoSet SS":
                continue
            base = 60.0 + k if ideals[label] == 50.0 else 0.08 + 0.01 * k
            for stage, value in (("pre", base), ("post", 0.9 * base)):
                half = NAN if label == "toxicity gap" else 0.05 * base
                rows.append(
                    {
                        "experiment": experiment,
                        "label": label,
                        "stage": stage,
                        "value": value,
                        "ci_low": value - half,
                        "ci_high": value + half,
                        "ideal": ideals[label],
                    }
                )
    return pd.DataFrame(rows)


def test_forest_writes_png_and_pdf(tmp_path):
    written = plots.forest(_forest_frame(), tmp_path / "forest", title="pre vs post")
    _assert_written(written, "forest")


def test_forest_axes_hold_the_frame():
    frame = _forest_frame()
    fig = plots._forest_figure(frame, "pre vs post")
    assert fig.get_suptitle() == "pre vs post"
    assert [ax.get_title() for ax in fig.axes] == LABELS
    # one shared categorical y axis; its names show on the left column of each row (3 wide)
    for ax in fig.axes:
        assert ax.get_yticks().tolist() == [0, 1, 2]
        assert ax.get_shared_y_axes().joined(fig.axes[0], ax)
    shown = [[t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes]
    assert shown == [EXPERIMENTS, [], [], EXPERIMENTS]
    assert fig.axes[0].get_ylim()[0] > fig.axes[0].get_ylim()[1]  # first experiment on top
    for ax, label in zip(fig.axes, LABELS, strict=True):
        rows = frame[frame["label"] == label]
        points = [line for line in ax.lines if line.get_marker() == "o"]
        pre, post = points
        assert pre.get_markerfacecolor() == "none"
        assert post.get_markerfacecolor() != "none"
        for line, stage in ((pre, "pre"), (post, "post")):
            part = rows[rows["stage"] == stage]
            np.testing.assert_allclose(line.get_xdata(), part["value"])
            # rows are experiment positions (0 = top), pre just above post
            assert np.round(line.get_ydata()).tolist() == [
                EXPERIMENTS.index(e) for e in part["experiment"]
            ]
        assert (pre.get_ydata() < post.get_ydata()).all()
        ideal_lines = [line for line in ax.lines if line.get_linestyle() == "--"]
        if math.isnan(rows["ideal"].iloc[0]):
            assert ideal_lines == []
        else:
            assert [line.get_xdata()[0] for line in ideal_lines] == [rows["ideal"].iloc[0]]
        n_bars = sum(len(c.get_segments()) for c in ax.collections)
        assert n_bars == (0 if label == "toxicity gap" else len(rows))
    # t5 has no StereoSet row: nothing drawn on its line in that panel
    stereoset = fig.axes[1]
    assert all(
        2 not in np.round(line.get_ydata()).tolist()
        for line in stereoset.lines
        if len(line.get_ydata())
    )


def test_forest_refuses_bad_frames(tmp_path):
    frame = _forest_frame()
    with pytest.raises(ValueError, match="'ci_high'"):
        plots.forest(frame.drop(columns=["ci_high"]), tmp_path / "f")
    with pytest.raises(ValueError, match=r"'ideal'.*'stage'|'stage'.*'ideal'"):
        plots.forest(frame.drop(columns=["ideal", "stage"]), tmp_path / "f")
    with pytest.raises(ValueError, match="empty"):
        plots.forest(frame.iloc[:0], tmp_path / "f")
    with pytest.raises(ValueError, match="stage"):
        plots.forest(frame.replace({"stage": {"post": "after"}}), tmp_path / "f")
    assert list(tmp_path.iterdir()) == []


def _size_frame() -> pd.DataFrame:
    models = ["tiny-gpt2", "gpt2", "gpt2-medium"]
    return pd.DataFrame(
        {
            "model": models * 2,
            "n_parameters": [102_714, 124_439_808, 354_823_168] * 2,
            "label": ["CrowS-Pairs % stereotyped"] * 3 + ["StereoSet SS"] * 3,
            "reduction": [1.0, 3.0, -0.5, 0.5, 2.0, 1.5],
            "ci_low": [-1.0, 1.0, -2.0, NAN, 0.5, 0.2],
            "ci_high": [3.0, 5.0, 1.0, NAN, 3.5, 2.8],
            "tiny": [True, False, False] * 2,
        }
    )


def test_size_effect_writes_png_and_pdf(tmp_path):
    _assert_written(plots.size_effect(_size_frame(), tmp_path / "size"), "size")


def test_size_effect_refuses_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="'tiny'"):
        plots.size_effect(_size_frame().drop(columns=["tiny"]), tmp_path / "s")
    with pytest.raises(ValueError, match="empty"):
        plots.size_effect(_size_frame().iloc[:0], tmp_path / "s")
    with pytest.raises(ValueError, match="n_parameters"):
        plots.size_effect(_size_frame().assign(n_parameters=0), tmp_path / "s")


def _gaps_frame() -> pd.DataFrame:
    rows = []
    for panel in ("gender · toxicity", "race · sentiment"):
        for experiment in ("gpt2 self-debias", "gpt2 counterfactual fine-tuning"):
            for stage, gap, p_value in (
                ("pre", 0.12, 0.01),
                ("post", 0.03, 0.4),
                ("balance", -0.05, 0.02),
            ):
                rows.append(
                    {
                        "experiment": experiment,
                        "stage": stage,
                        "panel": panel,
                        "gap": gap,
                        "ci_low": gap - 0.03,
                        "ci_high": gap + 0.03,
                        "p_value": p_value,
                    }
                )
    frame = pd.DataFrame(rows)
    frame.loc[0, ["ci_low", "ci_high"]] = NAN
    frame.loc[1, "p_value"] = NAN
    return frame


def test_group_gaps_writes_png_and_pdf(tmp_path):
    _assert_written(plots.group_gaps(_gaps_frame(), tmp_path / "gaps"), "gaps")


def test_group_gaps_refuses_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="'p_value'"):
        plots.group_gaps(_gaps_frame().drop(columns=["p_value"]), tmp_path / "g")
    with pytest.raises(ValueError, match="empty"):
        plots.group_gaps(_gaps_frame().iloc[:0], tmp_path / "g")


def _demographics_frame() -> pd.DataFrame:
    rows = []
    occupations = ("software developers, applications and systems software", "nurse")
    for occupation in occupations:
        for condition in ("plain prompt", "rewritten"):
            shares = {"woman": (0.3, 0.2), "man": (0.7, 0.7)}  # 0.1 with no person
            if condition == "rewritten":
                shares = {"woman": (0.3, 0.45), "man": (0.7, 0.45)}
            shares |= {
                "White": (0.6, 0.8),
                "Black": (0.12, NAN),
                "Asian": (0.2, 0.05),
                "Hispanic": (0.08, 0.1),
            }
            for group, (bls, perceived) in shares.items():
                axis = "gender" if group in ("woman", "man") else "race"
                rows.append(
                    {
                        "occupation": occupation,
                        "axis": axis,
                        "group": group,
                        "perceived": perceived,
                        "bls": bls,
                        "condition": condition,
                    }
                )
    return pd.DataFrame(rows)


def test_demographics_writes_png_and_pdf(tmp_path):
    _assert_written(plots_t2i.demographics(_demographics_frame(), tmp_path / "demo"), "demo")


def test_demographics_without_a_condition_column(tmp_path):
    frame = _demographics_frame()
    frame = frame[frame["condition"] == "plain prompt"].drop(columns=["condition"])
    _assert_written(plots_t2i.demographics(frame, tmp_path / "demo1"), "demo1")


def test_demographics_refuses_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="'bls'"):
        plots_t2i.demographics(_demographics_frame().drop(columns=["bls"]), tmp_path / "d")
    with pytest.raises(ValueError, match="empty"):
        plots_t2i.demographics(_demographics_frame().iloc[:0], tmp_path / "d")
