"""Bootstrap confidence intervals shared by every benchmark (seeded, percentile method)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

N_BOOT = 1000
ALPHA = 0.05


def bootstrap_indices(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``n_boot`` resamples (rows) of ``n`` item indices drawn with replacement, seeded."""
    if n <= 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def percentile_ci(samples: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """The (alpha/2, 1-alpha/2) percentile interval of bootstrap ``samples``, NaNs ignored."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(low), float(high))


def bootstrap_ci(
    statistic: Callable[[np.ndarray], dict[str, float]],
    n: int,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = ALPHA,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs for every metric a statistic returns.

    Args:
        statistic: maps an index array (a resample of item positions) to a flat dict of floats.
        n: number of items.
        n_boot: number of resamples.
        seed: RNG seed; the same seed gives the same intervals.
        alpha: 1 - confidence level.

    Returns:
        ``{metric: (low, high)}`` for every key of ``statistic``'s result.

    Example:
        >>> values = np.array([0.0, 1.0] * 50)
        >>> ci = bootstrap_ci(lambda idx: {"mean": float(values[idx].mean())}, len(values))
        >>> 0.35 < ci["mean"][0] < 0.5 < ci["mean"][1] < 0.65
        True
    """
    draws: dict[str, list[float]] = {}
    for idx in bootstrap_indices(n, n_boot, seed):
        for key, value in statistic(idx).items():
            draws.setdefault(key, []).append(value)
    return {key: percentile_ci(np.array(vals), alpha) for key, vals in draws.items()}


def bootstrap_vectorized(
    statistic: Callable[[np.ndarray], dict[str, np.ndarray]],
    n: int,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = ALPHA,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Point estimates and percentile CIs for a statistic that works on a batch of resamples.

    ``statistic`` maps an index matrix of shape ``(k, n)`` (each row one sample of item
    positions) to ``{metric: array of shape (k,)}``. It is called once with the identity row
    (the point estimate) and once with all ``n_boot`` resamples.

    Example:
        >>> values = np.array([0.0, 1.0] * 50)
        >>> point, ci = bootstrap_vectorized(lambda idx: {"mean": values[idx].mean(axis=1)}, 100)
        >>> point["mean"], ci["mean"][0] < 0.5 < ci["mean"][1]
        (0.5, True)
    """
    identity = np.arange(n)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        point = {k: float(v[0]) for k, v in statistic(identity).items()}
        draws = statistic(bootstrap_indices(n, n_boot, seed))
    # Counts (keys ending in n_*) describe the sample; they get no interval.
    intervals = {
        k: percentile_ci(v, alpha)
        for k, v in draws.items()
        if not k.rsplit("/", 1)[-1].startswith("n_")
    }
    return point, intervals
