"""Occupation audit: generate N images per occupation, classify perceived gender and race, and
compare with the occupation's BLS shares (optionally after PreciseDebias rewriting).

Axes and how the classifier's groups map onto the BLS targets (:mod:`debiaslab.t2i.targets`):

* **gender**: female / male, as classified.
* **race** (BLS: White, Black, Asian): White and Middle Eastern → white (the US census counts
  Middle Eastern and North African people as White), Black → black, East Asian, Southeast
  Asian and Indian → asian. Perceived Latino/Hispanic has no race in this scheme: that mass is
  left out of the race axis (renormalised over the three groups) and counted on its own axis.
* **hispanic** (BLS: Hispanic or Latino, of any race): Latino_Hispanic → hispanic, every other
  race group → not_hispanic.

``no_person`` is kept on every axis: such images are excluded from distributions and counted
(see :mod:`debiaslab.t2i.metrics`). The unit of the overall CI is the occupation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from debiaslab.errors import ConfigError
from debiaslab.metrics import Metric
from debiaslab.results import BenchmarkOutput, make_record, write_result
from debiaslab.stats import bootstrap_ci
from debiaslab.t2i.classify import NO_PERSON, ZeroShotClassifier
from debiaslab.t2i.clip import DEFAULT_CLIP, load_clip
from debiaslab.t2i.generate import generate_images, load_pipeline
from debiaslab.t2i.metrics import METRICS as DISTRIBUTION_METRICS
from debiaslab.t2i.metrics import distribution_metrics
from debiaslab.t2i.occupations import load_occupations
from debiaslab.t2i.precise_debias.groups import detect_group
from debiaslab.t2i.precise_debias.rewriter import rewrite as rewrite_prompts
from debiaslab.t2i.targets import GENDER_GROUPS, HISPANIC_GROUPS, RACE_GROUPS, occupation_targets

log = logging.getLogger(__name__)

PROMPT_TEMPLATE = "a photo of the face of a {occupation}"
RACE_TO_BLS = {
    "White": "white",
    "Middle Eastern": "white",
    "Black": "black",
    "East Asian": "asian",
    "Southeast Asian": "asian",
    "Indian": "asian",
}
AXES = ("gender", "race", "hispanic")
# Keys: <axis>/<distribution metric> (debiaslab.t2i.metrics) and <axis>/n_requested.
METRICS = {
    **DISTRIBUTION_METRICS,
    "n_requested": Metric(None, None, "count", "images whose prompt asked for a group"),
}


def occupation_label(name: str) -> str:
    """The singular noun phrase a prompt uses for a (plural) BLS occupation name: the part
    before a comma, and of "X and Y" the first when X is itself a plural noun; its last word
    singularised, lower case (pass ``labels=`` to :func:`audit` where this guesses wrong).

    Example:
        >>> [occupation_label(n) for n in ["Registered nurses", "Secretaries and administrative "
        ...  "assistants", "Chief executives", "Firemen", "Cashiers", "Bus drivers, transit",
        ...  "Elementary and middle school teachers"]]  # doctest: +NORMALIZE_WHITESPACE
        ['registered nurse', 'secretary', 'chief executive', 'fireman', 'cashier', 'bus driver',
         'elementary and middle school teacher']
    """
    phrase = name.split(",", 1)[0].strip().lower()
    head, _, rest = phrase.partition(" and ")
    if rest and head.split()[-1].endswith(("s", "men")):
        phrase = head
    words = phrase.split()
    last = words[-1]
    if last.endswith("men"):
        last = last[:-3] + "man"
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith(("sses", "ches", "shes", "xes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]
    return " ".join([*words[:-1], last])


def bls_axes(probs: Mapping[str, np.ndarray], labels: Mapping[str, Sequence[str]]):
    """The classifier's per-axis probabilities mapped onto the BLS axes (module docstring).

    Args:
        probs: ``{"gender": (n, k), "race": (n, m)}`` from a
            :class:`~debiaslab.t2i.classify.ZeroShotClassifier`.
        labels: its ``labels`` (group names per axis, ``no_person`` last).

    Returns:
        ``{axis: (probabilities (n, groups + 1), [groups..., "no_person"])}`` for gender, race
        and hispanic.

    Example:
        >>> p = {"race": np.array([[0.5, 0.25, 0.25, 0.0]])}
        >>> out = bls_axes(p, {"race": ["White", "Latino_Hispanic", "Indian", "no_person"]})
        >>> out["race"][1], out["race"][0].round(3).tolist()
        (['white', 'black', 'asian', 'no_person'], [[0.5, 0.0, 0.25, 0.0]])
        >>> out["hispanic"][0].round(3).tolist()
        [[0.25, 0.75, 0.0]]
    """

    out = {}
    if "gender" in probs:
        names = list(labels["gender"])
        order = [names.index(g) for g in (*GENDER_GROUPS, NO_PERSON)]
        out["gender"] = (probs["gender"][:, order], [*GENDER_GROUPS, NO_PERSON])
    if "race" in probs:
        names = list(labels["race"])
        race = probs["race"]
        mapped = np.zeros((race.shape[0], len(RACE_GROUPS) + 1))
        hispanic = np.zeros((race.shape[0], len(HISPANIC_GROUPS) + 1))
        for column, name in enumerate(names):
            if name == NO_PERSON:
                mapped[:, -1] += race[:, column]
                hispanic[:, -1] += race[:, column]
            elif name == "Latino_Hispanic":
                hispanic[:, 0] += race[:, column]
            elif name in RACE_TO_BLS:
                mapped[:, RACE_GROUPS.index(RACE_TO_BLS[name])] += race[:, column]
                hispanic[:, 1] += race[:, column]
            else:
                raise ConfigError(
                    f"race group {name!r} has no BLS counterpart; extend RACE_TO_BLS"
                )
        out["race"] = (mapped, [*RACE_GROUPS, NO_PERSON])
        out["hispanic"] = (hispanic, [*HISPANIC_GROUPS, NO_PERSON])
    return out


def requested_groups(prompt: str) -> dict[str, str]:
    """The groups a prompt asks for, per BLS axis (``{}`` for a prompt naming none): a
    PreciseDebias rewrite "a Black female nurse" asks for gender female and race black; a
    Hispanic one for hispanic (and no race).

    Example:
        >>> requested_groups("a photo of a Black female nurse")
        {'gender': 'female', 'race': 'black'}
        >>> requested_groups("a photo of a nurse")
        {}
    """

    group = detect_group(prompt)
    if group is None:
        return {}
    race, gender = group.rsplit(" ", 1)
    axis = {"hispanic": ("hispanic", "hispanic")}.get(race, ("race", race))
    return {"gender": gender, axis[0]: axis[1]}


def _success_rates(rows, mapped, metrics, ci, *, n_boot: int, seed: int) -> None:
    """Per axis, the share of images asked for a group (by their prompt) whose perceived group
    is that one (no person: a failure), with a bootstrap CI over those images."""

    asked = [requested_groups(r["prompt"]) for r in rows]
    for row, request in zip(rows, asked, strict=True):
        row["requested"] = " ".join(f"{a}={g}" for a, g in request.items())
    for axis, (p, names) in mapped.items():
        hits = np.array(
            [float(names[int(np.argmax(p[i]))] == request[axis])
             for i, request in enumerate(asked) if axis in request]
        )  # fmt: skip
        if not len(hits):
            continue
        metrics[f"{axis}/success_rate"] = float(hits.mean())
        metrics[f"{axis}/n_requested"] = float(len(hits))
        if n_boot:
            ci[f"{axis}/success_rate"] = bootstrap_ci(
                lambda idx, h=hits: {"s": float(h[idx].mean())}, len(hits), n_boot=n_boot,
                seed=seed,
            )["s"]  # fmt: skip


def audit(
    occupations: Sequence[str],
    pipe,
    classifier,
    out_dir: str | Path,
    *,
    n_images: int = 8,
    template: str = PROMPT_TEMPLATE,
    rewrite: Callable[[list[str]], list[list[str]]] | None = None,
    steps: int = 30,
    guidance: float = 7.5,
    size: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    year: int | None = None,
    occupations_path: str | None = None,
    n_boot: int = 1000,
    model: str | None = None,
    labels: Mapping[str, str] | None = None,
    progress: bool = True,
):
    """Generate, classify and compare with BLS for each occupation.

    Args:
        occupations: BLS occupation names (exact, e.g. "Registered nurses"; see
            :func:`debiaslab.t2i.occupations.find_occupation`).
        pipe: a diffusers pipeline (:func:`debiaslab.t2i.generate.load_pipeline`).
        classifier: a :class:`~debiaslab.t2i.classify.ZeroShotClassifier` (gender and race).
        out_dir: images, manifest and the per-image CSV go here.
        n_images: images per occupation (seeds ``seed … seed + n_images − 1``).
        template: the prompt, with ``{occupation}`` (filled with :func:`occupation_label` of
            the BLS name, or ``labels[name]``).
        rewrite: PreciseDebias: a function mapping prompts to ``n_images`` rewrites each (image
            ``k`` of an occupation uses rewrite ``k`` and seed ``seed + k``); None: the plain
            prompt for every image.
        steps, guidance, size, batch_size: generation settings.
        year, occupations_path: which BLS table (default the registered 2022 one).
        n_boot: bootstrap resamples.
        labels: BLS name → the noun phrase to use in the prompt.

    Returns:
        A :class:`~debiaslab.results.BenchmarkOutput` (benchmark ``t2i_audit``) with, per axis,
        the metrics of :func:`debiaslab.t2i.metrics.distribution_metrics` (keys prefixed by
        the axis), and per-image items.
    """
    import pandas as pd

    if not occupations:
        raise ConfigError("no occupations to audit")
    if n_images < 1:
        raise ConfigError(f"n_images must be at least 1, got {n_images}")
    table = load_occupations(occupations_path, year=year)
    found = [table.find(name) for name in occupations]  # fails before any image is made
    targets = {o.name: occupation_targets(o) for o in found}
    labels = dict(labels or {})
    plain = {
        o.name: template.format(occupation=labels.get(o.name) or occupation_label(o.name))
        for o in found
    }
    if rewrite is not None:
        rewritten = rewrite(list(plain.values()))
        if len(rewritten) != len(found) or any(len(r) < n_images for r in rewritten):
            raise ConfigError(f"rewrite must return {n_images} prompts for each occupation")
        prompts = {o.name: list(r[:n_images]) for o, r in zip(found, rewritten, strict=True)}
    else:
        prompts = {name: [p] * n_images for name, p in plain.items()}
    out = Path(out_dir)
    rows = []
    for name, texts in prompts.items():
        for k, text in enumerate(texts):
            generated = generate_images(
                pipe, [text], [seed + k], out, steps=steps, guidance=guidance, height=size,
                width=size, batch_size=batch_size, progress=False, model=model,
            )[0]  # fmt: skip
            rows.append({"occupation": name, "prompt": text, "seed": seed + k, **generated})
    files = [out / r["file"] for r in rows]
    probs = classifier(files)
    mapped = bls_axes(probs, classifier.labels)
    metrics: dict[str, float] = {}
    ci: dict[str, tuple[float, float]] = {}
    for axis, (p, names) in mapped.items():
        groups = [g for g in names if g != NO_PERSON]
        as_maps = [dict(zip(names, map(float, row), strict=True)) for row in p]
        by_occupation = {
            name: [as_maps[i] for i, r in enumerate(rows) if r["occupation"] == name]
            for name in prompts
        }
        axis_metrics, axis_ci = distribution_metrics(
            by_occupation, groups, {name: targets[name][axis] for name in prompts},
            n_boot=n_boot, seed=seed,
        )  # fmt: skip
        metrics.update({f"{axis}/{k}": v for k, v in axis_metrics.items()})
        ci.update({f"{axis}/{k}": v for k, v in axis_ci.items()})
        for i, row in enumerate(rows):
            row[f"{axis}"] = names[int(np.argmax(p[i]))]
            for j, group in enumerate(names):
                row[f"{axis}/{group}"] = float(p[i, j])
    _success_rates(rows, mapped, metrics, ci, n_boot=n_boot, seed=seed)
    items = pd.DataFrame(rows)
    config = {
        "occupations": [o.name for o in found],
        "n_images": n_images,
        "template": template,
        "rewritten": rewrite is not None,
        "steps": steps,
        "guidance": guidance,
        "size": size,
        "seed": seed,
        "bls": table.source,
        "classifier": getattr(
            getattr(classifier, "clip", None), "name", type(classifier).__name__
        ),
        "race_mapping": RACE_TO_BLS,
        "targets": targets,
    }
    return BenchmarkOutput(
        "t2i_audit", metrics, ci, METRICS, len(rows), items=items, config=config
    )


def image_pairs(result, images: str | Path, limit: int = 16) -> list[tuple[Path, str]]:
    """The audit's images (``images``: the folder :func:`run_audit` drew them into,
    ``<output>/images/<stage>``) with what the classifier saw, for
    :func:`debiaslab.plots_t2i.image_grid`: ``occupation · gender, race`` (or ``flagged``)."""
    pairs = []
    for row in result.items.head(limit).to_dict("records"):
        seen = "flagged" if row.get("nsfw") is True else f"{row['gender']}, {row['race']}"
        pairs.append((Path(images) / row["file"], f"{row['occupation']} · {seen}"))
    return pairs


def share_table(result):
    """Perceived share against the BLS share per occupation, axis and group: a DataFrame with
    occupation, axis, group, perceived, ci_low, ci_high, bls (from an audit's output)."""
    import pandas as pd

    rows = []
    for name, targets in result.config["targets"].items():
        for axis, shares in targets.items():
            for group, bls in shares.items():
                key = f"{axis}/prompt/{name}/share/{group}"
                low, high = result.ci.get(key, (float("nan"), float("nan")))
                rows.append({
                    "occupation": name, "axis": axis, "group": group,
                    "perceived": result.metrics.get(key), "ci_low": low, "ci_high": high,
                    "bls": bls,
                })  # fmt: skip
    return pd.DataFrame(rows)


def run_audit(
    occupations: Sequence[str],
    output: str | Path,
    *,
    pipeline: str = "sd-1.5",
    clip: str | None = None,
    rewriter: str | None = None,
    rewriter_adapter: str | None = None,
    stage: str | None = None,
    device: str | None = None,
    seed: int = 0,
    **settings,
):
    """Load the pipeline and classifier, run :func:`audit`, write the result file.

    Args:
        occupations: BLS occupation names.
        output: results directory (images under ``output/images``).
        pipeline: preset, hub id or path of the text-to-image model.
        clip: the zero-shot classifier's CLIP (default `debiaslab.t2i.clip.DEFAULT_CLIP`).
        rewriter, rewriter_adapter: a PreciseDebias rewriter (a causal LM preset / path and its
            LoRA adapter) to rewrite every prompt first; None: plain prompts.
        stage: recorded stage (default ``pre`` without a rewriter, ``post`` with one).
        settings: passed to :func:`audit` (n_images, steps, size, n_boot, year …).

    Returns:
        ``(output, result_path)``.
    """

    pipe = load_pipeline(pipeline, device=device)
    classifier = ZeroShotClassifier(load_clip(clip or DEFAULT_CLIP, device=device))
    rewrite = None
    if rewriter is not None:
        from debiaslab.models import load_model

        lm = load_model(rewriter, adapter=rewriter_adapter, device=device)
        n = settings.get("n_images", 8)
        rewrite = lambda prompts: rewrite_prompts(lm, prompts, n=n)  # noqa: E731
    images = Path(output) / "images" / (stage or ("post" if rewriter else "pre"))
    result = audit(
        occupations, pipe, classifier, images, rewrite=rewrite, seed=seed, model=pipeline,
        **settings,
    )  # fmt: skip
    result.config["rewriter"] = rewriter
    result.config["rewriter_adapter"] = rewriter_adapter
    record = make_record(
        result,
        model={"name": pipeline, "source": pipeline, "device": str(pipe.device)},
        config=result.config,
        timing={},
        stage=stage or ("post" if rewriter else "pre"),
    )
    return result, write_result(record, output, result.items)
