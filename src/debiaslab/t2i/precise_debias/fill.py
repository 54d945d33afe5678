"""PreciseDebias filling: put a group's descriptors into a template, and find its subject slot.

`fill` is the inverse of `replace_demographics` (a/an agreement, "[GENDER] person" -> "woman");
`subject_template` leaves one ``[ETHNICITY] [GENDER]`` slot on the prompt's subject, so a pair's
input and output differ only there (PreciseDebias, Clemmer et al., WACV 2024).

Example:
    >>> fill("A [ETHNICITY] [GENDER] person eating Chinese food.", "Asian", "female")
    'An Asian woman eating Chinese food.'
    >>> fill("A [ETHNICITY] [GENDER] person eating Chinese food.")
    'A person eating Chinese food.'
"""

from __future__ import annotations

import re

from debiaslab.errors import ConfigError
from debiaslab.t2i.precise_debias.replace import replace_demographics
from debiaslab.t2i.precise_debias.words import (
    ARTICLE_BEFORE_SLOT_RE,
    ETHNICITY,
    GENDER,
    GENDER_INDEX,
    PLACEHOLDER,
    SLOT,
    SUBJECT_MARK,
    TokenizedText,
    Words,
    load_words,
    match_case,
)

_SLOT_RE = re.compile(rf"{PLACEHOLDER}(?:[ \t]+{PLACEHOLDER})*")  # a canonical run
_FILLED = "\x00"  # marks where `fill` put a descriptor, for a/an agreement
# Words starting with a vowel letter but a consonant sound, and the reverse.
_A_BEFORE = ("uni", "use", "usu", "uti", "ura", "uru", "uga", "ukr", "eu", "one", "once", "ewe")
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir")
_POSSESSIVES = frozenset({"their", "his", "her", "its", "my", "your", "our"})
_ADJECTIVE_ENDINGS = ("ed", "ful", "ous", "ive", "ent", "ant", "less", "ly")


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
            column = GENDER_INDEX.get(gender.strip().lower())
            if forms is not None and column is not None:
                parts.append(match_case(next_word, forms[column]))
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
    doc = TokenizedText(template, lex)
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
        marked = template[: run.start()] + SUBJECT_MARK + template[run.end() :]
    else:
        k = first
        while k < noun and _adjective_like(doc.toks[k].low, lex):  # "a skilled [slot] wildlife"
            k += 1
        at = doc.toks[k].start
        marked = template[:at] + SUBJECT_MARK + " " + template[at:]
    neutral = fill(marked, words=lex)
    neutral = ARTICLE_BEFORE_SLOT_RE.sub(r"\1\2", neutral)
    return neutral.replace(SUBJECT_MARK, SLOT)


def _noun_phrase_start(doc: TokenizedText, k: int) -> tuple[int, str]:
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
