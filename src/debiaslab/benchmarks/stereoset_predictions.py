"""StereoSet's official predictions files: read, write, and score one against a gold file.

Card:
    Format: ``{"intrasentence": [{"id": ..., "score": ...}, ...], "intersentence": [...]}``
        (either key may be absent, not both; higher score = preferred by the model), as the
        official ``code/evaluation.py`` reads it. Scoring: :mod:`.stereoset_official`.
    Errors name the file, the record (``intrasentence[3]``) and the field.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from debiaslab.benchmarks.stereoset_official import (
    COUNT,
    METRICS,
    OVERALL,
    MissingScoresError,
    quote_ids,
    score_predictions_with_ci,
)
from debiaslab.data.fetch import parse_json
from debiaslab.data.stereoset import GOLD_LABELS, SPLITS, load_stereoset
from debiaslab.errors import ConfigError, DataFormatError, DataNotFoundError
from debiaslab.metrics import directions
from debiaslab.stats import ALPHA, N_BOOT


def read_predictions_by_split(path: str | Path) -> dict[str, dict[str, float]]:
    """Read an official StereoSet predictions file, keeping its splits apart.

    Args:
        path: JSON file ``{"intrasentence": [{"id": str, "score": number}, ...],
            "intersentence": [...]}``; either key may be absent, not both. Records may carry
            extra fields (ignored).

    Returns:
        ``{split: {sentence_id: score}}`` for each split key in the file (splits in
        ``SPLITS`` order, records in file order).

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: naming the file, record (e.g. ``intrasentence[3]``) and field, for an
            empty file, invalid JSON, a wrong shape, a missing or non-string id, a missing,
            non-numeric or NaN score, or an id that occurs twice (in either split).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: StereoSet predictions file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"not UTF-8 text ({err.reason})", file=path) from None
    if not text.strip():
        raise DataFormatError(
            'file is empty; expected {"intrasentence": [{"id": ..., "score": ...}], ...}',
            file=path,
        )
    data = parse_json(text, path)
    if not isinstance(data, dict):
        raise DataFormatError(
            f"expected a JSON object with 'intrasentence' and/or 'intersentence' lists, got "
            f"{type(data).__name__}",
            file=path,
        )
    unknown = [key for key in data if key not in SPLITS]
    if unknown:
        raise DataFormatError(
            f"unknown top-level key; expected only {' and/or '.join(map(repr, SPLITS))}",
            file=path,
            field=str(unknown[0]),
        )
    if not data:
        raise DataFormatError(
            f"no predictions: the object has neither {' nor '.join(map(repr, SPLITS))}",
            file=path,
        )

    by_split: dict[str, dict[str, float]] = {}
    first_seen: dict[str, str] = {}  # sentence id -> record where it first occurred
    for split in SPLITS:
        if split not in data:
            continue
        records = data[split]
        if not isinstance(records, list):
            raise DataFormatError(
                f'expected a list of {{"id": ..., "score": ...}} objects, got '
                f"{type(records).__name__}",
                file=path,
                field=split,
            )
        scores: dict[str, float] = {}
        for pos, record in enumerate(records):
            where = f"{split}[{pos}]"
            if not isinstance(record, dict):
                raise DataFormatError(
                    f'expected an object {{"id": ..., "score": ...}}, got {type(record).__name__}',
                    file=path,
                    row=where,
                )
            if "id" not in record:
                raise DataFormatError("missing", file=path, row=where, field="id")
            sentence_id = record["id"]
            if not isinstance(sentence_id, str) or not sentence_id:
                raise DataFormatError(
                    f"expected a non-empty string sentence id, got {sentence_id!r}",
                    file=path,
                    row=where,
                    field="id",
                )
            if sentence_id in first_seen:
                raise DataFormatError(
                    f"duplicate id {sentence_id!r} (first at {first_seen[sentence_id]})",
                    file=path,
                    row=where,
                    field="id",
                )
            first_seen[sentence_id] = where
            if "score" not in record:
                raise DataFormatError("missing", file=path, row=where, field="score")
            score = record["score"]
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise DataFormatError(
                    f"expected a number, got {score!r} ({type(score).__name__})",
                    file=path,
                    row=where,
                    field="score",
                )
            if math.isnan(score):
                raise DataFormatError("score is NaN", file=path, row=where, field="score")
            scores[sentence_id] = float(score)
        by_split[split] = scores
    return by_split


