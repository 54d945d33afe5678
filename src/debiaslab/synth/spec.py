"""The spec of a synthetic debiasing dataset: demographic groups × topics × instruction templates.

A spec is a YAML file naming groups (how a template mentions each, and its aligned ``terms``),
topics, templates with ``{group}`` and ``{topic}``, and optional filter settings. Every (group,
topic, template) cell gets the same number of requests, so the raw data is balanced by design.
Entry points: :func:`load_spec` (its docstring shows the format), :func:`parse_spec`,
:func:`example_specs`, :class:`Spec`, :class:`FilterSettings`.
"""

from __future__ import annotations

import hashlib
import math
import os
import string
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from debiaslab.data.fetch import parse_yaml
from debiaslab.errors import ConfigError, DataFormatError

EXAMPLES = "resources/synth"


@dataclass(frozen=True)
class FilterSettings:
    """What the filters keep (see :mod:`debiaslab.synth.filters`).

    Attributes:
        min_words: drop texts shorter than this (after cleaning).
        toxicity_threshold: drop texts whose toxicity score is at least this (None: off).
        regard_balance: subsample so every group has the same regard-label counts per topic.
        near_duplicate: drop a text whose character 5-gram Jaccard similarity to a kept text is
            at least this (None: exact duplicates only).
        counterfactual: add each text's counterfactual (its group words swapped).
        test_fraction: share of counterfactual pairs in the held-out split.
    """

    min_words: int = 4
    toxicity_threshold: float | None = 0.5
    regard_balance: bool = True
    near_duplicate: float | None = 0.8
    counterfactual: bool = True
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.min_words < 0:
            raise ConfigError(f"filters.min_words must be >= 0, got {self.min_words}")
        if self.toxicity_threshold is not None and not 0 < self.toxicity_threshold <= 1:
            raise ConfigError(
                f"filters.toxicity_threshold must be in (0, 1], got {self.toxicity_threshold}"
            )
        if self.near_duplicate is not None and not 0 < self.near_duplicate <= 1:
            raise ConfigError(
                f"filters.near_duplicate must be in (0, 1], got {self.near_duplicate}"
            )
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"filters.test_fraction must be in [0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class Group:
    name: str
    mention: str
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    """One text to ask a backend for."""

    id: str
    group: str
    topic: str
    template: int
    sample: int
    prompt: str


