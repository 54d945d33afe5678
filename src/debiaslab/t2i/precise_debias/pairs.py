"""PreciseDebias instruction pairs: prompts in, one pair per group out, split by prompt, files.

Steps 1 and 3 of PreciseDebias (Clemmer et al., WACV 2024): prompts come from the seed
project's JSON files or a language model (`synthesize_prompts`); `instruction_pairs` makes one
Alpaca record per (generic prompt, group); `split_by_prompt` keeps every pair of a prompt on one
side (the seed cut the list of pairs, so test prompts leaked into training).

Example:
    >>> pairs = instruction_pairs(["A nurse, her hands gentle"], [("Asian", "male")])
    >>> pairs[0]["input"], pairs[0]["output"]
    ('A nurse, their hands gentle', 'An Asian male nurse, their hands gentle')
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from debiaslab.data.fetch import decode_utf8, parse_json
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.io import write_bytes_atomic
from debiaslab.synth.filters import clean_text, exact_duplicates
from debiaslab.synth.spec import Request
from debiaslab.t2i.precise_debias.fill import fill, subject_template
from debiaslab.t2i.precise_debias.words import GENDER_INDEX, Words, load_words

log = logging.getLogger(__name__)

# The seed's instruction (instruction.txt) names ethnicity only, though its outputs add gender.
SEED_INSTRUCTION = (
    "Expand this text to image prompt to include a specific ethnicity for the subject"
)
DEFAULT_INSTRUCTION = (
    "Expand this text to image prompt to include a specific ethnicity and gender for the subject"
)
SEED_TERMINATOR = "\n###\n"  # the seed appends it to every output; `load_seed_pairs` strips it
# The 8 groups of the seed's bls_stats.json, in its key order: 4 races x 2 genders.
DEFAULT_GROUPS: tuple[tuple[str, str], ...] = (
    ("White", "male"),
    ("White", "female"),
    ("Black", "male"),
    ("Black", "female"),
    ("Asian", "male"),
    ("Asian", "female"),
    ("Hispanic", "male"),
    ("Hispanic", "female"),
)


def parse_group(group: str | Sequence[str]) -> tuple[str, str]:
    """``"white male"`` (a bls_stats.json key) or ``("White", "male")`` -> ``("White", "male")``.

    Example:
        >>> parse_group("african american female")
        ('African American', 'female')
    """
    if isinstance(group, str):
        parts = group.split()
        if len(parts) < 2 or parts[-1].lower() not in GENDER_INDEX:
            raise ConfigError(f"group {group!r} is not '<ethnicity> <female|male>'")
        return " ".join(p.capitalize() for p in parts[:-1]), parts[-1].lower()
    if len(group) != 2 or not all(isinstance(p, str) and p.strip() for p in group):
        raise ConfigError(f"group {group!r} is not (ethnicity, gender)")
    return group[0], group[1]


def instruction_pairs(
    prompts: Iterable[str],
    groups: Iterable[str | Sequence[str]] = DEFAULT_GROUPS,
    instruction: str = DEFAULT_INSTRUCTION,
    *,
    words: Words | None = None,
) -> list[dict[str, str]]:
    """Alpaca-style rewriting pairs: one per (generic prompt, group).

    ``input`` is the generic prompt (`subject_template` filled with nothing: no ethnicity or
    gender word in a person context, no gendered pronoun); ``output`` is the same text with the
    group's descriptors on the subject ("A Black female doctor ..."). Prompts naming no known
    person are skipped, and a generic prompt made twice is kept once. Outputs carry no
    terminator (the seed appended "\\n###\\n"): that belongs to the trainer's prompt format.

    Args:
        prompts: text-to-image prompts, with or without demographic words.
        groups: ``(ethnicity, gender)`` pairs or bls_stats.json keys such as ``"white male"``.
        instruction: the instruction of every record.
        words: word lists (default: the packaged ones).

    Returns:
        ``[{"instruction", "input", "output"}]``, the groups of a prompt together, in order.

    Example:
        >>> pairs = instruction_pairs(["A nurse, her hands gentle"], [("Asian", "male")])
        >>> pairs[0]["input"], pairs[0]["output"]
        ('A nurse, their hands gentle', 'An Asian male nurse, their hands gentle')
    """
    lex = words or load_words()
    parsed = [parse_group(g) for g in groups]
    if not parsed:
        raise ConfigError("no groups given")
    pairs: list[dict[str, str]] = []
    seen: set[str] = set()
    skipped = 0
    for prompt in prompts:
        template = subject_template(prompt.strip(), words=lex) if prompt.strip() else None
        if template is None:
            skipped += 1
            continue
        generic = fill(template, words=lex)
        if generic in seen:
            continue
        seen.add(generic)
        for ethnicity, gender in parsed:
            output = fill(template, ethnicity, gender, words=lex)
            pairs.append({"instruction": instruction, "input": generic, "output": output})
    if skipped:
        log.info("skipped %d prompts that name no person the word lists know", skipped)
    return pairs


def check_pairs(pairs: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Pairs with an ``instruction`` (default one where missing), or a located error."""
    out = []
    for n, pair in enumerate(pairs):
        if not isinstance(pair, Mapping):
            raise DataFormatError(
                f"expected a mapping, got {type(pair).__name__}", file="<pairs>", row=n
            )
        for name in ("input", "output"):
            if not isinstance(pair.get(name), str) or not pair[name].strip():
                raise DataFormatError("missing or empty string", file="<pairs>", row=n, field=name)
        instruction = pair.get("instruction", DEFAULT_INSTRUCTION)
        if not isinstance(instruction, str):
            raise DataFormatError("not a string", file="<pairs>", row=n, field="instruction")
        out.append({"instruction": instruction, "input": pair["input"], "output": pair["output"]})
    return out


