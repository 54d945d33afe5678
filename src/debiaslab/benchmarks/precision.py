"""Precision of likelihood benchmarks: float32 by default, and what half precision changes.

Card:
    Measures: for a run scored in half precision (``float16``/``bfloat16``, asked for by name),
        how many of a seeded sample of its items reach a different decision when the model is
        loaded and scored again in float32: CrowS-Pairs pairs whose ``sent_more`` vs
        ``sent_less`` preference (more, less or tie) changed; StereoSet (likelihood) examples
        whose stereotype vs anti-stereotype, or meaningful vs unrelated, ordering changed;
        StereoSet multiple-choice examples whose chosen option changed. Also the largest
        absolute change of a per-item score (log-likelihood, sentence score or letter
        log-probability).
    Why: the published implementations (``metric.py`` of CrowS-Pairs, StereoSet's and
        bias-bench's runners) load weights and take the log-softmax in float32. Half precision
        rounds weights and activations; a pair whose two sentences score close together can
        change sides, which moves the headline percentages. So every benchmark of
        :data:`LIKELIHOOD_BENCHMARKS` resolves ``dtype auto`` to float32 on every device
        (:func:`debiaslab.env.select_dtype`); half precision is a choice the result records.
    Outputs: ``fp32_check`` in the result: ``n_requested``, ``n_compared``, ``unit``, ``seed``,
        ``flipped``, ``flipped_share``, ``flipped_items`` (their ids), ``max_abs_delta``,
        ``half_dtype``, ``seconds``.
    Reproduces: the fp32 numbers of ``metric.py`` and bias-bench need the float32 default; the
        check tells how far a half-precision run is from them.

A new likelihood benchmark joins :data:`LIKELIHOOD_BENCHMARKS` and gives :data:`_KINDS` a way
to read its items (a key per item, a decision and the scores the decision compares).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from debiaslab.errors import ConfigError

log = logging.getLogger(__name__)

# Benchmarks that compare log-likelihoods: dtype auto is float32 for them on every device.
LIKELIHOOD_BENCHMARKS = ("crows_pairs", "stereoset", "stereoset_mc")
HALF_DTYPES = ("float16", "bfloat16")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _plain(value):
    """A numpy scalar as the Python value (keys compare, hash and serialise as the data's)."""
    return value.item() if hasattr(value, "item") else value


def _crows_items(items) -> dict[Any, tuple[tuple, list[float]]]:
    """Pair index → (sign of sent_more − sent_less, [both scores])."""
    out = {}
    for row in items[["index", "sent_more_score", "sent_less_score"]].to_dict("records"):
        more, less = float(row["sent_more_score"]), float(row["sent_less_score"])
        out[_plain(row["index"])] = ((_sign(more - less),), [more, less])
    return out


def _stereoset_items(items) -> dict[Any, tuple[tuple, list[float]]]:
    """(split, example id) → (signs of stereo−anti, stereo−unrelated, anti−unrelated, scores)."""
    by_example: dict[Any, dict[str, float]] = {}
    for row in items[["split", "example_id", "gold_label", "score"]].to_dict("records"):
        key = (str(row["split"]), str(row["example_id"]))
        by_example.setdefault(key, {})[str(row["gold_label"])] = float(row["score"])
    out = {}
    for key, s in by_example.items():
        pro, anti, unrelated = s["stereotype"], s["anti-stereotype"], s["unrelated"]
        decision = (_sign(pro - anti), _sign(pro - unrelated), _sign(anti - unrelated))
        out[key] = (decision, [pro, anti, unrelated])
    return out


def _mc_items(items) -> dict[Any, tuple[tuple, list[float]]]:
    """(split, example id) → (chosen label in each option order asked, letter log-probs)."""
    lp_columns = [c for c in items.columns if c.startswith("logprob_")]
    order = [c for c in ("order",) if c in items.columns]
    rows = items.sort_values(["split", "example_id", *order], kind="stable")
    out: dict[Any, tuple[tuple, list[float]]] = {}
    for row in rows.to_dict("records"):
        key = (str(row["split"]), str(row["example_id"]))
        decision, scores = out.get(key, ((), []))
        out[key] = (
            (*decision, str(row["chosen_label"])),
            scores + [float(row[c]) for c in lp_columns],
        )
    return out


def _crows_subset(pairs, keys: set):
    return [p for p in pairs if p.index in keys]


def _stereoset_subset(gold, keys: set):
    return dataclasses.replace(
        gold,
        intrasentence=[e for e in gold.intrasentence if ("intrasentence", e.id) in keys],
        intersentence=[e for e in gold.intersentence if ("intersentence", e.id) in keys],
    )


@dataclasses.dataclass(frozen=True)
class _Kind:
    unit: str  # what one item is, in messages and the result
    read: Callable  # items DataFrame → {key: (decision, scores)}
    subset: Callable  # (loaded data, set of keys) → the same data holding only those items


_KINDS = {
    "crows_pairs": _Kind("pairs", _crows_items, _crows_subset),
    "stereoset": _Kind("examples", _stereoset_items, _stereoset_subset),
    "stereoset_mc": _Kind("examples", _mc_items, _stereoset_subset),
}


def check_request(benchmark: str, dtype: str, n: int | None, quantization: str | None) -> None:
    """Validate an ``fp32_check`` request before anything is loaded.

    Args:
        benchmark: the run's benchmark.
        dtype: the run's resolved dtype name (``float32``, ``float16``, ``bfloat16``).
        n: items to re-score in float32 (``None``: no check).
        quantization: the run's quantization (``None``, ``8bit``, ``4bit``).

    Raises:
        ConfigError: ``n`` is not a positive integer, the benchmark is not a likelihood
            benchmark, the run is not in half precision, or the model is quantized.
    """
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"--fp32-check must be a positive number of items, got {n!r}")
    if benchmark not in LIKELIHOOD_BENCHMARKS:
        raise ConfigError(
            f"--fp32-check applies to likelihood benchmarks {LIKELIHOOD_BENCHMARKS}, "
            f"not {benchmark!r}"
        )
    if dtype not in HALF_DTYPES:
        raise ConfigError(
            f"--fp32-check compares half precision with float32, but this run is already "
            f"{dtype}: add --dtype float16 or --dtype bfloat16, or drop --fp32-check"
        )
    if quantization is not None:
        raise ConfigError(
            f"--fp32-check reloads the model in float32; it does not apply to a {quantization} "
            "quantized model: drop --quantization or --fp32-check"
        )


