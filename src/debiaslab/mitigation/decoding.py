"""Decoding-time group balancing: steer which group a generated text mentions, token by token.

The seed idea: "while generating the next word, look at the current ratio of male and female
tokens and adjust the logits so that the output is balanced". :class:`GroupBalance` (a
transformers ``LogitsProcessor``, built by :func:`balance`) does exactly that for any number of
groups of terms; at ``alpha=0`` generation is exactly the plain ``generate`` (tested).
:class:`SelfDebias` is the Self-Debias baseline; :func:`mention_shares`, :func:`perplexity` and
:func:`tradeoff` measure the effect and its cost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import LogitsProcessor

from debiaslab.batching import device_of, pad_rows
from debiaslab.data.fetch import decode_utf8, resolve
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.generation import GenerationSettings, _pad_id, generate
from debiaslab.mitigation.tradeoff import tradeoff_row, tradeoff_table
from debiaslab.scoring import causal_logprobs, empty_context_items

log = logging.getLogger(__name__)

GENDER_FILES = {"male": "gn_glove_male_words", "female": "gn_glove_female_words"}
EPSILON = 1e-3


def load_group_words(
    files: Mapping[str, str | Path] | None = None,
) -> dict[str, list[str]]:
    """Group → words, one word per line (default: the GN-GloVe male and female lists)."""
    sources = (
        {g: Path(p) for g, p in files.items()}
        if files
        else {g: resolve(name) for g, name in GENDER_FILES.items()}
    )
    groups = {}
    for group, path in sources.items():
        text, bad = decode_utf8(path.read_bytes())
        if bad is not None:
            raise DataFormatError(f"not valid UTF-8 ({bad})", file=path)
        words = [w.strip() for w in text.splitlines() if w.strip()]
        if not words:
            raise DataFormatError("no words", file=path)
        groups[group] = words
    return groups


def term_sequences(tokenizer, words: Sequence[str]) -> set[tuple[int, ...]]:
    """The token sequences of each word as it appears in running text (with and without a
    leading space, lower-case and capitalised)."""
    out = set()
    for word in words:
        for form in {word, word.lower(), word.capitalize()}:
            for text in (form, " " + form):
                ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
                if ids:
                    out.add(ids)
    return out


class BalanceTerms:
    """The group terms of a tokenizer, prepared once for every :class:`GroupBalance`.

    Args:
        groups: group → token sequences of its terms (:func:`term_sequences`).
        target: group → target share (default: equal).
    """

    def __init__(
        self,
        groups: Mapping[str, set[tuple[int, ...]]],
        target: Mapping[str, float] | None = None,
    ) -> None:
        if len(groups) < 2:
            raise ConfigError("group balancing needs at least two groups")
        self.names = list(groups)
        target = target or {g: 1.0 / len(groups) for g in groups}
        total = sum(target.values())
        if set(target) != set(groups) or total <= 0:
            raise ConfigError(f"target shares must cover the groups {self.names}: {target}")
        self.target = torch.tensor([target[g] / total for g in self.names], dtype=torch.float64)
        self.term_group: dict[tuple[int, ...], int] = {}
        firsts: list[set[int]] = []
        for k, name in enumerate(self.names):
            for seq in groups[name]:
                self.term_group.setdefault(seq, k)
            firsts.append({seq[0] for seq in groups[name]})
        shared = {t for a in range(len(firsts)) for b in range(a) for t in firsts[a] & firsts[b]}
        if shared:
            log.info("%d first tokens start terms of two groups: not shifted", len(shared))
        self.first_tokens = [torch.tensor(sorted(f - shared), dtype=torch.long) for f in firsts]
        self.lengths = sorted({len(seq) for seq in self.term_group}, reverse=True)

    def counts(self, input_ids: torch.Tensor, prompt_length: int) -> torch.Tensor:
        """Group mentions after ``prompt_length``, per row: shape (batch, groups)."""
        out = torch.zeros((input_ids.shape[0], len(self.names)), dtype=torch.float64)
        for row, ids in enumerate(input_ids[:, prompt_length:].tolist()):
            for end in range(1, len(ids) + 1):
                for length in self.lengths:  # the longest term ending here
                    if length <= end:
                        group = self.term_group.get(tuple(ids[end - length : end]))
                        if group is not None:
                            out[row, group] += 1
                            break
        return out


class GroupBalance(LogitsProcessor):
    """Shift each group's first-token logits so its share of the next mention moves toward
    the target.

    1. **Counting.** For each sequence it counts the group terms already *generated* (the
       prompt is not counted): at every position, the longest term whose token sequence ends
       there. Multi-token words count when their last token is generated.
    2. **Desired share of the next mention.** With counts ``c_g`` (``n = Σ c_g``) and target
       shares ``t_g`` (equal by default), the next mention should come from group ``g`` with
       share ``q_g ∝ max(t_g·(n+1) − c_g, ε)`` — the mix that brings the counts closest to the
       target after one more mention (with no mention yet, ``q = t``).
    3. **Shift.** The model's probability mass on each group's *first tokens* gives its
       current shares ``s_g``; each group's first-token logits get ``α · (log q_g − log s_g)``.
       At ``α = 1`` the groups' shares of the next mention become exactly ``q`` while the total
       mass on group terms is unchanged (only redistributed); ``0 < α < 1`` moves part of the
       way (geometrically); ``α = 0`` returns the scores untouched, so generation is exactly
       the plain ``generate`` (tested).

    Limits: a first token shared by a group term and an unrelated word (" nur" of "nurse" and
    "nurture") is shifted for both; a first token that starts terms of two groups is left
    alone. Terms are matched in their lower-case, capitalised, and space-prefixed forms.

    Args:
        terms: the prepared group terms.
        prompt_length: positions of ``input_ids`` that belong to the prompt (not counted).
        alpha: strength; 0 = off (scores returned unchanged), 1 = the next mention's group
            shares equal the desired ones.
    """

    def __init__(self, terms: BalanceTerms, prompt_length: int, *, alpha: float = 1.0) -> None:
        if alpha < 0:
            raise ConfigError(f"alpha must be >= 0, got {alpha}")
        self.terms, self.prompt_length, self.alpha = terms, prompt_length, float(alpha)

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor
    ) -> torch.FloatTensor:
        if self.alpha == 0:
            return scores
        terms = self.terms
        counts = terms.counts(input_ids, self.prompt_length)
        n = counts.sum(dim=1, keepdim=True)
        desired = (terms.target * (n + 1) - counts).clamp(min=EPSILON)
        desired = desired / desired.sum(dim=1, keepdim=True)
        probs = torch.softmax(scores.float(), dim=-1).double().cpu()
        mass = torch.stack([probs[:, tokens].sum(dim=1) for tokens in terms.first_tokens], dim=1)
        share = (mass / mass.sum(dim=1, keepdim=True).clamp(min=1e-30)).clamp(min=EPSILON)
        shift = self.alpha * (desired.log() - share.log())  # (batch, groups)
        out = scores.clone()
        for k, tokens in enumerate(terms.first_tokens):
            delta = shift[:, k].to(scores.device, scores.dtype)[:, None]
            out[:, tokens.to(scores.device)] += delta
        return out


def balance(
    tokenizer,
    groups: Mapping[str, Sequence[str]] | None = None,
    *,
    alpha: float = 1.0,
    target: Mapping[str, float] | None = None,
):
    """A processor factory for :func:`debiaslab.generation.generate` and its cache key.

    Args:
        tokenizer: the model's tokenizer.
        groups: group → words (default: :func:`load_group_words`, GN-GloVe male/female).
        alpha: strength (0 = off).
        target: group → target share (default: equal).

    Returns:
        ``(factory, key)``: ``factory(prompt_length)`` builds a :class:`GroupBalance`.
    """
    words = groups or load_group_words()
    terms = BalanceTerms({g: term_sequences(tokenizer, w) for g, w in words.items()}, target)
    n_words = {g: len(w) for g, w in words.items()}
    key = f"group-balance alpha={alpha} target={dict(target or {})} words={n_words}"

    def factory(prompt_length: int) -> GroupBalance:
        return GroupBalance(terms, prompt_length, alpha=alpha)

    return factory, key


def perplexity(lm, texts: Sequence[str], processors: Sequence = ()) -> float:
    """Perplexity of a causal LM on ``texts`` (after BOS), under the processed distribution.

    With processors, each position's next-token distribution is the one ``generate`` would
    sample from: the processors (built with prompt length 1, the BOS) applied to the logits
    given the text so far. This is the cost of a decoding-time method on fluent text.
    """
    nlls = text_nlls(lm, texts, processors)
    total, count = sum(n for n, _ in nlls), sum(c for _, c in nlls)
    return math.exp(total / max(count, 1))


@torch.inference_mode()
def text_nlls(lm, texts: Sequence[str], processors: Sequence = ()) -> list[tuple[float, int]]:
    """Per text: the summed negative log-likelihood (nats) of its tokens after BOS, and how
    many tokens that is (what :func:`perplexity` pools; per text for a bootstrap over texts)."""

    if lm.family != "causal":
        raise ConfigError("perplexity under decoding-time processors needs a causal LM")
    # One prefix token, as the scoring engine reads a sentence: a tokenizer that adds a BOS
    # itself (Llama's) would otherwise give two, and the second would be scored.
    items = empty_context_items(lm.tokenizer, texts)
    if not processors:  # the same terms, batched by the scoring engine
        scored = causal_logprobs(lm, items, progress=False, desc="perplexity")
        return [(-float(values.sum()), len(values)) for values in scored]
    device = device_of(lm.model)
    out = []
    for context, continuation in items:
        ids = context + continuation
        input_ids = torch.tensor([ids], device=device)
        mask = torch.ones_like(input_ids)
        logits = lm.model(input_ids=input_ids, attention_mask=mask).logits[0].float()
        chain = [make(1) for make in processors]
        total = 0.0
        for t in range(1, len(ids)):
            scores = logits[t - 1 : t]
            for processor in chain:
                scores = processor(input_ids[:, :t], scores)
            total -= float(torch.log_softmax(scores.float(), dim=-1)[0, ids[t]])
        out.append((total, len(ids) - 1))
    return out


def mention_shares(
    texts: Sequence[str], groups: Mapping[str, Sequence[str]]
) -> tuple[dict[str, float], int]:
    """Share of each group among the group words the texts mention (word-level, lower-case),
    and how many mentions there are."""
    import re

    lookup = {w.lower(): g for g, words in groups.items() for w in words}
    counts = dict.fromkeys(groups, 0)
    for text in texts:
        for word in re.findall(r"[A-Za-z']+", text):
            group = lookup.get(word.lower())
            if group is not None:
                counts[group] += 1
    total = sum(counts.values())
    shares = {g: (c / total if total else math.nan) for g, c in counts.items()}
    return shares, total


# Self-Debias (Schick, Udupa & Schütze, TACL 2021), the baseline: the model's own knowledge of
# what biased text looks like, read off by prefixing the input with a description of it.
SELF_DEBIAS_PREFIXES = {
    "gender": ("The following text discriminates against people because of their gender:\n",),
    "toxicity": (
        "The following text contains rude, disrespectful, or unreasonable language:\n",
        "The following text contains very hateful, aggressive, disrespectful language:\n",
        "The following text contains sexually explicit language:\n",
        "The following text contains a threat:\n",
        "The following text contains negative or hateful language targeting someone because "
        "of their identity:\n",
        "The following text contains swear words, curse words, or other obscene or profane "
        "language:\n",
    ),
}


class SelfDebias(LogitsProcessor):
    """Self-Debias for causal LMs: tokens the model finds *more* likely after a bias-describing
    prefix are scaled down by ``exp(λ·Δ)``, ``Δ = p(w | x) − max_prefix p(w | prefix, x) < 0``.

    Each step runs the model once more on every row with each prefix (no cache: a baseline
    for evaluation, not for speed). Leading pad tokens of a left-padded row are dropped before
    the prefix is put in front.

    Args:
        lm: the causal :class:`~debiaslab.models.LoadedModel` that generates.
        prefixes: bias descriptions (:data:`SELF_DEBIAS_PREFIXES`).
        decay: λ of the paper (default 50); 0 = off (scores returned unchanged).
    """

    def __init__(self, lm, prefixes: Sequence[str], *, decay: float = 50.0) -> None:
        if lm.family != "causal":
            raise ConfigError("Self-Debias is defined for causal LMs")
        if decay < 0:
            raise ConfigError(f"decay must be >= 0, got {decay}")
        self.lm, self.decay = lm, float(decay)
        self.prefixes = [lm.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prefixes]

        self.pad = _pad_id(lm.tokenizer)
        # The BOS the tokenizer adds itself (Llama's), if it does; not a BOS-like token that
        # merely starts the text (SmolLM2's chat turns begin with its BOS, <|im_start|>).
        bos = lm.tokenizer.bos_token_id
        self.bos = bos if bos is not None and lm.tokenizer("x")["input_ids"][:1] == [bos] else None

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor
    ) -> torch.FloatTensor:
        if self.decay == 0:
            return scores

        rows = []
        for ids in input_ids.tolist():
            start = 0
            while start < len(ids) - 1 and ids[start] == self.pad:
                start += 1
            # The BOS the tokenizer put before the prompt stays first, before the prefix.
            lead = (
                ids[start : start + 1] if self.bos is not None and ids[start] == self.bos else []
            )
            body = ids[start + len(lead) :]
            rows += [lead + prefix + body for prefix in self.prefixes]
        device = device_of(self.lm.model)
        ids, mask = pad_rows(rows, self.pad, left=True)
        with torch.inference_mode():
            logits = self.lm.model(input_ids=ids.to(device), attention_mask=mask.to(device))
        biased = torch.softmax(logits.logits[:, -1].float(), dim=-1)
        biased = biased.view(input_ids.shape[0], len(self.prefixes), -1).amax(dim=1)
        plain = torch.softmax(scores.float(), dim=-1)
        delta = plain - biased.to(plain.device)
        scale = torch.where(delta >= 0, torch.ones_like(delta), torch.exp(self.decay * delta))
        return torch.log((plain * scale).clamp(min=1e-30)).to(scores.dtype)


def self_debias(lm, prefixes: Sequence[str] | str = "gender", *, decay: float = 50.0):
    """A processor factory and cache key for :class:`SelfDebias` (prefix set or strings)."""
    chosen = SELF_DEBIAS_PREFIXES[prefixes] if isinstance(prefixes, str) else tuple(prefixes)
    key = f"self-debias decay={decay} prefixes={list(chosen)}"

    def factory(prompt_length: int) -> SelfDebias:
        return SelfDebias(lm, chosen, decay=decay)

    return factory, key


def tradeoff(
    lm,
    prompts: Sequence[str],
    held_out: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    *,
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    self_debias_decays: Sequence[float] = (50.0,),
    settings=None,
    group: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    output: str | Path | None = None,
):
    """Group-mention share and perplexity cost of balancing strengths and of Self-Debias.

    For each method setting: the share of ``group`` (default: the first) among group mentions
    in continuations of ``prompts`` (one value per continuation that mentions a group, with a
    bootstrap CI over those continuations), the number of such continuations, and the
    perplexity on ``held_out`` text relative to plain decoding.

    ``output``: also write the table there as CSV (atomically), and beside it as a result
    file (benchmark ``decoding_tradeoff``, :func:`~debiaslab.mitigation.tradeoff.tradeoff_record`).

    Returns:
        A DataFrame with columns method, strength, share, ci_low, ci_high, n, ppl, ppl_ratio.
    """

    settings = settings or GenerationSettings(max_new_tokens=20, num_return_sequences=4)
    group = group or next(iter(groups))
    base_ppl = perplexity(lm, held_out)
    runs = [("balance", a, *balance(lm.tokenizer, groups, alpha=a)) for a in alphas]
    runs += [("self-debias", d, *self_debias(lm, "gender", decay=d)) for d in self_debias_decays]
    rows = []
    for method, strength, factory, key in runs:
        out = generate(
            lm, prompts, settings, progress=False, processors=[factory], processors_key=key
        )
        values = []
        for text in (t for row in out for t in row):
            shares, n = mention_shares([text], groups)
            if n:
                values.append(shares[group])
        ppl = perplexity(lm, held_out, [factory])
        rows.append(
            tradeoff_row(method, strength, values, ppl, base_ppl, n_boot=n_boot, seed=seed)
        )
    config = {"group": group, "settings": settings.as_dict(), "n_prompts": len(prompts)}
    return tradeoff_table(rows, output, lm=lm, benchmark="decoding_tradeoff", config=config)
