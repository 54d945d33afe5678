"""How far the people a text-to-image model draws are from a target distribution; CLIP similarity.

Card:
    Measures: for each prompt, the distribution of the perceived group (one axis: gender,
        race or hispanic; see :mod:`debiaslab.t2i.targets`) over its images, and its distance
        to a target distribution: KL divergence ``D(perceived ‖ target)``, total variation
        ``½ Σ_g |p_g − q_g|`` and the mean absolute share error ``mean_g |p_g − q_g|``; and,
        for prompts that ask for a group ("a photo of a female doctor"), the success rate.
    Inputs: per prompt, one prediction per image: a hard label (a group name or
        :data:`NO_PERSON`), or probabilities over the groups (a mapping, which may also hold
        :data:`NO_PERSON`, or a vector aligned with ``groups``).
    No person: an image whose label (or largest probability) is :data:`NO_PERSON` has no
        perceived group. It is left out of the distributions (shares are over images that show
        a person) but counted (``n_no_person``), and it is a failure for the success rate: the
        prompt asked for a person of a group and got none.
    Hard or soft: ``soft=False`` counts each image's argmax group (ties go to the earlier group
        in ``groups``); ``soft=True`` averages the probabilities over the groups (each person
        image's probabilities renormalised over the groups, its no-person mass dropped).
    Aggregation: overall values are means over prompts (each prompt weighs the same, whatever
        its image count); prompts without any person image have no distribution and are left
        out of the distribution means (``n_prompts_without_person`` counts them).
        ``kl_of_mean`` / ``tv_of_mean`` compare the prompt-averaged distribution with the
        prompt-averaged target (with one global target, e.g. PreciseDebias's, the distance
        of the whole image set from it).
    CI: seeded percentile bootstrap (:func:`debiaslab.stats.bootstrap_vectorized`). A
        prompt's values resample that prompt's *images*; overall values resample *prompts*
        (the prompt set is the sample the claim is about; images are nested in prompts).
        Plug-in distances are biased upwards with few images, and their percentile interval
        can then lie above the point estimate; compare models with the same image counts.
    Range and direction: KL ≥ 0 (nats), TV and mean absolute error in [0, 1], success rate in
        [0, 1]; distances lower-is-better, success higher-is-better (declared in :data:`METRICS`).
    KL smoothing: both distributions get ``eps`` (default :data:`EPS` = 1e-6) added to every
        group and are renormalised before ``Σ p log(p / q)``; without it one image of a group
        whose target share is 0 (BLS reports 0.0 % for some small occupations) makes KL
        infinite. With ``eps`` so small the value is unchanged to about 1e-5 elsewhere.
    CLIP similarity: :func:`cosine_similarity` of paired embeddings (images before/after a
        mitigation, prompt and caption); CLIPScore is :func:`debiaslab.t2i.clip.clip_score`.

Example:
    >>> metrics, ci = distribution_metrics(
    ...     {"a photo of a doctor": ["female", "male", "female"]},
    ...     groups=["female", "male"],
    ...     target={"female": 0.5, "male": 0.5},
    ... )
    >>> round(metrics["share/female"], 4), round(metrics["tv"], 4)
    (0.6667, 0.1667)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from debiaslab.metrics import Metric
from debiaslab.stats import ALPHA, N_BOOT, bootstrap_vectorized

NO_PERSON = "no_person"
EPS = 1e-6  # KL smoothing; keeps KL finite when a target share is 0

Prediction = str | Mapping[str, float] | Sequence[float] | np.ndarray
Target = Mapping[str, float] | Mapping[str, Mapping[str, float]]

# Keys of distribution_metrics: per prompt ``prompt/<prompt>/<name>``, overall ``<name>``.
METRICS = {
    "share/*": Metric(None, None, "fraction", "share of the person images perceived as this "
                      "group (the target share varies by prompt)"),
    "kl": Metric(False, None, "nats", "KL divergence D(perceived || target), eps-smoothed"),
    "tv": Metric(False, None, "fraction", "total variation distance to the target"),
    "mean_abs": Metric(False, None, "fraction", "mean |perceived share - target share| over "
                       "groups"),
    "kl_of_mean": Metric(False, None, "nats", "KL of the prompt-averaged distribution from the "
                         "prompt-averaged target"),
    "tv_of_mean": Metric(False, None, "fraction", "TV of the prompt-averaged distribution from "
                         "the prompt-averaged target"),
    "success_rate": Metric(True, None, "fraction", "share of images showing the requested "
                           "group"),
    "n_images": Metric(None, None, "count", "images"),
    "n_no_person": Metric(None, None, "count", "images without a person"),
    "n_prompts": Metric(None, None, "count", "prompts"),
    "n_prompts_without_person": Metric(None, None, "count", "prompts without any person image"),
}  # fmt: skip


# ------------------------------------------------------------------ encoding the predictions


def encode_predictions(
    predictions: Sequence[Prediction] | np.ndarray, groups: Sequence[str], *, where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (hard label index, probabilities over ``groups``).

    Args:
        predictions: one per image: a group name or :data:`NO_PERSON`; a mapping
            ``{group or NO_PERSON: probability}`` (missing keys are 0); or a vector aligned with
            ``groups``. A 2-D array is one vector per row.
        groups: the axis's groups, in order (the order breaks argmax ties).
        where: a prefix for error messages (e.g. the prompt).

    Returns:
        ``(hard, probs)``: ``hard[i]`` is the index of image i's group, or -1 for no person;
        ``probs[i]`` its probabilities renormalised over the groups (one-hot for a hard label,
        all zeros for no person).

    Raises:
        ValueError: an unknown label, a vector of the wrong length, negative or non-finite
            probabilities, or probabilities that are all 0.

    Example:
        >>> hard, probs = encode_predictions(["male", {"female": 0.6, "male": 0.2}, NO_PERSON],
        ...                                  ["female", "male"])
        >>> hard.tolist(), probs.round(2).tolist()
        ([1, 0, -1], [[0.0, 1.0], [0.75, 0.25], [0.0, 0.0]])
    """
    groups = list(groups)
    if len(set(groups)) != len(groups) or NO_PERSON in groups or not groups:
        raise ValueError(f"groups must be distinct, non-empty and not {NO_PERSON!r}: {groups}")
    index = {g: k for k, g in enumerate(groups)}
    k = len(groups)
    n = len(predictions)
    hard = np.full(n, -1, dtype=int)
    probs = np.zeros((n, k))
    for i, pred in enumerate(predictions):
        at = f"{where}image {i}"
        if isinstance(pred, str):
            if pred != NO_PERSON and pred not in index:
                raise ValueError(
                    f"{at}: unknown label {pred!r}; expected {groups} or {NO_PERSON!r}"
                )
            if pred != NO_PERSON:
                hard[i] = index[pred]
                probs[i, index[pred]] = 1.0
            continue
        if isinstance(pred, Mapping):
            unknown = set(pred) - set(index) - {NO_PERSON}
            if unknown:
                raise ValueError(f"{at}: unknown labels {sorted(unknown)}; expected {groups}")
            row = np.array([float(pred.get(g, 0.0)) for g in groups])
            none = float(pred.get(NO_PERSON, 0.0))
        else:
            row = np.asarray(pred, dtype=float).ravel()
            none = 0.0
            if row.shape != (k,):
                raise ValueError(f"{at}: {row.size} probabilities for {k} groups {groups}")
        if not (np.isfinite(row).all() and math.isfinite(none)) or (row < 0).any() or none < 0:
            raise ValueError(f"{at}: probabilities must be finite and ≥ 0, got {pred!r}")
        best = int(np.argmax(row))
        if row[best] <= 0.0 and none <= 0.0:
            raise ValueError(f"{at}: all probabilities are 0")
        if none > row[best]:
            continue  # no person: hard stays -1, probs stay 0
        hard[i] = best
        probs[i] = row / row.sum()
    return hard, probs


