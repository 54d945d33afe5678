"""One evaluation run, end to end: data → model → benchmark → result files.

The CLI verb ``debiaslab eval`` and the notebooks call :func:`evaluate`; the result file's name
is the run id (model, benchmark, stage and a hash of the configuration), so a rerun with the
same settings finds the existing result and skips the work unless ``force`` is set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from debiaslab.data.fetch import sha256_of
from debiaslab.errors import ConfigError
from debiaslab.results import BenchmarkOutput, make_record, run_id, write_result

log = logging.getLogger(__name__)

BENCHMARKS = ("crows_pairs", "stereoset", "stereoset_mc")


@dataclass
class RunResult:
    path: Path
    record: dict
    skipped: bool


def _load_data(benchmark: str, data: str | None, limit: int | None):
    if benchmark == "crows_pairs":
        from debiaslab.data.crows_pairs import load_crows_pairs

        pairs = load_crows_pairs(data)
        return pairs[:limit] if limit else pairs
    from debiaslab.data.stereoset import StereoSet, load_stereoset

    gold = load_stereoset(data)
    if limit:
        gold = StereoSet(
            intrasentence=gold.intrasentence[:limit],
            intersentence=gold.intersentence[:limit],
            source=gold.source,
            version=gold.version,
        )
    return gold


def _data_source(benchmark: str, data: str | None, loaded) -> tuple[str, str | None]:
    path = Path(data) if data else None
    if path is None and benchmark != "crows_pairs" and getattr(loaded, "source", ""):
        path = Path(loaded.source)
    if path is None:
        from debiaslab.data.fetch import resolve

        path = resolve("crows_pairs")
    return path.name, sha256_of(path) if path.is_file() else None


def evaluate(
    model: str,
    benchmark: str,
    output: str | Path,
    *,
    data: str | None = None,
    limit: int | None = None,
    mode: str = "auto",
    splits: list[str] | None = None,
    family: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    quantization: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
    use_safetensors: bool | None = True,
    stage: str = "eval",
    name: str | None = None,
    model_meta: dict | None = None,
) -> RunResult:
    """Evaluate ``model`` on ``benchmark`` and write ``output/<run_id>.json`` (+ items).

    Args:
        model: preset name, hub id or local directory.
        benchmark: ``crows_pairs``, ``stereoset`` (likelihood) or ``stereoset_mc`` (prompt).
        output: results directory.
        data: explicit data file; default: ``$DEBIASLAB_DATA_DIR`` → cache → download.
        limit: only the first ``limit`` pairs (CrowS-Pairs) or examples per split (StereoSet).
        mode: CrowS-Pairs scoring mode (``auto``, ``nangia``, ``harness``).
        splits: StereoSet splits (default: intrasentence for masked LMs, both otherwise).
        family, device, dtype, quantization, adapter, batch_size, trust_remote_code,
            use_safetensors: passed to :func:`debiaslab.models.load_model`.
        n_boot, seed: bootstrap resamples and seed (StereoSet MC: also the option order).
        force: recompute even if a result with this run id exists.
        progress: show progress bars.
        stage: experiment stage recorded in the result (``eval``, ``pre``, ``post`` …).
        name: the model's name in results and run ids (default: ``model``).
        model_meta: extra facts about the model to record (e.g. a planted stereotype rate).
    """
    from debiaslab.models import load_model

    if benchmark not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    if limit is not None and limit <= 0:
        raise ConfigError(f"--limit must be a positive number, got {limit}")
    loaded = _load_data(benchmark, data, limit)  # bad data fails before a model is loaded
    data_name, data_sha = _data_source(benchmark, data, loaded)
    name = name or model
    config = {
        "benchmark": benchmark,
        "model": name,
        "data": data_name,
        "data_sha256": data_sha,
        "limit": limit,
        "mode": mode,
        "splits": splits,
        "family": family,
        "dtype": dtype,
        "quantization": quantization,
        "adapter": adapter,
        "n_boot": n_boot,
        "seed": seed,
    }
    rid = run_id(name, benchmark, config, stage)
    target = Path(output) / f"{rid}.json"
    if target.is_file() and not force:
        import json

        log.info("%s exists: skipping (use force to recompute)", target)
        return RunResult(target, json.loads(target.read_text("utf-8")), skipped=True)

    lm = load_model(
        model,
        family=family,
        device=device,
        dtype=dtype,
        quantization=quantization,
        adapter=adapter,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
        use_safetensors=use_safetensors,
    )
    started = time.perf_counter()
    result = run_benchmark(
        lm,
        benchmark,
        loaded,
        mode=mode,
        splits=splits,
        n_boot=n_boot,
        seed=seed,
        progress=progress,
    )
    score_seconds = time.perf_counter() - started
    record = make_record(
        result,
        model={**lm.info, "name": name, **(model_meta or {})},
        config=config,
        timing={
            "load_seconds": round(lm.load_seconds, 3),
            "score_seconds": round(score_seconds, 3),
        },
        stage=stage,
        run=rid,
    )
    path = write_result(record, output, result.items, artifacts=result.artifacts)
    return RunResult(path, record, skipped=False)


def run_benchmark(
    lm, benchmark: str, loaded, *, mode="auto", splits=None, n_boot=1000, seed=0, progress=True
) -> BenchmarkOutput:
    """Run one benchmark on an already-loaded model and data (notebooks, tests, the demo)."""
    if benchmark == "crows_pairs":
        from debiaslab.benchmarks import crows_pairs

        return crows_pairs.run(lm, loaded, mode=mode, n_boot=n_boot, seed=seed, progress=progress)
    from debiaslab.benchmarks import stereoset

    if benchmark == "stereoset":
        return stereoset.run_likelihood(
            lm, loaded, splits=splits, n_boot=n_boot, seed=seed, progress=progress
        )
    return stereoset.run_multiple_choice(
        lm, loaded, splits=splits, seed=seed, n_boot=n_boot, progress=progress
    )


def score_stereoset_predictions(
    gold: str, predictions: str, output: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> RunResult:
    """Score an official StereoSet predictions file; write a result like ``evaluate`` does."""
    from debiaslab.benchmarks.stereoset_eval import score_predictions_file

    started = time.perf_counter()
    scored = score_predictions_file(gold, predictions, n_boot=n_boot, seed=seed)
    elapsed = time.perf_counter() - started
    out = BenchmarkOutput(
        benchmark="stereoset",
        metrics=scored["metrics"],
        ci=scored["ci"],
        higher_is_better=scored["higher_is_better"],
        n_items=scored["n_items"],
        ideal={k: 50.0 for k in scored["metrics"] if k.endswith("/ss")},
        config={"form": "predictions_file", "splits": list(scored["splits"])},
    )
    config = {
        "gold": Path(gold).name,
        "gold_sha256": sha256_of(Path(gold)),
        "predictions": Path(predictions).name,
        "predictions_sha256": sha256_of(Path(predictions)),
        "n_boot": n_boot,
        "seed": seed,
    }
    name = Path(predictions).stem
    record = make_record(
        out,
        model={"name": name, "source": str(predictions)},
        config=config,
        timing={"load_seconds": 0.0, "score_seconds": round(elapsed, 3)},
        stage="score",
        run=run_id(name, "stereoset", config, "score"),
    )
    path = write_result(record, output)
    return RunResult(path, record, skipped=False)
