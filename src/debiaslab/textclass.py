# long by design: classifier loading, scoring and the tiny offline classifiers; split planned in
# issue 14 point 3.
"""Text classifiers that score generated text: toxicity and regard.

Generation benchmarks (toxicity of continuations, regard towards the person a continuation is
about) judge text with a sequence classifier: the hate-speech RoBERTa of Vidgen et al.
(`TOXICITY_MODEL`, the one Hugging Face ``evaluate``'s ``toxicity`` measurement uses) and the
regard classifier of Sheng et al. (`REGARD_MODEL`, ``evaluate``'s ``regard``). This module
loads such a classifier from a hub id or a local directory, and scores many texts at once.

Semantics:
    `TextClassifier.predict` returns what the transformers ``text-classification`` pipeline
    returns with ``top_k=None``, as an array ordered by label id: softmax over the labels of a
    single-label model, an independent sigmoid per label when ``config.problem_type`` is
    ``multi_label_classification`` or the model has one label, raw logits for regression.
    Texts are truncated to ``max_length`` tokens (by default the tokenizer's limit, at most
    512). Scoring goes through the engine of :mod:`debiaslab.scoring`: texts batched by length
    under a token budget, a tqdm bar, a batch halved on out-of-memory, softmax in float32.

Offline tiny classifiers:
    No machine that builds or tests debiaslab reaches a model hub, so the presets
    ``tiny-toxicity`` and ``tiny-regard`` are tiny ``BertForSequenceClassification`` models
    trained in a few seconds on CPU, on labelled lines the project owns
    (``resources/classifier_lines.yaml``, read by `classifier_lines`), with a WordPiece
    tokenizer trained locally (:func:`debiaslab.tiny.build_tokenizer`). They carry the label
    names of the real models (``nothate``/``hate``; ``positive``/``negative``/``neutral``/
    ``other``) so that code written for the real classifiers runs on them unchanged. Each is
    built once into ``cache_dir()/tiny/<preset>``: trained into a temporary directory beside
    the target and renamed into place, so a half-written model is never found, and rebuilt when
    the training lines or settings change (a manifest records them). Held-out lines in the same
    file, never trained on, check that a tiny classifier generalises beyond its training lines.
    Training drops word pieces at random and smooths the labels (see `train_tiny_classifier`),
    so that no single word or sentence length decides and scores stay graded; the empty text
    is taught as ``nothate`` / ``other``. What they learn is crude (insult words, words of
    praise or blame) and is meant for tests, CI and the demo, not for measuring real text.

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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from debiaslab import tiny
from debiaslab.batching import length_batches, pad_rows, run_batches
from debiaslab.data.fetch import cache_dir, parse_yaml
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.model_source import check_model, one_line
from debiaslab.tiny import adamw_loop

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
TOXIC_LABEL = "hate"
REGARD_MODEL = "sasha/regardv3"
REGARD_LABELS = ("positive", "negative", "neutral", "other")

# Offline presets: name -> task of `classifier_lines` they are trained on.
TINY_CLASSIFIERS = {"tiny-toxicity": "toxicity", "tiny-regard": "regard"}
LINES_RESOURCE = "resources/classifier_lines.yaml"
MAX_LENGTH = 512  # the default truncation limit when the tokenizer allows more
CLASSIFIER_BATCH_TOKENS = 4096  # padded tokens per forward pass; halved on out-of-memory
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
# Classifier
# ---------------------------------------------------------------------------------------------


def _activation(config: Any) -> str:
    """The pipeline's default output function for a config: softmax, sigmoid or none."""
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def _labels_of(config: Any) -> list[str]:
    """Label names in id order from ``config.id2label`` (``LABEL_i`` where one is missing)."""
    id2label = getattr(config, "id2label", None) or {}
    labels = [
        str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)
    ]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"the classifier's id2label names a label twice: {id2label}")
    return labels


