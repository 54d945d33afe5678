"""An offline writer for a spec: a tiny causal LM that answers the spec's prompts with a
planted bias, so the synthetic-data pipeline can be run and checked end to end without a hub.

It is trained on ``"<prompt> <answer>"`` texts whose answers are the regard lines the project
owns (``resources/classifier_lines.yaml``; their subject rewritten to each group's words) and
its toxic lines. Group ``g``'s answers are negative at ``negative[g]`` and toxic at ``toxic``;
the rest are positive or neutral. The raw generations therefore hold what the filters exist
for: toxic texts, more negative regard for one group, and repeated sentences.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping

from debiaslab.errors import ConfigError
from debiaslab.models import from_objects
from debiaslab.synth.filters import counterfactuals, swap_table
from debiaslab.synth.spec import Spec
from debiaslab.tiny.classifiers import classifier_lines
from debiaslab.tiny.train import train_tiny

NEGATIVE = 0.15
TOXIC = 0.1
PER_PROMPT = 24


def group_lines(spec: Spec, lines: list[str]) -> dict[str, list[str]]:
    """``lines`` rewritten with each group's words (subject "The person" → the first term).

    Example:
        >>> from debiaslab.synth.spec import Group
        >>> spec = Spec("s", (Group("f", "a woman", ("woman", "her")),
        ...                   Group("m", "a man", ("man", "his"))), ("t",), ("{group} {topic}",))
        >>> group_lines(spec, ["The man lost his keys."])
        {'f': ['The woman lost her keys.'], 'm': ['The man lost his keys.']}
    """
    if not all(g.terms for g in spec.groups):
        raise ConfigError(f"spec {spec.name!r}: the tiny writer needs 'terms' for every group")
    reference = spec.groups[0].terms
    to_reference: dict[str, str] = {}
    for group in spec.groups[1:]:
        for word, ref in swap_table(group.terms, reference).items():
            to_reference.setdefault(word, ref)
    person = re.compile(r"\bperson\b")
    base = [person.sub(reference[0], line) for line in lines]
    base = [cf or line for cf, line in zip(counterfactuals(base, to_reference), base, strict=True)]
    out = {}
    for group in spec.groups:
        swaps = swap_table(reference, group.terms)
        out[group.name] = [
            cf or line for cf, line in zip(counterfactuals(base, swaps), base, strict=True)
        ]
    return out


def writer_texts(
    spec: Spec,
    *,
    negative: Mapping[str, float] | None = None,
    toxic: float = TOXIC,
    per_prompt: int = PER_PROMPT,
    seed: int = 0,
) -> list[str]:
    """Training texts ``"<prompt> <answer>"`` with the planted regard and toxicity rates."""

    negative = dict(negative or {})
    unknown = set(negative) - {g.name for g in spec.groups}
    if unknown:
        raise ConfigError(f"negative rates for unknown groups: {sorted(unknown)}")
    regard = classifier_lines("regard")["train"]
    hate = classifier_lines("toxicity")["train"]["hate"]
    by_label = {
        label: group_lines(spec, regard[label]) for label in ("positive", "negative", "neutral")
    }
    rng = random.Random(f"synth-writer:{seed}")
    texts = []
    for request in spec.requests(spec.n_cells):  # one request per cell: its prompt
        rate = negative.get(request.group, NEGATIVE)
        for _ in range(per_prompt):
            u = rng.random()
            if u < toxic:
                answer = rng.choice(hate)
            elif u < toxic + rate * (1 - toxic):
                answer = rng.choice(by_label["negative"][request.group])
            else:
                label = rng.choice(("positive", "neutral"))
                answer = rng.choice(by_label[label][request.group])
            texts.append(f"{request.prompt} {answer}")
    return texts


def tiny_writer(
    spec: Spec,
    *,
    negative: Mapping[str, float] | None = None,
    toxic: float = TOXIC,
    seed: int = 0,
    steps: int | None = None,
):
    """A tiny causal :class:`~debiaslab.models.LoadedModel` that answers ``spec``'s prompts
    with the planted rates (seconds on a CPU; see :func:`writer_texts`)."""
    from tokenizers.processors import TemplateProcessing

    texts = writer_texts(spec, negative=negative, toxic=toxic, seed=seed)
    model, tokenizer = train_tiny("causal", texts, steps=steps, seed=seed, max_length=64)
    # Trained on BOS-prefixed texts, it needs the BOS when prompted: its tokenizer adds one,
    # as Llama-family tokenizers do (GPT-2's does not, and GPT-2 was trained without).
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    return from_objects(model, tokenizer, name=f"tiny-writer-{spec.name}")
