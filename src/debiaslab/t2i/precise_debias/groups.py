"""Which PreciseDebias group a rewrite names, and each group's share among many rewrites.

The 8 race x gender keys of the seed's ``bls_stats.json`` (:data:`GROUPS`); `detect_group` reads
a rewrite's person words, `group_shares` counts them, `normalise_target` renormalises
PreciseDebias's target (Clemmer et al., WACV 2024), whose raw shares sum to 1.146.

Example:
    >>> detect_group("A Black female doctor in a white coat")
    'black female'
    >>> detect_group("A Latina nurse reading a chart")
    'hispanic female'
    >>> detect_group("A doctor holding a stethoscope") is None
    True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from debiaslab.errors import ConfigError
from debiaslab.stats import N_BOOT, bootstrap_ci
from debiaslab.t2i.metrics import total_variation
from debiaslab.t2i.precise_debias.pairs import DEFAULT_GROUPS, check_pairs, parse_group
from debiaslab.t2i.precise_debias.replace import find_demographic_words, replace_demographics
from debiaslab.t2i.precise_debias.words import load_words
from debiaslab.t2i.targets import PRECISE_DEBIAS_RAW

GROUPS: tuple[str, ...] = tuple(f"{race.lower()} {gender}" for race, gender in DEFAULT_GROUPS)
UNDETECTED = "undetected"

# Race words of a rewrite -> group race. Other ethnicity words (nationalities, "Middle
# Eastern", "Afro-Latino") name no single one of the 4 groups: the rewrite is undetected.
_RACES = {
    "white": "white",
    "caucasian": "white",
    "black": "black",
    "african american": "black",
    "afro american": "black",
    "asian": "asian",
    "asian american": "asian",
    "east asian": "asian",
    "south asian": "asian",
    "southeast asian": "asian",
    "hispanic": "hispanic",
    "latino": "hispanic",
    "latina": "hispanic",
    "latinx": "hispanic",
    "latine": "hispanic",
    "chicano": "hispanic",
    "chicana": "hispanic",
}
_RACE_GENDER = {"latina": "female", "chicana": "female", "latino": "male", "chicano": "male"}
# Gendered nouns of resources/t2i_words.yaml whose gender their spelling does not show.
_FEMALE_NOUNS = frozenset(
    (
        "lady",
        "ladies",
        "gal",
        "gals",
        "mother",
        "mothers",
        "mom",
        "moms",
        "mum",
        "mums",
        "grandma",
        "grandmother",
        "grandmothers",
        "wife",
        "wives",
        "housewife",
        "housewives",
        "daughter",
        "daughters",
        "sister",
        "sisters",
        "ballerina",
        "ballerinas",
        "maid",
        "nun",
        "females",
    )
)
_MALE_NOUNS = frozenset(
    (
        "guy",
        "guys",
        "father",
        "fathers",
        "dad",
        "dads",
        "grandpa",
        "grandfather",
        "grandfathers",
        "husband",
        "husbands",
        "son",
        "sons",
        "brother",
        "brothers",
        "waiter",
        "waiters",
        "headmaster",
        "monk",
        "males",
    )
)


def _gender_of(word: str) -> str | None:
    low = word.lower()
    if low in ("female", "male"):
        return low
    if low in _FEMALE_NOUNS or "girl" in low or low.endswith(("woman", "women", "ess", "esses")):
        return "female"
    if low in _MALE_NOUNS or "boy" in low or low.endswith(("man", "men")):
        return "male"
    return None


def _person_words(text: str) -> list[tuple[str, str]]:
    """The demographic words `replace_demographics` removes from ``text``: those describing a
    person ("a White nurse"), not a thing ("a white coat"). Pronouns are left out."""
    lex = load_words()
    kept = Counter(
        (surface.lower(), kind)
        for surface, kind in find_demographic_words(replace_demographics(text, words=lex))
    )
    out = []
    for surface, kind in find_demographic_words(text, words=lex):
        key = (surface.lower(), kind)
        if kept[key] > 0:
            kept[key] -= 1
        elif kind != "pronoun":
            out.append((surface, kind))
    return out


def detect_group(text: str) -> str | None:
    """The group (a :data:`GROUPS` key) a rewrite names, or None if none or not exactly one.

    Only words describing a person count (a "white coat" does not; see
    `replace_demographics`). Race words map to the 4 races (Caucasian -> white, African
    American -> black, Latina -> hispanic ...); gender comes from "female"/"male" or a gendered
    noun ("woman", "actress"), or from "Latina"/"Latino" when nothing else gives it. Pronouns
    are ignored (the rewriter's inputs have none). None when no race or no gender is named,
    when two different ones are (a second person, "Black and White"), or when an ethnicity word
    maps to none of the 4 races (a nationality: "a Chinese woman"; "a Middle Eastern man").

    Example:
        >>> detect_group("A White male doctor in a white coat")
        'white male'
        >>> detect_group("An African-American woman"), detect_group("A Chinese woman")
        ('black female', None)
        >>> detect_group("A Black doctor") is None, detect_group("A female doctor") is None
        (True, True)
    """
    races: set[str | None] = set()
    genders: set[str | None] = set()
    implied: set[str] = set()
    for surface, kind in _person_words(text):
        if kind == "gender":
            genders.add(_gender_of(surface))
            continue
        low = " ".join(surface.lower().replace("-", " ").split())
        if low.endswith("s") and low[:-1] in _RACES:  # "Latinas", "Asians"
            low = low[:-1]
        races.add(_RACES.get(low))
        if low in _RACE_GENDER:
            implied.add(_RACE_GENDER[low])
    if not genders:
        genders = implied
    if len(races) != 1 or len(genders) != 1 or None in races or None in genders:
        return None
    race, gender = parse_group(f"{races.pop()} {genders.pop()}")
    return f"{race.lower()} {gender}"


def group_shares(
    rewrites: Iterable[str] | Iterable[Iterable[str]], groups: Sequence[str] = GROUPS
) -> dict[str, float]:
    """Each group's share among the rewrites that name one of ``groups``; undetected apart.

    Args:
        rewrites: texts, or per-prompt lists of texts (:func:`.rewriter.rewrite`'s output).
        groups: :data:`GROUPS` keys.

    Returns:
        ``{group: share}`` over the detected rewrites (summing to 1, or all 0 when none is
        detected), plus ``"undetected"``: the share of *all* rewrites naming no group of
        ``groups`` (or an ambiguous one), and ``"n"``: how many rewrites there were.
        higher_is_better: None (shares).

    Example:
        >>> rows = [["A Black male nurse", "A White female nurse"], ["A nurse", "A Black man"]]
        >>> shares = group_shares(rows, ["black male", "white female"])
        >>> round(shares["black male"], 3), shares["undetected"], shares["n"]
        (0.667, 0.25, 4.0)
    """
    flat: list[str] = []
    for item in rewrites:
        flat.extend([item] if isinstance(item, str) else list(item))
    return label_shares([detect_group(text) for text in flat], groups)


def label_shares(labels: Sequence[str | None], groups: Sequence[str] = GROUPS) -> dict[str, float]:
    """`group_shares` of rewrites already labelled by `detect_group` (None: no group).

    Example:
        >>> label_shares(["black male", None, "black male", "white female"], ["black male"])
        {'black male': 1.0, 'undetected': 0.5, 'n': 4.0}
    """
    keys = [" ".join(str(g).lower().split()) for g in groups]
    unknown = [g for g in keys if g not in GROUPS]
    if unknown or len(set(keys)) != len(keys) or not keys:
        raise ConfigError(f"groups must be distinct keys among {list(GROUPS)}, got {list(groups)}")
    counts = Counter(labels)
    detected = sum(counts[g] for g in keys)
    shares = {g: counts[g] / detected if detected else 0.0 for g in keys}
    shares[UNDETECTED] = (len(labels) - detected) / len(labels) if labels else 0.0
    shares["n"] = float(len(labels))
    return shares


def normalise_target(
    target: Mapping[str, float] = PRECISE_DEBIAS_RAW, groups: Sequence[str] = GROUPS
) -> dict[str, float]:
    """``target``'s values for ``groups``, scaled to sum 1.

    PreciseDebias's 8 shares sum to 1.146 (Hispanic overlaps the races); a rewrite names one
    group, so the loop aims at them renormalised: White 0.336 each, Black 0.055, Asian 0.029,
    Hispanic 0.080.

    Example:
        >>> round(normalise_target()["white male"], 4), round(sum(normalise_target().values()), 9)
        (0.336, 1.0)
    """
    lower = {" ".join(str(k).lower().split()): float(v) for k, v in target.items()}
    missing = [g for g in groups if g not in lower]
    if missing:
        raise ConfigError(f"target has no share for {missing}; it has {sorted(lower)}")
    values = {g: lower[g] for g in groups}
    if any(not math.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise ConfigError(f"target shares must be finite, >= 0 and not all 0, got {values}")
    total = sum(values.values())
    return {g: v / total for g, v in values.items()}


def pairs_by_group(
    pairs: Iterable[Mapping[str, str]], groups: Sequence[str] = GROUPS
) -> dict[str, list[dict[str, str]]]:
    """Instruction pairs by the group their output names (`detect_group`); others dropped.

    Example:
        >>> from debiaslab.t2i.precise_debias.pairs import instruction_pairs
        >>> by = pairs_by_group(instruction_pairs(["A nurse reading"]))
        >>> len(by), by["asian female"][0]["output"]
        (8, 'An Asian female nurse reading')
    """
    out: dict[str, list[dict[str, str]]] = {g: [] for g in groups}
    for pair in check_pairs(list(pairs)):
        group = detect_group(pair["output"])
        if group in out:
            out[group].append(pair)
    return out


def marginals(shares: Mapping[str, float]) -> dict[str, float]:
    """``gender/<g>`` and ``ethnicity/<e>`` shares summed from ``"<ethnicity> <gender>"`` group
    shares (:data:`GROUPS` keys)."""
    out: dict[str, float] = {}
    for group, value in shares.items():
        if " " not in group:  # not an "<ethnicity> <gender>" group: no marginal to add to
            continue
        ethnicity, gender = group.rsplit(" ", 1)
        out[f"gender/{gender}"] = out.get(f"gender/{gender}", 0.0) + value
        out[f"ethnicity/{ethnicity}"] = out.get(f"ethnicity/{ethnicity}", 0.0) + value
    return out


def measurement_ci(
    rows: Sequence[Sequence[str]],
    goal: Mapping[str, float],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals of one measurement: TV to ``goal``, the undetected
    share and the ``gender/*`` and ``ethnicity/*`` shares.

    The unit resampled is the prompt with all its rewrites (they share the prompt, so they are
    not independent draws), as `group_shares` measures them.

    Example:
        >>> rows = [["A Black male nurse", "A nurse"], ["A White female pilot", "A pilot"]]
        >>> ci = measurement_ci(rows, {"black male": 0.5, "white female": 0.5}, n_boot=200)
        >>> ci["undetected"]
        [0.5, 0.5]
    """

    labels = [[detect_group(text) for text in row] for row in rows]

    def statistic(idx) -> dict[str, float]:
        measured = label_shares([label for i in idx for label in labels[i]])
        shares = {g: measured[g] for g in GROUPS}
        goal_shares = {g: goal.get(g, 0.0) for g in GROUPS}
        return {
            "tv": total_variation(shares, goal_shares),
            "undetected": measured[UNDETECTED],
            **marginals(shares),
        }

    found = bootstrap_ci(statistic, len(rows), n_boot=n_boot, seed=seed)
    return {key: [low, high] for key, (low, high) in found.items()}
