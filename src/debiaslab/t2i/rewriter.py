# long by design: rewriter training and the align loop; split into t2i/precise_debias/ is issue 14
# point 3.
"""PreciseDebias rewriter: an instruction-tuned LM that adds a demographic descriptor to a prompt,
and the measure-and-align loop that tunes how often it chooses each group.

PreciseDebias (Clemmer et al., WACV 2024) rewrites a generic text-to-image prompt ("A doctor
holding a stethoscope") into one naming a group ("A Black male doctor holding a stethoscope"),
so that the images follow target shares (US BLS; :data:`debiaslab.t2i.targets.PRECISE_DEBIAS_RAW`).
It fine-tunes the rewriter on instruction pairs (:func:`debiaslab.t2i.precise_data.
instruction_pairs`), then repeats: sample rewrites, measure each group's share, and train
further on the groups that come out too rarely, with a learning rate that grows with the gap.

Pipeline:
    `format_example` (one prompt format for training and inference) -> `train_rewriter`
    (LoRA/QLoRA via :func:`debiaslab.mitigation.finetune.finetune`) -> `rewrite` (sampled,
    seeded, cached) -> `detect_group` / `group_shares` -> `align` (the loop; curve in
    ``align_curve.json`` and a figure). `tiny_rewriter` is an offline planted rewriter for tests.

Prompt format:
    Without a chat template, the seed's Alpaca prompt (its ``get_alpaca_prompt``, without the
    leading blank line): a fixed preamble, ``### Instruction:``, ``### Input:``, ``###
    Response:``, then the output. The seed ended every output with "\\n###\\n"; here the
    tokenizer's EOS ends it, so generation stops by itself. With a chat template (the instruct
    presets), the instruction and input are one user message, and the output is the assistant's
    reply as the template renders it. Training texts are the inference prompt plus a completion,
    by construction, so the two never drift apart; at the token level, `model_prompt` puts the
    BOS (or EOS) that the trainer reads texts after in front of the inference prompt too.

Groups:
    The 8 race x gender keys of the seed's ``bls_stats.json`` (:data:`GROUPS`, lower case, as in
    ``PRECISE_DEBIAS_RAW``). Their raw shares sum to 1.146 because Hispanic overlaps the three
    races; the rewriter picks exactly one group per prompt, so `align` compares the measured
    shares with the 8 values renormalised to sum 1 (`normalise_target`: White 0.336 each, Black
    0.055, Asian 0.029, Hispanic 0.080).

Example:
    >>> detect_group("A Black female doctor in a white coat")
    'black female'
    >>> detect_group("A Latina nurse reading a chart")
    'hispanic female'
    >>> detect_group("A doctor holding a stethoscope") is None
    True
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from debiaslab.batching import device_of, pad_rows
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.generation import GenerationSettings, generate
from debiaslab.io import write_bytes_atomic
from debiaslab.metrics import Metric
from debiaslab.mitigation import finetune as ft
from debiaslab.models import from_objects, resolve_source
from debiaslab.plots import align_curve
from debiaslab.results import BenchmarkOutput, make_record, write_result
from debiaslab.scoring import prefix_token_id
from debiaslab.t2i.metrics import total_variation
from debiaslab.t2i.precise_data import (
    DEFAULT_GROUPS,
    DEFAULT_INSTRUCTION,
    find_demographic_words,
    instruction_pairs,
    load_words,
    parse_group,
    replace_demographics,
)
from debiaslab.t2i.targets import PRECISE_DEBIAS_RAW

log = logging.getLogger(__name__)

RECIPE = "precise_debias"
GROUPS: tuple[str, ...] = tuple(f"{race.lower()} {gender}" for race, gender in DEFAULT_GROUPS)
UNDETECTED = "undetected"
CURVE_FILE = "align_curve.json"
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


# ---------------------------------------------------------------------------------------------
# Prompt format
# ---------------------------------------------------------------------------------------------


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
    `prompt_and_completion` and the module docstring.

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
        >>> from debiaslab.tiny import build_tokenizer
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


def _check_pairs(pairs: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Pairs with an ``instruction`` (default one where missing), or a located error."""
    out = []
    for n, pair in enumerate(pairs):
        if not isinstance(pair, Mapping):
            raise DataFormatError(
                f"expected a mapping, got {type(pair).__name__}", file="<pairs>", row=n
            )
        for name in ("input", "output"):
            if not isinstance(pair.get(name), str) or not pair[name].strip():
                raise DataFormatError("missing or empty string", file="<pairs>", row=n, field=name)
        instruction = pair.get("instruction", DEFAULT_INSTRUCTION)
        if not isinstance(instruction, str):
            raise DataFormatError("not a string", file="<pairs>", row=n, field="instruction")
        out.append({"instruction": instruction, "input": pair["input"], "output": pair["output"]})
    return out


