"""The calibration figure is drawn from a results table and written as PNG and PDF."""

from __future__ import annotations

import pandas as pd

from debiaslab import plots


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
