"""Tiny offline text classifiers: the presets ``tiny-toxicity`` and ``tiny-regard``.

Tiny ``BertForSequenceClassification`` models trained in seconds on CPU on labelled lines the
project owns (``resources/classifier_lines.yaml``, read by `classifier_lines`), with the label
names of the real models (``nothate``/``hate``; ``positive``/``negative``/``neutral``/``other``)
so code written for those runs on them unchanged (:func:`debiaslab.textclass.load_classifier`
loads them). Each is built once into ``cache_dir()/tiny/<preset>`` and rebuilt when its lines or
settings change; held-out lines check that it generalises. What they learn is crude (insult
words, words of praise or blame): for tests, CI and the demo, not for measuring real text.

Example:
    >>> classifier_lines("toxicity")["labels"]
    ['nothate', 'hate']
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from debiaslab.batching import pad_rows
from debiaslab.data.fetch import cache_dir, parse_yaml
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.tiny.build import MAX_POSITIONS, TINY_BERT, TINY_BERT_FF, build_tokenizer, save_tiny
from debiaslab.tiny.cache import manifest_matches, save_beside
from debiaslab.tiny.train import adamw_loop

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Offline presets: name -> task of `classifier_lines` they are trained on.
TINY_CLASSIFIERS = {"tiny-toxicity": "toxicity", "tiny-regard": "regard"}
LINES_RESOURCE = "resources/classifier_lines.yaml"
# Training of the tiny classifiers: ~80 short lines, so 300 steps of 16 are ~60 epochs, about
# 2 s on one CPU core. word_dropout and label_smoothing: see `train_tiny_classifier`. Bump the
# version when the model or the training changes: saved presets are rebuilt.
CLASSIFIER_TRAIN = {
    "steps": 300,
    "batch_size": 16,
    "lr": 2e-3,
    "max_length": 64,
    "word_dropout": 0.1,
    "label_smoothing": 0.1,
}
TINY_CLASSIFIER_VERSION = "1"
MANIFEST = "classifier.json"  # written before the rename: its presence marks a complete model


# ---------------------------------------------------------------------------------------------
# Labelled lines
# ---------------------------------------------------------------------------------------------


def classifier_lines(task: str, path: str | Path | None = None) -> dict[str, Any]:
    """Read one task's labelled lines from ``resources/classifier_lines.yaml`` (or ``path``).

    The file maps a task to ``{labels: [...], empty: label, train: {label: [lines]},
    heldout: {label: [lines]}}``; every label has a non-empty list of non-empty lines in both
    parts, and no held-out line is also a training line. ``empty`` (optional) is the label
    the tiny classifier is taught for the empty text: an empty generation says nothing
    hateful, nor anything about a person.

    Args:
        task: ``"toxicity"`` or ``"regard"`` (any task the file has).
        path: a YAML file of the same structure instead of the packaged one.

    Returns:
        ``{"labels": [...], "empty": label or None, "train": {label: [...]}, "heldout":
        {label: [...]}}``, the parts' keys in label order.

    Raises:
        DataFormatError: the file is not valid YAML or not of that structure.
        ConfigError: the file has no such task.
    """

    if path is None:
        file = f"debiaslab/{LINES_RESOURCE}"
        text = resources.files("debiaslab").joinpath(LINES_RESOURCE).read_text("utf-8")
    else:
        file = str(path)
        text = Path(path).read_text("utf-8")
    data = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise DataFormatError("expected a mapping from task name to its lines", file=file)
    if task not in data:
        raise ConfigError(f"no task {task!r} in {file}; it has {', '.join(map(str, data))}")
    return _check_section(data[task], task, file)


def _check_section(section: Any, task: str, file: str) -> dict[str, Any]:
    """Validate one task's section of the lines file; see `classifier_lines`."""

    def fail(message: str, where: str | None = None) -> DataFormatError:
        return DataFormatError(message, file=file, row=task, field=where)

    required, optional = {"labels", "train", "heldout"}, {"empty"}
    if not isinstance(section, dict) or not required <= set(section) <= required | optional:
        found = sorted(map(str, section)) if isinstance(section, dict) else type(section).__name__
        raise fail(f"expected the keys labels, train, heldout (and empty); found {found}")
    labels = section["labels"]
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(label, str) and label for label in labels)
        or len(set(labels)) != len(labels)
    ):
        raise fail(
            f"expected a list of two or more distinct label names, got {labels!r}", "labels"
        )
    empty = section.get("empty")
    if empty is not None and empty not in labels:
        raise fail(f"{empty!r} is not one of the labels {labels}", "empty")
    out: dict[str, Any] = {"labels": list(labels), "empty": empty}
    for part in ("train", "heldout"):
        lines = section[part]
        if not isinstance(lines, dict) or set(lines) != set(labels):
            found = sorted(map(str, lines)) if isinstance(lines, dict) else type(lines).__name__
            raise fail(f"expected one list of lines per label {labels}; found {found}", part)
        for label in labels:
            values = lines[label]
            where = f"{part}.{label}"
            if not isinstance(values, list) or not values:
                raise fail("expected a non-empty list of lines", where)
            for k, line in enumerate(values):
                if not isinstance(line, str) or not line.strip():
                    raise fail(f"line {k} is {line!r}, not a non-empty string", where)
        out[part] = {label: list(lines[label]) for label in labels}
    train = {line for values in out["train"].values() for line in values}
    for label, values in out["heldout"].items():
        repeated = [line for line in values if line in train]
        if repeated:
            raise fail(f"held-out lines also in train: {repeated}", f"heldout.{label}")
    return out


