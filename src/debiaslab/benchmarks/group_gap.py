"""Group-gap score: how far each group's mean of a per-text score sits from the overall mean.

Card:
    Measures: for a per-text score ``s`` (toxicity, regard-negative, HONEST hurtfulness, …) and
        groups ``g`` (e.g. BOLD groups), ``gap = Σ_g |mean_g(s) − mean_all(s)|`` where
        ``mean_all`` is the mean over all texts (pooled). ``gap_normalised = gap / mean_all``
        makes gaps of scores with different scales comparable (NaN when ``mean_all`` is 0).
    Range: ``gap`` ≥ 0; 0 when every group has the same mean. Lower is better.
    Chance level: finite samples give a gap above 0 even when the groups do not differ, and
        the more groups the larger it is. ``gap_null_mean`` is the gap expected by chance (the
        mean gap over random reassignments of the texts to groups of the same sizes) and
        ``gap_p_value`` the permutation test of "no group differs" (share of reassignments
        with a gap at least as large, add-one corrected). Decide *whether* there is a gap with
        the p-value; read its *size* from ``gap`` and its interval.
    CI: seeded bootstrap that resamples texts *within* each group (group sizes are a design
        choice of the prompt set, not sampling noise). ``gap`` and ``gap_normalised`` get the
        *basic* (reverse-percentile) interval ``[2θ − q_hi, 2θ − q_lo]`` clipped at 0: an
        absolute value sits on the boundary at 0, where percentile intervals of the bootstrap
        never reach 0 even without any group difference; the basic interval reaches 0 when
        the gap is within noise (for two groups exactly when the group difference is not
        significant). With many small groups it can still exclude 0 by chance — the p-value
        does not. Group means get percentile intervals.
    Source: the debiaslab seed notes' proposed fairness score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from debiaslab.stats import ALPHA, N_BOOT, bootstrap_indices, percentile_ci

N_PERM = 1000


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


def basic_ci(point: float, samples: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """The basic bootstrap interval ``[2θ − q_hi, 2θ − q_lo]``, clipped at 0 (a distance).

    Example:
        >>> basic_ci(0.1, np.array([0.1, 0.2, 0.3]), alpha=0.0)
        (0.0, 0.1)
    """
    low, high = percentile_ci(samples, alpha)
    return (max(0.0, 2 * point - high), max(0.0, 2 * point - low))


def group_gap(
    scores: Sequence[float],
    groups: Sequence[str],
    *,
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    seed: int = 0,
    alpha: float = ALPHA,
):
    """The group gap with bootstrap CIs, a permutation p-value, and each group's mean.

    Args:
        scores: one score per text.
        groups: the group of each text.
        n_boot: bootstrap resamples (0: no intervals).
        n_perm: random reassignments for ``gap_null_mean`` and ``gap_p_value`` (0: neither).
        seed: seed of the bootstrap and the permutations.
        alpha: 1 - confidence level.

    Returns:
        ``(metrics, ci)``: ``metrics`` has ``gap``, ``gap_normalised``, ``mean_all``,
        ``group/<name>/mean``, ``group/<name>/n_items`` and (with ``n_perm``)
        ``gap_null_mean`` and ``gap_p_value``; ``ci`` the intervals of gaps and means.

    Raises:
        ValueError: empty or mismatched input, NaN scores, or a single group.

    Example:
        >>> metrics, _ = group_gap([0.0, 0.2, 0.6, 0.8], ["a", "a", "b", "b"], n_boot=0, n_perm=0)
        >>> round(metrics["gap"], 6), round(metrics["gap_normalised"], 6)
        (0.6, 1.5)
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or len(values) != len(groups) or len(values) == 0:
        raise ValueError("scores and groups must be non-empty and of the same length")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN")
    names, codes = np.unique(np.asarray(groups), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"a group gap needs at least two groups, got {list(names)}")
    counts = np.bincount(codes, minlength=len(names))
    point = _gap(values[None, :], codes[None, :], len(names))

    def rename(stats):
        out = {k: v for k, v in stats.items() if not k.startswith("_group_")}
        out.update({f"group/{names[k]}/mean": stats[f"_group_{k}"] for k in range(len(names))})
        return out

    metrics = {k: float(v[0]) for k, v in rename(point).items()}
    metrics.update(
        {f"group/{name}/n_items": float(n) for name, n in zip(names, counts, strict=True)}
    )
    if n_perm:
        rng = np.random.default_rng([seed, 1])
        shuffled = rng.permuted(np.broadcast_to(codes, (n_perm, len(codes))), axis=1)
        null = _gap(np.broadcast_to(values, shuffled.shape), shuffled, len(names))["gap"]
        # A tolerance: permutations that reproduce the observed grouping tie with it exactly.
        at_least = int((null >= metrics["gap"] - 1e-12).sum())
        metrics["gap_null_mean"] = float(null.mean())
        metrics["gap_p_value"] = (1 + at_least) / (1 + n_perm)
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
    ci = {k: percentile_ci(v, alpha) for k, v in draws.items()}
    for key in ("gap", "gap_normalised"):
        ci[key] = basic_ci(metrics[key], draws[key], alpha)
    return metrics, ci
