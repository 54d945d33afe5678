"""The Socratic refinement loop end to end on tiny offline models (32×32 images, two steps)."""

from __future__ import annotations

import json

import pytest

from debiaslab.errors import ConfigError
from debiaslab.t2i import socratic


class ScriptedLLM:
    """A language model stand-in with scripted answers (records what it was asked)."""

    def __init__(self, rewrites=("a red cube on a table, photo",), judge="no"):
        self.rewrites = list(rewrites)
        self.judge = judge
        self.asked = []

    def complete(self, prompt):
        self.asked.append(prompt)
        if prompt.startswith("Request:"):
            return self.judge
        return self.rewrites[min(len(self.asked) - 1, len(self.rewrites) - 1)]


@pytest.fixture(scope="module")
def models():
    from debiaslab.t2i.clip import load_clip
    from debiaslab.t2i.generate import load_pipeline

    return (
        load_pipeline("tiny-sd"),
        socratic.load_captioner("tiny-blip"),
        load_clip("tiny-clip"),
    )


SETTINGS = socratic.SocraticSettings(max_cycles=3, steps=2, guidance=1.0, size=32)


def test_loop_records_every_cycle_scores_against_the_users_prompt_and_picks_the_best(
    models, tmp_path
):
    from debiaslab.t2i.clip import clip_score

    pipe, captioner, clip = models
    llm = ScriptedLLM(rewrites=["a red cube, studio photo", "a red cube, close-up"])
    records = socratic.refine(
        ["a red cube"], pipe, captioner, clip, llm, tmp_path, SETTINGS, progress=False
    )
    (record,) = records
    cycles = record["cycles"]
    assert [c["cycle"] for c in cycles] == [0, 1, 2]  # no stop rule: all cycles run
    assert [c["prompt"] for c in cycles] == [
        "a red cube",
        "a red cube, studio photo",
        "a red cube, close-up",
    ]
    # The rewrite request carries the user's prompt and the caption of the previous image.
    assert "a red cube" in llm.asked[0] and cycles[0]["caption"] in llm.asked[0]
    for c in cycles:
        image = tmp_path / c["file"]
        assert image.is_file()
        expected = clip_score(clip, [image], ["a red cube"])[0]  # the user's prompt
        assert c["clip_score"] == pytest.approx(float(expected))
    best = max(range(3), key=lambda k: cycles[k]["clip_score"])
    assert record["best_cycle"] == best and record["best_file"] == cycles[best]["file"]
    written = [json.loads(line) for line in (tmp_path / socratic.RECORDS).read_text().splitlines()]
    assert written == records


def test_stop_rules_and_empty_rewrites(models, tmp_path):
    pipe, captioner, clip = models
    judged = socratic.refine(
        ["a cat"],
        pipe,
        captioner,
        clip,
        ScriptedLLM(judge="Yes."),
        tmp_path / "j",
        socratic.SocraticSettings(max_cycles=3, judge=True, steps=2, guidance=1.0, size=32),
        progress=False,
    )
    assert len(judged[0]["cycles"]) == 1 and judged[0]["cycles"][0]["stop"] == "judge"
    similar = socratic.refine(
        ["a cat"],
        pipe,
        captioner,
        clip,
        ScriptedLLM(),
        tmp_path / "s",
        socratic.SocraticSettings(max_cycles=3, stop_similarity=-1.0, steps=2, size=32),
        progress=False,
    )
    assert similar[0]["cycles"][0]["stop"] == "similarity"
    empty = socratic.refine(
        ["a cat"], pipe, captioner, clip, ScriptedLLM(rewrites=["  "]), tmp_path / "e",
        socratic.SocraticSettings(max_cycles=2, steps=2, size=32), progress=False,
    )  # fmt: skip
    assert [c["prompt"] for c in empty[0]["cycles"]] == ["a cat", "a cat"]  # kept
    with pytest.raises(ConfigError, match="max_cycles"):
        socratic.SocraticSettings(max_cycles=0)


def test_summary_is_the_hand_computed_means():
    records = [
        {"prompt": "a", "best_cycle": 1,
         "cycles": [{"clip_score": 10.0}, {"clip_score": 30.0}, {"clip_score": 20.0}]},
        {"prompt": "b", "best_cycle": 0, "cycles": [{"clip_score": 40.0}]},
    ]  # fmt: skip
    metrics, ci = socratic.summarise(records, n_boot=200)
    assert metrics["clip_score_first"] == 25.0 and metrics["clip_score_best"] == 35.0
    assert metrics["clip_score_last"] == 30.0 and metrics["improvement_best"] == 10.0
    assert metrics["improvement_last"] == 5.0 and metrics["cycles"] == 2.0
    assert metrics["clip_score/cycle_1"] == 30.0 and metrics["clip_score/cycle_2"] == 20.0
    low, high = ci["improvement_best"]
    assert low <= 10.0 <= high


@pytest.mark.slow
def test_run_writes_a_result_file_with_the_tiny_models(tmp_path, monkeypatch):
    from debiaslab.results import read_all

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    records, path = socratic.run_socratic(
        ["a red cube", "a dog in the snow"],
        tmp_path,
        pipeline="tiny-sd",
        captioner="tiny-blip",
        clip="tiny-clip",
        llm="tiny-gpt2",
        settings=socratic.SocraticSettings(max_cycles=2, steps=2, size=32),
        n_boot=50,
        progress=False,
    )
    ((found, record),) = list(read_all(tmp_path))
    assert found == path
    assert record["benchmark"] == "socratic" and record["n_items"] == 2
    assert {"clip_score_first", "clip_score_best", "improvement_best"} <= set(record["metrics"])
    assert record["config"]["clip_scale"] == "torchmetrics"
    assert all(len(r["cycles"]) == 2 for r in records)
