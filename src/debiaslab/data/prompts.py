"""Prompt sets for generation-based bias metrics: BOLD prompts, HONEST templates, HurtLex.

BOLD (Dhamala et al., FAccT 2021; 23,679 prompts), HONEST (Nozza et al., NAACL 2021) and
HurtLex 1.2 English (Bassignana et al. 2018; CC BY-NC-SA 4.0, non-commercial), plus the
text-to-image prompt sets PartiPrompts and COCO captions. Entry points: :func:`load_bold`,
:func:`sample_prompts`, :func:`load_honest_templates`, :func:`load_hurtlex`,
:func:`load_partiprompts`, :func:`load_coco_captions`. Files resolve like every benchmark file
(explicit path → ``$DEBIASLAB_DATA_DIR`` → cache → checksum-verified download); malformed
files raise ``DataFormatError`` naming file, record and field.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from debiaslab.data.fetch import decode_utf8, parse_json, resolve
from debiaslab.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

BOLD_DOMAINS = ("gender", "race", "religious_ideology", "profession", "political_ideology")
HONEST_SETS = ("binary", "queer_nonqueer")
HONEST_COLUMNS = ("template_masked", "raw", "identity", "number", "category", "type")
T = TypeVar("T")
HURTLEX_COLUMNS = ("id", "pos", "category", "stereotype", "lemma", "level")


@dataclass(frozen=True)
class BoldPrompt:
    domain: str
    group: str
    entity: str
    prompt: str


@dataclass(frozen=True)
class HonestTemplate:
    template_masked: str  # e.g. "the woman should work as a [M]."
    raw: str  # e.g. "[I] should work as a [M]"
    identity: str
    number: str
    category: str
    type: str


def _read_text(path: Path) -> str:
    text, bad = decode_utf8(path.read_bytes())
    if bad is not None:
        raise DataFormatError(f"not valid UTF-8 ({bad})", file=path)
    if not text.strip():
        raise DataFormatError("the file is empty", file=path)
    return text


def load_bold(
    domains: Iterable[str] | None = None, path: str | os.PathLike | None = None
) -> list[BoldPrompt]:
    """BOLD prompts of the given domains (default: all five), in file order.

    BOLD (Dhamala et al., FAccT 2021; CC BY-SA 4.0): Wikipedia sentence beginnings per domain
    (gender, race, religious_ideology, profession, political_ideology) → group → entity →
    prompts; 23,679 prompts. Format: ``{group: {entity: [prompt, ...]}}`` per domain file. Its
    five empty prompts (2 religious_ideology, 3 political_ideology) are skipped with a warning.

    Args:
        domains: domain names from :data:`BOLD_DOMAINS`.
        path: one ``<domain>_prompt.json`` file (then ``domains`` must name one domain, or be
            None to infer it from the file name) — otherwise the files are resolved.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "gender_prompt.json"
        >>> _ = p.write_text('{"American_actors": {"Tom_Hanks": ["Tom Hanks is an "]}}')
        >>> load_bold(path=p)[0]
        BoldPrompt(domain='gender', group='American_actors', entity='Tom_Hanks', prompt='Tom Hanks is an ')
    """  # noqa: E501
    if path is not None:
        path = Path(path)
        domain = path.name.removesuffix("_prompt.json")
        wanted = list(domains) if domains is not None else [domain]
        if wanted != [domain] or domain not in BOLD_DOMAINS:
            raise DataFormatError(
                f"a single BOLD file must be named <domain>_prompt.json with domain one of "
                f"{BOLD_DOMAINS} and match the requested domains {wanted}",
                file=path,
            )
        return _parse_bold(domain, resolve(f"bold_{domain}", path))
    prompts: list[BoldPrompt] = []
    for domain in domains or BOLD_DOMAINS:
        if domain not in BOLD_DOMAINS:
            raise DataFormatError(
                f"unknown BOLD domain {domain!r}; expected one of {BOLD_DOMAINS}", file="BOLD"
            )
        prompts += _parse_bold(domain, resolve(f"bold_{domain}"))
    return prompts


def _parse_bold(domain: str, path: Path) -> list[BoldPrompt]:
    data = parse_json(_read_text(path), path)
    if not isinstance(data, dict) or not data:
        raise DataFormatError("expected a non-empty object {group: {entity: [prompt]}}", file=path)
    out, empty = [], 0
    for group, entities in data.items():
        if not isinstance(entities, dict):
            raise DataFormatError("expected an object {entity: [prompt]}", file=path, row=group)
        for entity, prompts in entities.items():
            record = f"{group}/{entity}"
            if not isinstance(prompts, list):
                raise DataFormatError("expected a list of prompts", file=path, row=record)
            for k, prompt in enumerate(prompts):
                if not isinstance(prompt, str):
                    raise DataFormatError(
                        f"prompt {k} is not a string", file=path, row=record, field=str(k)
                    )
                if not prompt.strip():  # upstream has five: nothing to continue
                    empty += 1
                    continue
                out.append(BoldPrompt(domain, group, entity, prompt))
    if empty:
        log.warning("%s: skipped %d empty prompt(s)", path, empty)
    if not out:
        raise DataFormatError("no prompts in the file", file=path)
    return out


def sample_prompts(
    prompts: Sequence[T],
    *,
    groups: Iterable[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    key: Callable[[T], tuple[str, str]] = lambda p: (p.domain, p.group),
) -> list[T]:
    """A seeded sample, balanced over groups: at most ``limit`` prompts per group.

    Without ``limit`` every prompt of the chosen groups is kept, in file order. With it, each
    group contributes its first ``limit`` prompts of a seeded shuffle, so small groups are not
    crowded out by large ones and the same seed always gives the same prompts.

    ``key`` gives an item's (domain, group): BOLD prompts by default; for HONEST templates
    ``lambda t: (set_name, t.category)``.
    """
    chosen = set(groups) if groups is not None else None
    by_group: dict[tuple[str, str], list[T]] = defaultdict(list)
    for prompt in prompts:
        domain, group = key(prompt)
        if chosen is None or group in chosen:
            by_group[(domain, group)].append(prompt)
    if chosen is not None and (missing := chosen - {g for _, g in by_group}):
        raise DataFormatError(f"no prompts for groups {sorted(missing)}", file="prompt set")
    if limit is None:
        return [p for group in by_group.values() for p in group]
    out = []
    for (domain, group), members in by_group.items():
        rng = random.Random(f"{seed}:{domain}:{group}")
        out += rng.sample(members, min(limit, len(members)))
    return out


def _read_tsv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(_read_text(path).splitlines(), delimiter="\t")
    header = list(reader.fieldnames or [])
    rows = list(reader)
    for column in required:
        if column not in header:
            raise DataFormatError(
                f"missing column (header: {header})", file=path, row=0, field=column
            )
    for number, row in enumerate(rows, start=1):
        if None in row or any(row[c] is None for c in required):
            raise DataFormatError("wrong number of fields", file=path, row=number)
    return rows


def load_honest_templates(
    kind: str = "binary", path: str | os.PathLike | None = None
) -> list[HonestTemplate]:
    """HONEST templates of a set (``binary`` or ``queer_nonqueer``), read by header name.

    HONEST (Nozza et al., NAACL 2021; MIT): templates with ``[I]`` (identity) and ``[M]``
    (completion) placeholders, ``binary`` (female/male) and ``queer_nonqueer`` sets. The two
    files order their columns differently, hence reading by header name.
    """
    if kind not in HONEST_SETS:
        raise DataFormatError(
            f"unknown HONEST set {kind!r}; expected one of {HONEST_SETS}",
            file=str(path or "HONEST"),
        )
    file = resolve(f"honest_{kind}", path)
    templates = []
    for number, row in enumerate(_read_tsv(file, HONEST_COLUMNS), start=1):
        if "[M]" not in row["template_masked"]:
            raise DataFormatError(
                "no [M] placeholder", file=file, row=number, field="template_masked"
            )
        if "[I]" not in row["raw"]:
            raise DataFormatError("no [I] placeholder", file=file, row=number, field="raw")
        templates.append(HonestTemplate(**{c: row[c] for c in HONEST_COLUMNS}))
    return templates


def strip_accents(word: str) -> str:
    """``café`` → ``cafe`` (HONEST compares accent-stripped lemmas)."""
    return "".join(
        c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn"
    )


def load_hurtlex(
    path: str | os.PathLike | None = None, *, level: str | None = "conservative"
) -> dict[str, set[str]]:
    """HurtLex English: ``{accent-stripped lemma: {categories}}`` at a level (None: all).

    HurtLex 1.2 English (Bassignana et al. 2018; CC BY-NC-SA 4.0, non-commercial) is the
    lexicon of hurtful words HONEST counts; the ``conservative`` level is what the HONEST score
    uses.
    """
    file = resolve("hurtlex_en", path)
    lexicon: dict[str, set[str]] = defaultdict(set)
    for number, row in enumerate(_read_tsv(file, HURTLEX_COLUMNS), start=1):
        if row["level"] not in ("conservative", "inclusive"):
            raise DataFormatError(
                f"unknown level {row['level']!r}", file=file, row=number, field="level"
            )
        if level is None or row["level"] == level:
            lexicon[strip_accents(row["lemma"])].add(row["category"])
    return dict(lexicon)


@dataclass(frozen=True)
class ImagePrompt:
    """A text-to-image prompt with its category (PartiPrompts) or source image (COCO)."""

    prompt: str
    category: str
    challenge: str = ""
    image_id: str = ""


PARTI_COLUMNS = ("Prompt", "Category", "Challenge")


def _limit_by_category(prompts: list[ImagePrompt], limit: int | None, seed: int):
    if limit is not None and limit <= 0:
        raise ConfigError(f"--limit must be a positive number, got {limit}")
    return sample_prompts(prompts, limit=limit, seed=seed, key=lambda p: ("image", p.category))


def load_partiprompts(
    path: str | os.PathLike | None = None,
    *,
    categories: Iterable[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[ImagePrompt]:
    """PartiPrompts (Yu et al., 2022): 1,632 prompts in 12 categories with a challenge label.

    Args:
        path: the TSV (default: resolved like every benchmark file).
        categories: keep these categories only (e.g. ``["People"]``).
        limit: at most this many per category (a seeded sample, see `sample_prompts`).
    """
    file = resolve("partiprompts", path)
    prompts = []
    for number, row in enumerate(_read_tsv(file, PARTI_COLUMNS), start=1):
        if not row["Prompt"].strip():
            raise DataFormatError("empty prompt", file=file, row=number, field="Prompt")
        prompts.append(ImagePrompt(row["Prompt"].strip(), row["Category"], row["Challenge"]))
    if categories is not None:
        wanted = set(categories)
        missing = wanted - {p.category for p in prompts}
        if missing:
            known = sorted({p.category for p in prompts})
            raise ConfigError(f"unknown PartiPrompts categories {sorted(missing)}; known: {known}")
        prompts = [p for p in prompts if p.category in wanted]
    return _limit_by_category(prompts, limit, seed)


def load_coco_captions(
    path: str | os.PathLike, *, limit: int | None = None, seed: int = 0
) -> list[ImagePrompt]:
    """Captions from a COCO annotation file (``captions_val2017.json`` format: ``annotations``
    with ``image_id`` and ``caption``), one per image (its first caption), as prompts.

    The canonical file ships inside the 241 MB ``annotations_trainval2017.zip`` from
    cocodataset.org, so it is not downloaded here: pass its path. ``limit``: a seeded sample.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"COCO captions file {file} does not exist; download annotations_trainval2017.zip "
            "from https://cocodataset.org and pass annotations/captions_val2017.json"
        )
    try:
        data = json.loads(_read_text(file))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"not valid JSON: {exc}", file=file) from None
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise DataFormatError("expected an object with an 'annotations' list", file=file)
    first: dict[str, str] = {}
    for number, item in enumerate(annotations):
        if not isinstance(item, dict) or "image_id" not in item or "caption" not in item:
            raise DataFormatError(
                "expected 'image_id' and 'caption'", file=file, row=number, field="annotations"
            )
        first.setdefault(str(item["image_id"]), " ".join(str(item["caption"]).split()))
    prompts = [ImagePrompt(c, "coco", image_id=i) for i, c in first.items() if c]
    if not prompts:
        raise DataFormatError("no captions", file=file)
    return _limit_by_category(prompts, limit, seed)
