"""Tiny random models with locally trained tokenizers: BERT-, GPT-2- and T5-style, offline.

`build_tokenizer` trains a tokenizer with ``tokenizers`` (on the given texts, general English and
the planted lexicon) and wraps it as a transformers fast tokenizer; `build_tiny` makes a randomly
initialised ``BertForMaskedLM`` / ``GPT2LMHeadModel`` / ``T5ForConditionalGeneration`` of a few
hundred thousand parameters sized to it; `save_tiny` writes both where ``from_pretrained`` reads.

Example:
    >>> model, tok = build_tiny("causal", seed=0)
    >>> type(model).__name__, tok.eos_token
    ('GPT2LMHeadModel', '<|endoftext|>')
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debiaslab.errors import ConfigError
from debiaslab.tiny.corpus import planted_texts
from debiaslab.tiny.lexicon import (
    GENERAL_ENGLISH,
    PLANTED_AXES,
    UNRELATED_SENTENCES,
    UNRELATED_WORDS,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

FAMILIES = ("masked", "causal", "seq2seq")


def check_family(family: str) -> None:
    """Raise `ConfigError` unless ``family`` is one of `FAMILIES`."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; expected one of {FAMILIES}")


VOCAB_SIZE = 1500  # enough for whole words of the planted corpus plus common English subwords
MAX_POSITIONS = 512  # room for the longest real CrowS-Pairs / StereoSet sentences
N_SENTINELS = 8  # T5-style <extra_id_0..7>; the seq2seq objective hides up to 8 words

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
GPT2_EOS = "<|endoftext|>"
T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5


def tokenizer_corpus(texts: Iterable[str]) -> list[str]:
    """What tokenizers are trained on: the given texts, general English and the lexicon.

    The lexicon lines make every group word, attribute and unrelated fill a frequent whole word,
    so the benchmarks' key words are single tokens whatever ``texts`` holds.
    """
    lexicon = []
    for planted in PLANTED_AXES.values():
        words = [*planted.attributes[0], *planted.attributes[1]]
        for forms in planted.group_words:
            words += [w for variants in forms.values() for w in variants]
        lexicon += [" ".join(words), " ".join(w.capitalize() for w in words)]
    lexicon.append(" ".join(UNRELATED_WORDS))
    # Repeats weigh general English up against a large planted corpus.
    return [*texts, *(GENERAL_ENGLISH * 5), *UNRELATED_SENTENCES, *(lexicon * 20)]


