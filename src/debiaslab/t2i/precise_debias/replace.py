# long by design: placeholder rules with their many exceptions; split into t2i/precise_debias/ is
# issue 14 point 3.
"""PreciseDebias training data: demographic placeholders, instruction pairs, leak-free splits.

PreciseDebias (Clemmer et al., WACV 2024) fine-tunes an LLM to rewrite a generic text-to-image
prompt ("a photo of a doctor") into one with a specific demographic descriptor ("a photo of a
Black female doctor"). Its training pairs come from GPT-3 occupation prompts whose demographic
words are replaced by a placeholder, then filled with each group. This module rebuilds that
data without the seed project's flaws: it replaced colour words wherever they stood ("a pristine
white apron" became "a pristine apron"), missed nationalities outside its 45-word list, left
gendered words and pronouns in the generic inputs (80 of the 112 evaluation inputs), and cut
train/evaluation on the list of pairs rather than by prompt.

Pipeline:
    `replace_demographics` (prompt -> template with ``[ETHNICITY]`` / ``[GENDER]``) ->
    `subject_template` (one slot for the subject, every other slot neutralised) ->
    `fill` (template + group -> text) -> `instruction_pairs` (Alpaca records) ->
    `split_by_prompt` (all pairs of a generic prompt on one side).

Rules of `replace_demographics` (word lists: ``resources/t2i_words.yaml``, `load_words`):
    * Matching is case-insensitive on whole words, longest entry first; multi-word terms match
      across a space or hyphen, and runs of terms ("Chinese-American", "Black British") become
      one ``[ETHNICITY]``. A term glued to a non-term by a hyphen is left alone ("Asian-inspired",
      "white-haired"); "<term>-born" counts as the term.
    * An ethnicity term is a person descriptor, and replaced, only (1) inside "of <term>
      descent/heritage/origin/..." or "with <term> heritage" (kept: "of [ETHNICITY] descent"),
      (2) followed by a person noun or a gender word, with at most 2 other words between
      (``SUBJECT_WINDOW``; "a Black high school teacher", "an Indian software engineer"), (3)
      as a plural noun ("Nigerians" -> "[ETHNICITY] people"), or (4) as a singular noun after a
      determiner, before punctuation or "with/who/in..." ("a young Nigerian, smiling" -> "a
      young [ETHNICITY] person, smiling").
      So "Chinese food", "the Indian Ocean", "Turkish coffee" stay; fixed expressions ("French
      horn player", "American football player") stay even before a person noun.
    * Colour words (black, white, brown) are never nouns, and in lower case are stricter: only
      before a person noun or gender word, with nothing between but person modifiers ("a white
      middle-aged male nurse"; "a black cab driver" stays). Capitalised ("a Black reggae
      artist", the race-term spelling) they follow the general rule. "white truck", "black
      coffee", "black and white photo", "white coat", "brown bag" stay. Hair and skin colour
      ("black hair", "brown-skinned") describe a look, not an ethnicity, and stay.
    * Gender adjectives (female, male) become ``[GENDER]``; gendered nouns become ``[GENDER]``
      plus a neutral noun ("woman" -> "[GENDER] person", "mother" -> "[GENDER] parent",
      "actress" -> "[GENDER] actor"), or just ``[GENDER]`` before another person noun ("a woman
      doctor" -> "a [GENDER] doctor"). Every gendered pronoun is neutralised, whether or not a
      gender word was replaced, since the rewriter will insert a gender that "his" or "she" could
      contradict: he/she -> they (with the next verb: "she smiles" -> "they smile", "is" ->
      "are", "she's" -> "they're"), him -> them, himself/herself -> themselves, hers -> theirs,
      his -> their (theirs before punctuation), her -> them before punctuation, a preposition,
      an article or an -ly adverb, else their. "he or she", "his/her" collapse to one word.
      Pronouns of other people in the prompt are neutralised too.
    * Placeholder runs are put in one canonical order, "[ETHNICITY] [GENDER]" (also across
      "and"/"or"/"/"), and an article before a slot is written "a": the template does not
      depend on the removed word ("an Indian doctor" and "a Black doctor" give the same
      template); `fill` chooses a/an for the word it inserts.
    * Replacement is idempotent: a template passes through unchanged.

Known failures (kept deliberately simple; tests pin them): predicate uses stay ("a doctor who is
Black"); ambiguous noun compounds are read as people ("a Spanish teacher" -> "[ETHNICITY]
teacher", "an Indian restaurant owner"); "male/female" always mean gender ("male voice");
only the verb right after he/she (and one "and <verb>") is made plural ("she smiles, nods and
waves" -> "they smile, nods and waves"); "her" before a bare verb reads as possessive ("made
her smile" -> "made their smile"); a sentence-initial colour word is capitalised, so "White lab
technicians ..." reads as people; religion ("Muslim"), skin tone and gender identity
("transgender") are not replaced.

Example:
    >>> replace_demographics("A Black female doctor in a white coat checks her notes.")
    'A [ETHNICITY] [GENDER] doctor in a white coat checks their notes.'
    >>> replace_demographics("An Indian woman eating Chinese food; she smiles.")
    'A [ETHNICITY] [GENDER] person eating Chinese food; they smile.'
    >>> fill("A [ETHNICITY] [GENDER] person eating Chinese food.", "Asian", "female")
    'An Asian woman eating Chinese food.'
    >>> fill("A [ETHNICITY] [GENDER] person eating Chinese food.")
    'A person eating Chinese food.'
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from debiaslab.data.fetch import decode_utf8, parse_json, parse_yaml
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.io import write_bytes_atomic
from debiaslab.synth.filters import clean_text, exact_duplicates
from debiaslab.synth.spec import Request

log = logging.getLogger(__name__)

ETHNICITY = "[ETHNICITY]"
GENDER = "[GENDER]"
SLOT = f"{ETHNICITY} {GENDER}"  # the subject slot of `subject_template`
WORDS_RESOURCE = "resources/t2i_words.yaml"
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
SUBJECT_WINDOW = 2  # words between an ethnicity term and its person noun ("Black ER nurse")
COLOUR_WINDOW = 4  # for colour words, and only person modifiers: "white middle-aged male nurse"
NOMINAL_LOOKBACK = 3  # a determiner this close before "Nigerian," makes it a noun ("a young ...")
_GENDER_INDEX = {"female": 0, "male": 1}  # column of gendered_forms

_PLACEHOLDER = r"\[(?:ETHNICITY|GENDER)\]"
_TOKEN_RE = re.compile(rf"{_PLACEHOLDER}|[^\W\d_]+(?:['’][^\W\d_]+)*")
_RUN_RE = re.compile(  # placeholders joined by space, hyphen, slash, "and" or "or"
    rf"{_PLACEHOLDER}(?:(?:[ \t]*[/-][ \t]*|[ \t]+(?:and|or)[ \t]+|[ \t]+){_PLACEHOLDER})*"
)
_SLOT_RE = re.compile(rf"{_PLACEHOLDER}(?:[ \t]+{_PLACEHOLDER})*")  # a canonical run
_ARTICLE_BEFORE_SLOT_RE = re.compile(rf"\b([Aa])n([ \t]+)(?={_PLACEHOLDER}|\x01)")
_PRONOUN_PAIR_RE = re.compile(
    r"\b(they|them|their|theirs|themselves)(\s*/\s*|\s+or\s+|\s+and\s+)\1\b", re.IGNORECASE
)
_FILLED = "\x00"  # marks where `fill` put a descriptor, for a/an agreement
_SUBJECT = "\x01"  # marks the subject slot inside `subject_template`
# Words starting with a vowel letter but a consonant sound, and the reverse.
_A_BEFORE = ("uni", "use", "usu", "uti", "ura", "uru", "uga", "ukr", "eu", "one", "once", "ewe")
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir")
_POSSESSIVES = frozenset({"their", "his", "her", "its", "my", "your", "our"})
_ADJECTIVE_ENDINGS = ("ed", "ful", "ous", "ive", "ent", "ant", "less", "ly")


# ---------------------------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


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


class _Text:
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


def _match_case(source: str, word: str) -> str:
    """``word`` in the case pattern of ``source`` (lower, Capitalised or UPPER)."""
    if len(source) > 1 and source.isupper():
        return word.upper()
    if source[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


# ---------------------------------------------------------------------------------------------
# Replacement
# ---------------------------------------------------------------------------------------------


def replace_demographics(prompt: str, *, words: Words | None = None) -> str:
    """Replace a prompt's ethnicity and gender descriptors with ``[ETHNICITY]`` / ``[GENDER]``.

    The rest of the text is kept as written; gendered pronouns are neutralised so that the
    template never contradicts the descriptor a rewriter will insert. The rules and their
    known failures are in the module docstring.

    Args:
        prompt: a text-to-image prompt.
        words: word lists (default: the packaged ones, `load_words`).

    Returns:
        The template. Templates pass through unchanged (the function is idempotent).

    Example:
        >>> replace_demographics("A photo of a white male nurse and his black coffee")
        'A photo of a [ETHNICITY] [GENDER] nurse and their black coffee'
        >>> replace_demographics("A teacher of Middle Eastern descent")
        'A teacher of [ETHNICITY] descent'
    """
    if not isinstance(prompt, str):
        raise ConfigError(f"a prompt must be a string, not {type(prompt).__name__}")
    lex = words or load_words()
    doc = _Text(prompt, lex)
    edits: list[tuple[int, int, str]] = []
    k = 0
    while k < len(doc):
        tok = doc.toks[k]
        if tok.placeholder:
            k += 1
            continue
        fixed = doc.phrase_at(lex.fixed, k)
        if fixed is not None:
            k += len(fixed)
            continue
        if doc.ethnicity_at(k) is not None:
            k = _replace_ethnicity(doc, k, edits)
        elif tok.low in lex.gender_adjectives and not tok.poss:
            k = _replace_gender_adjective(doc, k, edits)
        elif tok.low in lex.gender_nouns:
            k = _replace_gender_noun(doc, k, edits)
        elif _pronoun_base(tok.text.lower()) in lex.pronouns:
            k = _replace_pronoun(doc, k, edits)
        else:
            k += 1
    out = _apply(prompt, edits)
    out = _RUN_RE.sub(_canonical_run, out)
    out = _ARTICLE_BEFORE_SLOT_RE.sub(r"\1\2", out)
    return _PRONOUN_PAIR_RE.sub(lambda m: m.group(1), out)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, new in sorted(edits):
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _canonical_run(m: re.Match) -> str:
    run = m.group()
    return " ".join(p for p in (ETHNICITY, GENDER) if p in run)


def _compound_edge(doc: _Text, first: int, end: int) -> bool:
    """Whether tokens ``first..end-1`` are glued by hyphens to words outside them."""
    return doc.hyphen_joined(first) or doc.hyphen_joined(end)


def _replace_ethnicity(doc: _Text, k: int, edits: list) -> int:
    """Replace the ethnicity run starting at token ``k`` if it describes a person."""
    lex = doc.words
    end, kinds, plural = k, set(), False
    while True:
        entry = doc.ethnicity_at(end)
        if entry is None or (end > k and not (doc.spaced(end) or _joined(doc, end))):
            break
        words, kind, plural = entry
        kinds.add(kind)
        end += len(words)
    if doc.hyphen_joined(end) and doc.toks[end].low == "born":
        end += 1
    if _compound_edge(doc, k, end):
        return end
    start_char, end_char = doc.toks[k].start, doc.toks[end - 1].end
    poss = doc.toks[end - 1].poss
    # Lower-case colour words need a person noun right after them (modifiers aside); a
    # capitalised one ("a Black reggae artist") is read as the race term, like other terms.
    strict = kinds == {"colour"} and not doc.toks[k].text[:1].isupper()

    def replace(new: str) -> int:
        body_end = end_char - len(poss)
        edits.append((start_char, body_end, new))
        return end

    if (
        k > 0
        and doc.toks[k - 1].low in ("of", "with")
        and doc.spaced(k)
        and doc.spaced(end)
        and doc.toks[end].low in lex.descent_nouns
    ):
        return replace(ETHNICITY)
    if plural and "colour" not in kinds:
        return replace(f"{ETHNICITY} people")
    if _person_ahead(doc, end, strict):
        return replace(ETHNICITY)
    if kinds != {"colour"} and _nominal(doc, k, end):
        return replace(f"{ETHNICITY} person")
    return end


def _joined(doc: _Text, k: int) -> bool:
    """A hyphen or slash between ethnicity terms joins them into one run ("Black/Latino")."""
    return doc.hyphen_joined(k) or (0 < k < len(doc) and doc.gap(k).strip() == "/")


def _person_ahead(doc: _Text, k: int, strict: bool) -> bool:
    """Whether a person noun, gender word or placeholder follows token ``k - 1`` closely."""
    lex, skipped = doc.words, 0
    limit = COLOUR_WINDOW if strict else SUBJECT_WINDOW
    while doc.spaced(k) or doc.hyphen_joined(k):
        tok = doc.toks[k]
        if tok.placeholder or doc.gendered_at(k) or doc.person_noun_at(k):
            return True
        nxt = k + 1
        if tok.low in ("and", "or") and doc.spaced(nxt):
            entry = doc.ethnicity_at(nxt)
            if entry is not None or doc.toks[nxt].low in lex.gender_adjectives:
                k = nxt + (len(entry[0]) if entry else 1)  # "Black and Latino men"
                continue
        if tok.low in lex.stop_words or skipped >= limit:
            return False
        entry = doc.ethnicity_at(k)
        if strict and tok.low not in lex.person_modifiers and entry is None:
            return False
        skipped += 1
        k += len(entry[0]) if entry else 1
    return False


def _nominal(doc: _Text, first: int, end: int) -> bool:
    """Whether the term at tokens ``first..end-1`` is a noun for a person ("a Nigerian, ...")."""
    lex = doc.words
    if end < len(doc):
        if doc.spaced(end):
            if doc.toks[end].low not in lex.nominal_followers:
                return False
        elif doc.ethnicity_at(end) is not None:  # "a Mexican, Thai or Indian restaurant"
            return False
    k, steps = first - 1, 0
    while k >= 0 and steps < NOMINAL_LOOKBACK and doc.spaced(k + 1):
        low = doc.toks[k].low
        if low in lex.determiners:
            return True
        if low in lex.stop_words:
            return False
        k, steps = k - 1, steps + 1
    return False


def _replace_gender_adjective(doc: _Text, k: int, edits: list) -> int:
    lex, tok = doc.words, doc.toks[k]
    if _compound_edge(doc, k, k + 1):  # "female-led"
        return k + 1
    nxt = k + 1
    adjective = doc.spaced(nxt) and doc.toks[nxt].low not in (
        lex.stop_words | lex.nominal_followers
    )
    if doc.spaced(nxt) and doc.toks[nxt].low in ("and", "or") and doc.spaced(nxt + 1):
        adjective = doc.toks[nxt + 1].low in lex.gender_adjectives  # "male and female doctors"
    edits.append((tok.start, tok.end, GENDER if adjective else f"{GENDER} person"))
    return k + 1


def _replace_gender_noun(doc: _Text, k: int, edits: list) -> int:
    lex, tok = doc.words, doc.toks[k]
    if _compound_edge(doc, k, k + 1):  # "Spider-Man", "man-made"
        return k + 1
    body_end = tok.end - len(tok.poss)
    nxt = k + 1
    if (
        not tok.poss
        and doc.spaced(nxt)
        and doc.person_noun_at(nxt)
        and doc.toks[nxt].low not in lex.gender_nouns
    ):
        edits.append((tok.start, body_end, GENDER))  # "a woman doctor" -> "a [GENDER] doctor"
    else:
        edits.append((tok.start, body_end, f"{GENDER} {lex.gender_nouns[tok.low]}"))
    return k + 1


def _pronoun_base(word: str) -> str:
    return re.split(r"['’]", word, maxsplit=1)[0]


def _replace_pronoun(doc: _Text, k: int, edits: list) -> int:
    lex, tok = doc.words, doc.toks[k]
    if _compound_edge(doc, k, k + 1):  # "she-wolf"
        return k + 1
    word = tok.text
    base = _pronoun_base(word.lower())
    contraction = word[len(base) :]
    nxt = k + 1
    follows = doc.spaced(nxt)  # a word follows, with no punctuation between
    new = lex.pronouns[base]
    slash = "/" in doc.gap(nxt)  # "his/her coat", "her/his coat": possessive
    after = doc.toks[nxt].low if follows else ""
    if (
        base == "her"
        and not slash
        and (
            not follows
            or after in lex.her_object_followers
            or (after.endswith("ly") and after not in lex.ly_not_adverbs)
        )
    ):
        new = "them"
    elif base == "his" and not follows and not slash:
        new = "theirs"
    if new == "they" and contraction:
        suffix = contraction[1:].lower()
        if suffix == "s":  # he's smiling -> they're; she's been -> they've
            been = follows and doc.toks[nxt].low in ("been", "got", "had")
            suffix = "ve" if been else "re"
        contraction = contraction[0] + suffix
    edits.append((tok.start, tok.end, _match_case(word[: len(base)], new) + contraction))
    if new == "they" and not contraction:
        _agree_verb(doc, nxt, edits)
    return k + 1


def _agree_verb(doc: _Text, k: int, edits: list) -> None:
    """Make the verb after a new "they" plural: "(she) always smiles" -> "always smile"."""
    lex = doc.words
    for _ in range(2):  # skip up to two adverbs
        if not doc.spaced(k):
            return
        low = doc.toks[k].low
        if low in lex.adverbs or (low.endswith("ly") and low not in lex.ly_not_adverbs):
            k += 1
        else:
            break
    if not doc.spaced(k) or not _plural_verb(doc, k, edits):
        return
    if (
        doc.spaced(k + 1)
        and doc.toks[k + 1].low in ("and", "or")
        and doc.spaced(k + 2)
        and doc.toks[k + 2].text[:1].islower()
    ):
        _plural_verb(doc, k + 2, edits)  # "smiles and waves" -> "smile and wave"


def _plural_verb(doc: _Text, k: int, edits: list) -> bool:
    tok = doc.toks[k]
    low = tok.text.lower()
    new = doc.words.irregular_verbs.get(low)
    if new is None:
        if tok.placeholder or not low.endswith("s") or low.endswith(("ss", "'s", "’s")):
            return False
        if len(low) < 3 or low in doc.words.adverbs:
            return False
        new = _base_form(low)
    edits.append((tok.start, tok.end, _match_case(tok.text, new)))
    return True


def _base_form(verb: str) -> str:
    """The plural (base) form of a regular 3rd-person singular verb."""
    if verb in ("dies", "lies", "ties", "vies"):
        return verb[:-1]
    if verb.endswith("ies") and len(verb) > 4:
        return verb[:-3] + "y"
    if verb.endswith(("sses", "shes", "ches", "xes", "zzes", "oes")):
        return verb[:-2]
    return verb[:-1]


def find_demographic_words(text: str, *, words: Words | None = None) -> list[tuple[str, str]]:
    """Every listed demographic word in ``text``, whatever its context.

    Unlike `replace_demographics` this ignores context, so it also finds object uses ("white
    coat"): it audits what a replacement left behind.

    Returns:
        ``(surface text, kind)`` pairs in text order; kind is ``race``, ``nationality``,
        ``colour``, ``gender`` or ``pronoun``.

    Example:
        >>> find_demographic_words("A white coat on her Nigerian-born colleague")
        [('white', 'colour'), ('her', 'pronoun'), ('Nigerian', 'nationality')]
    """
    lex = words or load_words()
    doc = _Text(text, lex)
    found, k = [], 0
    while k < len(doc):
        tok = doc.toks[k]
        entry = doc.ethnicity_at(k)
        if entry is not None:
            last = doc.toks[k + len(entry[0]) - 1]
            found.append((text[tok.start : last.end - len(last.poss)], entry[1]))
            k += len(entry[0])
            continue
        if doc.gendered_at(k):
            found.append((tok.text[: len(tok.text) - len(tok.poss)], "gender"))
        elif _pronoun_base(tok.text.lower()) in lex.pronouns:
            found.append((tok.text, "pronoun"))
        k += 1
    return found


# ---------------------------------------------------------------------------------------------
# Filling
# ---------------------------------------------------------------------------------------------


def fill(
    template: str,
    ethnicity: str | None = None,
    gender: str | None = None,
    *,
    words: Words | None = None,
) -> str:
    """Put descriptors into a template's slots: the inverse of `replace_demographics`.

    Every ``[ETHNICITY]`` gets ``ethnicity`` and every ``[GENDER]`` gets ``gender``
    (`subject_template` leaves one slot of each). ``None`` removes a placeholder: with both
    ``None`` the result is the generic prompt. "[GENDER] person" with gender ``female`` /
    ``male`` becomes "woman"/"man" (``gendered_forms`` of the word lists); other nouns take the
    adjective ("female actor"). "of [ETHNICITY] descent" without an ethnicity is dropped. An
    article before a slot agrees with the word that now follows it.

    Args:
        template: text with ``[ETHNICITY]`` and/or ``[GENDER]``.
        ethnicity: e.g. ``"Black"``, inserted as written; ``None`` to remove.
        gender: e.g. ``"female"``, inserted as written; ``None`` to remove.
        words: word lists (default: the packaged ones).

    Returns:
        The filled text. ``replace_demographics(fill(t, e, g)) == t`` for templates made by
        `replace_demographics` with both placeholders, when ``e`` and ``g`` are listed words
        (a lower-case colour word needs its person noun right after it).

    Raises:
        ConfigError: a descriptor is empty, not a string, or contains a placeholder.

    Example:
        >>> fill("a [ETHNICITY] [GENDER] engineer", "Asian")
        'an Asian engineer'
        >>> fill("A teacher of [ETHNICITY] descent smiles", gender="male")
        'A teacher smiles'
    """
    for name, value in (("ethnicity", ethnicity), ("gender", gender)):
        if value is not None and (
            not isinstance(value, str) or not value.strip() or "[" in value or "]" in value
        ):
            raise ConfigError(f"{name} must be a non-empty descriptor or None, got {value!r}")
    lex = words or load_words()
    out: list[str] = []
    pos = 0
    for m in _SLOT_RE.finditer(template):
        if m.start() < pos:
            continue
        run = m.group()
        has_ethnicity, has_gender = ETHNICITY in run, GENDER in run
        before = template[pos : m.start()]
        after = template[m.end() :]
        noun = re.match(r"[ \t]+([^\W\d_]+)", after)
        next_word = noun.group(1) if noun else ""
        if (
            has_ethnicity
            and not has_gender
            and ethnicity is None
            and next_word.lower() in lex.descent_nouns
            and re.search(r"\b(?:of|with)[ \t]+$", before, re.IGNORECASE)
        ):  # drop " of [ETHNICITY] descent", " with [ETHNICITY] heritage"
            before = re.sub(r"[ \t]*\b(?:of|with)[ \t]+$", "", before, flags=re.IGNORECASE)
            pos = m.end() + noun.end()
            if before.endswith(",") and template[pos : pos + 1] == ",":
                pos += 1
            out.append(before)
            continue
        parts = [ethnicity] if has_ethnicity and ethnicity is not None else []
        end = m.end()
        if has_gender and gender is not None:
            forms = lex.gendered_forms.get(next_word.lower())
            column = _GENDER_INDEX.get(gender.strip().lower())
            if forms is not None and column is not None:
                parts.append(_match_case(next_word, forms[column]))
                end = m.end() + noun.end()
            else:
                parts.append(gender)
        text = " ".join(parts)
        if not text:
            if template[end : end + 1] in (" ", "\t"):
                end += 1
            elif before.endswith((" ", "\t")):
                before = before[:-1]
        out.append(before + _FILLED + text)
        pos = end
    out.append(template[pos:])
    filled = re.sub(
        rf"\b([Aa]n?)([ \t]+){_FILLED}([^\W\d_]+)",
        lambda m: _article(m.group(1), m.group(3)) + m.group(2) + m.group(3),
        "".join(out),
    )
    filled = filled.replace(_FILLED, "")
    if template.lstrip().startswith("[") and filled.strip():
        lead = len(filled) - len(filled.lstrip())
        filled = filled[:lead] + filled[lead].upper() + filled[lead + 1 :]
    return filled


def _article(article: str, word: str) -> str:
    """``a`` or ``an`` before ``word``, in the case of ``article``."""
    low = word.lower()
    vowel = low[:1] in "aeiou"
    if low.startswith(_A_BEFORE):
        vowel = False
    elif low.startswith(_AN_BEFORE):
        vowel = True
    chosen = "an" if vowel else "a"
    return chosen.capitalize() if article[:1].isupper() else chosen


# ---------------------------------------------------------------------------------------------
# Subject slot and instruction pairs
# ---------------------------------------------------------------------------------------------


def subject_template(prompt: str, *, words: Words | None = None) -> str | None:
    """A template with one ``[ETHNICITY] [GENDER]`` slot, on the prompt's subject.

    The subject is the first person noun after an article or number ("a", "the", "two"...),
    else the first person noun at all. A slot the prompt's own descriptor left before it
    becomes the subject slot; otherwise one is inserted after the subject's adjectives and
    before its other modifiers ("A skilled [ETHNICITY] [GENDER] wildlife photographer"). Every
    other slot is neutralised ("of [ETHNICITY] descent" is dropped), so a pair's input and
    output differ only by the subject's descriptor.

    Args:
        prompt: a text-to-image prompt.
        words: word lists (default: the packaged ones).

    Returns:
        The template, or ``None`` when the prompt names no person the lists know.

    Example:
        >>> subject_template("A firefighter rushes in, his face covered in soot.")
        'A [ETHNICITY] [GENDER] firefighter rushes in, their face covered in soot.'
        >>> subject_template("An architect of Indian heritage presents her design")
        'A [ETHNICITY] [GENDER] architect presents their design'
        >>> subject_template("A doctor talking to a Black woman")
        'A [ETHNICITY] [GENDER] doctor talking to a person'
    """
    lex = words or load_words()
    template = replace_demographics(prompt, words=lex)
    doc = _Text(template, lex)
    nouns = [k for k in range(len(doc)) if doc.person_noun_at(k)]
    if not nouns:
        return None
    bounds = {k: _noun_phrase_start(doc, k) for k in nouns}
    candidates = [k for k in nouns if bounds[k][1] != "possessive"]  # not "their students"
    if not candidates:
        return None
    noun = next((k for k in candidates if bounds[k][1] == "determiner"), candidates[0])
    first = bounds[noun][0]
    slots = [k for k in range(first, noun) if doc.toks[k].placeholder]
    if slots:  # the run nearest the noun: "a middle-aged [slot] person"
        start = max(k for k in slots if k == first or not doc.toks[k - 1].placeholder)
        run = _SLOT_RE.match(template, doc.toks[start].start)
        marked = template[: run.start()] + _SUBJECT + template[run.end() :]
    else:
        k = first
        while k < noun and _adjective_like(doc.toks[k].low, lex):  # "a skilled [slot] wildlife"
            k += 1
        at = doc.toks[k].start
        marked = template[:at] + _SUBJECT + " " + template[at:]
    neutral = fill(marked, words=lex)
    neutral = _ARTICLE_BEFORE_SLOT_RE.sub(r"\1\2", neutral)
    return neutral.replace(_SUBJECT, SLOT)


def _noun_phrase_start(doc: _Text, k: int) -> tuple[int, str]:
    """Where the noun phrase of the person noun at token ``k`` starts, and what opens it.

    Walks back over up to 6 words, hyphens and slots to a determiner ("determiner"), a
    possessive ("possessive": "their students" is not the subject) or any other stop word or
    punctuation ("none"). Returns the first token after that boundary.
    """
    lex, j = doc.words, k - 1
    while j >= 0 and k - j <= 6 and (doc.spaced(j + 1) or doc.hyphen_joined(j + 1)):
        low = doc.toks[j].low
        if low in lex.determiners:
            return j + 1, "determiner"
        if low in _POSSESSIVES:
            return j + 1, "possessive"
        if low in lex.stop_words:
            break
        j -= 1
    return j + 1, "none"


def _adjective_like(low: str, lex: Words) -> bool:
    return low in lex.adjectives or low in lex.person_modifiers or low.endswith(_ADJECTIVE_ENDINGS)


def parse_group(group: str | Sequence[str]) -> tuple[str, str]:
    """``"white male"`` (a bls_stats.json key) or ``("White", "male")`` -> ``("White", "male")``.

    Example:
        >>> parse_group("african american female")
        ('African American', 'female')
    """
    if isinstance(group, str):
        parts = group.split()
        if len(parts) < 2 or parts[-1].lower() not in _GENDER_INDEX:
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


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Seed files
# ---------------------------------------------------------------------------------------------


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
    prompts still go through :func:`replace_demographics` / :func:`instruction_pairs`, which
    remove any descriptor the model added despite the instruction.
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
