"""The causal engine's shape decisions: which models let the vocabulary projection run at the
scored positions only (:func:`causal_head`), how wide a length bucket is (:func:`width_bucket`),
and a target token's log-probability without the whole log-softmax (:func:`token_logprobs`).
Shared by :mod:`debiaslab.scoring` and :mod:`debiaslab.scoring_prefix`.
"""

from __future__ import annotations

import torch

# Causal LMs whose logits are exactly ``get_output_embeddings()(trunk(...).last_hidden_state)``
# (no logit scaling or soft-capping), so the vocabulary projection can run at the scored
# positions only; other models fall back to the full logits.
PLAIN_HEAD_TYPES = frozenset(
    {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gpt_neox", "phi3", "olmo", "olmo2"}
)
# A causal batch is at most this much wider than its shortest sequence (padding ≤ ~11%);
# sequences up to PAD_FREE_UNDER tokens are batched by exact length (no padding at all).
CAUSAL_WIDTH_RATIO = 1.125
PAD_FREE_UNDER = 8


def causal_head(model) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(trunk, LM head) of a causal LM whose logits are the head applied to the trunk's last
    hidden state (:data:`PLAIN_HEAD_TYPES`), else None."""
    if getattr(model.config, "model_type", "") not in PLAIN_HEAD_TYPES:
        return None
    trunk = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = getattr(model, "get_output_embeddings", lambda: None)()  # a stand-in may have none
    return None if trunk is None or head is None else (trunk, head)


def width_bucket(n: int) -> int:
    """The padded width of a causal batch that holds a sequence of ``n`` tokens: ``n`` itself
    up to :data:`PAD_FREE_UNDER`, then a grid whose steps grow by at most
    :data:`CAUSAL_WIDTH_RATIO`, so a batch of one bucket pads its shortest sequence by at most
    that ratio.

    Example:
        >>> [width_bucket(n) for n in (3, 8, 9, 17, 18, 19, 40)]
        [3, 8, 9, 18, 18, 20, 41]
    """
    if n <= PAD_FREE_UNDER:
        return n
    bound = PAD_FREE_UNDER
    while bound < n:
        bound = max(bound + 1, int(bound * CAUSAL_WIDTH_RATIO))
    return bound


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits)[i, targets[i]]`` per row, in float32, without storing the whole
    log-softmax: the target's logit minus the row's log-sum-exp."""
    logits = logits.float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
