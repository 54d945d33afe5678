"""A planted tiny PreciseDebias rewriter for offline tests: a tiny GPT-2 that names some groups
rarely, wrapped in a fresh LoRA adapter for :func:`.align.align` to train.

Kept apart from the rewriter so it can move with the other tiny-model builders.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from debiaslab.errors import ConfigError
from debiaslab.models import from_objects
from debiaslab.t2i.precise_debias.groups import GROUPS, detect_group
from debiaslab.t2i.precise_debias.pairs import check_pairs, instruction_pairs
from debiaslab.t2i.precise_debias.rewriter import format_example
from debiaslab.tiny.train import train_tiny

# Short generic prompts whose subject the word lists know: one template each, seconds to learn.
TINY_PROMPTS = (
    "A doctor holding a stethoscope.",
    "A nurse reading a chart.",
    "A teacher in a classroom.",
    "A chef cooking pasta.",
    "A pilot in a cockpit.",
    "A firefighter holding a hose.",
    "A lawyer in a courtroom.",
    "An engineer at a desk.",
    "A farmer in a field.",
    "A scientist in a lab.",
    "A police officer on a street.",
    "A baker with fresh bread.",
    "A painter at an easel.",
    "A mechanic fixing a car.",
    "A student reading a book.",
    "A musician playing a guitar.",
    "A cashier at a store.",
    "A librarian with books.",
    "A photographer with a camera.",
    "A carpenter building a table.",
)
TINY_PER_PROMPT = 50  # sampled outputs per prompt: rate 0.02 is one of them


def planted_rewrite_examples(
    pairs: Sequence[Mapping[str, str]],
    under: Sequence[str] = ("black female",),
    rate: float = 0.02,
    *,
    per_prompt: int = TINY_PER_PROMPT,
    seed: int = 0,
) -> list[str]:
    """Training texts (`format_example`, Alpaca) whose outputs choose the ``under`` groups at
    ``rate`` each and the other groups uniformly, ``per_prompt`` draws per generic prompt."""
    by_input: dict[str, dict[str, dict[str, str]]] = {}
    for pair in check_pairs(pairs):
        group = detect_group(pair["output"])
        if group is not None:
            by_input.setdefault(pair["input"], {})[group] = pair
    under = [" ".join(g.lower().split()) for g in under]
    if any(g not in GROUPS for g in under):
        raise ConfigError(f"under must name groups among {list(GROUPS)}, got {list(under)}")
    if not 0 <= rate * len(under) < 1:
        raise ConfigError(f"rate x len(under) must be in [0, 1), got {rate} x {len(under)}")
    rng = random.Random(f"tiny-rewriter:{seed}")
    texts = []
    for input_, groups in by_input.items():
        rest = [g for g in groups if g not in under]
        if not rest:
            raise ConfigError(f"every group of {input_!r} is under-represented")
        weights = [rate if g in under else (1 - rate * len(under)) / len(rest) for g in groups]
        for group in rng.choices(list(groups), weights, k=per_prompt):
            texts.append(format_example(**groups[group]))
    return texts


def tiny_rewriter(
    pairs: Sequence[Mapping[str, str]] | None = None,
    under: Sequence[str] = ("black female",),
    rate: float = 0.02,
    *,
    seed: int = 0,
    steps: int | None = 300,
    per_prompt: int = TINY_PER_PROMPT,
    lora_r: int = 8,
):
    """A tiny causal rewriter with a planted group imbalance, wrapped in a fresh LoRA adapter.

    A tiny GPT-2 (:func:`debiaslab.tiny.train.train_tiny`) learns `planted_rewrite_examples`: each
    generic prompt's rewrite names an ``under`` group at ``rate`` and the others uniformly
    (seconds on a CPU). Its tokenizer adds the BOS it was trained after, as
    :func:`debiaslab.synth.examples.tiny_writer`'s does. The LoRA adapter (zero at start, so
    the planted rates hold) is what :func:`.align.align` trains.

    Args:
        pairs: instruction pairs (default: :data:`TINY_PROMPTS` x the 8 groups).
        under: group keys to under-represent.
        rate: their share each.
        seed: data draw, initialisation and training order.
        steps: training steps of the tiny model.
        per_prompt: outputs drawn per prompt.
        lora_r: LoRA rank (attention and MLP projections).

    Returns:
        A :class:`~debiaslab.models.LoadedModel` named ``tiny-rewriter``.
    """
    from peft import LoraConfig, TaskType, get_peft_model
    from tokenizers.processors import TemplateProcessing

    pairs = instruction_pairs(TINY_PROMPTS) if pairs is None else pairs
    texts = planted_rewrite_examples(pairs, under, rate, per_prompt=per_prompt, seed=seed)
    model, tokenizer = train_tiny("causal", texts, steps=steps, seed=seed, max_length=128)
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    lora = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.0,
        target_modules=["c_attn", "c_proj", "c_fc"],
        fan_in_fan_out=True,  # GPT-2's Conv1D stores weights transposed
        task_type=TaskType.CAUSAL_LM,
    )
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, lora)
    lm = from_objects(peft_model, tokenizer, name="tiny-rewriter", family="causal")
    lm.batch_size = 64  # short sequences: fewer, larger generate calls
    return lm
