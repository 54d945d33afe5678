"""What a metric is: its direction, ideal value and scale, declared by the module that emits it.

Card:
    Each module that writes metrics declares ``METRICS = {pattern: Metric(...)}`` (as
    lm-evaluation-harness tasks declare ``higher_is_better`` per metric). A result's
    ``higher_is_better`` and ``ideal`` come from those declarations through :func:`directions`;
    a metric key no declaration matches is an error (:class:`UndeclaredMetricError`).
    Keys are ``/``-joined paths (``bias_type/race/metric_score``, ``mc/position/A``); a pattern
    names a key's last segments, ``*`` standing for exactly one segment, and the longest
    matching pattern wins (``regard/group/*/negative`` over ``negative``).
    Scales (:data:`SCALES`): one per kind of metric; preference rates (how often a model prefers
    or chooses an option) are percent, shares of generated outputs are fractions.

Example:
    >>> declared = {"ss": Metric(None, 50.0, "percent", "% stereotype preferred"),
    ...             "n_examples": Metric(None, None, "count", "examples scored")}
    >>> declaration(declared, "intrasentence/gender/ss", benchmark="stereoset").ideal
    50.0
    >>> directions(declared, ["overall/ss", "overall/n_examples"], benchmark="stereoset")
    ({'overall/ss': None, 'overall/n_examples': None}, {'overall/ss': 50.0})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from debiaslab.errors import ConfigError, DebiaslabError

# The scale vocabulary: one per kind of metric, with what a value on it means.
SCALES = {
    "percent": "0-100: a preference rate (share of items where a model prefers or chooses an "
    "option) times 100, or a difference of such rates in percentage points",
    "fraction": "0-1 units: a share of generated outputs or images, a probability, a distance "
    "between distributions (total variation), or a difference of such",
    "score": "a bounded index or a classifier/embedding score in its own units, given in the "
    "description (ICAT 0-100, CLIPScore, a group gap in its score's units)",
    "nats": "natural-log units: log-likelihood differences, KL divergence",
    "ratio": "a quotient of two like quantities (1 = the same)",
    "count": "a number of items (or a mean number per item)",
    "p-value": "a test's p-value, 0-1",
    "per-second": "items per second",
}


@dataclass(frozen=True)
class Metric:
    """One metric's declaration.

    Attributes:
        higher_is_better: True or False; None where no direction is better (a midpoint ideal
            such as SS 50, a share, a count).
        ideal: the unbiased value, if there is one (50 for a preference rate, 0 for a gap).
        scale: one of :data:`SCALES`.
        description: one line a reader of a result understands.
    """

    higher_is_better: bool | None
    ideal: float | None
    scale: str
    description: str

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ConfigError(
                f"unknown metric scale {self.scale!r}; expected one of {list(SCALES)}"
            )
        if not self.description.strip():
            raise ConfigError("a metric declaration needs a description")


class UndeclaredMetricError(DebiaslabError, KeyError):
    """A benchmark emitted a metric key that its ``METRICS`` do not declare."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


def declaration(declared: Mapping[str, Metric], key: str, *, benchmark: str) -> Metric:
    """The declaration of metric ``key``: the longest pattern in ``declared`` matching its end.

    Raises:
        UndeclaredMetricError: no pattern matches (names the benchmark and the key).
        ConfigError: two patterns of the same length match (the declarations are ambiguous).
    """
    parts = key.split("/")
    best: list[str] = []
    for pattern in declared:
        segments = pattern.split("/")
        if len(segments) > len(parts):
            continue
        tail = parts[len(parts) - len(segments) :]
        if all(s in ("*", p) for s, p in zip(segments, tail, strict=True)):
            if not best or len(segments) > len(best[0].split("/")):
                best = [pattern]
            elif len(segments) == len(best[0].split("/")):
                best.append(pattern)
    if not best:
        raise UndeclaredMetricError(
            f"benchmark {benchmark!r} emitted metric {key!r}, which its METRICS do not declare "
            f"(declared: {', '.join(declared) or 'none'}); add a Metric(...) for it"
        )
    if len(best) > 1:
        raise ConfigError(
            f"benchmark {benchmark!r}: metric {key!r} matches declarations {best} equally; "
            "make one pattern longer"
        )
    return declared[best[0]]


def directions(
    declared: Mapping[str, Metric], keys: Iterable[str], *, benchmark: str
) -> tuple[dict[str, bool | None], dict[str, float]]:
    """``(higher_is_better, ideal)`` of a result's metric keys, from their declarations.

    ``higher_is_better`` has every key; ``ideal`` only the keys whose declaration has one.
    """
    higher: dict[str, bool | None] = {}
    ideal: dict[str, float] = {}
    for key in keys:
        metric = declaration(declared, key, benchmark=benchmark)
        higher[key] = metric.higher_is_better
        if metric.ideal is not None:
            ideal[key] = metric.ideal
    return higher, ideal