def _target_vector(target: Mapping[str, float], groups: Sequence[str], where: str) -> np.ndarray:
    if set(target) != set(groups):
        raise ValueError(
            f"{where}target groups {sorted(target)} differ from the classifier's {sorted(groups)};"
            " use one axis of a target, e.g. get_target(...)['gender']"
        )
    vec = np.array([float(target[g]) for g in groups])
    if not np.isfinite(vec).all() or (vec < 0).any() or abs(vec.sum() - 1.0) > 1e-6:
        raise ValueError(f"{where}target shares must be ≥ 0 and sum to 1, got {dict(target)}")
    return vec


# ------------------------------------------------------------------------------- distances


def _as_vectors(p, q) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(p, Mapping) or isinstance(q, Mapping):
        if not (isinstance(p, Mapping) and isinstance(q, Mapping)) or set(p) != set(q):
            raise ValueError("p and q must both be mappings over the same groups")
        keys = list(p)
        return np.array([p[g] for g in keys], float), np.array([q[g] for g in keys], float)
    p_vec, q_vec = np.asarray(p, float), np.asarray(q, float)
    if p_vec.shape != q_vec.shape:
        raise ValueError(f"p and q differ in shape: {p_vec.shape} vs {q_vec.shape}")
    return p_vec, q_vec


