"""StereoSet written in the official ``dev.json`` schema, checked by reading it back first.

The schema and the loader are :mod:`debiaslab.data.stereoset`; the planted-bias calibration and
the tests write their StereoSet files with :func:`write_stereoset_json`.

Example:
    >>> import tempfile
    >>> from debiaslab.data.stereoset import load_stereoset, make_example
    >>> example = make_example(
    ...     example_id="ex-0", split="intrasentence", target="nurse", bias_type="profession",
    ...     context="The nurse said BLANK was busy.",
    ...     stereotype="The nurse said she was busy.",
    ...     anti_stereotype="The nurse said he was busy.",
    ...     unrelated="The nurse said cat was busy.",
    ... )
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_stereoset_json(StereoSet([example]), Path(tmp) / "dev.json")
    ...     load_stereoset(path).intrasentence == [example]
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from debiaslab.data.stereoset import SPLITS, Example, StereoSet, parse_stereoset
from debiaslab.io import write_bytes_atomic


def write_stereoset_json(stereoset: StereoSet, path: str | os.PathLike) -> Path:
    """Write ``stereoset`` in the official ``dev.json`` schema, atomically.

    Sentences get ``"labels": []`` when their labels are unknown. The text is parsed back
    before anything is written: :func:`~debiaslab.data.stereoset.load_stereoset` returns the
    same examples (template words recomputed) and version.

    Returns:
        The path written.

    Raises:
        DataFormatError: the data would be rejected by the loader (duplicate ids, unknown bias
            type, ...); the file named is the destination, marked "(not written)".
        ValueError: an example would not read back identically (e.g. it sits in the wrong
            split list, or a field is not a string).
    """
    dest = Path(path)
    document = {
        "version": stereoset.version,
        "data": {
            split: [_example_to_json(example) for example in stereoset.split(split)]
            for split in ("intersentence", "intrasentence")  # upstream's key order
        },
    }
    data = (json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8")
    read_back = parse_stereoset(data, f"{dest} (not written)")
    for split in SPLITS:
        for position, (wrote, got) in enumerate(
            zip(stereoset.split(split), read_back.split(split), strict=True)
        ):
            if _without_template_words(wrote) != _without_template_words(got):
                raise ValueError(
                    f"{dest}: {split}[{position}] would not read back identically: "
                    f"{wrote!r} would load as {got!r}; nothing was written"
                )
    return write_bytes_atomic(dest, data)


def _example_to_json(example: Example) -> dict[str, Any]:
    return {
        "id": example.id,
        "target": example.target,
        "bias_type": example.bias_type,
        "context": example.context,
        "sentences": [
            {
                "sentence": sentence.sentence,
                "id": sentence.id,
                "labels": [dataclasses.asdict(label) for label in sentence.labels],
                "gold_label": sentence.gold_label,
            }
            for sentence in example.sentences
        ],
    }


def _without_template_words(example: Example) -> Example:
    sentences = tuple(dataclasses.replace(s, template_word=None) for s in example.sentences)
    return dataclasses.replace(example, sentences=sentences)
