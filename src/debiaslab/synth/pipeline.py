"""Generate, filter, card and save a synthetic debiasing dataset (``debiaslab synth generate``).

:func:`synthesize` runs the whole chain for a :class:`~debiaslab.synth.spec.Spec`: generate
(resumable), filter (counting what each step removes), split by ``pair_id`` and save a Hugging
Face dataset folder with its card, staged so a failed run leaves an earlier dataset intact.
:func:`load_texts` and :func:`read_manifest` read such a folder back.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import debiaslab
from debiaslab.cards.dataset import dataset_card
from debiaslab.data.swaps import load_swaps
from debiaslab.errors import ConfigError
from debiaslab.results import slug
from debiaslab.synth import filters as F
from debiaslab.synth.spec import Spec
from debiaslab.textclass import REGARD_MODEL, TOXIC_LABEL, TOXICITY_MODEL, load_classifier

log = logging.getLogger(__name__)

MANIFEST = "synth.json"
CARD = "README.md"
SPLITS = ("train", "test")


def _slug(text: str) -> str:

    return slug(text)


def in_test(pair_id: str, fraction: float) -> bool:
    """Whether a pair goes to the held-out split (a stable hash of its id, not the RNG).

    Example:
        >>> in_test("abc", 0.0), in_test("abc", 0.999999)
        (False, True)
    """
    value = int(hashlib.sha256(f"synth-split:{pair_id}".encode()).hexdigest()[:12], 16)
    return value / 16**12 < fraction


def group_swaps(spec: Spec) -> dict[tuple[str, str], dict[str, str]]:
    """(from group, to group) → word swaps, from the groups' aligned terms; a gender spec
    without terms uses the WinoBias lists (two groups only)."""
    groups = spec.groups
    if all(g.terms for g in groups):
        return {
            (a.name, b.name): F.swap_table(a.terms, b.terms)
            for a in groups
            for b in groups
            if a is not b
        }
    if spec.attribute == "gender" and len(groups) == 2:
        swaps = load_swaps()
        return {(groups[0].name, groups[1].name): swaps, (groups[1].name, groups[0].name): swaps}
    raise ConfigError(
        f"spec {spec.name!r}: counterfactual pairing needs aligned 'terms' for every group "
        "(or attribute: gender with two groups, for the WinoBias swap lists); set "
        "filters.counterfactual: false to skip it"
    )


def _distribution(rows: Sequence[dict[str, Any]], groups: Sequence[str]) -> dict[str, dict]:
    """Per group: its regard-label shares (rounded) and count."""
    out = {}
    for group in groups:
        labels = Counter(r["regard"] for r in rows if r["group"] == group)
        total = sum(labels.values())
        out[group] = {
            "n": total,
            **{k: round(v / total, 4) if total else 0.0 for k, v in sorted(labels.items())},
        }
    return out


def synthesize(
    spec: Spec,
    backend,
    n: int,
    out: str | os.PathLike,
    *,
    toxicity_model: str | None = None,
    toxic_label: str | None = None,
    regard_model: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, filter and save a dataset for ``spec``; return its manifest.

    1. **Generate** ``n`` texts (rounded up so every group × topic × template cell gets the
       same number) with a backend; answers are appended to ``OUT/raw/<backend>.jsonl`` as
       they come, so an interrupted run resumes without asking again.
    2. **Filter**, counting what each step removes: cleaning and minimum length; exact and
       near duplicates; toxicity at or above a threshold (a classifier, default the one of
       ``evaluate``'s ``toxicity``); regard balance (every group keeps the same count of each
       regard label per topic); counterfactual pairing (each text with its group words
       swapped, added as its own row of the other group, sharing a ``pair_id``).
    3. **Split** by ``pair_id`` (a text and its counterfactual never straddle train and test).
    4. **Save** a Hugging Face dataset folder: ``data/<split>-00000-of-00001.parquet``, a
       dataset card ``README.md`` (:mod:`debiaslab.cards.dataset`) and ``synth.json`` (the
       same facts as data). Everything is staged and moved into place only when complete: a
       failed run leaves an earlier dataset intact. ``datasets.load_dataset(OUT)`` reads it,
       offline, and :func:`debiaslab.hub.client.push_dataset` uploads it as it is.

    Args:
        spec: groups, topics, templates and filter settings.
        backend: a :class:`~debiaslab.synth.backends.TransformersBackend` or
            :class:`~debiaslab.synth.backends.OpenAIBackend`.
        n: texts to generate before filtering (rounded up to fill every cell equally).
        out: the dataset folder (created; an earlier dataset there is replaced at the end).
        toxicity_model, toxic_label: classifier and label of the toxicity filter (default
            `debiaslab.textclass.TOXICITY_MODEL` and its label; ``tiny-toxicity`` offline).
        regard_model: classifier of the regard balance (default
            `debiaslab.textclass.REGARD_MODEL`; ``tiny-regard`` offline).
        seed: seed of the regard subsampling.
        progress: tqdm bars.

    Raises:
        ConfigError: filters that need a classifier cannot load it, or no text survives.
    """

    out = Path(out)
    settings = spec.filters
    toxicity_model = toxicity_model or TOXICITY_MODEL
    toxic_label = toxic_label or TOXIC_LABEL
    regard_model = regard_model or REGARD_MODEL
    # Classifiers and swaps first: a bad name fails before anything is generated.
    toxicity = load_classifier(toxicity_model) if settings.toxicity_threshold is not None else None
    if toxicity is not None and toxic_label not in toxicity.labels:
        raise ConfigError(
            f"toxicity classifier {toxicity_model} has labels {toxicity.labels}, not "
            f"{toxic_label!r}; pass --toxic-label"
        )
    regard = load_classifier(regard_model)
    swaps = group_swaps(spec) if settings.counterfactual else {}

    requests = spec.requests(n)
    raw_path = out / "raw" / f"{_slug(backend.name)}.jsonl"
    answers = backend.answer(requests, raw_path, progress=progress)
    rows = [
        {
            "id": r.id,
            "text": F.clean_text(answers[r.id]),
            "group": r.group,
            "topic": r.topic,
            "template": r.template,
            "prompt": r.prompt,
        }
        for r in requests
    ]
    steps: list[dict[str, Any]] = []

    def apply(name: str, keep: Sequence[bool], detail: str) -> None:
        nonlocal rows
        before = len(rows)
        rows = [row for row, k in zip(rows, keep, strict=True) if k]
        steps.append({"step": name, "kept": len(rows), "removed": before - len(rows)})
        steps[-1]["detail"] = detail
        log.info("%s: kept %d of %d", name, len(rows), before)

    apply(
        "length",
        [len(r["text"].split()) >= max(settings.min_words, 1) for r in rows],
        f"at least {max(settings.min_words, 1)} words in the first paragraph",
    )
    apply(
        "exact duplicates",
        F.exact_duplicates([r["text"] for r in rows]),
        "lower case, no punctuation",
    )
    if settings.near_duplicate is not None:
        apply(
            "near duplicates",
            F.near_duplicates([r["text"] for r in rows], settings.near_duplicate),
            f"character {F.SHINGLE}-gram Jaccard >= {settings.near_duplicate} "
            "(MinHash-LSH, verified)",
        )
    texts = [r["text"] for r in rows]
    tox_scores = (
        toxicity.scores(texts, toxic_label, progress=progress) if toxicity is not None else None
    )
    probs = regard.predict(texts, progress=progress)
    for i, row in enumerate(rows):
        row["toxicity"] = float(tox_scores[i]) if tox_scores is not None else None
        row["regard"] = regard.labels[int(probs[i].argmax())] if len(texts) else None
    group_names = [g.name for g in spec.groups]
    if tox_scores is not None:
        apply(
            "toxicity",
            [r["toxicity"] < settings.toxicity_threshold for r in rows],
            f"{toxicity_model} P({toxic_label}) < {settings.toxicity_threshold}",
        )
    regard_before = _distribution(rows, group_names)
    if settings.regard_balance:
        apply(
            "regard balance",
            F.balance_by_label(
                [r["group"] for r in rows],
                [r["regard"] for r in rows],
                [r["topic"] for r in rows],
                seed=seed,
            ),
            f"{regard_model}: same count of each regard label in every group, per topic",
        )
    if not rows:
        summary = ", ".join(f"{s['step']} −{s['removed']}" for s in steps)
        raise ConfigError(
            f"all {len(requests)} generated texts were removed by the filters ({summary}); "
            "nothing was written. Generate more (--n), or loosen the spec's filters"
        )
    for row in rows:
        row["source"] = "generated"
        row["pair_id"] = row["id"]
    n_unpaired = 0
    if settings.counterfactual:
        added = []
        for row in rows:
            paired = False
            for other in group_names:
                if other == row["group"]:
                    continue
                swapped = F.counterfactuals([row["text"]], swaps[(row["group"], other)])[0]
                if swapped is None:
                    continue
                paired = True
                added.append(
                    {
                        **row,
                        "id": f"{row['id']}-{_slug(other)}",
                        "text": swapped,
                        "group": other,
                        "source": "counterfactual",
                    }
                )
            n_unpaired += not paired
        if added:
            cf_texts = [r["text"] for r in added]
            cf_probs = regard.predict(cf_texts, progress=progress)
            cf_tox = (
                toxicity.scores(cf_texts, toxic_label, progress=progress) if toxicity else None
            )
            for i, row in enumerate(added):
                row["regard"] = regard.labels[int(cf_probs[i].argmax())]
                row["toxicity"] = float(cf_tox[i]) if cf_tox is not None else None
        steps.append(
            {
                "step": "counterfactual pairs",
                "kept": len(rows) + len(added),
                "removed": 0,
                "added": len(added),
                "detail": f"group words swapped; {n_unpaired} texts had none and stay unpaired",
            }
        )
        rows = rows + added
        rows.sort(key=lambda r: (r["pair_id"], r["source"] != "generated", r["group"]))
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row in rows:
        splits["test" if in_test(row["pair_id"], settings.test_fraction) else "train"].append(row)
    splits = {name: part for name, part in splits.items() if part}
    manifest = {
        "debiaslab_version": debiaslab.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.as_dict(),
        "spec_file": spec.source,
        "backend": {"name": backend.name, **backend.settings()},
        "n_requested": n,
        "n_generated": len(requests),
        "per_cell": len(requests) // spec.n_cells,
        "classifiers": {
            "toxicity": toxicity_model if toxicity is not None else None,
            "toxic_label": toxic_label if toxicity is not None else None,
            "regard": regard_model,
        },
        "steps": steps,
        "regard_before_balance": regard_before,
        "regard_final": _distribution(rows, group_names),
        "splits": {
            name: {"n": len(part), **Counter(r["group"] for r in part)}
            for name, part in splits.items()
        },
        "n_rows": len(rows),
        "seed": seed,
    }
    write_dataset(out, splits, manifest)
    return manifest


