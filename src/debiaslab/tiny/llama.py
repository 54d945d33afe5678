"""A tiny offline Llama with a SentencePiece-style tokenizer, for tests of prompt-based scoring.

GPT-2-style byte-level BPE never splits a leading space from the word after it, so code that
works for the other tiny causal model can still break on SentencePiece tokenizers, where a
word's leading space is a ``▁`` that may stand alone. `build_tiny_llama` makes a random
``LlamaForCausalLM`` of ~0.2M parameters with a BPE tokenizer in the layout of Llama-2 /
Mistral (`build_llama_tokenizer`), optionally with a Llama-2-style chat template.

Example:
    >>> model, tok = build_tiny_llama(seed=0)
    >>> [tok.convert_ids_to_tokens(tok(f" {c}", add_special_tokens=False)["input_ids"])
    ...  for c in "AB"]
    [['▁', '▁A'], ['▁', '▁B']]
    >>> tok.convert_ids_to_tokens(tok("Answer: A")["input_ids"])[0], type(model).__name__
    ('<s>', 'LlamaForCausalLM')
"""

from __future__ import annotations

import json
import string
from typing import TYPE_CHECKING

from debiaslab.tiny.build import MAX_POSITIONS, tokenizer_corpus
from debiaslab.tiny.corpus import planted_texts

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2 as in Llama-2 and Mistral
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))  # byte fallback, ids 3-258
VOCAB_SIZE = 1800  # 259 specials and bytes, then about as many pieces as the other tiny BPEs
TINY_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "tie_word_embeddings": False,
}
# Llama-2's chat format, shortened (no system prompt): "<s>[INST] question [/INST]".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ bos_token }}[INST] {{ message['content'] }} [/INST]"
    "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)
# Answer letters and option markers as words, so that "▁A", "▁B", "▁C" are pieces (they are in
# Llama-2's and Mistral's vocabularies).
_LETTER_LINES = ("A B C", "A. B. C.", "Answer: A", "Answer: B", "Answer: C") * 20


def build_llama_tokenizer(
    texts=(), *, legacy: bool = True, vocab_size: int = VOCAB_SIZE, chat: bool = False
) -> PreTrainedTokenizerFast:
    """Train a Llama-2-style BPE tokenizer locally and wrap it as a fast tokenizer.

    Trained on the same texts as :mod:`debiaslab.tiny.build`'s tokenizers. Layout of the
    Llama-2 / Mistral tokenizers: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, the 256
    byte-fallback tokens ``<0x00>``…``<0xFF>`` (3-258), then the learned pieces; words start
    with ``▁``; ``<s>`` is added on encode, nothing at the end; no pad token. Two pipelines,
    one vocabulary:

    * ``legacy=True`` is the ``tokenizer.json`` shipped with Llama-2 and Mistral-7B-v0.1:
      SentencePiece's dummy prefix as a ``Prepend("▁")`` normaliser, spaces replaced by ``▁``,
      no pre-tokenizer, byte fallback. A string that starts with a space doubles the ``▁``:
      ``" A"`` is ``["▁", "▁A"]``, so ``" A"``, ``" B"`` and ``" C"`` all begin with the same
      token, as with those models.
    * ``legacy=False`` is what transformers' ``LlamaTokenizer`` builds from a vocabulary today:
      a ``Metaspace`` pre-tokenizer (``prepend_scheme="first"``, ``split=False``) and no
      normaliser; ``" A"`` is ``["▁A"]``.

    Both give the same tokens for text that does not start with a space. Deterministic: the
    same texts give the same vocabulary and ids.

    Args:
        texts: training texts; general English, the planted lexicon and answer letters are
            always added.
        legacy: the Llama-2 / Mistral ``tokenizer.json`` pipeline (``" A"`` → ``▁ ▁A``) or
            transformers' current ``Metaspace`` one (``" A"`` → ``▁A``).
        vocab_size: upper bound of the vocabulary, specials and byte tokens included.
        chat: set :data:`CHAT_TEMPLATE` as the tokenizer's chat template.

    Returns:
        A ``PreTrainedTokenizerFast`` that ``save_pretrained`` / ``AutoTokenizer`` round-trip.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers as tok_trainers
    from transformers import PreTrainedTokenizerFast

    # Learn pieces over ▁-initial words (SentencePiece never lets a piece cross a word start),
    # then rebuild the tokenizer around the learned vocabulary and merges.
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
    trainer = tok_trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIALS, *BYTE_TOKENS],
        initial_alphabet=[*string.ascii_letters, *string.digits, *string.punctuation, "▁"],
        show_progress=False,
    )
    trainer_tok.train_from_iterator([*tokenizer_corpus(texts), *_LETTER_LINES], trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(
        models.BPE(
            vocab=learned["vocab"],
            merges=merges,
            unk_token="<unk>",
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    if legacy:
        tok.normalizer = normalizers.Sequence(
            [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="first", split=False
        )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1, right=0),
        ]
    )
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )
    if chat:
        wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_llama(
    texts: list[str] | None = None, *, seed: int = 0, legacy: bool = True, chat: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A randomly initialised tiny ``LlamaForCausalLM`` and its SentencePiece-style tokenizer.

    Args:
        texts: tokenizer training texts; None uses an unbiased planted corpus (rate 0.5).
        seed: seed of the weight initialisation (the global RNG is left as it was).
        legacy, chat: see :func:`build_llama_tokenizer`.

    Returns:
        ``(model, tokenizer)``, the model in eval mode on CPU; ``debiaslab.models.from_objects``
        wraps them for the benchmarks (family ``causal``).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if texts is None:
        texts = planted_texts(0.5, 200, seed)
    tokenizer = build_llama_tokenizer(texts, legacy=legacy, chat=chat)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **TINY_LLAMA,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval(), tokenizer