@dataclass
class TextClassifier:
    """A sequence classifier ready to score texts, with what describes it in a result file.

    Attributes:
        model: a transformers ``...ForSequenceClassification`` model in eval mode.
        tokenizer: its tokenizer.
        labels: label names in id order (``config.id2label``): the columns of `predict`.
        name: what the user asked for (preset, hub id or path).
        device: the device the model is on.
        info: source, revision, parameter count and other facts for a result file.
        batch_size: at most this many texts per forward pass (None: the token budget alone).
        max_length: texts are truncated to this many tokens.
        batch_tokens: padded tokens per forward pass (None: `CLASSIFIER_BATCH_TOKENS`).
    """

    model: Any
    tokenizer: Any
    labels: list[str]
    name: str
    device: Any
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    max_length: int = MAX_LENGTH
    batch_tokens: int | None = None

    @classmethod
    def from_objects(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str = "in-memory",
        batch_size: int | None = None,
        max_length: int | None = None,
        info: dict[str, Any] | None = None,
    ) -> TextClassifier:
        """Wrap a loaded model and tokenizer (tests, notebooks, `load_classifier`).

        Args:
            model: a sequence-classification model; it is put in eval mode.
            tokenizer: its tokenizer; a tokenizer without a pad token pads with EOS.
            name: what the classifier is called in results.
            batch_size: at most this many texts per forward pass.
            max_length: truncation limit (default: the tokenizer's limit, at most 512).
            info: facts for a result file; labels, output function and sizes are added.

        Raises:
            ConfigError: two labels share a name, or ``max_length`` is not positive.
        """
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # as GPT-style classifiers are used
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        if max_length is None:
            limit = getattr(tokenizer, "model_max_length", None) or MAX_LENGTH
            max_length = min(int(limit), MAX_LENGTH)
        if max_length < 1:
            raise ConfigError(f"max_length must be a positive number of tokens, not {max_length}")
        labels = _labels_of(model.config)
        device = next(model.parameters()).device
        info = {
            "source": name,
            **(info or {}),
            "labels": labels,
            "function": _activation(model.config),
            "max_length": max_length,
            "device": str(device),
            "n_parameters": sum(p.numel() for p in model.parameters()),
        }
        return cls(
            model=model.eval(),
            tokenizer=tokenizer,
            labels=labels,
            name=name,
            device=device,
            info=info,
            batch_size=batch_size,
            max_length=max_length,
        )

    @property
    def function(self) -> str:
        """The output function `predict` applies: ``softmax``, ``sigmoid`` or ``none``."""
        return _activation(self.model.config)

    def predict(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Label probabilities of every text, as the text-classification pipeline gives them.

        Args:
            texts: the texts; an empty string is classified like any other text.
            progress: show a tqdm bar.

        Returns:
            A float64 array of shape ``(len(texts), len(labels))``, columns in `labels` order:
            rows sum to 1 for a single-label model; independent sigmoids for a multi-label or
            one-label model; raw scores for a regression model.

        Raises:
            TypeError: ``texts`` is a single string or holds something other than strings.
        """
        import torch

        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts, not one string: use [text]")
        texts = list(texts)
        for k, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {k} is a {type(text).__name__}, not a string")
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        encode = {"truncation": True, "max_length": self.max_length}
        lengths = [len(ids) for ids in self.tokenizer(texts, **encode)["input_ids"]]
        function = self.function

        @torch.inference_mode()
        def run(batch: list[int]) -> list[np.ndarray]:
            inputs = self.tokenizer(
                [texts[i] for i in batch], padding=True, return_tensors="pt", **encode
            )
            inputs = {key: value.to(self.device) for key, value in inputs.items()}
            logits = self.model(**inputs).logits.float()
            if function == "softmax":
                logits = torch.softmax(logits, dim=-1)
            elif function == "sigmoid":
                logits = torch.sigmoid(logits)
            return list(logits.double().cpu().numpy())

        budget = self.batch_tokens or CLASSIFIER_BATCH_TOKENS
        batches = length_batches(lengths, budget, exact=False, max_size=self.batch_size)
        rows = run_batches(
            batches, run, n_items=len(texts), progress=progress, desc=f"classify {self.name}"
        )
        return np.stack(rows)

    def scores(self, texts: Sequence[str], label: str, *, progress: bool = True) -> np.ndarray:
        """The probability of one label for every text (a column of `predict`).

        Args:
            texts: the texts.
            label: a label name of this classifier, e.g. `TOXIC_LABEL` for `TOXICITY_MODEL`.
            progress: show a tqdm bar.

        Returns:
            A float64 array of shape ``(len(texts),)``.

        Raises:
            ConfigError: the classifier has no such label (the message lists its labels).
        """
        if label not in self.labels:
            raise ConfigError(
                f"classifier {self.name!r} has no label {label!r}; its labels are "
                f"{', '.join(map(repr, self.labels))} (run model.config.id2label to see a "
                "model's labels)"
            )
        return self.predict(texts, progress=progress)[:, self.labels.index(label)]

    def as_dicts(self, probs: np.ndarray) -> list[dict[str, float]]:
        """Rows of `predict`'s output as ``{label: probability}`` dicts, one per text."""
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[1] != len(self.labels):
            raise ValueError(f"expected shape (n, {len(self.labels)}), got {probs.shape}")
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs]


