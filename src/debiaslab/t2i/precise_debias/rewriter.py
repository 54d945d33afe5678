"""PreciseDebias rewriter: the prompt format, LoRA training, and sampled rewrites.

An instruction-tuned LM that adds a demographic descriptor to a generic text-to-image prompt
("A doctor" -> "A Black male doctor"), as PreciseDebias (Clemmer et al., WACV 2024) fine-tunes
it. `format_example` is the one prompt format of training and inference; `train_rewriter`
fine-tunes through :func:`debiaslab.mitigation.finetune.finetune`; `rewrite` samples seeded,
cached rewrites. The loop that tunes group shares is :func:`.align.align`.

Example:
    >>> clean_rewrite("  A Black male doctor.\\n###\\n### Input: ...")
    'A Black male doctor.'
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings, generate
from debiaslab.mitigation import finetune as ft
from debiaslab.models import resolve_source
from debiaslab.scoring import prefix_token_id
from debiaslab.t2i.precise_debias.groups import UNDETECTED, detect_group
from debiaslab.t2i.precise_debias.pairs import DEFAULT_INSTRUCTION, check_pairs

RECIPE = "precise_debias"
ALPACA_PROMPT = (  # the seed's get_alpaca_prompt, without its leading newline
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context.\nWrite a response that appropriately completes the request.\n\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
SEED_TERMINATOR = "###"  # the seed trained outputs ending "\n###\n": cut there when cleaning
REWRITER_SEQ_LEN = 256  # tokens: a chat-template prompt of a long seed prompt is ~150
# Sampling that measures the rewriter's own distribution: top_p < 1 would cut the rare groups
# (a group at 2 % lies outside a 0.9 nucleus) and make them look rarer than they are.
MEASURE_SETTINGS = GenerationSettings(max_new_tokens=96, temperature=1.0, top_p=1.0)


def _has_chat_template(tokenizer) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def prompt_and_completion(
    instruction: str, input: str, output: str | None = None, *, tokenizer=None
) -> tuple[str, str]:
    """The text the rewriter is prompted with, and the completion it should write.

    ``prompt + completion`` is the training text (`format_example`); the prompt alone is what
    `rewrite` sends. With a chat template the completion is the assistant turn as the template
    renders it after the generation prompt (e.g. ``"A Black male doctor<|im_end|>\\n"``); a
    template that renders a finished turn differently (some add reasoning tags) falls back to
    the bare output. Without one it is the output itself (the trainer appends EOS).

    Without a chat template the prompt is the seed's Alpaca prompt (its ``get_alpaca_prompt``,
    without the leading blank line): a fixed preamble, ``### Instruction:``, ``### Input:``,
    ``### Response:``, then the output. The seed ended every output with "\\n###\\n"; here the
    tokenizer's EOS ends it, so generation stops by itself. With a chat template (the instruct
    presets) the instruction and input are one user message. Training texts are the inference
    prompt plus a completion, by construction, so the two never drift apart; at the token level,
    `model_prompt` puts the BOS (or EOS) that the trainer reads texts after in front of the
    inference prompt too.

    Example:
        >>> prompt, completion = prompt_and_completion("Expand.", "A doctor", "A Black doctor")
        >>> prompt.endswith("### Input:\\nA doctor\\n\\n### Response:\\n"), completion
        (True, 'A Black doctor')
    """
    if not _has_chat_template(tokenizer):
        prompt = ALPACA_PROMPT.format(instruction=instruction.strip(), input=input.strip())
        return prompt, "" if output is None else output.strip()
    messages = [{"role": "user", "content": f"{instruction.strip()}\n\n{input.strip()}"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if output is None:
        return prompt, ""
    reply = [*messages, {"role": "assistant", "content": output.strip()}]
    full = tokenizer.apply_chat_template(reply, tokenize=False)
    if full.startswith(prompt):
        return prompt, full[len(prompt) :]
    return prompt, output.strip()


def format_example(instruction: str, input: str, output: str | None = None, *, tokenizer=None):
    """One rewriting example as text: the prompt (no ``output``) or the training text.

    Alpaca-style like the seed, or the tokenizer's chat template when it has one; see
    `prompt_and_completion`.

    Example:
        >>> text = format_example("Expand.", "A doctor", "A Black doctor")
        >>> text == format_example("Expand.", "A doctor") + "A Black doctor"
        True
        >>> print(text.split("\\n\\n\\n")[1])
        ### Instruction:
        Expand.
        <BLANKLINE>
        ### Input:
        A doctor
        <BLANKLINE>
        ### Response:
        A Black doctor
    """
    prompt, completion = prompt_and_completion(instruction, input, output, tokenizer=tokenizer)
    return prompt + completion


def model_prompt(instruction: str, input: str, tokenizer) -> str:
    """The prompt string `rewrite` generates from, with the token training put before it.

    :func:`~debiaslab.mitigation.finetune.finetune` reads every text after the tokenizer's
    BOS (else EOS: Qwen's tokenizers have no BOS, so ``<|im_end|>``) unless the tokenizer adds
    one itself; the generation engine adds nothing. So a tokenizer that adds none gets that
    token written in front of the prompt here, and a rewriter trained by `train_rewriter`
    sees at inference exactly the tokens it was trained on (the align loop encodes its
    prompts with this function too).

    Example:
        >>> from debiaslab.tiny.build import build_tokenizer
        >>> model_prompt("Expand.", "A doctor", build_tokenizer("causal"))[:26]
        '<|endoftext|>Below is an i'
    """

    prompt = format_example(instruction, input, tokenizer=tokenizer)
    prefix = prefix_token_id(tokenizer)
    ids = tokenizer("x")["input_ids"]
    if ids and ids[0] == prefix:
        return prompt
    return tokenizer.convert_ids_to_tokens(prefix) + prompt


def clean_rewrite(text: str) -> str:
    """A generation cut to the rewritten prompt: its first non-empty line, before any ``###``.

    Prompts are one line; what follows a newline is the model going on (a new "### Input:"
    section, the seed's terminator, chatter).

    Example:
        >>> clean_rewrite("  A Black male doctor.\\n###\\n### Input: ...")
        'A Black male doctor.'
    """
    text = text.split(SEED_TERMINATOR, 1)[0]
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def train_rewriter(
    model: str,
    pairs: Sequence[Mapping[str, str]],
    output: str | Path,
    config=None,
    *,
    hardware: str | None = None,
    resume: bool = True,
    progress: bool = True,
    device: str | None = None,
    train_on_inputs: bool = False,
):
    """Fine-tune ``model`` into a rewriter on instruction pairs (LoRA by default).

    Texts are `format_example` of each pair, with the model's own tokenizer (so an instruct
    preset is trained in its chat template), through :func:`debiaslab.mitigation.finetune.
    finetune`. The loss covers the completion only (the rewrite and its end of turn), as the
    align loop's does; ``train_on_inputs=True`` puts it on the whole text, prompt included, as
    the seed's Alpaca-LoRA training did (its ``train_on_inputs`` default). On SmolLM2-135M
    (80 LoRA steps, lr 1e-3, batch 4, 328 pairs of the prompts it wrote itself) whole-text
    training mostly learned to copy: 4 of 32 sampled rewrites of 8 held-out prompts named one
    group; the completion-only loss, same settings, 13 of 32. The run is recorded as the
    ``precise_debias`` recipe (with the group counts, the prompt format and the loss in
    ``recipe_info``).

    Args:
        model: a preset (``qwen2.5-1.5b-instruct``, ``qwen2.5-7b-instruct``), hub id or path.
        pairs: ``{instruction?, input, output}`` records (:func:`.pairs.instruction_pairs`);
            training split only (:func:`.pairs.split_by_prompt`).
        output: run directory; the adapter lands in ``output/adapter``.
        config: a :class:`~debiaslab.mitigation.finetune.FinetuneConfig`; default: the
            preset's settings for ``hardware``
            (:func:`~debiaslab.mitigation.finetune.config_for`) if given, else the defaults
            with ``seq_len`` :data:`REWRITER_SEQ_LEN`.
        hardware: ``t4x2``, ``p100`` or ``cpu-ci``, for the default config.
        resume: continue an interrupted run in ``output`` from its last checkpoint (the
            default, as :func:`debiaslab.mitigation.finetune.run`: rerunning the notebook
            continues, a finished run trains no further); False: refuse a used ``output``.
        progress: the Trainer's progress bar.
        device: where to train (default: the best available).
        train_on_inputs: the loss on the prompt too (the seed's training), not only on the
            completion.

    Returns:
        The :class:`~debiaslab.mitigation.finetune.FinetuneResult`.

    Raises:
        ConfigError: a training text longer than ``config.seq_len`` (its output would be cut,
            teaching truncated rewrites).
        DataFormatError: a pair without a string ``input`` or ``output``.
    """
    from transformers import AutoTokenizer

    records = check_pairs(pairs)
    if config is None:
        config = (
            ft.config_for(model, hardware)
            if hardware
            else ft.FinetuneConfig(seq_len=REWRITER_SEQ_LEN)
        )
    source, _ = resolve_source(model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    split = [prompt_and_completion(**r, tokenizer=tokenizer) for r in records]
    texts = [prompt + completion for prompt, completion in split]
    lengths = [len(tokenizer(t)["input_ids"]) + 2 for t in texts]  # + BOS and EOS of finetune
    too_long = [n for n in lengths if n > config.seq_len]
    if too_long:
        raise ConfigError(
            f"{len(too_long)} of {len(texts)} training texts are longer than seq_len="
            f"{config.seq_len} tokens (longest {max(too_long)}): their outputs would be cut. "
            f"Raise seq_len to at least {max(too_long)}"
        )
    groups = Counter(detect_group(r["output"]) or UNDETECTED for r in records)
    info = {
        "method": RECIPE,
        "n_pairs": len(records),
        "n_prompts": len({r["input"] for r in records}),
        "groups": dict(sorted(groups.items())),
        "prompt_format": "chat_template" if _has_chat_template(tokenizer) else "alpaca",
        "loss": "whole text" if train_on_inputs else "completion",
        "instructions": sorted({r["instruction"] for r in records}),
    }
    return ft.finetune(
        model,
        output,
        texts,
        config,
        recipe=RECIPE,
        recipe_info=info,
        device=device,
        resume=resume,
        progress=progress,
        prompts=None if train_on_inputs else [prompt for prompt, _ in split],
    )


def rewrite(
    lm,
    prompts: Sequence[str],
    n: int = 1,
    settings: GenerationSettings | None = None,
    *,
    instruction: str = DEFAULT_INSTRUCTION,
    cache: str | Path | None = None,
    model_key: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> list[list[str]]:
    """``n`` sampled rewrites of every prompt, cleaned to the rewritten prompt.

    Through :func:`debiaslab.generation.generate`: every (prompt, k) row has its own seed, so
    the result does not depend on batching or on the other prompts, and with ``cache`` a
    rerun only generates what is missing. Prompts are formatted with `model_prompt`.

    Args:
        lm: a causal :class:`~debiaslab.models.LoadedModel` (the rewriter, adapter loaded).
        prompts: generic text-to-image prompts.
        n: rewrites per prompt (overrides ``settings.num_return_sequences``).
        settings: decoding (default :data:`MEASURE_SETTINGS`: temperature 1, no nucleus).
        instruction: the instruction the rewriter was trained with.
        cache: a JSON-lines generation cache (:func:`debiaslab.generation.cache_path`).
        model_key: identifies the weights in the cache (default: name + adapter); give one
            that changes whenever the weights do.
        batch_size: sequences per generate call.
        progress: a progress bar.

    Returns:
        Per prompt, its ``n`` rewrites (`clean_rewrite`), in return-index order.

    Raises:
        ConfigError: ``n`` is not a positive integer, or ``lm`` is not causal.
    """

    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if lm.family != "causal":
        raise ConfigError(
            f"the rewriter must be a causal (decoder-only) LM; {lm.name} is {lm.family}"
        )
    settings = dataclasses.replace(settings or MEASURE_SETTINGS, num_return_sequences=n)
    texts = [model_prompt(instruction, p, lm.tokenizer) for p in prompts]
    out = generate(
        lm,
        texts,
        settings,
        cache=cache,
        model_key=model_key,
        progress=progress,
        batch_size=batch_size,
    )
    return [[clean_rewrite(t) for t in row] for row in out]