def split_by_prompt(
    pairs: Sequence[Mapping[str, str]],
    test_fraction: float = 0.2,
    seed: int = 0,
    *,
    key: str = "input",
) -> tuple[list[Mapping[str, str]], list[Mapping[str, str]]]:
    """Split pairs into train and test so that each generic prompt is on one side only.

    Splitting the pair list (as the seed did) can put one prompt's groups on both sides, and
    the model is then tested on prompts it was trained on. Here prompts are ranked by a
    seeded SHA-256 hash and the first ``round(n * test_fraction)`` go to test: the split does
    not depend on the order of ``pairs``, and adding prompts moves no other prompt.

    Args:
        pairs: records with a ``key`` field (``input``: the generic prompt).
        test_fraction: share of distinct prompts in test, in (0, 1).
        seed: changes the ranking.
        key: the field that identifies a prompt.

    Returns:
        ``(train, test)``, each in the order of ``pairs``.

    Raises:
        ConfigError: a fraction outside (0, 1), fewer than 2 distinct prompts, or a record
            without ``key``.

    Example:
        >>> pairs = [{"input": p, "output": p + g} for p in "abcde" for g in "xy"]
        >>> train, test = split_by_prompt(pairs, 0.4, seed=1)
        >>> len(train), len(test), {r["input"] for r in train} & {r["input"] for r in test}
        (6, 4, set())
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    prompts: dict[str, None] = {}
    for n, record in enumerate(pairs):
        if not isinstance(record, Mapping) or not isinstance(record.get(key), str):
            raise ConfigError(f"pair {n} has no string field {key!r}: {record!r}")
        prompts[record[key]] = None
    if len(prompts) < 2:
        raise ConfigError(f"need at least 2 distinct prompts to split, got {len(prompts)}")
    ranked = sorted(prompts, key=lambda p: hashlib.sha256(f"{seed}\0{p}".encode()).hexdigest())
    n_test = min(max(round(len(ranked) * test_fraction), 1), len(ranked) - 1)
    test_prompts = set(ranked[:n_test])
    train = [r for r in pairs if r[key] not in test_prompts]
    test = [r for r in pairs if r[key] in test_prompts]
    return train, test


def leaked_prompts(
    train: Iterable[Mapping[str, str]], test: Iterable[Mapping[str, str]], *, key: str = "input"
) -> list[str]:
    """The prompts that appear on both sides of a split (sorted); empty for a sound split."""
    return sorted({r[key] for r in train} & {r[key] for r in test})


def _read_json(path: Path) -> Any:
    text, bad = decode_utf8(path.read_bytes())
    if bad is not None:
        raise DataFormatError(f"not valid UTF-8 ({bad})", file=path)
    return parse_json(text, path)


def load_seed_prompts(path: str | Path) -> list[str]:
    """Prompts of a seed file: synthetic/replaced_prompts.json or the generic inputs of pairs.

    ``synthetic_prompts.json`` and ``replaced_prompts.json`` are JSON lists of strings;
    ``fine_tune_data.json`` and ``evaluation_data.json`` are lists of ``{input, output}``
    records, whose distinct inputs are returned. Prompts are stripped (GPT-3 left leading
    spaces) and empty ones dropped (synthetic_prompts.json holds one).

    Raises:
        DataFormatError: not JSON, not a non-empty list, or a record of the wrong shape; the
            record is named by its list index.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list) or not data:
        raise DataFormatError(
            "expected a non-empty JSON list of prompts or of {input, output} records", file=path
        )
    prompts: dict[str, None] = {}
    if isinstance(data[0], str):
        for n, item in enumerate(data):
            if not isinstance(item, str):
                raise DataFormatError(
                    f"expected a prompt string like record [0], got {type(item).__name__}",
                    file=path,
                    row=f"[{n}]",
                )
            if item.strip():
                prompts.setdefault(item.strip())
        return list(prompts)
    return list(dict.fromkeys(pair["input"].strip() for pair in load_seed_pairs(path)))