def write_dataset(out: Path, splits: dict[str, list[dict[str, Any]]], manifest: dict) -> None:
    """Write the parquet splits, the card and the manifest, all or nothing."""
    import datasets

    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".synth-staging-", dir=out))
    try:
        files = []
        for name, part in splits.items():
            rel = f"data/{name}-00000-of-00001.parquet"
            (stage / "data").mkdir(exist_ok=True)
            datasets.Dataset.from_list(part).to_parquet(str(stage / rel))
            files.append(rel)
        (stage / CARD).write_text(dataset_card(manifest), encoding="utf-8")
        text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (stage / MANIFEST).write_text(text, encoding="utf-8")
        old = out / "data"
        if old.is_dir():  # splits of an earlier run that this one does not have
            for stale in old.glob("*.parquet"):
                if f"data/{stale.name}" not in files:
                    stale.unlink()
        (out / "data").mkdir(exist_ok=True)
        for rel in [*files, CARD, MANIFEST]:  # the manifest last: it marks a complete dataset
            os.replace(stage / rel, out / rel)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset folder written by :func:`synthesize`."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ConfigError(
            f"{folder}: no {MANIFEST}; point to a folder written by 'debiaslab synth generate'"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_texts(folder: str | os.PathLike, split: str = "train") -> list[str]:
    """The ``text`` column of one split of a synthetic dataset folder (generated texts and
    their counterfactuals)."""
    import datasets

    read_manifest(folder)
    path = Path(folder) / "data" / f"{split}-00000-of-00001.parquet"
    if not path.is_file():
        raise ConfigError(f"{folder}: no {split} split ({path.name})")
    return list(datasets.Dataset.from_parquet(str(path))["text"])


def steps_table(manifest: dict[str, Any]):
    """The filter steps of a manifest as a DataFrame (step, rule, removed, added, rows after)."""
    import pandas as pd

    rows = [
        {"step": "generated", "rule": f"{manifest['per_cell']} per cell", "removed": 0,
         "added": 0, "rows": manifest["n_generated"]},
        *(
            {"step": s["step"], "rule": s.get("detail", ""), "removed": s["removed"],
             "added": s.get("added", 0), "rows": s["kept"]}
            for s in manifest["steps"]
        ),
    ]  # fmt: skip
    return pd.DataFrame(rows)


def regard_table(manifest: dict[str, Any]):
    """Regard-label shares per group before the balance and in the final data (DataFrame)."""
    import pandas as pd

    rows = []
    for stage, key in (("before balance", "regard_before_balance"), ("final", "regard_final")):
        for group, dist in manifest[key].items():
            rows.append({"stage": stage, "group": group, **dist})
    return pd.DataFrame(rows).fillna(0.0)
