"""Training rows for :func:`debiaslab.mitigation.finetune.finetune`: texts tokenized per model
family (causal: after BOS, ending with EOS, optionally with the loss on the completion only;
masked: as they are; seq2seq: a sentinel-masked input and the whole text as target), the
map-style dataset the Trainer reads, and the collator that pads them."""

from __future__ import annotations

import random

from debiaslab.scoring import prefix_token_id
from debiaslab.tiny.train import sentinel_input


class TokenRows:
    """A list of tokenized examples as a map-style dataset (what Trainer needs)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def encode_rows(
    lm, texts: list[str], seq_len: int, seed: int = 0, prompts: list[str] | None = None
) -> list[dict[str, list[int]]]:
    """Token rows of ``texts`` for ``lm``'s family, at most ``seq_len`` tokens.

    ``prompts`` (causal LMs; one per text, each the beginning of its text): the prompt's
    tokens get the ignored label -100, so the loss covers the completion and EOS. ``seed``
    seeds seq2seq's sentinel masking.
    """
    tok = lm.tokenizer
    encode = {"truncation": True, "max_length": seq_len}
    if lm.family == "seq2seq":
        rng = random.Random(f"seq2seq-input:{seed}")
        rows = []
        for text in texts:
            source = sentinel_input(text, rng, 0.3)
            rows.append(
                {
                    "input_ids": tok(source, **encode)["input_ids"],
                    "labels": tok(text, **encode)["input_ids"],
                }
            )
        return rows

    def causal_ids(text: str) -> list[int]:
        # As the scoring engine reads a sentence: after BOS (unless the tokenizer adds one).
        ids = list(tok(text, **encode)["input_ids"])
        bos = prefix_token_id(tok)
        body = ids[1:] if ids and ids[0] == bos else ids
        return [bos, *body[: seq_len - 2]]

    rows = []
    for k, text in enumerate(texts):
        if lm.family != "causal":
            rows.append({"input_ids": list(tok(text, **encode)["input_ids"])})
            continue
        ids = causal_ids(text)
        if tok.eos_token_id is not None:
            ids.append(tok.eos_token_id)  # ending with EOS
        row = {"input_ids": ids}
        if prompts is not None:
            # Loss on the completion only: the prompt's tokens (as far as they agree with the
            # text's, so a merge across the boundary is learned) get the ignored label.
            given = causal_ids(prompts[k])
            n = next(
                (i for i, (a, b) in enumerate(zip(given, ids, strict=False)) if a != b), len(given)
            )
            row["labels"] = [-100] * n + ids[n:]
        rows.append(row)
    return rows


def collator(lm, model, mlm_probability: float, labelled: bool = False):
    """The Trainer's collator: seq2seq pads inputs and labels; rows that carry their labels
    (``labelled``: completion-only) are padded with label -100; otherwise causal or masked
    language modelling (``mlm_probability`` of tokens masked)."""
    from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq

    if lm.family == "seq2seq":
        return DataCollatorForSeq2Seq(lm.tokenizer, model=model, label_pad_token_id=-100)
    if labelled:  # completion-only rows carry their labels: pad them, mask nothing more
        return DataCollatorForSeq2Seq(lm.tokenizer, label_pad_token_id=-100)
    return DataCollatorForLanguageModeling(
        lm.tokenizer, mlm=lm.family == "masked", mlm_probability=mlm_probability
    )