def load_seed_pairs(path: str | Path) -> list[dict[str, str]]:
    """The ``{input, output}`` records of fine_tune_data.json / evaluation_data.json.

    The seed's output terminator ``"\\n###\\n"`` is removed; an ``instruction`` field, if
    present, is kept.

    Raises:
        DataFormatError: not JSON, not a non-empty list of records, or a record without string
            ``input``/``output``; the record is named by its list index.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list) or not data:
        raise DataFormatError("expected a non-empty JSON list of {input, output}", file=path)
    out = []
    for n, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataFormatError(
                f"expected an {{input, output}} object, got {type(record).__name__}",
                file=path,
                row=f"[{n}]",
            )
        for name in ("input", "output"):
            if not isinstance(record.get(name), str):
                found = "missing" if name not in record else f"{type(record[name]).__name__}"
                raise DataFormatError(
                    f"expected a string, found {found}", file=path, row=f"[{n}]", field=name
                )
        pair = {"input": record["input"], "output": record["output"].removesuffix(SEED_TERMINATOR)}
        if isinstance(record.get("instruction"), str):
            pair = {"instruction": record["instruction"], **pair}
        out.append(pair)
    return out


PROMPT_SYNTHESIS = (
    "Write one detailed text-to-image prompt showing a {occupation} at work: the person, "
    "their action, the setting and the lighting, in one sentence. Do not say the person's "
    "gender, race or ethnicity. Answer with the prompt only."
)


def synthesize_prompts(
    backend,
    occupations: Sequence[str],
    n: int,
    raw: str | Path,
    *,
    template: str = PROMPT_SYNTHESIS,
    progress: bool = True,
) -> list[str]:
    """Step 1 of PreciseDebias: ask a language model for ``n`` scene prompts per occupation.

    ``backend`` is a :mod:`debiaslab.synth.backends` backend (a local transformers model, or an
    OpenAI-compatible API); answers are appended to ``raw`` as they come, so a rerun resumes.
    Answers are cleaned to their first paragraph; empty and duplicate ones are dropped. The
    prompts still go through :func:`.replace.replace_demographics` /
    :func:`instruction_pairs`, which remove any descriptor the model added despite the
    instruction.
    """

    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    requests = []
    for occupation in occupations:
        prompt = template.format(occupation=occupation)
        for k in range(n):
            key = hashlib.sha256(f"{prompt}\x1f{k}".encode()).hexdigest()[:16]
            requests.append(Request(key, "", occupation, 0, k, prompt))
    answers = backend.answer(requests, Path(raw), progress=progress)
    texts = [clean_text(answers[r.id]) for r in requests]
    texts = [t for t in texts if len(t.split()) >= 3]
    return [t for t, keep in zip(texts, exact_duplicates(texts), strict=True) if keep]


def save_pairs(pairs: Sequence[Mapping[str, str]], path: str | Path) -> Path:
    """Write instruction pairs as a JSON list (atomically); :func:`load_seed_pairs` reads it."""

    text = json.dumps(list(pairs), ensure_ascii=False, indent=1) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))
