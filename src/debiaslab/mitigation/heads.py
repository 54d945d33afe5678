"""Attention-head gating: scale individual attention heads to reduce toxic generations.

Heads are scored by how much they push a model toward toxic continuations (ablation, or
gradient × gate as in Michel et al. 2019) and the top ones closed. Measured (tests/test_heads.py,
trigger model of :mod:`debiaslab.tiny.toxicity`, seeds 0-5): closing the top 2 of 16 heads by
``tokens=3`` ablation lowers the toxic rate from 0.82-0.92 to 0.43-0.75 while clean perplexity
rises 7-17%; no set of heads brings it near the untriggered 0. Entry points:
:class:`HeadGates`, :func:`attribute`, :func:`gate_top_k`, :func:`greedy_gates`,
:func:`tradeoff`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch

from debiaslab.batching import device_of, pad_rows
from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings, _pad_id, generate
from debiaslab.io import write_bytes_atomic
from debiaslab.mitigation.decoding import perplexity
from debiaslab.mitigation.tradeoff import tradeoff_row, tradeoff_table
from debiaslab.scoring import prefix_token_id
from debiaslab.textclass import TOXIC_LABEL

OUTPUT_PROJECTIONS = {
    "gpt2": ("attn.c_proj",),
    "bloom": ("self_attention.dense",),
    "llama": ("self_attn.o_proj",),
    "qwen2": ("self_attn.o_proj",),
    "mistral": ("self_attn.o_proj",),
    "t5": ("SelfAttention.o", "EncDecAttention.o"),
}


def _n_heads(config) -> int:
    for name in ("n_head", "num_attention_heads", "num_heads"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ConfigError(f"cannot find the number of attention heads in {type(config).__name__}")


def _base(model):
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class HeadGates:
    """Per-head gates of a model, applied while attached (also as a context manager).

    One scalar per head, applied by a forward pre-hook on each attention block's output
    projection, whose input is the heads' outputs side by side (``(..., heads × head_dim)``):
    the hook multiplies head ``h``'s slice by ``gate[h]``. Gate 1 changes nothing, 0 removes
    the head. Supported: GPT-2 (``attn.c_proj``), Bloom (``self_attention.dense``), Llama /
    Qwen2 / Mistral (``self_attn.o_proj``), T5 (``SelfAttention.o`` and ``EncDecAttention.o``).
    Gates are saved as a small safetensors file keyed by module name.

    Args:
        model: a transformers model of a supported architecture (or a PEFT wrapper of one).
        gates: module name → gate vector (default: all ones).
    """

    def __init__(self, model, gates: Mapping[str, torch.Tensor] | None = None) -> None:
        model = _base(model)
        model_type = getattr(model.config, "model_type", "")
        if model_type not in OUTPUT_PROJECTIONS:
            raise ConfigError(
                f"head gating supports {sorted(OUTPUT_PROJECTIONS)}, not {model_type!r}"
            )
        self.n_heads = _n_heads(model.config)
        suffixes = OUTPUT_PROJECTIONS[model_type]
        self.modules = {
            name: module
            for name, module in model.named_modules()
            if name.endswith(suffixes) and not name.endswith("lora_A")
        }
        if not self.modules:
            raise ConfigError(f"no attention output projections ({suffixes}) found")
        self.gates = {name: torch.ones(self.n_heads) for name in self.modules}
        if gates is not None:
            unknown = set(gates) - set(self.modules)
            if unknown:
                raise ConfigError(f"gates for unknown modules: {sorted(unknown)[:3]}")
            for name, gate in gates.items():
                if gate.shape != (self.n_heads,):
                    raise ConfigError(f"{name}: expected {self.n_heads} gates, got {gate.shape}")
                self.gates[name] = gate.detach().clone().float()
        self._handles: list = []

    def _hook(self, name: str):
        def hook(module, args):
            x = args[0]
            gate = self.gates[name].to(x.device, x.dtype)
            heads = x.view(*x.shape[:-1], self.n_heads, x.shape[-1] // self.n_heads)
            return ((heads * gate[:, None]).reshape(x.shape), *args[1:])

        return hook

    def attach(self) -> HeadGates:
        if not self._handles:
            self._handles = [
                module.register_forward_pre_hook(self._hook(name))
                for name, module in self.modules.items()
            ]
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> HeadGates:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def closed(self) -> list[tuple[str, int]]:
        """(module, head) of every gate below 1."""
        return [(n, int(h)) for n, g in self.gates.items() for h in torch.nonzero(g < 1).ravel()]

    def save(self, path: str | Path) -> Path:
        """Write the gates as safetensors (atomically)."""
        from safetensors.torch import save

        data = save({n: g.contiguous() for n, g in self.gates.items()}, {"format": "head-gates"})
        return write_bytes_atomic(path, data)

    @classmethod
    def load(cls, model, path: str | Path) -> HeadGates:
        """Gates saved by :meth:`save`, for ``model``."""
        gates = read_gates(path)
        try:
            return cls(model, gates)
        except ConfigError as exc:
            raise ConfigError(
                f"head-gates file {path}: {exc} (were these gates made for another model?)"
            ) from exc


def read_gates(path: str | Path) -> dict[str, torch.Tensor]:
    """The gate tensors of a file written by :meth:`HeadGates.save`.

    Raises:
        ConfigError: the file is missing, not safetensors, or not a head-gates file.
    """
    from safetensors import SafetensorError, safe_open

    advice = "give a file written by HeadGates.save (notebook attention_gate)"
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = handle.keys()
            gates = {name: handle.get_tensor(name) for name in names}
    except (SafetensorError, OSError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(
            f"head-gates file {path} cannot be read as safetensors ({reason}): {advice}"
        ) from exc
    if metadata.get("format") != "head-gates":
        raise ConfigError(
            f"head-gates file {path} is safetensors but not head gates (its metadata has no "
            f"format 'head-gates'): {advice}"
        )
    return gates


def _continuation_logprobs(
    lm, pairs: Sequence[tuple[str, str]], tokens: int | None = None
) -> torch.Tensor:
    """Differentiable sum of log p(continuation | prompt) per pair (causal LMs, after BOS),
    over the first ``tokens`` tokens of each continuation (all when None)."""

    tok = lm.tokenizer
    bos = prefix_token_id(tok)
    rows, spans = [], []
    for prompt, continuation in pairs:
        # No special tokens: a tokenizer that adds a BOS (Llama's) would put a second one after
        # ``bos`` and a third before the continuation.
        context = [bos, *tok(prompt, add_special_tokens=False)["input_ids"]]
        target = tok(continuation, add_special_tokens=False)["input_ids"]
        if tokens is not None:
            target = target[:tokens]
        rows.append(context + target)
        spans.append((len(context), len(context) + len(target)))
    ids, mask = pad_rows(rows, _pad_id(tok))
    device = device_of(lm.model)
    logits = lm.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for i, (start, end) in enumerate(spans):
        positions = torch.arange(start - 1, end - 1, device=device)
        targets = ids[i, start:end].to(device)
        out.append(logprobs[i, positions, targets].sum())
    return torch.stack(out)


def attribute(
    lm,
    toxic: Sequence[tuple[str, str]],
    clean: Sequence[tuple[str, str]],
    *,
    method: str = "ablation",
    base: HeadGates | None = None,
    tokens: int | None = None,
) -> dict[str, torch.Tensor]:
    """How much each head pushes the model toward the toxic continuations.

    The objective is ``mean log p(toxic | prompt) − mean log p(clean | prompt)``, over the
    first ``tokens`` tokens of each continuation. Heads with the largest positive score push
    the model toward the toxic continuations; :func:`gate_top_k` closes the top ``k``.
    Ablation (the drop when one head is removed) is the default; gradient × gate at all gates
    1 is Michel et al. 2019's importance proxy (one backward pass, but a linear approximation
    that misses saturated heads).

    Where the decision is made: whether a continuation turns toxic is decided at its first few
    tokens; the rest is predicted mostly from the continuation itself ("you stupid" →
    "fool"), by whatever heads model language in general. Summed over whole continuations, the
    objective is dominated by those later tokens, which can rank general-purpose heads above
    the ones that carry the decision. ``tokens=n`` scores only the first ``n`` tokens of each
    continuation (toxic and clean lines often share their first word or two: "He is a
    pathetic idiot" / "He is a careful engineer", hence 3 rather than 1). On 21 trigger models
    (designs and seeds of :func:`debiaslab.tiny.toxicity.trigger_toxicity_texts`), closing the
    top two heads by ``tokens=3`` lowered the toxic rate more than by whole continuations on
    7, less on 3 and the same on the rest (mostly the same two heads). The default stays None:
    where the choice is made is a property of the data.

    Learned gates, tried and dropped: continuous gates (sigmoid of a logit per head) trained to
    lower the objective while keeping the LM loss on clean text, with an L1 penalty on closed
    gates, then binarised or cut to the top ``k``, found the same heads as ablation with
    ``tokens=3`` or worse ones (a strong penalty keeps too few heads closed, a weak one closes
    later-layer heads that do little), and took ~100 s on the trigger model where ablation
    takes ~2 s.

    Args:
        lm: a causal :class:`~debiaslab.models.LoadedModel`.
        toxic: (prompt, toxic continuation) pairs.
        clean: (prompt, clean continuation) pairs.
        method: ``ablation`` (objective with all heads minus objective with this head
            removed; one forward pass per head, exact for single heads) or ``gradient``
            (gradient × gate at all gates 1, one backward pass; a linear approximation that
            is poor where the model is saturated).
        base: gates already applied (ablation only; default all open): scores are relative to
            them, as a greedy search needs.
        tokens: score only the first ``tokens`` tokens of each continuation, where the choice
            between a toxic and a clean continuation is made (see above; 3 on
            the trigger model); None (default) scores whole continuations, which suits
            continuations that differ all along but lets the tokens predicted from the
            continuation itself swamp the decision.

    Returns:
        Module name → one score per head (higher: the head favours the toxic continuations).
    """
    if lm.family != "causal":
        raise ConfigError("head attribution is implemented for causal LMs")
    if method not in ("ablation", "gradient"):
        raise ConfigError(f"unknown attribution method {method!r}; expected ablation, gradient")
    if tokens is not None and tokens < 1:
        raise ConfigError(f"tokens must be a positive number of tokens or None, got {tokens}")
    gates = HeadGates(lm.model, base.gates if base is not None else None)
    was_training = lm.model.training
    lm.model.eval()

    def objective() -> torch.Tensor:
        return (
            _continuation_logprobs(lm, toxic, tokens).mean()
            - _continuation_logprobs(lm, clean, tokens).mean()
        )

    try:
        if method == "gradient":
            for gate in gates.gates.values():
                gate.requires_grad_(True)
            with gates:
                objective().backward()
            return {n: (g.grad * g).detach() for n, g in gates.gates.items()}
        scores = {n: torch.zeros(gates.n_heads) for n in gates.gates}
        with torch.no_grad(), gates:
            full = float(objective())
            for name, gate in gates.gates.items():
                for head in range(gates.n_heads):
                    kept = float(gate[head])
                    gate[head] = 0.0
                    scores[name][head] = full - float(objective())
                    gate[head] = kept
        return scores
    finally:
        lm.model.train(was_training)
        lm.model.zero_grad(set_to_none=True)


def gate_top_k(model, scores: Mapping[str, torch.Tensor], k: int, value: float = 0.0):
    """Gates that set the ``k`` highest-scoring heads to ``value`` (0: remove them).

    Measured (tests/test_heads.py, the trigger model of :mod:`debiaslab.tiny.toxicity`, 4
    layers × 4 heads, seeds 0-5): closing the top 2 of 16 heads by ``tokens=3`` ablation
    lowers the toxic rate on held-out triggered prompts from 0.82-0.92 to 0.43-0.75
    (per-prompt drop 0.18-0.48, lower ends of the 95% bootstrap intervals 0.14-0.41), while
    perplexity on the clean text the model learned rises 7-17% (on held-out clean lines: −8% to
    +37%); the two lowest-scored heads change nothing (drops within ±0.02) and two random heads
    lower it by 0.03-0.09 on average (up to 0.34 when a draw hits a trigger head). The trigger
    is carried by several heads of the first layer at once: closing a third or fourth adds
    less and costs more (perplexity up to ×1.4, ×2 with all four), and no set of heads brings
    the rate near the untriggered 0.
    """
    flat = sorted(
        ((float(s), name, h) for name, vec in scores.items() for h, s in enumerate(vec)),
        reverse=True,
    )
    gates = HeadGates(model)
    for _, name, head in flat[:k]:
        gates.gates[name][head] = value
    return gates


@contextlib.contextmanager
def gated(model, gates: HeadGates) -> Iterator[HeadGates]:
    """``with gated(model, gates):`` — generate or score with the gates applied."""
    with gates:
        yield gates


def greedy_gates(
    lm,
    toxic: Sequence[tuple[str, str]],
    clean: Sequence[tuple[str, str]],
    k: int,
    *,
    tokens: int | None = None,
) -> HeadGates:
    """Close ``k`` heads one at a time, each time the one whose removal lowers the toxic −
    clean objective (over the first ``tokens`` continuation tokens, see :func:`attribute`)
    most given the heads already closed (catches heads that are redundant with each other,
    which one-shot scores miss)."""
    gates = HeadGates(lm.model)
    for _ in range(k):
        scores = attribute(lm, toxic, clean, base=gates, tokens=tokens)
        candidates = [
            (float(s), n, h)
            for n, vec in scores.items()
            for h, s in enumerate(vec)
            if gates.gates[n][h] > 0
        ]
        _, name, head = max(candidates)
        gates.gates[name][head] = 0.0
    return gates


def toxicity_pairs(
    lm,
    prompts: Sequence[str],
    classifier,
    settings=None,
    *,
    label: str | None = None,
    threshold: float = 0.5,
    max_pairs: int = 200,
    cache: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Attribution pairs from the model's own continuations, split by a toxicity classifier.

    Continuations scored at or above ``threshold`` are the toxic pairs; each is matched with a
    clean continuation of the same prompt where there is one (so the two sets differ in
    toxicity more than in topic), else of another prompt. At most ``max_pairs`` of each
    (a seeded sample): ablation costs one forward pass over both sets per head.

    Args:
        lm: a causal :class:`~debiaslab.models.LoadedModel`.
        prompts: prompts to continue (e.g. BOLD prompts of domains not used for evaluation).
        classifier: a :class:`~debiaslab.textclass.TextClassifier`.
        settings: generation settings (default 4 sampled continuations of 30 tokens).
        label: the classifier's toxic label (default `debiaslab.textclass.TOXIC_LABEL`).
        threshold: score from which a continuation counts as toxic.
        max_pairs: cap on each set.
        cache: generation cache file (resumable).

    Raises:
        ConfigError: no continuation is toxic, or none is clean.
    """
    import random

    settings = settings or GenerationSettings(max_new_tokens=30, num_return_sequences=4)
    label = label or TOXIC_LABEL
    out = generate(lm, prompts, settings, cache=cache, progress=progress)
    rows = [(p, t) for p, texts in zip(prompts, out, strict=True) for t in texts if t.strip()]
    scores = classifier.scores([t for _, t in rows], label, progress=progress)
    toxic = [row for row, s in zip(rows, scores, strict=True) if s >= threshold]
    clean = [row for row, s in zip(rows, scores, strict=True) if s < threshold]
    if not toxic or not clean:
        kind = "toxic" if not toxic else "clean"
        raise ConfigError(
            f"none of the {len(rows)} continuations is {kind} (threshold {threshold}): use more "
            "prompts or continuations, or another threshold"
        )
    rng = random.Random(f"toxicity-pairs:{seed}")
    if len(toxic) > max_pairs:
        toxic = rng.sample(toxic, max_pairs)
    by_prompt: dict[str, list[tuple[str, str]]] = {}
    for row in clean:
        by_prompt.setdefault(row[0], []).append(row)
    matched, used = [], set()
    for prompt, _ in toxic:
        options = [r for r in by_prompt.get(prompt, []) if r not in used]
        if options:
            matched.append(options[0])
            used.add(options[0])
    rest = [r for r in clean if r not in used]
    rng.shuffle(rest)
    matched += rest[: max(0, len(toxic) - len(matched))]
    return toxic, matched


def score_table(scores: Mapping[str, torch.Tensor]):
    """Head scores as a DataFrame (module, head, score), highest first."""
    import pandas as pd

    rows = [
        {"module": name, "head": h, "score": float(s)}
        for name, vec in scores.items()
        for h, s in enumerate(vec)
    ]
    return pd.DataFrame(rows).sort_values("score", ascending=False, ignore_index=True)


def tradeoff(
    lm,
    scores: Mapping[str, torch.Tensor],
    prompts: Sequence[str],
    held_out: Sequence[str],
    classifier,
    *,
    ks: Sequence[int] = (1, 2, 4, 8),
    settings=None,
    label: str | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    output: str | Path | None = None,
):
    """Toxic-continuation rate and perplexity cost of closing the top ``k`` heads, per ``k``.

    For ``k`` = 0 (no gates) and each of ``ks``: the share of continuations of ``prompts``
    the classifier calls toxic (per prompt, the share of its continuations; the mean over
    prompts with a bootstrap CI over prompts) and the perplexity on ``held_out`` text relative
    to no gates. ``output``: also write the table there as CSV (atomically), and beside it
    as a result file (benchmark ``gating_tradeoff``).

    Returns:
        A DataFrame with columns method (``gates``), strength (k), share (toxic rate),
        ci_low, ci_high, n (prompts), ppl, ppl_ratio — the columns of
        :func:`debiaslab.mitigation.decoding.tradeoff`, so :func:`debiaslab.plots.tradeoff`
        draws either.
    """

    settings = settings or GenerationSettings(max_new_tokens=30, num_return_sequences=4)
    label = label or TOXIC_LABEL
    rows, base_ppl = [], None
    for k in [0, *sorted(set(ks) - {0})]:
        with gate_top_k(lm.model, scores, k):
            out = generate(lm, prompts, settings, progress=False)
            with torch.no_grad():
                ppl = perplexity(lm, held_out)
        texts = [t for row in out for t in row]
        toxic = classifier.scores(texts, label, progress=False) >= threshold
        per_prompt = toxic.reshape(len(prompts), -1).mean(axis=1).astype(float)
        base_ppl = ppl if base_ppl is None else base_ppl
        rows.append(tradeoff_row("gates", k, per_prompt, ppl, base_ppl, n_boot=n_boot, seed=seed))
    config = {"settings": settings.as_dict(), "n_prompts": len(prompts), "threshold": threshold}
    return tradeoff_table(rows, output, lm=lm, benchmark="gating_tradeoff", config=config)