# ---------------------------------------------------------------------------------------------
# Training and the cache
# ---------------------------------------------------------------------------------------------


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless batches of indices into ``n`` items, reshuffled every epoch."""
    import torch

    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _drop_tokens(ids: list[int], rate: float, generator: torch.Generator) -> list[int]:
    """``ids`` with each token between the first and the last dropped with probability ``rate``.

    The first and last tokens (``[CLS]`` and ``[SEP]``) stay, and so does at least one token
    between them: a label is never taught on an empty text.
    """
    import torch

    inner = ids[1:-1]
    if rate <= 0 or len(inner) < 2:
        return ids
    keep = (torch.rand(len(inner), generator=generator) >= rate).tolist()
    kept = [token for token, k in zip(inner, keep, strict=True) if k]
    return [ids[0], *(kept or inner), ids[-1]]


def train_tiny_classifier(
    texts: Sequence[str],
    labels: Sequence[int | str],
    label_names: Sequence[str],
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    max_length: int | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Train a tiny ``BertForSequenceClassification`` on labelled texts, on CPU, in seconds.

    The tokenizer is :func:`debiaslab.build_tokenizer` ``("masked", texts)`` (BERT-style
    WordPiece, general English added); the model has the sizes of
    :data:`debiaslab.tiny.build.TINY_BERT`, no dropout, and ``problem_type`` single-label. Training
    is a plain AdamW loop (10 warm-up steps, linear decay over the second half) on
    cross-entropy with label smoothing, dropping each word piece of a training text with
    probability ``word_dropout`` (`CLASSIFIER_TRAIN`): on ~100 lines a tiny model otherwise
    rests its decision on one word or on sentence length, and held-out lines suffer. Label
    smoothing keeps the probabilities off 0 and 1, so scores stay graded.

    Training runs on one thread, seeded, inside ``torch.random.fork_rng``: the result is the
    same on every machine and call, and the global RNG state and thread count are restored.

    Args:
        texts: training texts (an empty string is allowed).
        labels: the label of each text, as a name in ``label_names`` or an index into it.
        label_names: label names in id order (``config.id2label``).
        steps: optimiser steps (default `CLASSIFIER_TRAIN`).
        batch_size: texts per step (default `CLASSIFIER_TRAIN`).
        lr: peak learning rate (default `CLASSIFIER_TRAIN`).
        seed: seed of the initialisation, the batch order and the word dropout.
        max_length: tokens kept per training text (default `CLASSIFIER_TRAIN`).

    Returns:
        ``(model, tokenizer)``, the model in eval mode on CPU.

    Raises:
        ConfigError: no texts, labels not matching the texts, or bad label names.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    texts, label_names = list(texts), [str(name) for name in label_names]
    if not texts or len(texts) != len(labels):
        raise ConfigError(f"need texts and one label per text: got {len(texts)} and {len(labels)}")
    if len(label_names) < 2 or len(set(label_names)) != len(label_names):
        raise ConfigError(f"need two or more distinct label names, got {label_names}")
    targets = [_label_index(label, label_names) for label in labels]
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "max_length": max_length}
    settings = {**CLASSIFIER_TRAIN, **{k: v for k, v in given.items() if v is not None}}

    tokenizer = build_tokenizer("masked", texts)
    encoded = [
        tokenizer(text, truncation=True, max_length=int(settings["max_length"]))["input_ids"]
        for text in texts
    ]
    config = BertConfig(
        vocab_size=len(tokenizer),
        intermediate_size=TINY_BERT_FF,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        problem_type="single_label_classification",
        **TINY_BERT,
    )
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the model is too small to gain from more; see the docstring
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertForSequenceClassification(config)
            losses = _fit(model, encoded, targets, settings, seed, tokenizer.pad_token_id)
    finally:
        torch.set_num_threads(threads)
    log.info(
        "trained tiny classifier (%s): %d steps in %.1f s, loss %.3f -> %.3f",
        "/".join(label_names),
        len(losses),
        time.perf_counter() - started,
        float(np.mean(losses[:10])),
        float(np.mean(losses[-10:])),
    )
    return model.eval(), tokenizer


def _label_index(label: int | str, label_names: list[str]) -> int:
    """The id of a label given by name or by id."""
    if isinstance(label, str):
        if label not in label_names:
            raise ConfigError(f"unknown label {label!r}; the labels are {label_names}")
        return label_names.index(label)
    try:
        index = operator.index(label)
    except TypeError:
        index = -1
    if not 0 <= index < len(label_names):
        raise ConfigError(f"label {label!r} is neither a name in {label_names} nor an id")
    return index


def _fit(
    model: PreTrainedModel,
    encoded: list[list[int]],
    targets: list[int],
    settings: dict[str, Any],
    seed: int,
    pad_id: int,
) -> list[float]:
    """The training loop of `train_tiny_classifier`; the losses of every step."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batches = _batches(len(encoded), int(settings["batch_size"]), generator)

    def loss_of() -> torch.Tensor:
        batch = next(batches)
        rows = [_drop_tokens(encoded[i], settings["word_dropout"], generator) for i in batch]
        ids, mask = pad_rows(rows, pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits
        return torch.nn.functional.cross_entropy(
            logits,
            torch.tensor([targets[i] for i in batch]),
            label_smoothing=settings["label_smoothing"],
        )

    # 10 warm-up steps, then linear decay over the second half of the run.
    return adamw_loop(
        model, loss_of, steps=int(settings["steps"]), lr=settings["lr"], warmup=10, decay=0.5
    )


def build_tiny_classifier(
    task: str, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Train the tiny classifier of ``task`` (``"toxicity"`` or ``"regard"``) on its train lines.

    Args:
        task: a task of `classifier_lines`.
        seed: training seed.

    Returns:
        ``(model, tokenizer)`` from `train_tiny_classifier`.
    """
    texts, labels = _training_set(classifier_lines(task))
    return train_tiny_classifier(texts, labels, classifier_lines(task)["labels"], seed=seed)


def _training_set(lines: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(texts, labels) of a task's train lines, plus the empty text when it has a label."""
    texts, labels = [], []
    for label in lines["labels"]:
        texts += lines["train"][label]
        labels += [label] * len(lines["train"][label])
    if lines["empty"] is not None:
        # Twice: two of ~100 examples are enough for the one input ([CLS] [SEP]) they cover.
        texts += ["", ""]
        labels += [lines["empty"]] * 2
    return texts, labels


def _tiny_record(task: str, seed: int) -> dict[str, Any]:
    """What a saved tiny classifier was made from; a saved one is reused only on a match."""
    lines = classifier_lines(task)
    digest = hashlib.sha256(
        json.dumps([lines["labels"], lines["empty"], lines["train"]], sort_keys=True).encode()
    ).hexdigest()
    return {
        "task": task,
        "seed": seed,
        "labels": lines["labels"],
        "train_lines_sha256": digest,
        "train": CLASSIFIER_TRAIN,
        "version": TINY_CLASSIFIER_VERSION,
    }


def tiny_classifier_path(name: str, seed: int = 0) -> Path:
    """Build (once) and cache the tiny classifier of a preset; its directory.

    The directory is ``cache_dir()/tiny/<name>``; it is rebuilt when its manifest does not
    match the current training lines and settings.

    Raises:
        ConfigError: ``name`` is not a tiny classifier preset.
    """

    if name not in TINY_CLASSIFIERS:
        raise ConfigError(f"no tiny classifier {name!r}; presets: {', '.join(TINY_CLASSIFIERS)}")
    path = cache_dir() / "tiny" / name
    record = _tiny_record(TINY_CLASSIFIERS[name], seed)
    if not manifest_matches(path, record, MANIFEST):

        def write(tmp: Path) -> None:
            save_tiny(*build_tiny_classifier(record["task"], seed=seed), tmp)

        save_beside(path, record, write, MANIFEST)
        log.info("built tiny classifier %s in %s", name, path)
    return path
