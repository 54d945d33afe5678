"""Target distributions for text-to-image bias: per-axis shares from US occupation statistics
(:mod:`debiaslab.t2i.occupations`) and presets.

Targets are per axis and normalised within each axis; overlapping axes are never summed:
``gender`` ``{female, male}``; ``race`` ``{white, black, asian}`` renormalised (BLS shows no
other race); ``hispanic`` ``{hispanic, not_hispanic}`` (any race, so an axis of its own, not a
fourth race). Presets: ``uniform`` and ``precise_debias`` (the global vector of PreciseDebias,
Clemmer et al., WACV 2024), in the same per-axis form.

Example:
    >>> get_target("precise_debias")["gender"]
    {'female': 0.5, 'male': 0.5}
    >>> sorted(get_target("uniform"))
    ['gender', 'hispanic', 'race']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from debiaslab.errors import ConfigError
from debiaslab.t2i.occupations import Occupation, find_occupation, normalise_name

AXES = ("gender", "race", "hispanic")
GENDER_GROUPS = ("female", "male")
RACE_GROUPS = ("white", "black", "asian")  # the race columns BLS publishes
OTHER_RACE = "other"  # the residual 1 − (white + black + asian), only with race_other=True
HISPANIC_GROUPS = ("hispanic", "not_hispanic")


def _check_shares(occupation: Occupation, needed: Sequence[str]) -> None:
    absent = [attr for attr in needed if getattr(occupation, attr) is None]
    if absent:
        raise ConfigError(
            f"{occupation.name!r}: BLS suppresses {absent} for occupations with fewer than "
            f"50,000 employed ({occupation.employed_thousands} thousand); use the aggregate "
            "row it belongs to, or a preset target"
        )


def occupation_targets(
    occupation: Occupation, *, axes: Sequence[str] = AXES, race_other: bool = False
) -> dict[str, dict[str, float]]:
    """Target shares per axis for one occupation, each axis normalised on its own.

    - ``gender``: ``{"female": w, "male": 1 − w}`` (CPS records sex as female/male only).
    - ``race``: White, Black and Asian shares divided by their sum. BLS publishes no other
      race column (no American Indian, Pacific Islander or multiracial share), so the three
      do not sum to 1; renormalising is a choice — it assumes the missing people are spread
      like the shown ones. With ``race_other=True`` the residual ``1 − (white + black +
      asian)`` is kept as group ``"other"`` instead (clipped at 0 where rounding pushes the
      sum above 100 %), for classifiers that have such a class.
    - ``hispanic``: ``{"hispanic": h, "not_hispanic": 1 − h}``. Hispanic or Latino people may
      be of any race, so this axis is never added to the race axis (doing so counts people
      twice: the PreciseDebias shares sum to 1.146 for this reason).

    Args:
        occupation: a row from :func:`debiaslab.t2i.occupations.load_occupations`.
        axes: which of :data:`AXES` to return.
        race_other: keep the unreported-race residual as ``"other"`` instead of renormalising.

    Returns:
        ``{axis: {group: share}}``, each inner dict summing to 1.

    Raises:
        ConfigError: an unknown axis, or a share the axis needs is suppressed.

    Example:
        >>> ceo = Occupation("Chief executives", 1780, 0.292, 0.859, 0.059, 0.067, 0.068)
        >>> t = occupation_targets(ceo)
        >>> t["gender"]["female"], round(t["race"]["white"], 4), t["hispanic"]["hispanic"]
        (0.292, 0.8721, 0.068)
    """
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ConfigError(f"unknown axes {unknown}; choose from {AXES}")
    needed = {"gender": ["women"], "race": list(RACE_GROUPS), "hispanic": ["hispanic"]}
    _check_shares(occupation, [attr for axis in axes for attr in needed[axis]])
    out: dict[str, dict[str, float]] = {}
    if "gender" in axes:
        out["gender"] = {"female": occupation.women, "male": 1.0 - occupation.women}
    if "race" in axes:
        race = {group: getattr(occupation, group) for group in RACE_GROUPS}
        out["race"] = _race_axis(race, race_other)
    if "hispanic" in axes:
        hispanic = occupation.hispanic
        out["hispanic"] = {"hispanic": hispanic, "not_hispanic": 1.0 - hispanic}
    return out


def _race_axis(shares: Mapping[str, float], race_other: bool) -> dict[str, float]:
    shown = sum(shares.values())
    if shown <= 0:
        raise ConfigError(f"race shares {dict(shares)} sum to 0; no race target can be made")
    if not race_other or shown >= 1.0:
        race = {group: share / shown for group, share in shares.items()}
        return {**race, OTHER_RACE: 0.0} if race_other else race
    return {**shares, OTHER_RACE: 1.0 - shown}


def _freeze(target: Mapping[str, Mapping[str, float]]) -> Mapping[str, Mapping[str, float]]:
    return MappingProxyType({axis: MappingProxyType(dict(g)) for axis, g in target.items()})


#: PreciseDebias's global target (``2_train_model/data/bls_stats.json`` of
#: ResponsibleAILab/Precise_Debias @ 3f8a0f4), verbatim: race×gender shares, each race split
#: 50/50 by gender. They sum to 1.146, not 1, because "hispanic" overlaps the three races
#: (BLS counts Hispanic people under their race too). The race shares (0.77, 0.126, 0.066,
#: 0.184) are close to, not equal to, the CPS 2022 totals (0.770, 0.126, 0.067, 0.185);
#: the upstream repository does not say which year they are from.
PRECISE_DEBIAS_RAW: Mapping[str, float] = MappingProxyType(
    {
        "white male": 0.385,
        "white female": 0.385,
        "black male": 0.063,
        "black female": 0.063,
        "asian male": 0.033,
        "asian female": 0.033,
        "hispanic male": 0.092,
        "hispanic female": 0.092,
    }
)


def _precise_debias(race_other: bool = False) -> dict[str, dict[str, float]]:
    """:data:`PRECISE_DEBIAS_RAW` per axis; gender from the three races (Hispanic overlaps)."""
    raw = PRECISE_DEBIAS_RAW
    female = sum(raw[f"{race} female"] for race in RACE_GROUPS)
    male = sum(raw[f"{race} male"] for race in RACE_GROUPS)
    hispanic = raw["hispanic female"] + raw["hispanic male"]
    race = {r: raw[f"{r} female"] + raw[f"{r} male"] for r in RACE_GROUPS}
    return {
        "gender": {"female": female / (female + male), "male": male / (female + male)},
        "race": _race_axis(race, race_other),
        "hispanic": {"hispanic": hispanic, "not_hispanic": 1.0 - hispanic},
    }


def _uniform(race_other: bool = False) -> dict[str, dict[str, float]]:
    races = (*RACE_GROUPS, OTHER_RACE) if race_other else RACE_GROUPS
    return {
        "gender": dict.fromkeys(GENDER_GROUPS, 1 / len(GENDER_GROUPS)),
        "race": dict.fromkeys(races, 1 / len(races)),
        "hispanic": dict.fromkeys(HISPANIC_GROUPS, 1 / len(HISPANIC_GROUPS)),
    }


#: The PreciseDebias global vector per axis: gender 50/50; race White/Black/Asian renormalised
#: (0.77, 0.126, 0.066 over their sum 0.962); hispanic 0.184 / 0.816. Read-only.
PRECISE_DEBIAS_GLOBAL = _freeze(_precise_debias())
#: Equal shares within each axis (race over White/Black/Asian). Read-only.
UNIFORM = _freeze(_uniform())
_PRESETS = {"uniform": _uniform, "precise_debias": _precise_debias}
PRESETS = tuple(_PRESETS)


def get_target(
    name_or_occupation: str | Occupation,
    *,
    axes: Sequence[str] = AXES,
    race_other: bool = False,
    occupations: Iterable[Occupation] | None = None,
    path: str | os.PathLike | None = None,
    year: int | None = None,
) -> dict[str, dict[str, float]]:
    """A per-axis target: a preset name, an occupation name, or an :class:`Occupation`.

    Preset names (:data:`PRESETS`, case-insensitive) win over occupation names; no BLS
    occupation is called "uniform" or "precise_debias".

    Args:
        name_or_occupation: ``"uniform"``, ``"precise_debias"``, a BLS occupation name
            (see :func:`find_occupation`) or a row.
        axes: which of :data:`AXES` to return.
        race_other: keep an ``"other"`` race group (see :func:`occupation_targets`; for
            ``precise_debias`` it is 1 − 0.962, for ``uniform`` a fourth equal share).
        occupations, path, year: where to look an occupation name up (default: CPS 2022).

    Returns:
        A fresh ``{axis: {group: share}}`` (safe to modify), each axis summing to 1.

    Example:
        >>> {g: round(s, 4) for g, s in get_target("precise_debias")["race"].items()}
        {'white': 0.8004, 'black': 0.131, 'asian': 0.0686}
        >>> get_target("uniform", axes=["hispanic"])
        {'hispanic': {'hispanic': 0.5, 'not_hispanic': 0.5}}
    """
    if isinstance(name_or_occupation, Occupation):
        return occupation_targets(name_or_occupation, axes=axes, race_other=race_other)
    preset = _PRESETS.get(normalise_name(name_or_occupation).casefold())
    if preset is None:
        occupation = find_occupation(name_or_occupation, occupations, path=path, year=year)
        return occupation_targets(occupation, axes=axes, race_other=race_other)
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ConfigError(f"unknown axes {unknown}; choose from {AXES}")
    full = preset(race_other)
    return {axis: full[axis] for axis in axes}