def build_tokenizer(
    family: str, texts: Iterable[str] = (), vocab_size: int = VOCAB_SIZE
) -> PreTrainedTokenizerBase:
    """Train a tokenizer locally and wrap it as a transformers fast tokenizer.

    * ``masked``: BERT-style lowercase WordPiece; ``tok("A b")`` gives ``[CLS] a b [SEP]``;
      special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4).
    * ``causal``: GPT-2-style byte-level BPE; ``<|endoftext|>`` is bos, eos, unk and pad
      (id 0); nothing is added on encode, so a scorer prepends the BOS itself.
    * ``seq2seq``: T5-style cased BPE over Metaspace words (T5's Unigram keeps few whole
      words on a corpus this small); ``</s>`` appended on encode, ``<pad>`` = 0, ``</s>`` = 1,
      ``<unk>`` = 2, then the sentinels ``<extra_id_0..7>``.

    All three are deterministic: the same texts give the same vocabulary and ids.

    Args:
        family: ``"masked"``, ``"causal"`` or ``"seq2seq"``.
        texts: training texts; general English and the planted lexicon are always added.
        vocab_size: upper bound of the vocabulary (small corpora give fewer; the masked
            family always keeps every ASCII character, ~200 entries).

    Returns:
        A ``PreTrainedTokenizerFast`` whose ``save_pretrained`` output ``AutoTokenizer`` loads.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers as tok_trainers
    from transformers import PreTrainedTokenizerFast

    check_family(family)
    corpus = tokenizer_corpus(texts)
    printable = list(string.ascii_letters + string.digits + string.punctuation)
    if family == "masked":
        # The WordPiece vocabulary is learned by BPE over words marked "▁" at their start, then
        # renamed: "▁ab" -> "ab" (word-initial), "ab" -> "##ab" (continuation). The tokenizers
        # library's own WordPieceTrainer (BPE with a "##" prefix) picks and orders its
        # vocabulary differently from one process to the next; this BPE is deterministic.
        bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
        bpe.normalizer = normalizers.BertNormalizer(lowercase=True)
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Metaspace()]
        )
        lowercase = sorted(set("".join(printable).lower()))
        trainer = tok_trainers.BpeTrainer(
            # Room for every character in both forms; at least the specials and one merge.
            vocab_size=max(vocab_size - 2 * len(lowercase), len(BERT_SPECIALS) + 1),
            special_tokens=list(BERT_SPECIALS),
            initial_alphabet=[*lowercase, "▁"],
            show_progress=False,
        )
        bpe.train_from_iterator(corpus, trainer)
        # Every character as a word start and as a continuation, so no ASCII word is [UNK].
        pieces = [*BERT_SPECIALS, *lowercase, *(f"##{c}" for c in lowercase)]
        for token in sorted(bpe.get_vocab(), key=bpe.get_vocab().__getitem__):
            if token not in BERT_SPECIALS and token != "▁":
                pieces.append(token[1:] if token.startswith("▁") else f"##{token}")
        vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
            model_max_length=MAX_POSITIONS,
        )
    if family == "causal":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = tok_trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[GPT2_EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(corpus, trainer)
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=GPT2_EOS,
            eos_token=GPT2_EOS,
            unk_token=GPT2_EOS,
            pad_token=GPT2_EOS,  # as users of GPT-2 do: padding is masked out anyway
            model_max_length=MAX_POSITIONS,
        )
    sentinels = [f"<extra_id_{i}>" for i in range(N_SENTINELS)]
    # BPE rather than T5's Unigram: on a corpus this small Unigram keeps few whole words.
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = tok_trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*T5_SPECIALS, *sentinels],
        initial_alphabet=[*printable, "▁"],
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens=sentinels,
        model_max_length=MAX_POSITIONS,
    )


# Tiny architectures: a few hundred thousand parameters, seconds of CPU training.
# No dropout: seconds of training underfit, and dropout only slows the planted association down.
TINY_BERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
TINY_BERT_FF = 128
TINY_GPT2 = {
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 2,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
}
TINY_T5 = {
    "d_model": 64,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 2,
    "d_kv": 32,
    "dropout_rate": 0.0,
}
TINY_T5_FF = 128


def _tiny_model(
    family: str, tokenizer: PreTrainedTokenizerBase, arch: dict[str, Any] | None = None
) -> PreTrainedModel:
    """A randomly initialised tiny model sized to ``tokenizer``'s vocabulary."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    vocab_size = len(tokenizer)
    if family == "masked":
        config = BertConfig(
            vocab_size=vocab_size,
            intermediate_size=TINY_BERT_FF,
            max_position_embeddings=MAX_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
            # Untied input/output embeddings: tied, an attribute's one vector must both carry
            # its set identity and be predicted, and the planted association formed far later
            # (not within 1,500 steps in our runs; untied, by ~1,000).
            tie_word_embeddings=False,
            **TINY_BERT,
        )
        return BertForMaskedLM(config)
    if family == "causal":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=MAX_POSITIONS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,  # as for BERT: the association forms sooner
            **{**TINY_GPT2, **(arch or {})},
        )
        return GPT2LMHeadModel(config)
    config = T5Config(
        vocab_size=vocab_size,
        d_ff=TINY_T5_FF,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # T5 starts decoding from <pad>
        # Tied, as in T5: untied, T5 drops its d_model**-0.5 output scaling and a random
        # model's log-probabilities reach -40, where float32 sums lose digits.
        **TINY_T5,
    )
    return T5ForConditionalGeneration(config)


def build_tiny(
    family: str, texts: list[str] | None = None, seed: int = 0, arch: dict[str, Any] | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A randomly initialised tiny model and a tokenizer trained on ``texts``.

    Args:
        family: ``"masked"`` (BertForMaskedLM), ``"causal"`` (GPT2LMHeadModel) or
            ``"seq2seq"`` (T5ForConditionalGeneration).
        texts: tokenizer training texts; None uses an unbiased planted corpus (rate 0.5).
        seed: seed of the weight initialisation (the global RNG is left as it was).
        arch: config overrides of the causal model (e.g. more layers or heads).

    Returns:
        ``(model, tokenizer)``, the model in eval mode on CPU.
    """
    import torch

    check_family(family)
    if texts is None:
        texts = planted_texts(0.5, 200, seed)
    tokenizer = build_tokenizer(family, texts)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _tiny_model(family, tokenizer, arch)
    return model.eval(), tokenizer


def save_tiny(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> Path:
    """Save a tiny model (safetensors) and its tokenizer where ``from_pretrained`` finds them.

    ``AutoModelForMaskedLM`` / ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` and
    ``AutoTokenizer`` ``.from_pretrained(path)`` load them back.

    Args:
        model: the model.
        tokenizer: its tokenizer.
        path: directory to write (created if missing).

    Returns:
        The directory.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # safetensors: the default since 4.35, the only format in 5
    tokenizer.save_pretrained(path)
    return path