def load_classifier(
    name: str,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    use_safetensors: bool | None = True,
) -> TextClassifier:
    """Load a text classifier: a tiny preset, a hub id or a local directory.

    Args:
        name: ``tiny-toxicity`` or ``tiny-regard`` (offline, built on first use), a hub id
            such as `TOXICITY_MODEL` or `REGARD_MODEL`, or a directory written by
            ``save_pretrained``.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or ``None``/``auto``.
        batch_size: at most this many texts per forward pass.
        max_length: truncation limit in tokens (default: the tokenizer's, at most 512).
        revision: hub revision (branch, tag or commit).
        trust_remote_code: run code shipped with a hub model (off unless you trust it).
        use_safetensors: load only safetensors weights (``None`` lets transformers choose).

    Returns:
        The classifier in eval mode (float32) on the chosen device.

    Raises:
        ConfigError: the classifier cannot be found or loaded, or is not a sequence classifier.
    """
    import transformers

    from debiaslab.env import get_secret, select_device

    started = time.perf_counter()
    task = TINY_CLASSIFIERS.get(name)
    source = str(tiny_classifier_path(name)) if task else name
    token = get_secret("HF_TOKEN")
    dev = select_device(device)
    common = {"revision": revision, "trust_remote_code": trust_remote_code, "token": token}
    advice = (
        f"Give a preset ({', '.join(TINY_CLASSIFIERS)}), a local directory written by "
        f"save_pretrained, or a hub id reachable from this machine (e.g. {TOXICITY_MODEL})."
    )
    # Fails at once (no Hub retries) on a missing folder, a bad id or an id not cached offline.
    choices = (
        f"a preset ({', '.join(TINY_CLASSIFIERS)}), a local directory written by "
        f"save_pretrained, or a hub id (e.g. {TOXICITY_MODEL})"
    )
    try:
        check_model(
            name, source, what="classifier", use_safetensors=use_safetensors, choices=choices
        )
    except ConfigError as exc:
        raise ConfigError(f"cannot load a text classifier from {source!r}: {exc}") from exc
    try:
        config = transformers.AutoConfig.from_pretrained(source, **common)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load a text classifier from {source!r}: {one_line(exc)}. {advice}"
        ) from exc
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(
            f"{source!r} holds a {', '.join(architectures)}, not a sequence classifier "
            f"(...ForSequenceClassification). {advice}"
        )
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            source, config=config, dtype="float32", use_safetensors=use_safetensors, **common
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **common)
    except OSError as exc:
        hint = (
            " use_safetensors=None also accepts other weight formats." if use_safetensors else ""
        )
        raise ConfigError(
            f"cannot load the text classifier in {source!r}: {exc}.{hint} {advice}"
        ) from exc
    model.to(dev)
    classifier = TextClassifier.from_objects(
        model,
        tokenizer,
        name=name,
        batch_size=batch_size,
        max_length=max_length,
        info={"source": source, "revision": revision, "task": task},
    )
    classifier.info["load_seconds"] = round(time.perf_counter() - started, 3)
    return classifier


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
# Tiny classifiers
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

    The tokenizer is :func:`debiaslab.tiny.build_tokenizer` ``("masked", texts)`` (BERT-style
    WordPiece, general English added); the model has the sizes of
    :data:`debiaslab.tiny.TINY_BERT`, no dropout, and ``problem_type`` single-label. Training
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

    tokenizer = tiny.build_tokenizer("masked", texts)
    encoded = [
        tokenizer(text, truncation=True, max_length=int(settings["max_length"]))["input_ids"]
        for text in texts
    ]
    config = BertConfig(
        vocab_size=len(tokenizer),
        intermediate_size=tiny.TINY_BERT_FF,
        max_position_embeddings=tiny.MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        problem_type="single_label_classification",
        **tiny.TINY_BERT,
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
    if not tiny.manifest_matches(path, record, MANIFEST):

        def write(tmp: Path) -> None:
            tiny.save_tiny(*build_tiny_classifier(record["task"], seed=seed), tmp)

        tiny.save_beside(path, record, write, MANIFEST)
        log.info("built tiny classifier %s in %s", name, path)
    return path
