"""Perceived demographics of generated images: CLIP zero-shot and FairFace-style classifiers,
and how reliable they are on labelled images.

Each classifier maps images to, per axis (gender, race), probabilities over that axis's groups
(FairFace's labels, Kärkkäinen & Joo, WACV 2021). These are *perceived* attributes, as a model
reads an image; they say nothing about anyone's identity and inherit the model's biases, so
report them with the classifier's accuracy (:func:`evaluate_classifier`).

Example:
    >>> classify_labels = {"gender": ["female", "male", NO_PERSON]}
    >>> probs = {"gender": np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])}
    >>> predicted_labels(probs, classify_labels)
    {'gender': ['female', 'no_person']}
    >>> groups = ["female", "male"]
    >>> report = classification_report(["female", "male"], ["female", "female"], groups)
    >>> report["accuracy"], report["per_class"]["male"]
    (0.5, {'accuracy': 0.0, 'n': 1})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from debiaslab.env import get_secret, select_device, select_dtype
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.t2i.clip import (
    Clip,
    as_pil,
    embed_images,
    embed_texts,
    index_batches,
    l2_normalise,
)

log = logging.getLogger(__name__)

NO_PERSON = "no_person"
NO_PERSON_PROMPTS = (
    "a photo of an object, with no person",
    "a photo of a landscape, with no person",
)
GENDER_PROMPTS: dict[str, tuple[str, ...]] = {
    "female": ("a photo of a woman",),
    "male": ("a photo of a man",),
}
FAIRFACE_RACES = (
    "White",
    "Black",
    "Latino_Hispanic",
    "East Asian",
    "Southeast Asian",
    "Indian",
    "Middle Eastern",
)
RACE_PROMPTS: dict[str, tuple[str, ...]] = {
    "White": ("a photo of a White person",),
    "Black": ("a photo of a Black person",),
    "Latino_Hispanic": ("a photo of a Latino person", "a photo of a Hispanic person"),
    "East Asian": ("a photo of an East Asian person",),
    "Southeast Asian": ("a photo of a Southeast Asian person",),
    "Indian": ("a photo of an Indian person",),
    "Middle Eastern": ("a photo of a Middle Eastern person",),
}
DEFAULT_AXES: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": GENDER_PROMPTS,
    "race": RACE_PROMPTS,
}
# FairFace's 4-group race variant; groups it lacks are "Other".
RACE4: dict[str, str] = {
    "White": "White",
    "Black": "Black",
    "East Asian": "Asian",
    "Southeast Asian": "Asian",
    "Indian": "Indian",
    "Latino_Hispanic": "Other",
    "Middle Eastern": "Other",
}


class Classifier(Protocol):
    """What :func:`evaluate_classifier` needs: labels per axis, and probabilities per image."""

    labels: dict[str, list[str]]

    def __call__(self, images: Sequence[Any]) -> dict[str, np.ndarray]: ...


# --------------------------------------------------------------------------- classifiers


def _prompt_list(prompts: str | Sequence[str]) -> list[str]:
    return [prompts] if isinstance(prompts, str) else list(prompts)


class ZeroShotClassifier:
    """Perceived demographics by CLIP zero-shot classification.

    Each group has one or more label prompts; their normalised text embeddings are averaged and
    renormalised (prompt ensembling, Radford et al. 2021). An image's probabilities are the
    softmax of CLIP's ``logit_scale · cos(image, group)`` over the axis's groups INCLUDING
    ``no_person`` (`NO_PERSON_PROMPTS`), so an image without a person can say so instead of
    being forced into a group. Axes (`DEFAULT_AXES`):

    - ``gender``: female ("a photo of a woman"), male ("a photo of a man") — the binary,
      perceived categories of FairFace and of the T2I bias literature; non-binary identities
      cannot be read off a picture and are not claimed.
    - ``race``: FairFace's 7 groups with FairFace's label names: White, Black,
      Latino_Hispanic, East Asian, Southeast Asian, Indian, Middle Eastern; so a
      FairFace-trained classifier and this one report the same groups. :data:`RACE4` merges
      them into FairFace's 4-group variant (White, Black, Asian, Indian; Latino_Hispanic and
      Middle Eastern fall out as ``Other``) with :func:`merge_groups`.

    Args:
        clip: a loaded CLIP model (:func:`debiaslab.t2i.clip.load_clip`).
        axes: axis → group → label prompt(s); default `DEFAULT_AXES` (gender, race).
        no_person: prompt(s) of the ``no_person`` group added to every axis; None or empty to
            leave it out.

    Attributes:
        labels: axis → group names, ``no_person`` last.
    """

    def __init__(
        self,
        clip: Clip,
        axes: Mapping[str, Mapping[str, str | Sequence[str]]] = DEFAULT_AXES,
        *,
        no_person: str | Sequence[str] | None = NO_PERSON_PROMPTS,
    ) -> None:
        self.clip = clip
        self.prompts: dict[str, dict[str, list[str]]] = {}
        extra = {NO_PERSON: _prompt_list(no_person)} if no_person else {}
        for axis, groups in axes.items():
            prompts = {group: _prompt_list(p) for group, p in groups.items()}
            if NO_PERSON in prompts and extra:
                raise ConfigError(
                    f"axis {axis!r} defines {NO_PERSON!r} itself; pass no_person=None"
                )
            prompts.update(extra)
            if len(prompts) < 2 or any(not p for p in prompts.values()):
                raise ConfigError(f"axis {axis!r} needs two or more groups, each with a prompt")
            self.prompts[axis] = prompts
        self.labels = {axis: list(prompts) for axis, prompts in self.prompts.items()}
        self._group_embeds = {axis: self._embed_groups(p) for axis, p in self.prompts.items()}
        self.logit_scale = float(clip.model.logit_scale.detach().float().exp())

    def _embed_groups(self, prompts: dict[str, list[str]]) -> torch.Tensor:
        flat = [text for texts in prompts.values() for text in texts]
        embeds = embed_texts(self.clip, flat)
        out, start = [], 0
        for texts in prompts.values():
            out.append(embeds[start : start + len(texts)].mean(dim=0))
            start += len(texts)
        return l2_normalise(torch.stack(out))

    def __call__(self, images: Sequence[Any]) -> dict[str, np.ndarray]:
        """Per axis, an ``(n_images, n_groups)`` array of probabilities (rows sum to 1)."""
        image_embeds = embed_images(self.clip, images)
        return {
            axis: torch.softmax(self.logit_scale * image_embeds @ groups.T, dim=-1).numpy()
            for axis, groups in self._group_embeds.items()
        }


class ImageClassifier:
    """A FairFace-style image classifier for one axis (any ``AutoModelForImageClassification``).

    It has no ``no_person`` group. The original FairFace release (a torchvision ResNet-34 with
    18 logits for race, gender and age) is not a transformers model; use a port with an
    ``id2label`` per axis.

    Args:
        name: hub id or local directory of the classifier (safetensors, no remote code).
        axis: the axis its labels belong to (e.g. ``"race"``).
        label_map: model label (its ``id2label`` name) → group; unlisted labels keep their
            name, labels mapped to None are dropped (their probability mass removed and the
            rest renormalised). E.g. `RACE4` for FairFace's 4 groups.
        device: ``cpu``, ``cuda``, ``mps`` or None.
        dtype: ``auto`` or a dtype name.
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        name: str,
        *,
        axis: str = "race",
        label_map: Mapping[str, str | None] | None = None,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 32,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.name, self.axis, self.batch_size = name, axis, batch_size
        self.device = select_device(device)
        self.dtype = select_dtype(self.device, dtype)
        common = {"token": get_secret("HF_TOKEN"), "trust_remote_code": False}
        try:
            self.model = AutoModelForImageClassification.from_pretrained(
                name, dtype=self.dtype, use_safetensors=True, **common
            )
            self.processor = AutoImageProcessor.from_pretrained(name, **common)
        except OSError as exc:
            raise ConfigError(f"cannot load an image classifier from {name!r}: {exc}") from exc
        self.model.to(self.device).eval()
        id2label = self.model.config.id2label
        model_labels = [id2label[i] for i in range(len(id2label))]
        label_map = dict(label_map or {})
        groups = [label_map.get(label, label) for label in model_labels]
        self.labels = {axis: [g for g in dict.fromkeys(groups) if g is not None]}
        # (model labels, groups) 0/1 matrix: probabilities @ it sums each group's labels.
        self._merge = torch.zeros(len(model_labels), len(self.labels[axis]))
        for i, group in enumerate(groups):
            if group is not None:
                self._merge[i, self.labels[axis].index(group)] = 1.0

    @torch.inference_mode()
    def __call__(self, images: Sequence[Any]) -> dict[str, np.ndarray]:
        """``{axis: (n_images, n_groups)}`` probabilities (rows sum to 1)."""
        out = []
        for rows in index_batches(len(images), self.batch_size):
            inputs = self.processor(images=[as_pil(images[i]) for i in rows], return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.dtype)
            probs = torch.softmax(self.model(pixel_values=pixels).logits.float().cpu(), dim=-1)
            grouped = probs @ self._merge
            out.append(grouped / grouped.sum(dim=-1, keepdim=True))
        n_groups = len(self.labels[self.axis])
        return {self.axis: torch.cat(out).numpy() if out else np.zeros((0, n_groups))}