def _kl_rows(p: np.ndarray, q: np.ndarray, eps: float) -> np.ndarray:
    """KL along the last axis after adding ``eps`` to every entry and renormalising."""
    k = p.shape[-1]
    p_s = (p + eps) / (1.0 + k * eps)
    q_s = (q + eps) / (1.0 + k * eps)
    return (p_s * np.log(p_s / q_s)).sum(axis=-1)


def kl_divergence(
    p: Mapping[str, float] | Sequence[float],
    q: Mapping[str, float] | Sequence[float],
    *,
    eps: float = EPS,
) -> float:
    """``D(p ‖ q) = Σ_g p'_g log(p'_g / q'_g)`` in nats, with ``x' = (x + eps) / (1 + k·eps)``.

    ``p`` is the perceived distribution, ``q`` the target; both must sum to 1. ``eps`` keeps
    the value finite where a target share is 0 (see the module card).

    Example:
        >>> round(kl_divergence({"f": 2 / 3, "m": 1 / 3}, {"f": 0.5, "m": 0.5}, eps=0), 6)
        0.056633
    """
    p_vec, q_vec = _as_vectors(p, q)
    return float(_kl_rows(p_vec, q_vec, eps))


def total_variation(
    p: Mapping[str, float] | Sequence[float], q: Mapping[str, float] | Sequence[float]
) -> float:
    """``½ Σ_g |p_g − q_g|``: the share of images that would have to change group.

    Example:
        >>> round(total_variation([2 / 3, 1 / 3], [0.5, 0.5]), 6)
        0.166667
    """
    p_vec, q_vec = _as_vectors(p, q)
    return float(0.5 * np.abs(p_vec - q_vec).sum())


def mean_abs_error(
    p: Mapping[str, float] | Sequence[float], q: Mapping[str, float] | Sequence[float]
) -> float:
    """``mean_g |p_g − q_g|``: the average miss per group's share (= TV for two groups).

    Example:
        >>> round(mean_abs_error([0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]), 6)
        0.111111
    """
    p_vec, q_vec = _as_vectors(p, q)
    return float(np.abs(p_vec - q_vec).mean())


# ------------------------------------------------------------------ one prompt, then many


def perceived_distribution(
    predictions: Sequence[Prediction] | np.ndarray, groups: Sequence[str], *, soft: bool = False
) -> dict[str, float]:
    """Shares of the perceived groups among one prompt's images that show a person.

    Returns NaN shares when no image shows a person.

    Example:
        >>> perceived_distribution(["female", "male", "female", NO_PERSON], ["female", "male"])
        {'female': 0.6666666666666666, 'male': 0.3333333333333333}
    """
    hard, probs = encode_predictions(predictions, groups)
    rows = probs if soft else _one_hot(hard, len(groups))
    n_person = int((hard >= 0).sum())
    shares = rows.sum(axis=0) / n_person if n_person else np.full(len(groups), np.nan)
    return {g: float(s) for g, s in zip(groups, shares, strict=True)}


def success_rate(
    predictions: Sequence[Prediction] | np.ndarray, requested: str, groups: Sequence[str]
) -> float:
    """Share of images whose perceived group (argmax) is the ``requested`` one.

    Images without a person count as failures.

    Example:
        >>> success_rate(["female", "male", NO_PERSON, "female"], "female", ["female", "male"])
        0.5
    """
    if requested not in groups:
        raise ValueError(f"requested group {requested!r} is not one of {list(groups)}")
    hard, _ = encode_predictions(predictions, groups)
    if len(hard) == 0:
        raise ValueError("no images")
    return float((hard == list(groups).index(requested)).mean())


def _one_hot(hard: np.ndarray, k: int) -> np.ndarray:
    rows = np.zeros((len(hard), k))
    person = hard >= 0
    rows[np.flatnonzero(person), hard[person]] = 1.0
    return rows


