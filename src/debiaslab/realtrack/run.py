"""Run the real-model track's steps in order, with their timings (``track.json``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debiaslab.errors import DebiaslabError
from debiaslab.io import write_bytes_atomic
from debiaslab.realtrack import finetune, generate, measure
from debiaslab.realtrack.config import TrackConfig


@dataclass
class Track:
    """What a step gets: the config, a log, and what earlier steps left for later ones
    (``outputs["adapter"]``: the LoRA adapter folder, …)."""

    config: TrackConfig
    log: Callable[[str], None] = print
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def results(self) -> Path:
        return self.config.results_path

    @property
    def work(self) -> Path:
        return self.config.work_path


# step name → function(track) → the result files it wrote
STEP_FUNCTIONS: dict[str, Callable[[Track], list[Path]]] = {
    "crows_pairs": measure.crows_pairs,
    "stereoset": measure.stereoset,
    "stereoset_mc": measure.stereoset_mc,
    "bold_honest": measure.bold_honest,
    "finetune": finetune.lora_and_post_eval,
    "decoding": generate.decoding_tradeoff,
    "synthetic": generate.synthetic,
    "precise_debias": generate.precise_debias,
}


class TrackError(DebiaslabError):
    """A step of the real-model track failed (named, with the others' outcomes)."""


def run_track(config: TrackConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``config.steps`` in order; write ``track.json`` (config, seconds and result files per
    step) into the results folder; return that record. A failing step stops the track (later
    steps may need its outputs) after ``track.json`` records what ran."""

    track = Track(config, log)
    config.results_path.mkdir(parents=True, exist_ok=True)
    config.work_path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    steps: list[dict[str, Any]] = []
    record = {"config": config.as_dict(), "steps": steps}
    try:
        for name in config.steps:
            log(f"[real] {name}: started")
            t0 = time.perf_counter()
            files = STEP_FUNCTIONS[name](track)
            seconds = time.perf_counter() - t0
            steps.append({"step": name, "seconds": round(seconds, 1), "results": [
                str(Path(f).resolve().relative_to(config.results_path.resolve())) for f in files
            ]})  # fmt: skip
            log(f"[real] {name}: ok in {seconds:.0f} s")
    except Exception as error:  # recorded in track.json whatever it is, then raised
        steps.append({"step": name, "error": f"{type(error).__name__}: {error}"})
        if isinstance(error, DebiaslabError):
            raise TrackError(f"real-model track step {name!r} failed: {error}") from error
        raise
    finally:
        record["seconds"] = round(time.perf_counter() - started, 1)
        text = json.dumps(record, indent=2) + "\n"
        write_bytes_atomic(config.results_path / "track.json", text.encode("utf-8"))
    return record