def read_predictions(path: str | Path) -> dict[str, float]:
    """Read an official StereoSet predictions file into ``{sentence_id: score}``.

    Same checks as :func:`read_predictions_by_split` (ids are unique across both splits).
    """
    return {
        sentence_id: score
        for scores in read_predictions_by_split(path).values()
        for sentence_id, score in scores.items()
    }


def write_predictions(
    scores_by_split: Mapping[str, Mapping[str, float]], path: str | Path
) -> Path:
    """Write ``{split: {sentence_id: score}}`` as an official predictions file, atomically.

    The file is written to a temporary file beside ``path`` and moved into place with
    ``os.replace``, so an interrupted write leaves any previous file intact.

    Args:
        scores_by_split: scores per split (``intrasentence`` and/or ``intersentence``).
        path: destination; parent folders are created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    unknown = sorted(set(scores_by_split) - set(SPLITS))
    if unknown:
        raise ConfigError(f"unknown StereoSet split(s) {unknown}; expected some of {SPLITS}")
    payload = {
        split: [
            {"id": sentence_id, "score": float(score)}
            for sentence_id, score in scores_by_split[split].items()
        ]
        for split in SPLITS
        if split in scores_by_split
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as tmp:
            json.dump(payload, tmp, indent=2)
            tmp.write("\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def score_predictions_file(
    gold_path: str | Path,
    predictions_path: str | Path,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Score an official predictions file against a gold StereoSet file.

    Only the splits present in the predictions file are evaluated (``overall`` is over them);
    every gold sentence of those splits must have a score; extra ids are ignored.

    Args:
        gold_path: gold file (official ``dev.json`` schema, or anything ``load_stereoset`` reads).
        predictions_path: predictions file (see :func:`read_predictions_by_split`).
        n_boot: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        ``{"benchmark", "gold", "predictions", "splits", "metrics", "ci", "higher_is_better",
        "ideal", "n_items", "n_items_by_split", "n_predictions", "n_predictions_unused",
        "bootstrap"}``: ``metrics`` and ``ci`` as
        :func:`~.stereoset_official.score_predictions_with_ci`; ``higher_is_better`` and
        ``ideal`` from :data:`~.stereoset_official.METRICS`; ``n_items`` the number of examples
        evaluated.

    Raises:
        DataFormatError: a malformed predictions file, or gold sentences without a score (naming
            the predictions file, the split as record and ``id`` as field).
    """
    gold = load_stereoset(gold_path)
    by_split = read_predictions_by_split(predictions_path)
    scores = {
        sid: score for split_scores in by_split.values() for sid, score in split_scores.items()
    }
    present = tuple(split for split in SPLITS if split in by_split)
    if not any(gold.split(split) for split in present):
        raise DataFormatError(
            f"the file has predictions for {', '.join(present)} only, and the gold file "
            f"{gold_path} has no examples there",
            file=predictions_path,
        )
    try:
        metrics, ci = score_predictions_with_ci(
            gold, scores, splits=present, n_boot=n_boot, seed=seed, alpha=alpha
        )
    except MissingScoresError as err:
        split, ids = next(iter(err.missing_by_split.items()))
        n_gold = len(GOLD_LABELS) * len(gold.split(split))
        raise DataFormatError(
            f"{len(ids)} of the {n_gold} gold {split} sentences in {gold_path} have no score "
            f"(first: {quote_ids(ids)}); score every sentence of each split in the file, or drop "
            "the split from the file",
            file=predictions_path,
            row=split,
            field="id",
        ) from err
    higher, ideal = directions(METRICS, metrics, benchmark="stereoset")
    evaluated = [split for split in present if gold.split(split)]
    gold_ids = {
        sentence.id for split in evaluated for ex in gold.split(split) for sentence in ex.sentences
    }
    return {
        "benchmark": "stereoset",
        "gold": str(gold_path),
        "predictions": str(predictions_path),
        "splits": evaluated,
        "metrics": metrics,
        "ci": ci,
        "higher_is_better": higher,
        "ideal": ideal,
        "n_items": metrics[f"{OVERALL}/{COUNT}"],
        "n_items_by_split": {split: metrics[f"{split}/{OVERALL}/{COUNT}"] for split in evaluated},
        "n_predictions": len(scores),
        "n_predictions_unused": len(scores.keys() - gold_ids),
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "alpha": alpha,
            "unit": "example, resampled within each split",
        },
    }
