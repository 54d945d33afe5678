"""The card (``README.md``) of a results dataset: one row per run (model, benchmark, stage, date).

:func:`debiaslab.results_share.push_results` uploads it with the result files; runs of tiny
offline models are marked as smoke tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import debiaslab
from debiaslab.cards.markdown import front_matter
from debiaslab.config import get_preset
from debiaslab.hub.scrub import scrub


def _is_tiny(name: str) -> bool:
    """Whether a model name is an offline tiny model (a smoke test, not a real checkpoint)."""
    preset = get_preset(name)
    return (preset is not None and preset.tiny is not None) or name.startswith("tiny-")


def results_card(
    records: Sequence[Mapping[str, Any]], *, repo_id: str, files: int | None = None
) -> str:
    """The README of a results dataset: one row per run (model, benchmark, stage, date).

    Deterministic (rows sorted by model, benchmark, stage, date, run id); local paths and
    token-like strings are scrubbed.
    """

    def row(record: Mapping[str, Any]) -> tuple[str, ...]:
        model = record.get("model") or {}
        name = str(model.get("name") or "unknown")
        env = record.get("environment") or {}
        where = " ".join(str(v) for v in (env.get("platform"), env.get("gpu")) if v) or "—"
        return (
            name + (" (tiny offline model)" if _is_tiny(name) else ""),
            str(record.get("benchmark")),
            str(record.get("stage", "eval")),
            str(record.get("date") or "—")[:10],
            where,
            f"`{record.get('run_id')}`",
        )

    rows = sorted(row(r) for r in records)
    benchmarks = sorted({str(r.get("benchmark")) for r in records})
    version = debiaslab.__version__
    front = {
        "tags": ["debiaslab", "bias-evaluation", "results"],
        "pretty_name": f"debiaslab results ({repo_id.split('/')[-1]})",
    }
    lines = [
        *front_matter(front),
        "",
        f"# debiaslab results: {repo_id}",
        "",
        f"Result files of {len(records)} run{'s' * (len(records) != 1)} made with debiaslab "
        f"(benchmarks: {', '.join(benchmarks) or 'none'})"
        + (f", {files} files in all" if files is not None else "")
        + ". Each run is one JSON file (schema `debiaslab.result/1`: metrics, 95% bootstrap "
        "intervals, configuration, model, environment, date), with its per-item records "
        "(`<run_id>.items.csv`) and other side files beside it.",
        "",
        "| Model | Benchmark | Stage | Date | Platform | Run |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(cells)} |" for cells in rows),
        "",
        "Runs of tiny offline models are smoke tests of the pipeline, not measurements of real "
        "checkpoints.",
        "",
        "## Use",
        "",
        "```bash",
        f"debiaslab results pull {repo_id} --results results",
        "make report",
        "```",
        "",
        "or, in Python:",
        "",
        "```python",
        "from debiaslab.results_share import pull_results",
        "",
        f'pull_results("{repo_id}", "results")',
        "```",
        "",
        f"Uploaded with debiaslab {version}.",
        "",
    ]
    return scrub("\n".join(lines))
