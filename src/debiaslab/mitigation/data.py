"""Training data for fine-tuning mitigation: CrowS-Pairs counter-stereotypes and CDA.

Recipes: ``crows_counter``, the seed project's (the counter-stereotypical sentence of each
CrowS-Pairs pair in a seeded training half; a research baseline, since CrowS-Pairs asks to be
used for evaluation only, and :func:`check_crows_evaluation` refuses to score trained pairs),
and ``cda``, counterfactual data augmentation (Zhao et al. 2018; Webster et al. 2020). Entry
points: :func:`recipe_texts`, :func:`crows_counter_texts`, :func:`split_pairs`,
:func:`cda_texts`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from debiaslab.data.crows_pairs import CrowsPair
from debiaslab.data.crows_pairs_revised import file_format, load_pairs
from debiaslab.data.fetch import decode_utf8
from debiaslab.data.swaps import SWAP_FILES, load_swaps, swap_gender
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.synth.pipeline import load_texts, read_manifest

SPLITS = ("all", "train", "heldout")
HELDOUT_FRACTION = 0.5


def in_heldout(pair_id: int | str, seed: int = 0, fraction: float = HELDOUT_FRACTION) -> bool:
    """Whether a pair is held out: sha256 of (seed, id) below ``fraction`` (stable per pair).

    The assignment of one pair never depends on which other pairs are loaded.

    Example:
        >>> sum(in_heldout(i) for i in range(1000))
        520
    """
    digest = hashlib.sha256(f"crows-split:{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_pairs(
    pairs: Sequence[CrowsPair],
    part: str,
    *,
    seed: int = 0,
    fraction: float = HELDOUT_FRACTION,
) -> list[CrowsPair]:
    """The ``train``, ``heldout`` or ``all`` part of CrowS-Pairs (split by pair id, seeded).

    The split holds across data versions: the revised English and the French files
    (:mod:`debiaslab.data.crows_pairs_revised`) keep the original record index as the id of
    each revised or translated pair (``"17"`` hashes as ``17`` does), and their new pairs
    (``LA0``…) were never in the original, so a model trained on one version's training half
    is evaluated on the held-out half of any version without seeing its training pairs.
    """
    if part not in SPLITS:
        raise ConfigError(f"unknown CrowS-Pairs split {part!r}; expected one of {SPLITS}")
    if not 0 < fraction < 1:
        raise ConfigError(f"the held-out fraction must be in (0, 1), got {fraction}")
    if part == "all":
        return list(pairs)
    keep = part == "heldout"
    return [p for p in pairs if in_heldout(p.index, seed, fraction) == keep]


def counter_stereotypical(pair: CrowsPair) -> str:
    """The sentence of a pair that ``metric.py`` counts as not stereotypical."""
    return pair.sent_less if pair.direction == "stereo" else pair.sent_more


def crows_counter_texts(
    pairs: Sequence[CrowsPair], *, seed: int = 0, fraction: float = HELDOUT_FRACTION
) -> list[str]:
    """The counter-stereotypical sentences of the *training* part of the pairs.

    The ``crows_counter`` recipe, the seed project's: the counter-stereotypical sentence of
    each CrowS-Pairs pair (``sent_less`` of a ``stereo`` pair, ``sent_more`` of an
    ``antistereo`` pair — the side ``metric.py`` counts as *not* stereotypical). Pairs are
    split once, by pair id and a seed, into a training part and a held-out part
    (:func:`split_pairs`); only the training part is trained on and only the held-out part may
    be evaluated afterwards. CrowS-Pairs' data statement asks that it be used for evaluation,
    not training: this recipe is a research baseline, and a model trained on it must be
    evaluated on pairs it has not seen (:func:`check_crows_evaluation`).
    """
    return [
        counter_stereotypical(p) for p in split_pairs(pairs, "train", seed=seed, fraction=fraction)
    ]


def check_crows_evaluation(
    manifest: dict | None, split: str, *, allow_train_pairs: bool = False
) -> None:
    """Refuse to evaluate a model fine-tuned on CrowS-Pairs on pairs it was trained on.

    Args:
        manifest: the fine-tuning manifest of the model (``finetune.json``), or None.
        split: the CrowS-Pairs part about to be evaluated.
        allow_train_pairs: evaluate anyway (e.g. to measure memorisation on purpose).

    Raises:
        ConfigError: the model was trained on ``crows_counter`` and ``split`` is not the
            held-out part with the same seed and fraction.
    """
    if not manifest or manifest.get("recipe") != "crows_counter" or allow_train_pairs:
        return
    if split != "heldout":
        raise ConfigError(
            "this model was fine-tuned on CrowS-Pairs (recipe crows_counter); evaluating it on "
            f"the {split!r} pairs scores sentences it was trained on. Use --crows-split heldout "
            "(or --allow-train-pairs to measure that on purpose)"
        )


def cda_texts(texts: Sequence[str], swaps: dict[str, str] | None = None) -> list[str]:
    """Two-sided CDA: each text followed by its gender-swapped copy (when it differs).

    Counterfactual data augmentation (Zhao et al. 2018; Webster et al. 2020): gendered words
    are swapped both ways (he ↔ she, actor ↔ actress), from the WinoBias swap lists
    (:mod:`debiaslab.data.swaps`, shared with ``synth``).
    """
    swaps = load_swaps() if swaps is None else swaps
    out = []
    for text in texts:
        out.append(text)
        swapped = swap_gender(text, swaps)
        if swapped != text:
            out.append(swapped)
    return out


def read_lines(path: str | os.PathLike) -> list[str]:
    """A text corpus: one text per non-empty line of a UTF-8 file."""
    file = Path(path)
    if not file.is_file():
        raise DataFormatError("no such file", file=file)
    text, bad = decode_utf8(file.read_bytes())
    if bad is not None:
        raise DataFormatError(f"not valid UTF-8 ({bad})", file=file)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataFormatError("no texts in the file", file=file)
    return lines


def recipe_texts(
    recipe: str, data: str | os.PathLike | None = None, *, split_seed: int = 0
) -> tuple[list[str], dict]:
    """The training texts of a recipe and the facts about them a manifest records.

    Args:
        recipe: ``crows_counter`` (``data``: a CrowS-Pairs CSV, default resolved), ``cda``
            (``data``: a text file, one text per line, augmented both ways), ``texts``
            (``data``: a text file, used as it is) or ``synthetic`` (``data``: a folder written
            by ``debiaslab synth generate``; its train split, counterfactuals included).
        data: the data file.
        split_seed: seed of the CrowS-Pairs train/held-out split.
    """
    if recipe == "crows_counter":
        version = file_format(data) if data and Path(data).is_file() else "original"
        pairs = load_pairs(version, "english", data)
        texts = crows_counter_texts(pairs, seed=split_seed)
        return texts, {
            "source": Path(data).name if data else "crows_pairs_anonymized.csv",
            "data_version": version,
            "split_seed": split_seed,
            "heldout_fraction": HELDOUT_FRACTION,
            "n_pairs": len(pairs),
            "n_train_pairs": len(texts),
        }
    if recipe == "synthetic":
        if data is None:
            raise ConfigError(
                "recipe 'synthetic' needs --data: a 'debiaslab synth generate' folder"
            )
        manifest = read_manifest(data)
        texts = load_texts(data, "train")
        return texts, {
            "source": Path(data).name,
            "spec": manifest["spec"]["name"],
            "generator": manifest["backend"]["name"],
            "split": "train",
            "n_texts": len(texts),
        }
    if data is None:
        raise ConfigError(f"recipe {recipe!r} needs --data: a text file, one text per line")
    lines = read_lines(data)
    if recipe == "cda":
        texts = cda_texts(lines)
        info = {"swap_lists": list(SWAP_FILES), "n_original": len(lines)}
        return texts, {"source": Path(data).name, **info, "n_texts": len(texts)}
    if recipe == "texts":
        return lines, {"source": Path(data).name, "n_texts": len(lines)}
    raise ConfigError(
        f"unknown recipe {recipe!r}; expected crows_counter, cda, texts or synthetic"
    )