@dataclass(frozen=True)
class Spec:
    name: str
    groups: tuple[Group, ...]
    topics: tuple[str, ...]
    templates: tuple[str, ...]
    description: str = ""
    license: str = "cc-by-4.0"
    attribute: str = ""
    language: str = "en"
    filters: FilterSettings = field(default_factory=FilterSettings)
    source: str = ""

    @property
    def n_cells(self) -> int:
        return len(self.groups) * len(self.topics) * len(self.templates)

    def requests(self, n: int) -> list[Request]:
        """At least ``n`` requests, the same number in every (group, topic, template) cell.

        Example:
            >>> spec = Spec("s", (Group("f", "a woman"), Group("m", "a man")), ("art",),
            ...             ("Write about {group} in {topic}.",))
            >>> [(r.group, r.sample, r.prompt) for r in spec.requests(3)][:3]
            ... # doctest: +NORMALIZE_WHITESPACE
            [('f', 0, 'Write about a woman in art.'), ('f', 1, 'Write about a woman in art.'),
             ('m', 0, 'Write about a man in art.')]
        """
        if n < 1:
            raise ConfigError(f"--n must be at least 1, got {n}")
        per_cell = math.ceil(n / self.n_cells)
        out = []
        for group in self.groups:
            for topic in self.topics:
                for t, template in enumerate(self.templates):
                    prompt = template.format(group=group.mention, topic=topic)
                    cell = f"{group.name}\x1f{topic}\x1f{t}"
                    for k in range(per_cell):
                        digest = hashlib.sha256(f"{cell}\x1f{k}".encode()).hexdigest()[:16]
                        out.append(Request(digest, group.name, topic, t, k, prompt))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain data (for the manifest and the dataset card)."""
        return {
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "attribute": self.attribute,
            "language": self.language,
            "groups": {
                g.name: {"mention": g.mention, "terms": list(g.terms)} for g in self.groups
            },
            "topics": list(self.topics),
            "templates": list(self.templates),
            "filters": {f.name: getattr(self.filters, f.name) for f in fields(FilterSettings)},
        }


def _strings(value: Any, key: str, file: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise DataFormatError(f"'{key}' must be a non-empty list of strings", file=file)
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DataFormatError(f"'{key}' holds a non-string or empty entry: {bad[0]!r}", file=file)
    if len(set(value)) != len(value):
        raise DataFormatError(f"'{key}' holds a duplicate entry", file=file)
    return tuple(v.strip() for v in value)


def _template_fields(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"template {template!r}: {exc}") from None


def parse_spec(data: Any, file: str = "<spec>") -> Spec:
    """A :class:`Spec` from parsed YAML, with every problem located in ``file``."""
    if not isinstance(data, dict):
        raise DataFormatError(
            "a spec must be a mapping (name, groups, topics, templates)", file=file
        )
    known = {
        "name",
        "description",
        "license",
        "attribute",
        "language",
        "groups",
        "topics",
        "templates",
        "filters",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise DataFormatError(
            f"unknown keys {unknown}; expected some of {sorted(known)}", file=file
        )
    for key in ("name", "groups", "topics", "templates"):
        if key not in data:
            raise DataFormatError(f"missing '{key}'", file=file)
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise DataFormatError("'name' must be a non-empty string", file=file)
    raw_groups = data["groups"]
    if not isinstance(raw_groups, dict) or len(raw_groups) < 2:
        raise DataFormatError("'groups' must map at least two group names to settings", file=file)
    groups = []
    for gname, value in raw_groups.items():
        if isinstance(value, str):
            value = {"mention": value}
        if not isinstance(value, dict) or not isinstance(value.get("mention"), str):
            raise DataFormatError(
                f"group {gname!r}: expected a mapping with 'mention' (how templates name it)",
                file=file,
            )
        extra = sorted(set(value) - {"mention", "terms"})
        if extra:
            raise DataFormatError(f"group {gname!r}: unknown keys {extra}", file=file)
        terms = _strings(value["terms"], f"groups.{gname}.terms", file) if "terms" in value else ()
        groups.append(Group(str(gname), value["mention"].strip(), tuple(t.lower() for t in terms)))
    lengths = {len(g.terms) for g in groups}
    if len(lengths) > 1:
        raise DataFormatError(
            "every group's 'terms' must be an aligned list of the same length (the i-th word of "
            f"each group corresponds); got lengths {[len(g.terms) for g in groups]}",
            file=file,
        )
    topics = _strings(data["topics"], "topics", file)
    templates = _strings(data["templates"], "templates", file)
    for i, template in enumerate(templates):
        names = _template_fields(template)
        if names != {"group", "topic"}:
            raise DataFormatError(
                f"templates[{i}] must use exactly the fields {{group}} and {{topic}}, "
                f"uses {sorted(names)}: {template!r}",
                file=file,
            )
    raw_filters = data.get("filters") or {}
    if not isinstance(raw_filters, dict):
        raise DataFormatError("'filters' must be a mapping", file=file)
    allowed = {f.name for f in fields(FilterSettings)}
    bad = sorted(set(raw_filters) - allowed)
    if bad:
        raise DataFormatError(
            f"unknown filters {bad}; expected some of {sorted(allowed)}", file=file
        )
    try:
        filters = FilterSettings(**raw_filters)
    except ConfigError as exc:
        raise DataFormatError(str(exc), file=file) from None
    return Spec(
        name=name.strip(),
        groups=tuple(groups),
        topics=topics,
        templates=templates,
        description=str(data.get("description") or ""),
        license=str(data.get("license") or "cc-by-4.0"),
        attribute=str(data.get("attribute") or ""),
        language=str(data.get("language") or "en"),
        filters=filters,
        source=Path(file).name,
    )


def example_specs() -> list[str]:
    """Names of the specs shipped with debiaslab (``load_spec`` accepts them).

    Example:
        >>> "gender-work" in example_specs()
        True
    """
    folder = resources.files("debiaslab").joinpath(EXAMPLES)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and check a spec file, or a shipped example by name (see :func:`example_specs`).

    A spec is a YAML file::

        name: gender-work
        description: Respectful, specific sentences about women and men at work.
        license: cc-by-4.0
        attribute: gender
        groups:                      # name → how a template mentions it, and its words
          female: {mention: a woman, terms: [woman, she, her, women]}
          male:   {mention: a man,   terms: [man, he, his, men]}
        topics: [nursing, engineering, leadership]
        templates:                   # {group} and {topic} are filled in; both are required
          - Write one short sentence about {group} who works in {topic}.
        filters:                     # optional; defaults in FilterSettings
          toxicity_threshold: 0.5
          near_duplicate: 0.8

    Every (group, topic, template) cell gets the same number of requests, so the raw data is
    balanced by design before any filter runs. ``terms`` are aligned lists (the i-th word of
    one group corresponds to the i-th word of every other): the counterfactual filter swaps
    them. A gender spec without ``terms`` falls back to the WinoBias swap lists.

    Raises:
        ConfigError: neither a file nor an example name.
        DataFormatError: the YAML is invalid or a key is missing or malformed (file named).
    """
    local = Path(path)
    if local.is_file():
        text, file = local.read_text(encoding="utf-8"), str(local)
    elif str(path) in example_specs():
        file = f"{path}.yaml"
        text = resources.files("debiaslab").joinpath(EXAMPLES, file).read_text("utf-8")
    else:
        raise ConfigError(
            f"spec {str(path)!r} is neither a file nor a shipped example ({example_specs()})"
        )

    return parse_spec(parse_yaml(text, file), file)
