"""A tiny offline RoBERTa: byte-level BPE tokenizer and a randomly initialised masked LM.

Byte-level BPE marks a word that follows a space with the space itself ("Ġword"), so scorers
that insert a word into a context must encode it as it stands there (StereoSet's masked form,
as bias-bench does for RoBERTa). This lets tests check that offline on transformers' own
``RobertaTokenizer`` over a local vocabulary, specials numbered as in ``roberta-base`` and
``<mask>`` stripping the space before it; the model has the size of
:data:`debiaslab.tiny.build.TINY_BERT` and is not trained.

Example:
    >>> model, tok = build_tiny_roberta(seed=0)
    >>> tok.convert_ids_to_tokens(tok("The nurse was <mask>.")["input_ids"])[-4:]
    ['Ġwas', '<mask>', '.', '</s>']
    >>> tok(" nurse", add_special_tokens=False) != tok("nurse", add_special_tokens=False)
    True
"""

from __future__ import annotations

import json
from typing import Any

from debiaslab.tiny.build import (
    MAX_POSITIONS,
    TINY_BERT,
    TINY_BERT_FF,
    VOCAB_SIZE,
    tokenizer_corpus,
)
from debiaslab.tiny.corpus import planted_texts

ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0-3, as in roberta-base
MASK = "<mask>"  # the last id, as in roberta-base


def build_roberta_tokenizer(texts=(), vocab_size: int = VOCAB_SIZE):
    """A RoBERTa tokenizer (transformers' ``RobertaTokenizer``) over a locally trained vocabulary.

    ``add_prefix_space=False`` (RoBERTa's default); ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3 and ``<mask>`` last, as in ``roberta-base``; ``<mask>`` strips the space before
    it (``lstrip=True``), so in "was <mask>." the mask stands for " word"; ``tok("A b")`` gives
    ``<s> A Ġb </s>``.

    Deterministic: the same texts give the same vocabulary, merges and ids.

    Args:
        texts: training texts; general English and the planted lexicon are always added.
        vocab_size: size of the BPE vocabulary (``<mask>`` comes on top).
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from tokenizers import trainers as tok_trainers
    from transformers import RobertaTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tok_trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(ROBERTA_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(texts), trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    return RobertaTokenizer(
        vocab=state["vocab"],
        merges=merges,
        add_prefix_space=False,
        mask_token=AddedToken(MASK, lstrip=True, rstrip=False, normalized=False, special=True),
        model_max_length=MAX_POSITIONS,
    )


def build_tiny_roberta(texts: list[str] | None = None, seed: int = 0) -> tuple[Any, Any]:
    """A randomly initialised tiny ``RobertaForMaskedLM`` and its byte-level BPE tokenizer.

    Args:
        texts: tokenizer training texts; None uses an unbiased planted corpus (rate 0.5).
        seed: seed of the weight initialisation (the global RNG is left as it was).

    Returns:
        ``(model, tokenizer)``, the model in eval mode on CPU.
    """
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    if texts is None:
        texts = planted_texts(0.5, 200, seed)
    tokenizer = build_roberta_tokenizer(texts)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        intermediate_size=TINY_BERT_FF,
        # RoBERTa's position ids start after the padding id: pad_token_id + 1 rows are unused.
        max_position_embeddings=MAX_POSITIONS + tokenizer.pad_token_id + 1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        **TINY_BERT,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RobertaForMaskedLM(config)
    return model.eval(), tokenizer
