"""Text classifiers that score generated text: toxicity and regard.

Loads a sequence classifier from a preset, hub id or local directory and scores many texts at
once with the transformers ``text-classification`` pipeline's semantics: the hate-speech RoBERTa
of Vidgen et al. (`TOXICITY_MODEL`, ``evaluate``'s ``toxicity``) and the regard classifier of
Sheng et al. (`REGARD_MODEL`, ``evaluate``'s ``regard``); offline, the tiny presets of
:mod:`debiaslab.tiny.classifiers` (``tiny-toxicity``, ``tiny-regard``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from debiaslab.batching import length_batches, run_batches
from debiaslab.env import get_secret, select_device
from debiaslab.errors import ConfigError
from debiaslab.model_source import check_model, one_line
from debiaslab.tiny.classifiers import TINY_CLASSIFIERS, tiny_classifier_path

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
TOXIC_LABEL = "hate"
REGARD_MODEL = "sasha/regardv3"
REGARD_LABELS = ("positive", "negative", "neutral", "other")

MAX_LENGTH = 512  # the default truncation limit when the tokenizer allows more
CLASSIFIER_BATCH_TOKENS = 4096  # padded tokens per forward pass; halved on out-of-memory


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

    `predict` returns what the transformers ``text-classification`` pipeline returns with
    ``top_k=None``, as an array ordered by label id: softmax over the labels of a single-label
    model, an independent sigmoid per label when ``config.problem_type`` is
    ``multi_label_classification`` or the model has one label, raw logits for regression.
    Texts are truncated to ``max_length`` tokens (by default the tokenizer's limit, at most
    512). Scoring goes through :mod:`debiaslab.batching`: texts batched by length under a token
    budget, a tqdm bar, a batch halved on out-of-memory, softmax in float32.

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


TINY_NOTE = "scored by a tiny offline classifier"


def tiny_marking(name: str) -> dict[str, Any]:
    """What a result records about a classifier's kind: ``tiny_offline`` (True for the
    ``tiny-*`` presets, trained here on ~80 lines: crude, for tests and the demo, not a
    measurement of real text) and, for those, ``note`` (:data:`TINY_NOTE`). Scorers copy a
    classifier's info into ``config.scorers.<metric>`` of every BOLD/HONEST result.

    Example:
        >>> tiny_marking("tiny-regard")["tiny_offline"], tiny_marking(REGARD_MODEL)
        (True, {'tiny_offline': False})
    """
    if name in TINY_CLASSIFIERS:
        return {"tiny_offline": True, "note": f"{TINY_NOTE} ({name}), not a published one"}
    return {"tiny_offline": False}


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
        info={"source": source, "revision": revision, "task": task, **tiny_marking(name)},
    )
    classifier.info["load_seconds"] = round(time.perf_counter() - started, 3)
    return classifier