def _mean_ignoring_nan(values: np.ndarray, axis: int) -> np.ndarray:
    """``nanmean`` without its warning on all-NaN slices (they give NaN)."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _prompt_statistic(rows, person, hard, target, requested_index, groups, eps):
    """Statistic over image resamples ``idx`` of shape (b, n) → arrays of shape (b,)."""

    def statistic(idx: np.ndarray) -> dict[str, np.ndarray]:
        counts = rows[idx].sum(axis=1)  # (b, k)
        n_person = person[idx].sum(axis=1)  # (b,)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = counts / n_person[:, None]
        diff = np.abs(shares - target)
        out = {f"share/{g}": shares[:, j] for j, g in enumerate(groups)}
        out["kl"] = _kl_rows(shares, target, eps)
        out["tv"] = 0.5 * diff.sum(axis=1)
        out["mean_abs"] = diff.mean(axis=1)
        if requested_index is not None:
            out["success_rate"] = (hard[idx] == requested_index).mean(axis=1)
        return out

    return statistic


def distribution_metrics(
    predictions_by_prompt: Mapping[str, Sequence[Prediction] | np.ndarray],
    groups: Sequence[str],
    target: Target,
    *,
    requested: Mapping[str, str] | None = None,
    soft: bool = False,
    eps: float = EPS,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = ALPHA,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Perceived distributions, distances to the target and success rates, with bootstrap CIs.

    Args:
        predictions_by_prompt: ``{prompt: [prediction per image]}`` for one axis (see
            :func:`encode_predictions` for the accepted forms).
        groups: the axis's groups, e.g. ``["female", "male"]``; a target must name exactly
            these (use one axis of :func:`debiaslab.t2i.targets.get_target`).
        target: one ``{group: share}`` for every prompt, or ``{prompt: {group: share}}``
            (e.g. each occupation's own BLS shares).
        requested: ``{prompt: group}`` for prompts that ask for a group; success rates are
            computed for those prompts only (and their mean overall).
        soft: average probabilities instead of counting argmax labels (module card).
        eps: KL smoothing (module card).
        n_boot: bootstrap resamples (0: no intervals).
        seed: bootstrap seed; the overall CI uses ``seed``, prompt j (in input order)
            ``seed + 1 + j``.
        alpha: 1 − confidence level.

    Returns:
        ``(metrics, ci)``. ``metrics`` is flat: per prompt ``prompt/<p>/share/<g>``,
        ``…/kl``, ``…/tv``, ``…/mean_abs``, ``…/success_rate`` (when requested),
        ``…/n_images``, ``…/n_no_person``; overall (means over prompts) ``share/<g>``,
        ``kl``, ``tv``, ``mean_abs``, ``success_rate``, ``kl_of_mean``, ``tv_of_mean``,
        ``n_prompts``, ``n_prompts_without_person``, ``n_images``, ``n_no_person``.
        ``ci`` maps every non-count key to ``(low, high)``; NaN where undefined.

    Raises:
        ValueError: no prompts, a prompt without images, a bad prediction or target, or a
            requested group that is not in ``groups``.
    """
    groups = list(groups)
    if not predictions_by_prompt:
        raise ValueError("no prompts")
    per_target = bool(target) and all(isinstance(v, Mapping) for v in target.values())
    metrics: dict[str, float] = {}
    ci: dict[str, tuple[float, float]] = {}
    prompt_points: list[dict[str, float]] = []
    target_rows = []
    n_images = n_no_person = 0
    for j, (prompt, predictions) in enumerate(predictions_by_prompt.items()):
        where = f"prompt {prompt!r}: "
        if len(predictions) == 0:
            raise ValueError(f"{where}no images")
        if per_target and prompt not in target:
            raise ValueError(f"{where}no target (targets are given per prompt)")
        goal = _target_vector(target[prompt] if per_target else target, groups, where)
        requested_index = None
        if requested is not None and prompt in requested:
            if requested[prompt] not in groups:
                raise ValueError(f"{where}requested group {requested[prompt]!r} not in {groups}")
            requested_index = groups.index(requested[prompt])
        hard, probs = encode_predictions(predictions, groups, where=where)
        rows = probs if soft else _one_hot(hard, len(groups))
        statistic = _prompt_statistic(rows, hard >= 0, hard, goal, requested_index, groups, eps)
        point, intervals = _bootstrap(statistic, len(hard), n_boot, seed + 1 + j, alpha)
        prefix = f"prompt/{prompt}/"
        metrics.update({prefix + k: v for k, v in point.items()})
        metrics[prefix + "n_images"] = float(len(hard))
        metrics[prefix + "n_no_person"] = float((hard < 0).sum())
        ci.update({prefix + k: v for k, v in intervals.items()})
        prompt_points.append(point)
        target_rows.append(goal)
        n_images += len(hard)
        n_no_person += int((hard < 0).sum())

    keys = [f"share/{g}" for g in groups] + ["kl", "tv", "mean_abs"]
    if any("success_rate" in p for p in prompt_points):
        keys.append("success_rate")
    values = np.array([[p.get(k, np.nan) for k in keys] for p in prompt_points])  # (P, m)
    targets = np.array(target_rows)  # (P, k)
    k = len(groups)

    def overall(idx: np.ndarray) -> dict[str, np.ndarray]:
        means = _mean_ignoring_nan(values[idx], axis=1)  # (b, m)
        out = {key: means[:, c] for c, key in enumerate(keys)}
        has_person = ~np.isnan(values[idx][:, :, 0])  # (b, P'): prompts with a distribution
        target_sum = (targets[idx] * has_person[..., None]).sum(axis=1)  # (b, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_target = target_sum / has_person.sum(axis=1)[:, None]
        mean_shares = means[:, :k]
        out["kl_of_mean"] = _kl_rows(mean_shares, mean_target, eps)
        out["tv_of_mean"] = 0.5 * np.abs(mean_shares - mean_target).sum(axis=1)
        return out

    point, intervals = _bootstrap(overall, len(prompt_points), n_boot, seed, alpha)
    metrics.update(point)
    metrics["n_prompts"] = float(len(prompt_points))
    metrics["n_prompts_without_person"] = float(np.isnan(values[:, 0]).sum())
    metrics["n_images"] = float(n_images)
    metrics["n_no_person"] = float(n_no_person)
    ci.update(intervals)
    return metrics, ci


