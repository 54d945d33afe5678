"""One self-describing JSON file per run, written atomically, and a tidy loader over them.

A result file holds ``metrics`` (a flat dict of floats with ``/``-joined keys), ``ci`` (95%
bootstrap intervals), ``higher_is_better`` (``true``/``false``, or ``null`` where the ideal is
a midpoint such as 50, given in ``ideal``; both from the emitting module's ``METRICS``
declarations, :mod:`debiaslab.metrics`), the resolved ``config``, ``model``, ``benchmark``,
``n_items``, ``timing``, package version, git hash, environment and date. Per-item records go
beside it as ``<run_id>.items.csv``. The file name is the run id: a rerun with the same
configuration finds it and can skip the work.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform as _platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import debiaslab
from debiaslab.env import detect_platform
from debiaslab.errors import DataFormatError
from debiaslab.io import write_bytes_atomic
from debiaslab.metrics import Metric, directions
from debiaslab.validate import write_error

SCHEMA = "debiaslab.result/1"
# Side files written beside a result as ``<run_id>.<name>.json`` (not results themselves).
ARTIFACT_NAMES = ("predictions",)


@dataclass
class BenchmarkOutput:
    """What a benchmark returns: metrics with CIs and directions, plus per-item records.

    ``declared`` is the emitting module's ``METRICS``; ``higher_is_better`` and ``ideal`` are
    read from it (:func:`debiaslab.metrics.directions`), and a metric it does not declare is an
    :class:`~debiaslab.metrics.UndeclaredMetricError`.
    """

    benchmark: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    declared: Mapping[str, Metric]
    n_items: int
    items: pd.DataFrame | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # Side outputs written beside the result (e.g. StereoSet predictions in the official format).
    artifacts: dict[str, Any] = field(default_factory=dict)
    higher_is_better: dict[str, bool | None] = field(init=False)
    ideal: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.higher_is_better, self.ideal = directions(
            self.declared, self.metrics, benchmark=self.benchmark
        )


def slug(text: str) -> str:
    """File-name-safe form of a model name or path.

    Example:
        >>> slug("google/flan-t5-base")
        'google--flan-t5-base'
    """
    text = text.rstrip("/").replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-80:]


GENERATIVE_SCORES = ("toxicity", "regard", "honest")


def headline_metrics(keys: Sequence[str], *, with_p_values: bool = False) -> list[str]:
    """The metrics a card reports: top-level scores, ``overall`` scores and group gaps.

    Kept: keys without ``/``, keys with an ``overall`` part, generative scores
    (``toxicity/mean``, ``regard/negative``, ``honest/score``) and ``*/gap``; counts
    (``n_*``, ``neutral``) are dropped. Order is kept. ``with_p_values`` also keeps each gap's
    permutation p-value. A leading ``mc/`` (StereoSet's prompt form) is a namespace: the rest
    of the key is judged (``mc/position_bias`` is kept).

    Example:
        >>> headline_metrics(["metric_score", "bias_type/race/metric_score", "n_pairs",
        ...     "intrasentence/overall/ss", "intrasentence/overall/n_examples", "overall/icat",
        ...     "toxicity/mean", "gender/toxicity/gap", "gender/toxicity/gap_p_value"])
        ['metric_score', 'intrasentence/overall/ss', 'overall/icat', 'toxicity/mean', \
'gender/toxicity/gap']
    """
    out = []
    for key in keys:
        parts = key.split("/")
        parts = parts[1:] if parts[0] == "mc" and len(parts) > 1 else parts
        leaf = parts[-1]
        if leaf.startswith("n_") or leaf == "neutral":
            continue
        if (
            len(parts) == 1
            or "overall" in parts
            or (len(parts) == 2 and parts[0] in GENERATIVE_SCORES)
            or leaf == "gap"
            or (with_p_values and leaf == "gap_p_value")
        ):
            out.append(key)
    return out


def run_id(model: str, benchmark: str, config: dict[str, Any], stage: str = "eval") -> str:
    """Deterministic experiment id: model, benchmark, stage and a hash of the config."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return f"{slug(model)}__{benchmark}__{stage}__{digest[:8]}"


def git_hash(cwd: str | Path | None = None) -> str | None:
    """The checkout's commit (with ``-dirty`` if modified), or ``None`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Versions and hardware that a result depends on (no secrets, no paths)."""
    import torch
    import transformers

    info = {
        "python": _platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": detect_platform(),
        "machine": _platform.machine(),
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # processes that shared the work (one per GPU under accelerate launch)
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def make_record(
    output: BenchmarkOutput,
    *,
    model: dict[str, Any],
    config: dict[str, Any],
    timing: dict[str, float],
    stage: str = "eval",
    run: str | None = None,
) -> dict[str, Any]:
    """Assemble the self-describing result record of one run."""
    rid = run or run_id(model.get("name", "model"), output.benchmark, config, stage)
    return _jsonable(
        {
            "schema": SCHEMA,
            "run_id": rid,
            "benchmark": output.benchmark,
            "stage": stage,
            "model": model,
            "metrics": output.metrics,
            "ci": {k: list(v) for k, v in output.ci.items()},
            "higher_is_better": output.higher_is_better,
            "ideal": output.ideal,
            "n_items": output.n_items,
            "config": {**output.config, **config},
            "timing": timing,
            "debiaslab_version": debiaslab.__version__,
            "git_hash": git_hash(Path(__file__).parent),
            "environment": environment_info(model.get("device")),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )


def write_result(
    record: dict[str, Any],
    out_dir: str | Path,
    items: pd.DataFrame | None = None,
    artifacts: dict[str, Any] | None = None,
) -> Path:
    """Write ``<run_id>.json`` (+ ``.items.csv``, + ``.<artifact>.json``) atomically.

    Every text is rendered before anything is written, each file replaces its previous
    version in one rename, and the result JSON is written last: a failure never leaves a
    partial result behind, and a result file always has its side files. Returns its path.
    """
    out = Path(out_dir)
    rid = record["run_id"]
    texts: dict[str, str] = {}
    if items is not None:
        texts[f"{rid}.items.csv"] = items.to_csv(index=False)
        record["items_file"] = f"{rid}.items.csv"
    for name, content in (artifacts or {}).items():
        if name not in ARTIFACT_NAMES:
            raise ValueError(f"unknown artifact {name!r}; known: {ARTIFACT_NAMES}")
        texts[f"{rid}.{name}.json"] = json.dumps(_jsonable(content), indent=1) + "\n"
        record.setdefault("artifact_files", {})[name] = f"{rid}.{name}.json"
    texts[f"{rid}.json"] = json.dumps(record, indent=2, allow_nan=False) + "\n"
    # Every file is staged under a hidden name first (read_all skips those), then renamed:
    # a disk that fills up or a folder that refuses writes leaves no new side file beside an
    # old result, and the previous result and its side files stay as they were.
    staged: list[tuple[Path, Path]] = []
    try:
        for name, text in texts.items():
            tmp = write_bytes_atomic(out / f".{name}.staged", text.encode("utf-8"))
            staged.append((tmp, out / name))
        for tmp, dest in staged:  # the result JSON last
            os.replace(tmp, dest)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise write_error(exc, out / f"{rid}.json", atomic=True) from exc
    return out / f"{rid}.json"


def read_result(path: str | Path) -> dict[str, Any]:
    """Read one result file, checking that it is a debiaslab result."""
    path = Path(path)
    try:
        record = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"not a valid JSON result file ({exc})", file=path) from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise DataFormatError(
            f"not a debiaslab result (schema must be {SCHEMA!r})", file=path, field="schema"
        )
    for key in ("run_id", "benchmark", "metrics"):
        if key not in record:
            raise DataFormatError("missing required field", file=path, field=key)
    return record


def read_all(results_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every result file under ``results_dir`` (recursively), read.

    Side files are skipped, and so are JSON files that are not results at all (no ``schema``
    field: a planted benchmark, a curve, a manifest living beside the results). A file that is
    not valid JSON, or that claims another schema, is an error naming it.
    """
    out = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        if any(path.name.endswith(f".{name}.json") for name in ARTIFACT_NAMES):
            continue
        if path.name.startswith("."):  # an interrupted atomic write
            continue
        try:
            record = json.loads(path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None  # read_result says what is wrong with it
        if record is not None and not (isinstance(record, dict) and "schema" in record):
            continue
        out.append((path, read_result(path)))
    return out


def load_all(results_dir: str | Path) -> pd.DataFrame:
    """Every result under ``results_dir`` (recursively) as a tidy frame, one row per metric.

    Columns: run_id, model, family, benchmark, stage, metric, value, ci_low, ci_high,
    higher_is_better, ideal, n_items, date, file.
    """
    rows = []
    for path, record in read_all(results_dir):
        model = record.get("model") or {}
        for metric, value in record["metrics"].items():
            low, high = (record.get("ci") or {}).get(metric) or (None, None)
            rows.append(
                {
                    "run_id": record["run_id"],
                    "model": model.get("name"),
                    "family": model.get("family"),
                    "benchmark": record["benchmark"],
                    "stage": record.get("stage", "eval"),
                    "metric": metric,
                    "value": float("nan") if value is None else float(value),
                    "ci_low": float("nan") if low is None else float(low),
                    "ci_high": float("nan") if high is None else float(high),
                    "higher_is_better": (record.get("higher_is_better") or {}).get(metric),
                    "ideal": (record.get("ideal") or {}).get(metric),
                    "n_items": record.get("n_items"),
                    "date": record.get("date"),
                    "file": str(path),
                }
            )
    columns = [
        "run_id",
        "model",
        "family",
        "benchmark",
        "stage",
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "higher_is_better",
        "ideal",
        "n_items",
        "date",
        "file",
    ]
    return pd.DataFrame(rows, columns=columns)


def write_speed(
    out_dir: str | Path,
    name: str,
    metrics: dict[str, float],
    *,
    declared: Mapping[str, Metric],
    config: dict[str, Any] | None = None,
    device: str | None = None,
) -> Path:
    """A speed benchmark's measurements as a result file (benchmark ``speed``, stage the
    benchmark's ``name``), which the report's speed table reads. ``declared``: the speed
    script's ``METRICS``. Returns its path."""
    output = BenchmarkOutput("speed", metrics, {}, declared, n_items=0)
    record = make_record(
        output,
        model={"name": (config or {}).get("model", name), "device": device},
        config={"name": name, **(config or {})},
        timing={},
        stage=name,
    )
    return write_result(record, out_dir)


# Numbers for cards and reports


def recency(record: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key of the latest record: its date, then its run id."""
    return str(record.get("date") or ""), str(record.get("run_id") or "")


def decimals_for(values: Sequence[float | None]) -> int:
    """Decimals that give the largest value three significant digits (0 to 6)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 3
    return min(6, max(0, 2 - math.floor(math.log10(max(finite)))))


def as_number(value: Any) -> float | None:
    """A finite float, or None (missing, NaN, not a number, a bool)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def value_with_ci(value: float | None, ci: Sequence[Any] | None, decimals: int) -> str:
    """``value [low, high]`` with ``decimals`` (— for a missing value; no bracket without a CI)."""
    if value is None:
        return "—"
    text = f"{value:.{decimals}f}"
    low, high = (as_number(ci[0]), as_number(ci[1])) if ci and len(ci) == 2 else (None, None)
    if low is not None and high is not None:
        text += f" [{low:.{decimals}f}, {high:.{decimals}f}]"
    return text
