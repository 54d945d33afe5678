"""Evaluations on every GPU: one process per GPU (Kaggle's T4×2), the work shared batch by batch.

:func:`evaluate_all` evaluates a list of configs in this process, or, with several GPUs (or
``processes`` > 1), under ``accelerate launch`` (:func:`debiaslab.distributed.launch_command`):
each launched process loads the model on its GPU, runs its share of every engine's batches
(:func:`debiaslab.batching.run_batches`), and the main one writes the same result files a
single process would. ``python -m debiaslab.launch CONFIGS.json OUT.json`` is what each
launched process runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from debiaslab import distributed
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import EvalConfig
from debiaslab.runner import RunResult, evaluate


def processes_for(processes: int | str = "auto") -> int:
    """How many processes: ``auto`` is one per visible GPU (at least one)."""
    if processes == "auto":
        return max(1, distributed.visible_gpus())
    count = int(processes)
    if count < 1:
        raise ConfigError(f"processes must be at least 1 or 'auto', got {processes!r}")
    return count


def evaluate_all(configs: Sequence[EvalConfig], processes: int | str = "auto") -> list[RunResult]:
    """Evaluate every config, in this process or launched on ``processes`` processes.

    Raises:
        ConfigError: the launched processes failed (their output is shown above).
    """
    count = processes_for(processes)
    if count == 1 or distributed.rank_and_world()[1] > 1:
        return [evaluate(config) for config in configs]
    with tempfile.TemporaryDirectory(prefix="debiaslab-launch-") as tmp:
        job, out = Path(tmp) / "configs.json", Path(tmp) / "results.json"
        job.write_text(json.dumps([c.to_record() for c in configs]), "utf-8")
        command = distributed.launch_command(count, ["debiaslab.launch", str(job), str(out)])
        env = distributed.launch_env(count, distributed.visible_gpus())
        code = subprocess.run(command, env=env).returncode
        if code != 0 or not out.is_file():
            raise ConfigError(
                f"the evaluation launched on {count} processes failed (exit {code}); its "
                "output is above. processes=1 runs it in this process."
            )
        rows = json.loads(out.read_text("utf-8"))
    return [
        RunResult(Path(row["path"]), json.loads(Path(row["path"]).read_text("utf-8")),
                  row["skipped"])
        for row in rows
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """One launched process: join the group, evaluate every config, the main one says where
    the results are."""
    job, out = (argv if argv is not None else sys.argv[1:])[:2]
    distributed.init()
    configs = [EvalConfig.from_record(c) for c in json.loads(Path(job).read_text("utf-8"))]
    results = [evaluate(config) for config in configs]
    if distributed.is_main():
        rows = [{"path": str(r.path), "skipped": r.skipped} for r in results]
        Path(out).write_text(json.dumps(rows), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