def _bootstrap(statistic, n: int, n_boot: int, seed: int, alpha: float):
    if n_boot == 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            point = statistic(np.arange(n)[None, :])
        return {key: float(v[0]) for key, v in point.items()}, {}
    return bootstrap_vectorized(statistic, n, n_boot=n_boot, seed=seed, alpha=alpha)


# -------------------------------------------------------------------------- CLIP embeddings


def _as_array(x: Any) -> np.ndarray:
    """A float64 array from a numpy array, list or torch tensor (any device)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def cosine_similarity(a: Any, b: Any) -> float | np.ndarray:
    """Cosine similarity of paired embeddings: rows of ``a`` with the same rows of ``b``.

    ``a`` and ``b`` are vectors of shape (d,) or batches (n, d) (one side may be a single
    vector, broadcast against the other's rows). Returns a float for two vectors, else one
    value per row.

    Raises:
        ValueError: shapes that do not pair up, or a zero vector (its direction is undefined).

    Example:
        >>> cosine_similarity([1.0, 0.0], [1.0, 1.0])
        0.7071067811865475
    """
    a_arr, b_arr = _as_array(a), _as_array(b)
    if a_arr.shape[-1] != b_arr.shape[-1] or a_arr.ndim > 2 or b_arr.ndim > 2:
        raise ValueError(f"embeddings do not pair up: shapes {a_arr.shape} and {b_arr.shape}")
    norm_a = np.linalg.norm(a_arr, axis=-1)
    norm_b = np.linalg.norm(b_arr, axis=-1)
    if (norm_a == 0).any() or (norm_b == 0).any():
        raise ValueError("an embedding is the zero vector; cosine similarity is undefined")
    cos = (a_arr * b_arr).sum(axis=-1) / (norm_a * norm_b)
    cos = np.clip(cos, -1.0, 1.0)
    return float(cos) if cos.ndim == 0 else cos


def image_similarity(img_emb_a: Any, img_emb_b: Any) -> float | np.ndarray:
    """Cosine similarity of paired image embeddings (e.g. an image before and after debiasing,
    same seed): how much of the picture a mitigation kept. Range [−1, 1]; not clipped."""
    return cosine_similarity(img_emb_a, img_emb_b)


def caption_similarity(txt_emb_a: Any, txt_emb_b: Any) -> float | np.ndarray:
    """Cosine similarity of paired text embeddings (e.g. a prompt and its rewrite, or a prompt
    and a caption of the image): whether the meaning survived. Range [−1, 1]; not clipped."""
    return cosine_similarity(txt_emb_a, txt_emb_b)
