"""Gendered word swap lists: the WinoBias pairs (he ↔ she, actor ↔ actress) and the swap itself.

Counterfactual data augmentation (``mitigation.data``'s ``cda`` recipe; Zhao et al. 2018;
Webster et al. 2020) and the synthetic-data filters (``synth``) both swap gendered words with
these lists: ``generalized_swaps.txt`` + ``extra_gendered_words.txt`` (uclanlp/corefBias, MIT),
resolved like every data file (``$DEBIASLAB_DATA_DIR`` → cache → checksum-verified download).
"her" is ambiguous (his / him): it becomes "his" before a word and "him" before punctuation or
the end, as a part-of-speech-free rule.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from debiaslab.data.fetch import decode_utf8, resolve
from debiaslab.errors import DataFormatError

SWAP_FILES = ("winobias_generalized_swaps", "winobias_extra_gendered_words")


def load_swaps(paths: Sequence[str | os.PathLike] | None = None) -> dict[str, str]:
    """Lower-case word → its counterpart, both directions, from the WinoBias swap lists."""
    files = [Path(p) for p in paths] if paths else [resolve(name) for name in SWAP_FILES]
    swaps: dict[str, str] = {}
    for file in files:
        text, bad = decode_utf8(file.read_bytes())
        if bad is not None:
            raise DataFormatError(f"not valid UTF-8 ({bad})", file=file)
        for number, line in enumerate(text.splitlines(), start=1):
            words = line.split()
            if not words:
                continue
            if len(words) != 2:
                raise DataFormatError(
                    f"expected two words, got {len(words)}: {line!r}", file=file, row=number
                )
            a, b = (w.lower() for w in words)
            swaps.setdefault(a, b)
            swaps.setdefault(b, a)
    if not swaps:
        raise DataFormatError("no word pairs", file=files[0])
    return swaps


_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def swap_gender(text: str, swaps: dict[str, str]) -> str:
    """``text`` with every listed gendered word replaced by its counterpart, case kept.

    Example:
        >>> swaps = {"he": "she", "she": "he", "his": "her", "her": "his", "him": "her",
        ...          "actor": "actress", "actress": "actor"}
        >>> swap_gender("He thanked her. The actress saw her brother.", swaps)
        'She thanked him. The actor saw his brother.'
    """

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        if lower == "her" and swaps.get("her") in ("his", "him"):  # possessive or object
            rest = text[match.end() :]
            target = "his" if re.match(r"\s+[A-Za-z]", rest) else "him"
        else:
            target = swaps.get(lower)
            if target is None:
                return word
        if word.isupper() and len(word) > 1:
            return target.upper()
        return target.capitalize() if word[0].isupper() else target

    return _WORD.sub(replace, text)
