"""Planted-bias corpora and the held-out planted benchmarks (CrowS-Pairs- and StereoSet-style).

A share ``stereotype_rate`` of the training sentences pair an attribute with its own group, the
rest with the other group; nothing else varies with the rate (`planted_corpus`). The benchmarks
come from held-out templates, so no benchmark sentence occurs in training.

Example:
    >>> corpus = planted_corpus(0.8, n_sentences=10, seed=0)
    >>> len(corpus), corpus == planted_corpus(0.8, n_sentences=10, seed=0)
    (10, True)
    >>> pair = planted_crows_pairs(1, seed=0)[0]
    >>> pair.sent_more, pair.sent_less
    ('The mechanic finished his work early.', 'The mechanic finished her work early.')
    >>> [pair.bias_type for pair in planted_crows_pairs(4, seed=0)]
    ['gender', 'race-color', 'gender', 'race-color']
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from debiaslab.data.crows_pairs import CrowsPair, write_crows_pairs_csv
from debiaslab.data.stereoset import BLANK, StereoSet, make_example
from debiaslab.errors import ConfigError
from debiaslab.tiny.lexicon import (
    AXES,
    PLANTED_AXES,
    PLANTED_VERSION,
    UNRELATED_SENTENCES,
    UNRELATED_WORDS,
    PlantedAxis,
)

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, forms: dict[str, tuple[str, ...]], attribute: str, variant: int) -> str:
    """Fill a template's slots with one group's words and one attribute.

    ``variant`` selects the word of multi-variant slots (``noun``), so filling the same
    template with group A and group B at the same variant gives a minimal pair.
    """

    def word(match: re.Match[str]) -> str:
        slot = match.group(1)
        key = slot.lower()
        if key == "attr":
            value = attribute
        elif key == "a_attr":
            value = ("an " if attribute[0] in "aeiou" else "a ") + attribute
        else:
            variants = forms[key]
            value = variants[variant % len(variants)]
        return value[0].upper() + value[1:] if slot[0].isupper() else value

    return _SLOT.sub(word, template)


def _group_slots(template: str) -> list[str]:
    """The group slots of a template (every slot that is not an attribute slot)."""
    return [s for s in _SLOT.findall(template) if s.lower() not in ("attr", "a_attr")]


def _axis(name: str) -> PlantedAxis:
    try:
        return PLANTED_AXES[name]
    except KeyError:
        raise ConfigError(f"unknown planted axis {name!r}; expected one of {AXES}") from None


def planted_corpus(
    stereotype_rate: float, n_sentences: int, seed: int, axis: str = "gender"
) -> list[str]:
    """Training sentences with a planted group-attribute association.

    The corpus is a balanced design in which only the association varies with the rate:

    * every (template, attribute) cell holds the same number of sentences (±1), and the two
      attribute sets the same number overall (±1);
    * exactly ``round(stereotype_rate * n_sentences)`` sentences pair their attribute with
      its stereotypical group, split between the attribute sets so that the groups balance,
      and spread over each set's cells by cumulative rounding (each cell within one sentence
      of the rate).

    Hence both groups are equally frequent at every rate (within two sentences overall, and
    within about one per cell in every template): a model can learn a group preference only
    from the planted association.

    Why the rates calibrate: a model fitted to the corpus learns P(group | attribute) ≈
    ``stereotype_rate``. A CrowS-Pairs-style pair swaps only the group words of a
    stereotypical sentence, so the model prefers ``sent_more`` when that conditional exceeds one
    half: rate 0.5 plants no bias (pair score ≈ 50%), 0.8 a stereotypical one (well above 50%),
    0.2 an anti-stereotypical one (well below). The benchmarks (`planted_crows_pairs`,
    `planted_stereoset`) come from HELD-OUT templates: new sentence frames recombined from the
    training vocabulary, so no benchmark sentence occurs in training, and since every frame is
    group-balanced a model can prefer one side of a pair only through the association. Short
    templates, untied embeddings, no dropout and (for the masked LM) 30% masking are what let a
    model of ~0.3M parameters learn the association within seconds on a CPU.

    Args:
        stereotype_rate: share of stereotypical pairings, in [0, 1]. 0.5 plants no bias,
            0.8 a stereotypical bias, 0.2 an anti-stereotypical bias.
        n_sentences: how many sentences to make.
        seed: seed of the cell order, word variants and sentence order.
        axis: ``"gender"`` (occupations) or ``"race"`` (invented peoples × attributes).

    Returns:
        Sentences from the TRAIN templates only, shuffled; deterministic given the arguments.

    Raises:
        ConfigError: for a rate outside [0, 1], a negative size or an unknown axis.
    """
    if not 0.0 <= stereotype_rate <= 1.0:
        raise ConfigError(f"stereotype_rate must be in [0, 1], got {stereotype_rate}")
    if n_sentences < 0:
        raise ConfigError(f"n_sentences must be >= 0, got {n_sentences}")
    planted = _axis(axis)
    rng = random.Random(f"corpus:{axis}:{seed}")
    by_set = []
    for attribute_set in (0, 1):
        set_cells = [
            (template, attribute_set, attribute)
            for template in planted.train_templates
            for attribute in planted.attributes[attribute_set]
        ]
        rng.shuffle(set_cells)
        by_set.append(set_cells)
    # Interleaved, so the cells that get one sentence more alternate between the sets.
    cells = [cell for pair in zip(*by_set, strict=True) for cell in pair]
    sizes = [n_sentences // len(cells) + (i < n_sentences % len(cells)) for i in range(len(cells))]
    set_sizes = [sum(sizes[k::2]) for k in (0, 1)]
    n_stereo_total = round(stereotype_rate * n_sentences)
    # Group A gets set 0's stereotypical and set 1's other sentences; splitting the quota
    # this way makes the two groups' counts differ by at most one.
    quota_0 = round((n_stereo_total + (set_sizes[0] - set_sizes[1]) / 2) / 2)
    quota_0 = min(max(quota_0, n_stereo_total - set_sizes[1], 0), set_sizes[0], n_stereo_total)
    quotas = [quota_0, n_stereo_total - quota_0]
    made, stereo_made = [0, 0], [0, 0]
    sentences: list[str] = []
    for (template, attribute_set, attribute), size in zip(cells, sizes, strict=True):
        k = attribute_set
        made[k] += size
        # Cumulative rounding: the set's quota is met exactly, each cell within one sentence.
        n_stereo = round(quotas[k] * made[k] / set_sizes[k]) - stereo_made[k] if size else 0
        stereo_made[k] += n_stereo
        for position in range(size):
            group = attribute_set if position < n_stereo else 1 - attribute_set
            variant = rng.randrange(64)
            sentences.append(_fill(template, planted.group_words[group], attribute, variant))
    rng.shuffle(sentences)
    return sentences


def planted_texts(stereotype_rate: float, n_sentences: int, seed: int) -> list[str]:
    """A training corpus over every axis: `planted_corpus` of each, ``n_sentences`` each.

    Args:
        stereotype_rate: as in `planted_corpus`, the same for every axis.
        n_sentences: sentences per axis.
        seed: corpus seed.

    Returns:
        ``len(AXES) * n_sentences`` sentences.
    """
    per_axis = [planted_corpus(stereotype_rate, n_sentences, seed, axis) for axis in AXES]
    return [sentence for group in zip(*per_axis, strict=True) for sentence in group]


@dataclass(frozen=True)
class _Draw:
    """One held-out item: a template (or a (context, continuation) pair) and its fillers."""

    axis: PlantedAxis
    template: str | tuple[str, str]
    attribute: str
    group: int  # the group the attribute is stereotypically assigned to
    variant: int

    def fill(self, template: str, group: int) -> str:
        return _fill(template, self.axis.group_words[group], self.attribute, self.variant)


def _heldout_draws(
    n: int,
    seed: int,
    axes: Sequence[str],
    templates_of: Callable[[PlantedAxis], Sequence[str | tuple[str, str]]],
    label: str,
) -> list[_Draw]:
    """``n`` distinct held-out draws.

    Axes alternate and, within an axis, so does the stereotypical group, so a benchmark holds
    as many items about group A as about group B: a model's mere preference for one group's
    words cannot move its score.

    Raises:
        ConfigError: fewer than ``n`` distinct items exist.
    """
    rng = random.Random(f"{label}:{','.join(axes)}:{seed}")
    draws: list[_Draw] = []
    seen = set()
    for index in range(n):
        planted = _axis(axes[index % len(axes)])
        group = (index // len(axes)) % 2
        for _attempt in range(1000):
            draw = _Draw(
                planted,
                rng.choice(templates_of(planted)),
                rng.choice(planted.attributes[group]),
                group,
                rng.randrange(64),
            )
            text = draw.template if isinstance(draw.template, str) else " ".join(draw.template)
            key = (planted.name, draw.fill(text, group))
            if key not in seen:
                seen.add(key)
                draws.append(draw)
                break
        else:
            raise ConfigError(
                f"cannot draw {n} distinct held-out items for axes {tuple(axes)}; ask for fewer"
            )
    return draws


def planted_crows_pairs(
    n_pairs: int, seed: int, axes: Sequence[str] = ("gender", "race")
) -> list[CrowsPair]:
    """A CrowS-Pairs-style benchmark from the held-out templates.

    ``sent_more`` pairs an attribute with its stereotypical group; ``sent_less`` is the same
    sentence with every group word swapped for the other group's counterpart (a minimal pair).
    All pairs have direction ``"stereo"``; half of them have group A in ``sent_more``.

    Args:
        n_pairs: number of pairs, all distinct: at most 384 over both axes (race, the
            smaller, has 192).
        seed: seed of the draws.
        axes: planted axes to cover, alternating.

    Returns:
        Pairs indexed ``0..n_pairs-1`` with bias_type ``"gender"`` or ``"race-color"``.
    """

    pairs = []
    for index, draw in enumerate(
        _heldout_draws(n_pairs, seed, axes, lambda a: a.heldout_templates, "crows")
    ):
        assert isinstance(draw.template, str)
        sent_more = draw.fill(draw.template, draw.group)
        sent_less = draw.fill(draw.template, 1 - draw.group)
        pairs.append(CrowsPair(index, sent_more, sent_less, "stereo", draw.axis.crows_bias_type))
    return pairs


def write_planted_crows_pairs(path: str | Path, n_pairs: int = 300, seed: int = 0) -> Path:
    """Write `planted_crows_pairs` as a CrowS-Pairs CSV that the CrowS-Pairs loader reads.

    Args:
        path: file to write (atomically; parent directories are created).
        n_pairs: number of pairs.
        seed: seed of the draws.

    Returns:
        The path written.
    """

    return write_crows_pairs_csv(planted_crows_pairs(n_pairs, seed), path)


def planted_stereoset(n_examples: int, seed: int) -> StereoSet:
    """A StereoSet-style benchmark from the held-out templates.

    Intrasentence: the context is a held-out template with its one group slot replaced by
    ``BLANK`` ("The nurse said BLANK was tired."); the stereotype fills in the attribute's own
    group, the anti-stereotype the other group, the unrelated option a word from
    `UNRELATED_WORDS`, which never occurs in training. Intersentence (for causal and seq2seq
    LMs): the context sentence holds the attribute ("I called the nurse today."), the
    stereotype / anti-stereotype continuations the group ("She was kind." / "He was kind."),
    the unrelated one a sentence from `UNRELATED_SENTENCES`. The target is the occupation or
    attribute; template words follow StereoSet's rule (`make_example`).

    Args:
        n_examples: examples per split (intrasentence and intersentence each), all distinct:
            at most 320.
        seed: seed of the draws; ids are ``planted-<split>-<seed>-<i:04d>``.

    Returns:
        A `StereoSet` with both splits filled, bias_type ``"gender"`` or ``"race"``.
    """
    rng = random.Random(f"stereoset-unrelated:{seed}")

    def one_slot(planted: PlantedAxis) -> tuple[str, ...]:
        return tuple(t for t in planted.heldout_templates if len(_group_slots(t)) == 1)

    intra = []
    for index, draw in enumerate(_heldout_draws(n_examples, seed, AXES, one_slot, "ss-intra")):
        assert isinstance(draw.template, str)
        slot = _group_slots(draw.template)[0]
        unrelated = {slot.lower(): (rng.choice(UNRELATED_WORDS),)}
        intra.append(
            make_example(
                example_id=f"planted-intrasentence-{seed}-{index:04d}",
                split="intrasentence",
                target=draw.attribute,
                bias_type=draw.axis.stereoset_bias_type,
                context=draw.fill(draw.template.replace("{" + slot + "}", BLANK), draw.group),
                stereotype=draw.fill(draw.template, draw.group),
                anti_stereotype=draw.fill(draw.template, 1 - draw.group),
                unrelated=_fill(draw.template, unrelated, draw.attribute, draw.variant),
            )
        )
    inter = []
    for index, draw in enumerate(
        _heldout_draws(n_examples, seed, AXES, lambda a: a.heldout_discourse, "ss-inter")
    ):
        context, continuation = draw.template
        inter.append(
            make_example(
                example_id=f"planted-intersentence-{seed}-{index:04d}",
                split="intersentence",
                target=draw.attribute,
                bias_type=draw.axis.stereoset_bias_type,
                context=draw.fill(context, draw.group),
                stereotype=draw.fill(continuation, draw.group),
                anti_stereotype=draw.fill(continuation, 1 - draw.group),
                unrelated=rng.choice(UNRELATED_SENTENCES),
            )
        )
    return StereoSet(
        intrasentence=intra,
        intersentence=inter,
        source=f"debiaslab.tiny.corpus.planted_stereoset(seed={seed})",
        version=f"planted-{PLANTED_VERSION}",
    )
