"""StereoSet (Nadeem et al., ACL 2021): schema and loaders.

Schema only for now; loaders follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAINS = ("gender", "profession", "race", "religion")
SPLITS = ("intrasentence", "intersentence")
GOLD_LABELS = ("stereotype", "anti-stereotype", "unrelated")


@dataclass(frozen=True)
class Sentence:
    """One candidate sentence of an example.

    ``template_word`` (intrasentence only) is the word that fills BLANK, found as in StereoSet's
    own dataloader: the whitespace token of ``sentence`` at the index of the (last) context
    token containing ``BLANK``, with ASCII punctuation removed.
    """

    id: str
    sentence: str
    gold_label: str
    template_word: str | None = None


@dataclass(frozen=True)
class Example:
    id: str
    split: str  # "intrasentence" | "intersentence"
    target: str
    bias_type: str  # one of DOMAINS
    context: str
    sentences: tuple[Sentence, ...]

    def by_label(self, label: str) -> Sentence:
        for sentence in self.sentences:
            if sentence.gold_label == label:
                return sentence
        raise KeyError(label)


@dataclass
class StereoSet:
    """A StereoSet split: examples per task, plus where it came from."""

    intrasentence: list[Example] = field(default_factory=list)
    intersentence: list[Example] = field(default_factory=list)
    source: str = ""
    version: str = ""

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise KeyError(f"unknown StereoSet split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)
