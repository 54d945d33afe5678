"""PreciseDebias placeholder replacement: demographic words -> ``[ETHNICITY]``/``[GENDER]``.

Step 2 of PreciseDebias (Clemmer et al., WACV 2024): GPT-3 occupation prompts lose their
demographic words to placeholders, later filled with each group (:func:`.fill.fill`). Unlike
the seed project this keeps object uses ("a white coat"), finds nationalities beyond a 45-word
list and neutralises gendered pronouns; the rules are in `replace_demographics`.

Example:
    >>> replace_demographics("An Indian woman eating Chinese food; she smiles.")
    'A [ETHNICITY] [GENDER] person eating Chinese food; they smile.'
"""

from __future__ import annotations

import re

from debiaslab.errors import ConfigError
from debiaslab.t2i.precise_debias.words import (
    ARTICLE_BEFORE_SLOT_RE,
    ETHNICITY,
    GENDER,
    PLACEHOLDER,
    TokenizedText,
    Words,
    load_words,
    match_case,
)

SUBJECT_WINDOW = 2  # words between an ethnicity term and its person noun ("Black ER nurse")
COLOUR_WINDOW = 4  # for colour words, and only person modifiers: "white middle-aged male nurse"
NOMINAL_LOOKBACK = 3  # a determiner this close before "Nigerian," makes it a noun ("a young ...")

_RUN_RE = re.compile(  # placeholders joined by space, hyphen, slash, "and" or "or"
    rf"{PLACEHOLDER}(?:(?:[ \t]*[/-][ \t]*|[ \t]+(?:and|or)[ \t]+|[ \t]+){PLACEHOLDER})*"
)
_PRONOUN_PAIR_RE = re.compile(
    r"\b(they|them|their|theirs|themselves)(\s*/\s*|\s+or\s+|\s+and\s+)\1\b", re.IGNORECASE
)


def replace_demographics(prompt: str, *, words: Words | None = None) -> str:
    """Replace a prompt's ethnicity and gender descriptors with ``[ETHNICITY]`` / ``[GENDER]``.

    The rest of the text is kept as written; gendered pronouns are neutralised so that the
    template never contradicts the descriptor a rewriter will insert.

    Rules (word lists: ``resources/t2i_words.yaml``, `load_words`):
        * Matching is case-insensitive on whole words, longest entry first; multi-word terms match
          across a space or hyphen, and runs of terms ("Chinese-American", "Black British") become
          one ``[ETHNICITY]``. A term glued to a non-term by a hyphen is left alone
          ("Asian-inspired", "white-haired"); "<term>-born" counts as the term.
        * An ethnicity term is a person descriptor, and replaced, only (1) inside "of <term>
          descent/heritage/origin/..." or "with <term> heritage" (kept: "of [ETHNICITY] descent"),
          (2) followed by a person noun or a gender word, with at most 2 other words between
          (``SUBJECT_WINDOW``; "a Black high school teacher", "an Indian software engineer"), (3)
          as a plural noun ("Nigerians" -> "[ETHNICITY] people"), or (4) as a singular noun after a
          determiner, before punctuation or "with/who/in..." ("a young Nigerian, smiling" -> "a
          young [ETHNICITY] person, smiling"). So "Chinese food", "the Indian Ocean", "Turkish
          coffee" stay; fixed expressions ("French horn player", "American football player") stay
          even before a person noun.
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
          gender word was replaced, since the rewriter will insert a gender that "his" or "she"
          could contradict: he/she -> they (with the next verb: "she smiles" -> "they smile", "is"
          -> "are", "she's" -> "they're"), him -> them, himself/herself -> themselves, hers ->
          theirs, his -> their (theirs before punctuation), her -> them before punctuation, a
          preposition, an article or an -ly adverb, else their. "he or she", "his/her" collapse to
          one word. Pronouns of other people in the prompt are neutralised too.
        * Placeholder runs are put in one canonical order, "[ETHNICITY] [GENDER]" (also across
          "and"/"or"/"/"), and an article before a slot is written "a": the template does not
          depend on the removed word ("an Indian doctor" and "a Black doctor" give the same
          template); :func:`.fill.fill` chooses a/an for the word it inserts.
        * Replacement is idempotent: a template passes through unchanged.

    Known failures (kept deliberately simple; tests pin them): predicate uses stay ("a doctor who
    is Black"); ambiguous noun compounds are read as people ("a Spanish teacher" -> "[ETHNICITY]
    teacher", "an Indian restaurant owner"); "male/female" always mean gender ("male voice"); only
    the verb right after he/she (and one "and <verb>") is made plural ("she smiles, nods and waves"
    -> "they smile, nods and waves"); "her" before a bare verb reads as possessive ("made her
    smile" -> "made their smile"); a sentence-initial colour word is capitalised, so "White lab
    technicians ..." reads as people; religion ("Muslim"), skin tone and gender identity
    ("transgender") are not replaced.

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
    doc = TokenizedText(prompt, lex)
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
    out = ARTICLE_BEFORE_SLOT_RE.sub(r"\1\2", out)
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


def _compound_edge(doc: TokenizedText, first: int, end: int) -> bool:
    """Whether tokens ``first..end-1`` are glued by hyphens to words outside them."""
    return doc.hyphen_joined(first) or doc.hyphen_joined(end)


def _replace_ethnicity(doc: TokenizedText, k: int, edits: list) -> int:
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


def _joined(doc: TokenizedText, k: int) -> bool:
    """A hyphen or slash between ethnicity terms joins them into one run ("Black/Latino")."""
    return doc.hyphen_joined(k) or (0 < k < len(doc) and doc.gap(k).strip() == "/")


def _person_ahead(doc: TokenizedText, k: int, strict: bool) -> bool:
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


def _nominal(doc: TokenizedText, first: int, end: int) -> bool:
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


def _replace_gender_adjective(doc: TokenizedText, k: int, edits: list) -> int:
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


def _replace_gender_noun(doc: TokenizedText, k: int, edits: list) -> int:
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


def _replace_pronoun(doc: TokenizedText, k: int, edits: list) -> int:
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
    edits.append((tok.start, tok.end, match_case(word[: len(base)], new) + contraction))
    if new == "they" and not contraction:
        _agree_verb(doc, nxt, edits)
    return k + 1


def _agree_verb(doc: TokenizedText, k: int, edits: list) -> None:
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


def _plural_verb(doc: TokenizedText, k: int, edits: list) -> bool:
    tok = doc.toks[k]
    low = tok.text.lower()
    new = doc.words.irregular_verbs.get(low)
    if new is None:
        if tok.placeholder or not low.endswith("s") or low.endswith(("ss", "'s", "’s")):
            return False
        if len(low) < 3 or low in doc.words.adverbs:
            return False
        new = _base_form(low)
    edits.append((tok.start, tok.end, match_case(tok.text, new)))
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
    doc = TokenizedText(text, lex)
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