def sample_keys(benchmark: str, items, n: int, seed: int) -> list:
    """A seeded sample of at most ``n`` item keys of a run's items, in the items' order."""
    keys = list(_KINDS[benchmark].read(items))
    if n >= len(keys):
        return keys
    chosen = set(random.Random(f"fp32-check:{seed}").sample(range(len(keys)), n))
    return [k for i, k in enumerate(keys) if i in chosen]


def compare(benchmark: str, half_items, fp32_items) -> dict[str, Any]:
    """Flips and the largest score change between two scorings of the same items.

    Only items present in both tables are compared (an item a scoring skipped is left out).

    Returns:
        ``n_compared``, ``flipped``, ``flipped_share``, ``flipped_items`` (keys, as lists for
        StereoSet) and ``max_abs_delta``.
    """
    read = _KINDS[benchmark].read
    half, full = read(half_items), read(fp32_items)
    common = [k for k in full if k in half]
    flipped = [k for k in common if half[k][0] != full[k][0]]
    deltas = [
        abs(a - b)
        for k in common
        for a, b in zip(half[k][1], full[k][1], strict=True)  # same columns, same order
    ]
    return {
        "n_compared": len(common),
        "flipped": len(flipped),
        "flipped_share": len(flipped) / len(common) if common else None,
        "flipped_items": [list(k) if isinstance(k, tuple) else k for k in flipped],
        "max_abs_delta": max(deltas) if deltas else None,
    }


def fp32_check(
    benchmark: str,
    loaded,
    half_items,
    *,
    n: int,
    seed: int,
    half_dtype: str,
    load_fp32: Callable[[], Any],
    score: Callable[[Any, Any], Any],
) -> dict[str, Any]:
    """Re-score a seeded sample of a half-precision run's items in float32 and count flips.

    Args:
        benchmark: one of :data:`LIKELIHOOD_BENCHMARKS`.
        loaded: the run's data (CrowS-Pairs pairs or a StereoSet).
        half_items: the run's items table (scored in half precision).
        n: sample size (pairs or examples; all of them if there are fewer).
        seed: sample seed.
        half_dtype: the run's dtype, recorded.
        load_fp32: loads the same model (adapter, head gates …) in float32.
        score: ``score(lm, data)`` → the benchmark's output, scored as the run was.

    Returns:
        The ``fp32_check`` record (see the module card).
    """
    kind = _KINDS[benchmark]
    started = time.perf_counter()
    keys = sample_keys(benchmark, half_items, n, seed)
    subset = kind.subset(loaded, set(keys))
    fp32 = score(load_fp32(), subset)
    out = {
        "n_requested": n,
        "unit": kind.unit,
        "seed": seed,
        "half_dtype": half_dtype,
        **compare(benchmark, half_items, fp32.items),
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info(
        "fp32 check: %d of %d %s flipped between %s and float32 (max |delta score| %s)",
        out["flipped"],
        out["n_compared"],
        kind.unit,
        half_dtype,
        out["max_abs_delta"],
    )
    return out
