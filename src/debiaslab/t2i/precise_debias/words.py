"""PreciseDebias word lists and tokens: what counts as an ethnicity, gender or person word.

The demographic word lists (``resources/t2i_words.yaml``, read by `load_words`) and a
tokenised text with the matching helpers that :mod:`.replace`, :mod:`.fill` and
:mod:`.groups` share. Part of the PreciseDebias data pipeline (Clemmer et al., WACV 2024); the
rules are in :func:`.replace.replace_demographics`.

Example:
    >>> words = load_words()
    >>> "female" in words.gender_adjectives, words.gender_nouns["woman"]
    (True, 'person')
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from debiaslab.data.fetch import parse_yaml
from debiaslab.errors import DataFormatError

ETHNICITY = "[ETHNICITY]"
GENDER = "[GENDER]"
SLOT = f"{ETHNICITY} {GENDER}"  # the subject slot of fill.subject_template
WORDS_RESOURCE = "resources/t2i_words.yaml"
GENDER_INDEX = {"female": 0, "male": 1}  # column of gendered_forms
SUBJECT_MARK = "\x01"  # marks the subject slot inside fill.subject_template

PLACEHOLDER = r"\[(?:ETHNICITY|GENDER)\]"
ARTICLE_BEFORE_SLOT_RE = re.compile(rf"\b([Aa])n([ \t]+)(?={PLACEHOLDER}|\x01)")
_TOKEN_RE = re.compile(rf"{PLACEHOLDER}|[^\W\d_]+(?:['’][^\W\d_]+)*")


@dataclass(frozen=True)
class Words:
    """The word lists of ``resources/t2i_words.yaml``, indexed for matching (see `load_words`).

    Phrase tables map a phrase's first lower-case word to its entries, longest first; each
    entry is ``(words, kind, plural)``.
    """

    source: str
    ethnicity: Mapping[str, tuple[tuple[tuple[str, ...], str, bool], ...]]
    capitalised_only: frozenset[str]
    fixed: Mapping[str, tuple[tuple[str, ...], ...]]
    descent_nouns: frozenset[str]
    gender_adjectives: frozenset[str]
    gender_nouns: Mapping[str, str]
    gendered_forms: Mapping[str, tuple[str, str]]
    pronouns: Mapping[str, str]
    person_nouns: Mapping[str, tuple[tuple[str, ...], ...]]
    person_suffixes: tuple[str, ...]
    not_person: frozenset[str]
    adjectives: frozenset[str]
    person_modifiers: frozenset[str]
    stop_words: frozenset[str]
    nominal_followers: frozenset[str]
    determiners: frozenset[str]
    her_object_followers: frozenset[str]
    ly_not_adverbs: frozenset[str]
    adverbs: frozenset[str]
    irregular_verbs: Mapping[str, str]


def load_words(path: str | Path | None = None) -> Words:
    """Read and index the demographic word lists (the packaged YAML file, or ``path``).

    Args:
        path: a YAML file of the same structure as ``resources/t2i_words.yaml``.

    Returns:
        A `Words`; the packaged one is read once and cached.

    Raises:
        DataFormatError: the file is not valid YAML, lacks a section, or holds a non-string
            entry (often an unquoted YAML 1.1 boolean such as ``on``), named by its field.

    Example:
        >>> words = load_words()
        >>> "female" in words.gender_adjectives, words.gender_nouns["woman"]
        (True, 'person')
    """
    if path is None:
        return _packaged_words()
    return _parse_words(Path(path).read_text("utf-8"), str(path))


@functools.lru_cache(maxsize=1)
def _packaged_words() -> Words:
    text = resources.files("debiaslab").joinpath(WORDS_RESOURCE).read_text("utf-8")
    return _parse_words(text, f"debiaslab/{WORDS_RESOURCE}")


def _parse_words(text: str, file: str) -> Words:

    data = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise DataFormatError("expected a mapping of word lists", file=file)

    def section(*keys: str) -> Any:
        node: Any = data
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                where = ".".join(keys[: depth + 1])
                raise DataFormatError("missing section", file=file, field=where)
            node = node[key]
        return node

    def strings(*keys: str) -> list[str]:
        node = section(*keys)
        if not isinstance(node, list) or not node:
            raise DataFormatError("expected a non-empty list", file=file, field=".".join(keys))
        for k, item in enumerate(node):
            if not isinstance(item, str) or not item.strip():
                raise DataFormatError(
                    f"entry {k} is {item!r}, not a word (quote YAML booleans such as 'on')",
                    file=file,
                    field=".".join(keys),
                )
        return [item.strip() for item in node]

    def mapping(*keys: str) -> dict[str, Any]:
        node = section(*keys)
        if not isinstance(node, dict) or not node:
            raise DataFormatError("expected a non-empty mapping", file=file, field=".".join(keys))
        for key, value in node.items():
            ok = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not isinstance(key, str) or not ok:
                raise DataFormatError(
                    f"entry {key!r}: {value!r} is not words (quote YAML booleans)",
                    file=file,
                    field=".".join(keys),
                )
        return {key.lower(): value for key, value in node.items()}

    def lowset(*keys: str) -> frozenset[str]:
        return frozenset(w.lower() for w in strings(*keys))

    ethnicity: dict[str, list[tuple[tuple[str, ...], str, bool]]] = {}
    for kind in ("race", "nationality", "colour"):
        for term in strings("ethnicity", kind):
            parts = _split_words(term)
            forms = [(parts, False)]
            if kind != "colour" and not parts[-1].endswith(("s", "sh", "ch", "ese")):
                forms.append(((*parts[:-1], parts[-1] + "s"), True))
            for words, plural in forms:
                ethnicity.setdefault(words[0], []).append((words, kind, plural))
    forms_map = mapping("gender", "gendered_forms")
    for neutral, pair in forms_map.items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise DataFormatError(
                f"{neutral!r} needs [female form, male form]",
                file=file,
                field="gender.gendered_forms",
            )
    gender_nouns = {k: v.strip().lower() for k, v in mapping("gender", "nouns").items()}
    person_nouns: dict[str, list[tuple[str, ...]]] = {}
    for noun in [*strings("person_nouns"), *gender_nouns.values()]:
        parts = _split_words(noun)
        for words in (parts, (*parts[:-1], _plural(parts[-1]))):
            person_nouns.setdefault(words[0], []).append(words)
    fixed: dict[str, list[tuple[str, ...]]] = {}
    for phrase in strings("fixed_expressions"):
        parts = _split_words(phrase)
        fixed.setdefault(parts[0], []).append(parts)
    modifiers = {part for w in strings("person_modifiers") for part in _split_words(w)}
    return Words(
        source=file,
        ethnicity=_longest_first(ethnicity, key=lambda entry: len(entry[0])),
        capitalised_only=lowset("ethnicity", "capitalised_only"),
        fixed=_longest_first(fixed, key=len),
        descent_nouns=lowset("descent_nouns"),
        gender_adjectives=lowset("gender", "adjectives"),
        gender_nouns=gender_nouns,
        gendered_forms={k: (v[0], v[1]) for k, v in forms_map.items()},
        pronouns={k: v.lower() for k, v in mapping("gender", "pronouns").items()},
        person_nouns=_longest_first(person_nouns, key=len),
        person_suffixes=tuple(w.lower() for w in strings("person_noun_suffixes")),
        not_person=lowset("not_person_nouns"),
        adjectives=lowset("adjectives"),
        person_modifiers=frozenset(modifiers),
        stop_words=lowset("grammar", "stop_words"),
        nominal_followers=lowset("grammar", "nominal_followers"),
        determiners=lowset("grammar", "determiners"),
        her_object_followers=lowset("grammar", "her_object_followers"),
        ly_not_adverbs=lowset("grammar", "ly_not_adverbs"),
        adverbs=lowset("grammar", "adverbs"),
        irregular_verbs={k: v.lower() for k, v in mapping("grammar", "irregular_verbs").items()},
    )


def _split_words(phrase: str) -> tuple[str, ...]:
    """Lower-case words of a phrase; spaces and hyphens both separate ("Afro-Latino")."""
    return tuple(w for w in re.split(r"[\s-]+", phrase.lower()) if w)


def _plural(noun: str) -> str:
    if noun == "person":
        return "people"
    if noun == "child":
        return "children"
    if noun.endswith("man"):
        return noun[:-3] + "men"
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _longest_first(table: dict, key) -> dict:
    """Deduplicate each entry list of a phrase table and sort it longest first."""
    return {
        head: tuple(sorted(dict.fromkeys(entries), key=key, reverse=True))
        for head, entries in table.items()
    }


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    low: str  # lower case, possessive "'s" removed
    poss: str  # the removed possessive, or ""

    @property
    def placeholder(self) -> bool:
        return self.text in (ETHNICITY, GENDER)


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in _TOKEN_RE.finditer(text):
        word = m.group()
        low, poss = word.lower(), ""
        if len(low) > 2 and low[-2] in "'’" and low[-1] == "s":
            low, poss = low[:-2], word[-2:]
        out.append(_Token(m.start(), m.end(), word, low, poss))
    return out


class TokenizedText:
    """A text with its tokens and the helpers the matching rules share."""

    def __init__(self, text: str, words: Words) -> None:
        self.text = text
        self.words = words
        self.toks = _tokens(text)

    def __len__(self) -> int:
        return len(self.toks)

    def gap(self, k: int) -> str:
        """The characters between token ``k - 1`` and token ``k`` (to the ends if outside)."""
        start = self.toks[k - 1].end if k > 0 else 0
        end = self.toks[k].start if k < len(self.toks) else len(self.text)
        return self.text[start:end]

    def spaced(self, k: int) -> bool:
        """Whether token ``k`` exists and follows token ``k - 1`` after whitespace only."""
        return 0 < k < len(self.toks) and self.gap(k) != "" and self.gap(k).isspace()

    def hyphen_joined(self, k: int) -> bool:
        """Whether token ``k`` exists and is glued to token ``k - 1`` by one hyphen."""
        return 0 < k < len(self.toks) and self.gap(k) == "-"

    def phrase_at(self, table: Mapping[str, tuple], k: int, entry_words=lambda e: e) -> Any:
        """The longest entry of ``table`` matching tokens from ``k`` (space/hyphen joined)."""
        if k >= len(self.toks):
            return None
        for entry in table.get(self.toks[k].low, ()):
            words = entry_words(entry)
            end = k + len(words)
            if end > len(self.toks):
                continue
            if all(
                self.toks[k + n].low == words[n]
                and (self.spaced(k + n) or self.hyphen_joined(k + n))
                and not self.toks[k + n - 1].poss
                for n in range(1, len(words))
            ):
                return entry
        return None

    def ethnicity_at(self, k: int) -> tuple[tuple[str, ...], str, bool] | None:
        entry = self.phrase_at(self.words.ethnicity, k, entry_words=lambda e: e[0])
        if entry is None:
            return None
        caps = self.words.capitalised_only
        for n, word in enumerate(entry[0]):
            if word in caps and not self.toks[k + n].text[:1].isupper():
                return None
        return entry

    def person_noun_at(self, k: int) -> int:
        """How many tokens from ``k`` form a person noun (0: none)."""
        if k >= len(self.toks):
            return 0
        tok = self.toks[k]
        if tok.placeholder:
            return 0
        entry = self.phrase_at(self.words.person_nouns, k)
        if entry is not None:
            return len(entry)
        low = tok.low
        if low in self.words.not_person:
            return 0
        for stem in (low, low[:-1] if low.endswith("s") else ""):
            if stem and stem not in self.words.not_person:
                for suffix in self.words.person_suffixes:
                    if stem.endswith(suffix) and len(stem) >= len(suffix) + 3:
                        return 1
        return 0

    def gendered_at(self, k: int) -> bool:
        low = self.toks[k].low
        return low in self.words.gender_adjectives or low in self.words.gender_nouns


def match_case(source: str, word: str) -> str:
    """``word`` in the case pattern of ``source`` (lower, Capitalised or UPPER)."""
    if len(source) > 1 and source.isupper():
        return word.upper()
    if source[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