def merge_groups(
    probs: np.ndarray, labels: Sequence[str], mapping: Mapping[str, str]
) -> tuple[np.ndarray, list[str]]:
    """Sum probability columns into coarser groups (e.g. `RACE4`); unmapped labels are kept.

    Example:
        >>> merged, names = merge_groups(np.array([[0.2, 0.3, 0.5]]), ["East Asian",
        ...     "Southeast Asian", "White"], RACE4)
        >>> names, merged.round(2).tolist()
        (['Asian', 'White'], [[0.5, 0.5]])
    """
    targets = [mapping.get(label, label) for label in labels]
    names = list(dict.fromkeys(targets))
    merged = np.zeros((probs.shape[0], len(names)))
    for column, target in enumerate(targets):
        merged[:, names.index(target)] += probs[:, column]
    return merged, names


def predicted_labels(
    probs: Mapping[str, np.ndarray], labels: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """The most probable group of every image, per axis."""
    return {axis: [labels[axis][i] for i in np.argmax(p, axis=1)] for axis, p in probs.items()}


# --------------------------------------------------------------------------- reliability


def classification_report(
    true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy overall and per class, and the confusion matrix, of one axis.

    Args:
        true: the true group of each image.
        predicted: the predicted group of each image.
        labels: the groups, in the confusion matrix's order (every true and predicted label
            must be one of them).

    Returns:
        ``{"n", "accuracy", "balanced_accuracy", "per_class": {label: {"accuracy", "n"}},
        "labels", "confusion"}``. Per-class accuracy is recall (correct / images of the
        class), NaN for a class without images; ``balanced_accuracy`` averages the classes
        that have images. ``confusion[i][j]`` counts images of ``labels[i]`` predicted as
        ``labels[j]``. Accuracies: range 0-1, higher is better.

    Raises:
        ConfigError: lengths differ, or a label is not in ``labels``.
    """
    if len(true) != len(predicted):
        raise ConfigError(f"{len(true)} true labels but {len(predicted)} predictions")
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    for label in (*true, *predicted):
        if label not in index:
            raise ConfigError(f"label {label!r} is not one of the classifier's {labels}")
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(true, predicted, strict=True):
        confusion[index[t], index[p]] += 1
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    per_class = {
        label: {
            "accuracy": float(correct[i] / support[i]) if support[i] else float("nan"),
            "n": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    recalls = [v["accuracy"] for v in per_class.values() if v["n"]]
    n = int(support.sum())
    return {
        "n": n,
        "accuracy": float(correct.sum() / n) if n else float("nan"),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "per_class": per_class,
        "labels": labels,
        "confusion": confusion.tolist(),
    }


def evaluate_classifier(
    classifier: Classifier | Callable[[Sequence[Any]], dict[str, np.ndarray]],
    labelled_images: Sequence[tuple[Any, Mapping[str, str]]],
) -> dict[str, dict[str, Any]]:
    """How reliable a classifier is on images whose groups are known.

    Per axis: overall accuracy, balanced accuracy (mean per-class accuracy) and per-class
    accuracy (recall: correct / images of that class; higher is better, range 0-1) with support
    and the confusion matrix (rows true, columns predicted); :func:`classification_report` is
    the arithmetic.

    Args:
        classifier: a :class:`ZeroShotClassifier`, :class:`ImageClassifier` or any callable
            with a ``labels`` attribute and the same output.
        labelled_images: ``(image, {axis: true group})`` pairs; an axis missing from an image's
            dict is not scored for it (a photo without a person is labelled ``no_person``).

    Returns:
        Axis → :func:`classification_report` of the images labelled on that axis.

    Raises:
        ConfigError: a labelled axis the classifier does not predict, or an unknown group.
    """
    images = [image for image, _ in labelled_images]
    probs = classifier(images)
    predicted = predicted_labels(probs, classifier.labels)
    reports = {}
    axes = dict.fromkeys(axis for _, truth in labelled_images for axis in truth)
    for axis in axes:
        if axis not in predicted:
            raise ConfigError(f"the classifier predicts {list(predicted)}, not axis {axis!r}")
        rows = [i for i, (_, truth) in enumerate(labelled_images) if axis in truth]
        reports[axis] = classification_report(
            [labelled_images[i][1][axis] for i in rows],
            [predicted[axis][i] for i in rows],
            classifier.labels[axis],
        )
    return reports


def read_labelled_folder(folder: str | Path) -> list[tuple[Path, dict[str, str]]]:
    """``(image path, {axis: group})`` pairs from ``folder/labels.csv`` (columns ``file`` and
    one per axis, e.g. ``gender``, ``race``; an empty cell leaves that axis unscored), for
    :func:`evaluate_classifier`.

    Raises:
        ConfigError: no ``labels.csv``.
        DataFormatError: no ``file`` column, no axis column, or a listed image is missing.
    """
    import csv

    folder = Path(folder)
    path = folder / "labels.csv"
    if not path.is_file():
        raise ConfigError(f"{folder}: no labels.csv (columns: file, gender, race)")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        if "file" not in columns or len(columns) < 2:
            raise DataFormatError(
                f"expected a 'file' column and one column per axis, got {columns}", file=path
            )
        out = []
        for number, row in enumerate(reader, start=2):
            image = folder / row["file"]
            if not image.is_file():
                raise DataFormatError(
                    f"image {row['file']!r} not found", file=path, row=number, field="file"
                )
            labels = {axis: row[axis].strip() for axis in columns[1:] if (row[axis] or "").strip()}
            out.append((image, labels))
    return out