# ---------------------------------------------------------------------------------------------
# Training (initial) and rewriting
# ---------------------------------------------------------------------------------------------


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
):
    """Fine-tune ``model`` into a rewriter on instruction pairs (LoRA by default).

    Texts are `format_example` of each pair, with the model's own tokenizer (so an instruct
    preset is trained in its chat template), through :func:`debiaslab.mitigation.finetune.
    finetune`: the loss covers the whole text, prompt included, as the seed's Alpaca-LoRA
    training did. The run is recorded as the ``precise_debias`` recipe (with the group counts
    and the prompt format in ``recipe_info``).

    Args:
        model: a preset (``qwen2.5-1.5b-instruct``, ``qwen2.5-7b-instruct``), hub id or path.
        pairs: ``{instruction?, input, output}`` records (`instruction_pairs`); training split
            only (`split_by_prompt`).
        output: run directory; the adapter lands in ``output/adapter``.
        config: a :class:`~debiaslab.mitigation.finetune.FinetuneConfig`; default: the
            preset's settings for ``hardware`` (`config_for`) if given, else the defaults with
            ``seq_len`` :data:`REWRITER_SEQ_LEN`.
        hardware: ``t4x2``, ``p100`` or ``cpu-ci``, for the default config.
        resume: continue an interrupted run in ``output`` from its last checkpoint (the
            default, as :func:`debiaslab.mitigation.finetune.run`: rerunning the notebook
            continues, a finished run trains no further); False: refuse a used ``output``.
        progress: the Trainer's progress bar.
        device: where to train (default: the best available).

    Returns:
        The :class:`~debiaslab.mitigation.finetune.FinetuneResult`.

    Raises:
        ConfigError: a training text longer than ``config.seq_len`` (its output would be cut,
            teaching truncated rewrites).
        DataFormatError: a pair without a string ``input`` or ``output``.
    """
    from transformers import AutoTokenizer

    records = _check_pairs(pairs)
    if config is None:
        config = (
            ft.config_for(model, hardware)
            if hardware
            else ft.FinetuneConfig(seq_len=REWRITER_SEQ_LEN)
        )
    source, _ = resolve_source(model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    texts = [format_example(**r, tokenizer=tokenizer) for r in records]
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


# ---------------------------------------------------------------------------------------------
# Which group a rewrite names
# ---------------------------------------------------------------------------------------------


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
        rewrites: texts, or per-prompt lists of texts (`rewrite`'s output).
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
    keys = [" ".join(str(g).lower().split()) for g in groups]
    unknown = [g for g in keys if g not in GROUPS]
    if unknown or len(set(keys)) != len(keys) or not keys:
        raise ConfigError(f"groups must be distinct keys among {list(GROUPS)}, got {list(groups)}")
    flat: list[str] = []
    for item in rewrites:
        flat.extend([item] if isinstance(item, str) else list(item))
    counts = Counter(detect_group(text) for text in flat)
    detected = sum(counts[g] for g in keys)
    shares = {g: counts[g] / detected if detected else 0.0 for g in keys}
    shares[UNDETECTED] = (len(flat) - detected) / len(flat) if flat else 0.0
    shares["n"] = float(len(flat))
    return shares


def normalise_target(
    target: Mapping[str, float] = PRECISE_DEBIAS_RAW, groups: Sequence[str] = GROUPS
) -> dict[str, float]:
    """``target``'s values for ``groups``, scaled to sum 1.

    PreciseDebias's 8 shares sum to 1.146 (Hispanic overlaps the races); a rewrite names one
    group, so the loop aims at them renormalised.

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
        >>> from debiaslab.t2i.precise_data import instruction_pairs
        >>> by = pairs_by_group(instruction_pairs(["A nurse reading"]))
        >>> len(by), by["asian female"][0]["output"]
        (8, 'An Asian female nurse reading')
    """
    out: dict[str, list[dict[str, str]]] = {g: [] for g in groups}
    for pair in _check_pairs(list(pairs)):
        group = detect_group(pair["output"])
        if group in out:
            out[group].append(pair)
    return out


# ---------------------------------------------------------------------------------------------
# The measure-and-align loop
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class AlignResult:
    """What `align` did: the curve (one entry per measurement), where it wrote things."""

    curve: list[dict[str, Any]]
    stopped: str  # "threshold" or "max_iterations"
    curve_path: Path
    adapter: Path | None
    figures: list[Path]


def _trainable_lora(model) -> list:
    """The LoRA parameters of ``model``'s active adapter, made trainable (loaded adapters are
    frozen by default); the base stays frozen. The same adapter is trained on, never a new
    one."""
    if not hasattr(model, "peft_config"):
        raise ConfigError(
            "align trains the rewriter's LoRA adapter further, but the model has none: load it "
            "with load_model(name, adapter=<train_rewriter output>/adapter), or wrap it with "
            "peft.get_peft_model first"
        )
    adapter = getattr(model, "active_adapter", "default")
    params = []
    for name, param in model.named_parameters():
        if "lora_" in name and f".{adapter}" in name:
            param.requires_grad_(True)
            params.append(param)
        else:
            param.requires_grad_(False)
    if not params:
        raise ConfigError(f"the adapter {adapter!r} has no LoRA parameters to train")
    return params


def _encode_pair(tokenizer, pair: Mapping[str, str]) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``: the prompt as `rewrite` tokenizes it (`model_prompt`), then the
    completion and EOS; labels only on the completion (the prompt is given, not learned)."""
    _, completion = prompt_and_completion(
        pair["instruction"], pair["input"], pair["output"], tokenizer=tokenizer
    )
    prompt = model_prompt(pair["instruction"], pair["input"], tokenizer)
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    target = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None and (not target or target[-1] != tokenizer.eos_token_id):
        target.append(tokenizer.eos_token_id)
    return prompt_ids + target, [-100] * len(prompt_ids) + target


def _train_round(
    lm,
    by_group: Mapping[str, Sequence[Mapping[str, str]]],
    rates: Mapping[str, float],
    *,
    steps: int,
    batch_size: int,
    seed: int,
) -> float:
    """One round of further training; returns the mean loss.

    ``steps`` rounds of one AdamW step per group in ``rates``, interleaved (so no group is
    always trained last), each at that group's learning rate, on a batch of its pairs. One
    optimizer per round, as the seed started a new training run per group and iteration.
    """
    import torch

    model, tokenizer = lm.model, lm.tokenizer
    params = _trainable_lora(model)
    encoded = {g: [_encode_pair(tokenizer, p) for p in by_group[g]] for g in rates}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = device_of(model)
    optimizer = torch.optim.AdamW(params, lr=max(rates.values()), weight_decay=0.0)
    rng = random.Random(f"align-batches:{seed}")
    losses = []
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # LoRA dropout
            for _ in range(steps):
                for group, lr in rates.items():
                    rows = [rng.choice(encoded[group]) for _ in range(batch_size)]
                    ids, mask = pad_rows([r[0] for r in rows], pad_id)
                    labels, _ = pad_rows([r[1] for r in rows], -100)
                    loss = model(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        labels=labels.to(device),
                    ).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    for param_group in optimizer.param_groups:
                        param_group["lr"] = lr
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    losses.append(loss.item())
    finally:
        model.eval()
    return sum(losses) / len(losses)


def _save_adapter(model, tokenizer, path: Path) -> Path:
    """Save the adapter to ``path`` through a temporary sibling, so a kill leaves the old one."""
    tmp = path.with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def align(
    lm,
    prompts: Sequence[str],
    target: Mapping[str, float] = PRECISE_DEBIAS_RAW,
    *,
    pairs_by_group: Mapping[str, Sequence[Mapping[str, str]]],
    output: str | Path,
    figures: str | Path | None = None,
    results: str | Path | None = None,
    n: int = 10,
    threshold: float = 0.02,
    max_iterations: int = 10,
    base_lr: float = 1e-4,
    steps: int = 20,
    batch_size: int = 8,
    settings: GenerationSettings | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    seed: int = 0,
    save_adapter: bool = True,
    progress: bool = False,
) -> AlignResult:
    """Measure the rewriter's group shares and train it towards ``target`` until close.

    Each iteration samples ``n`` rewrites per prompt (`rewrite`), measures each group's share
    among the detected ones (`group_shares`), and Δ_c = target_c − share_c with ``target``
    renormalised over the 8 groups (`normalise_target`). It stops when every |Δ_c| <
    ``threshold``, or after ``max_iterations`` measurements. Otherwise the adapter is trained
    further (the same LoRA weights, in place) on the pairs of the under-represented groups
    (Δ_c > 0), ``steps`` AdamW steps per group (`_train_round`), and measured again; so the
    last entry always describes the returned weights.

    Learning rates: ``lr_c = base_lr · min(1, Δ_c / Δ_0)``, where Δ_0 is the largest gap of
    the first round. So the first round trains its most under-represented group at
    ``base_lr``, and later rounds slow down as the gaps close: a proportional controller.
    Normalising by each round's own largest gap instead (``base_lr · Δ_c / max Δ``) trains the
    largest remaining gap at full ``base_lr`` however small it is, and on the planted tiny
    rewriter that overshot and oscillated near the target. AdamW's step size barely depends
    on the gradient's size, so ``base_lr · steps`` sets how far one round moves: too large
    and the shares swing from round to round (the curve shows it), too small and it crawls.
    The seed (lr ∝ gap / number of pairs) has the same knob.

    Why a direct loop and not repeated :func:`~debiaslab.mitigation.finetune.finetune` calls:
    finetune loads a model from a name and wraps a *new* LoRA adapter each time, while the
    loop must keep training one adapter already in memory; a few hundred AdamW steps on the
    LoRA parameters need no Trainer. The loss is on the completion only (the prompt is given).

    Every draw uses ``settings.seed`` (the same per iteration: common random numbers, so a
    change between iterations is the model's, not the draw's); training batches and LoRA
    dropout are seeded by ``seed`` and the iteration.

    Args:
        lm: the rewriter: a causal LoadedModel whose model is a PeftModel (its adapter is
            trained in place).
        prompts: generic prompts to measure on (keep them out of the training pairs to
            measure generalisation).
        target: shares per group key (default PreciseDebias's raw BLS vector).
        pairs_by_group: the training pairs of each group (`pairs_by_group`).
        output: directory for ``align_curve.json``, ``rewrites/`` and ``adapter/``.
        figures: directory for ``align_curve.png``/``.pdf`` (None: no figure).
        results: results directory for the curve as a result file (:func:`align_record`;
            benchmark ``precise_debias_align``, what the results notebook and report read).
        n: rewrites per prompt and iteration.
        threshold: stop when every |Δ_c| is below it.
        max_iterations: measurements at most (training rounds: one fewer).
        base_lr: learning rate of the most under-represented group of the first round
            (the tiny rewriter: 6e-4 with 10 steps; a 1.5B LoRA: untested, start ~1e-4).
        steps: optimizer steps per under-represented group per round.
        batch_size: pairs per step.
        settings: decoding (default :data:`MEASURE_SETTINGS`).
        instruction: the rewriter's instruction.
        seed: training seed.
        save_adapter: write the final adapter to ``output/adapter``.
        progress: progress bars of generation.

    Returns:
        An :class:`AlignResult`; the curve is also in ``output/align_curve.json``, rewritten
        after every iteration: a list of ``{iteration, shares, delta, max_abs_delta, tv,
        undetected, n_rewrites, learning_rates, train_loss, seconds}``.

    Raises:
        ConfigError: bad arguments, a model without a LoRA adapter, or no pairs for an
            under-represented group.
    """

    if not prompts:
        raise ConfigError("align needs prompts to measure the rewriter on")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    for name, value in (("max_iterations", max_iterations), ("steps", steps), ("n", n)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not base_lr > 0:
        raise ConfigError(f"base_lr must be > 0, got {base_lr}")
    goal = normalise_target(target)
    by_group = {g: list(pairs_by_group.get(g, ())) for g in GROUPS}
    _trainable_lora(lm.model)  # fail before the first measurement, not after it
    output = Path(output)
    settings = settings or MEASURE_SETTINGS
    record: dict[str, Any] = {
        "method": RECIPE,
        "model": getattr(lm, "name", None),
        "target": goal,
        "threshold": threshold,
        "max_iterations": max_iterations,
        "n_per_prompt": n,
        "n_prompts": len(prompts),
        "base_lr": base_lr,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "settings": settings.as_dict(),
        "n_pairs": {g: len(p) for g, p in by_group.items()},
        "stopped": None,
        "curve": [],
    }
    curve: list[dict[str, Any]] = record["curve"]
    stopped = "max_iterations"
    reference_gap: float | None = None  # the largest Δ of the first round: lr scale
    for iteration in range(max_iterations):
        started = time.perf_counter()
        rows = rewrite(lm, prompts, n, settings, instruction=instruction, progress=progress)
        write_bytes_atomic(
            output / "rewrites" / f"iteration_{iteration:02d}.json",
            (json.dumps(dict(zip(prompts, rows, strict=True)), indent=1) + "\n").encode(),
        )
        measured = group_shares(rows)
        shares = {g: measured[g] for g in GROUPS}
        delta = {g: goal[g] - shares[g] for g in GROUPS}
        entry: dict[str, Any] = {
            "iteration": iteration,
            "shares": shares,
            "delta": delta,
            "max_abs_delta": max(abs(d) for d in delta.values()),
            "tv": total_variation(shares, goal),
            "undetected": measured[UNDETECTED],
            "n_rewrites": int(measured["n"]),
            "learning_rates": {},
            "train_loss": None,
        }
        if measured[UNDETECTED] > 0.5:
            log.warning(
                "iteration %d: %.0f%% of rewrites name no group; shares rest on the others",
                iteration,
                100 * measured[UNDETECTED],
            )
        done = entry["max_abs_delta"] < threshold
        if not done and iteration < max_iterations - 1:
            if reference_gap is None:
                reference_gap = max(delta.values())
            rates = {g: base_lr * min(1.0, d / reference_gap) for g, d in delta.items() if d > 0}
            empty = [g for g in rates if not by_group[g]]
            if empty:
                raise ConfigError(f"no training pairs for under-represented groups {empty}")
            entry["learning_rates"] = rates
            entry["train_loss"] = _train_round(
                lm,
                by_group,
                rates,
                steps=steps,
                batch_size=batch_size,
                seed=seed * 100_003 + iteration,
            )
        entry["seconds"] = round(time.perf_counter() - started, 2)
        curve.append(entry)
        log.info(
            "align iteration %d: max|Δ| %.3f, TV %.3f, undetected %.2f",
            iteration,
            entry["max_abs_delta"],
            entry["tv"],
            entry["undetected"],
        )
        if done:
            stopped = "threshold"
        record["stopped"] = stopped if done or iteration == max_iterations - 1 else None
        curve_path = write_bytes_atomic(
            output / CURVE_FILE, (json.dumps(record, indent=2) + "\n").encode()
        )
        if done:
            break
    adapter = None
    if save_adapter:
        adapter = _save_adapter(lm.model, lm.tokenizer, output / "adapter")
    figure_paths: list[Path] = []
    if figures is not None:
        figure_paths = align_curve(
            curve, Path(figures) / "align_curve", target=goal, threshold=threshold
        )
    if results is not None:
        write_result(align_record(record, lm), results)
    return AlignResult(curve, stopped, curve_path, adapter, figure_paths)


ALIGN_BENCHMARK = "precise_debias_align"
# Keys of align_record: iteration/<i>/<name>, final/<name>, iterations.
ALIGN_METRICS = {
    "max_abs_delta": Metric(False, None, "fraction", "largest |group share - target share|"),
    "tv": Metric(False, None, "fraction", "total variation distance to the target"),
    "undetected": Metric(False, None, "fraction", "share of rewrites with no group detected"),
    "share/*": Metric(None, None, "fraction", "share of the rewrites naming this group"),
    "iterations": Metric(None, None, "count", "iterations of the align loop"),
}  # fmt: skip


def align_record(curve_record: Mapping[str, Any], lm) -> dict[str, Any]:
    """The align loop's curve (``align_curve.json``) as a result record: per iteration the
    largest |Δ|, the TV distance to the target, the undetected share and each group's share;
    ``final/*`` for the last measurement. :func:`curve_from_record` reads it back."""

    curve = curve_record["curve"]
    metrics: dict[str, float] = {}
    for entry in curve:
        prefix = f"iteration/{entry['iteration']}"
        for key in ("max_abs_delta", "tv", "undetected"):
            metrics[f"{prefix}/{key}"] = entry[key]
        metrics.update({f"{prefix}/share/{g}": v for g, v in entry["shares"].items()})
    metrics["final/max_abs_delta"] = curve[-1]["max_abs_delta"]
    metrics["final/tv"] = curve[-1]["tv"]
    metrics["iterations"] = float(len(curve))
    output = BenchmarkOutput(
        ALIGN_BENCHMARK,
        metrics,
        ci={},
        declared=ALIGN_METRICS,
        n_items=int(sum(e["n_rewrites"] for e in curve)),
    )
    config = {k: v for k, v in curve_record.items() if k not in ("curve", "model")}
    seconds = round(sum(e.get("seconds", 0.0) for e in curve), 2)
    info = {**getattr(lm, "info", {}), "name": getattr(lm, "name", None) or "rewriter"}
    return make_record(
        output, model=info, config=config, timing={"align_seconds": seconds}, stage="align"
    )


def curve_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"curve", "target", "threshold", "stopped"}`` back from an :func:`align_record`
    result (the curve entries as in ``align_curve.json``, without the training details)."""
    metrics = record["metrics"]
    curve = []
    for i in range(int(metrics["iterations"])):
        prefix = f"iteration/{i}/"
        shares = {
            k.removeprefix(f"{prefix}share/"): v
            for k, v in metrics.items()
            if k.startswith(f"{prefix}share/")
        }
        entry = {"iteration": i, "shares": shares}
        entry.update({k: metrics[prefix + k] for k in ("max_abs_delta", "tv", "undetected")})
        curve.append(entry)
    config = record.get("config", {})
    return {
        "curve": curve,
        "target": config.get("target"),
        "threshold": config.get("threshold"),
        "stopped": config.get("stopped"),
    }


# ---------------------------------------------------------------------------------------------
# A planted tiny rewriter (offline tests)
# ---------------------------------------------------------------------------------------------

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


def planted_texts(
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
    for pair in _check_pairs(pairs):
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

    A tiny GPT-2 (:func:`debiaslab.tiny.train_tiny`) learns `planted_texts`: each generic
    prompt's rewrite names an ``under`` group at ``rate`` and the others uniformly (seconds on
    a CPU). Its tokenizer adds the BOS it was trained after, as
    :func:`debiaslab.synth.examples.tiny_writer`'s does. The LoRA adapter (zero at start, so
    the planted rates hold) is what `align` trains.

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

    from debiaslab.tiny import train_tiny

    pairs = instruction_pairs(TINY_PROMPTS) if pairs is None else pairs
    texts = planted_texts(pairs, under, rate, per_prompt=per_prompt, seed=seed)
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


def compare_shares(
    models: Mapping[str, Any],
    prompts: Sequence[str],
    *,
    n: int = 10,
    target: Mapping[str, float] = PRECISE_DEBIAS_RAW,
    settings: GenerationSettings | None = None,
):
    """Group shares of each model's rewrites of ``prompts`` against the target: the text-level
    evaluation (held-out prompts; ``models``: label → LoadedModel, e.g. base and rewriter).

    Returns:
        A DataFrame with model, group, share, target, and per model the total variation
        distance to the target (``group == "TV"``) and the undetected share.
    """
    import pandas as pd

    goal = normalise_target(target)
    rows = []
    for label, lm in models.items():
        shares = group_shares(rewrite(lm, prompts, n=n, settings=settings or MEASURE_SETTINGS))
        for group in GROUPS:
            rows.append(
                {"model": label, "group": group, "share": shares[group], "target": goal[group]}
            )
        tv = total_variation([shares[g] for g in GROUPS], [goal[g] for g in GROUPS])
        rows.append({"model": label, "group": "TV", "share": tv, "target": 0.0})
        rows.append(
            {"model": label, "group": "undetected", "share": shares["undetected"], "target": 0.0}
        )
    return pd.DataFrame(rows)
