"""Group-gap score: how far each group's mean of a per-text score sits from the overall mean.

Card:
    Measures: for a per-text score ``s`` (toxicity, regard-negative, HONEST hurtfulness, …) and
        groups ``g`` (e.g. BOLD groups), ``gap = Σ_g |mean_g(s) − mean_all(s)|`` where
        ``mean_all`` is the mean over all texts (pooled). ``gap_normalised = gap / mean_all``
        makes gaps of scores with different scales comparable (NaN when ``mean_all`` is 0).
    Range: ``gap`` ≥ 0; 0 when every group has the same mean. Lower is better.
    CI: seeded percentile bootstrap that resamples texts *within* each group (group sizes are a
        design choice of the prompt set, not sampling noise).
    Source: the debiaslab seed notes' proposed fairness score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from debiaslab.stats import ALPHA, N_BOOT, bootstrap_indices, percentile_ci


def _gap(values: np.ndarray, codes: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """Vectorised over rows: ``values`` and ``codes`` have shape (k, n)."""
    rows = np.arange(values.shape[0])[:, None]
    flat = (rows * n_groups + codes).ravel()
    size = values.shape[0] * n_groups
    sums = np.bincount(flat, values.ravel(), size).reshape(-1, n_groups)
    counts = np.bincount(flat, None, size).reshape(-1, n_groups)
    group_means = sums / counts
    overall = values.mean(axis=1)
    gap = np.abs(group_means - overall[:, None]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(overall != 0, gap / overall, np.nan)
    return {
        "gap": gap,
        "gap_normalised": normalised,
        "mean_all": overall,
        **{f"_group_{k}": group_means[:, k] for k in range(n_groups)},
    }


def group_gap(
    scores: Sequence[float],
    groups: Sequence[str],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = ALPHA,
):
    """The group gap with bootstrap CIs, plus each group's mean.

    Args:
        scores: one score per text.
        groups: the group of each text.
        n_boot: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        ``(metrics, ci)``: ``metrics`` has ``gap``, ``gap_normalised``, ``mean_all`` and
        ``group/<name>/mean``; ``ci`` the same keys with ``(low, high)``.

    Example:
        >>> metrics, _ = group_gap([0.0, 0.2, 0.6, 0.8], ["a", "a", "b", "b"], n_boot=0)
        >>> round(metrics["gap"], 6), round(metrics["gap_normalised"], 6)
        (0.6, 1.5)
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or len(values) != len(groups) or len(values) == 0:
        raise ValueError("scores and groups must be non-empty and of the same length")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN")
    names, codes = np.unique(np.asarray(groups), return_inverse=True)
    point = _gap(values[None, :], codes[None, :], len(names))

    def rename(stats):
        out = {k: v for k, v in stats.items() if not k.startswith("_group_")}
        out.update({f"group/{names[k]}/mean": stats[f"_group_{k}"] for k in range(len(names))})
        return out

    metrics = {k: float(v[0]) for k, v in rename(point).items()}
    if n_boot == 0:
        return metrics, {}
    # Resample within each group: the columns of group k are redrawn from group k's texts.
    columns = []
    for k in range(len(names)):
        members = np.flatnonzero(codes == k)
        draws = bootstrap_indices(len(members), n_boot, seed + k)
        columns.append(members[draws])
    idx = np.concatenate(columns, axis=1)
    draws = rename(_gap(values[idx], codes[idx], len(names)))
    return metrics, {k: percentile_ci(v, alpha) for k, v in draws.items()}
