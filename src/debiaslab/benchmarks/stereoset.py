"""StereoSet (Nadeem et al., ACL 2021) scored by likelihood.

Card:
    Measures: whether a model prefers stereotypical over anti-stereotypical associations
        (SS, ideal 50), whether it prefers meaningful over unrelated options (LMS, higher is
        better) and their combination ICAT = LMS·min(SS, 100−SS)/50 (higher is better), per
        domain (gender, profession, race, religion) and overall.
    Likelihood form (``run_likelihood``), per-sentence scores as bias-bench computes them:
        masked LMs, intrasentence: the BLANK's word is split into sub-tokens; for each sub-token
        the context is filled with the preceding sub-tokens and one mask, and the probability of
        the sub-token at the mask is read; the sentence score is the mean of those probabilities.
        causal LMs: the geometric mean of the sentence's token probabilities after a BOS token
        (intersentence: after BOS + the context sentence). seq2seq LMs: the same geometric mean
        with the sentence as decoder target (encoder input: the prefix token, or the context).
        Scores then go through the official aggregation (:mod:`.stereoset_eval`), and the
        per-sentence scores are written in the official predictions format.
    Prompt form: the multiple-choice question for instruction models is
        :mod:`.stereoset_mc` (its ``mc/`` metrics are not comparable with these).
    Note: bias-bench conditions each token of the sentence on the sentence prefix without BOS;
        here every token is conditioned on BOS + prefix (one pass per sentence, and the first
        token's probability is the same as bias-bench's). Ranks agree; values differ slightly.
    Citation: Nadeem, Bethke, Reddy. StereoSet: Measuring stereotypical bias in pretrained
        language models. ACL 2021.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from debiaslab.benchmarks import stereoset_eval
from debiaslab.data.stereoset import SPLITS, Example, StereoSet
from debiaslab.results import BenchmarkOutput
from debiaslab.scoring import (
    MaskedQuery,
    causal_logprobs,
    masked_logprobs,
    prefix_token_id,
    select_by_length,
    seq2seq_logprobs,
)

# --------------------------------------------------------------------------- likelihood form


def _masked_intrasentence_scores(lm, examples, progress: bool) -> dict[str, float]:
    tok = lm.tokenizer
    queries: list[MaskedQuery] = []
    owners: list[str] = []
    for example in examples:
        for sentence in example.sentences:
            insertion = tok(sentence.template_word, add_special_tokens=False)["input_ids"]
            for k, next_token in enumerate(insertion):
                prefix = tok.decode(insertion[:k])
                text = example.context.replace("BLANK", f"{prefix}{tok.mask_token}")
                ids = tok(text)["input_ids"]
                position = ids.index(tok.mask_token_id)
                # Score the prefix-filled mask: the query keeps the mask in place.
                queries.append(MaskedQuery(tuple(ids), position, next_token))
                owners.append(sentence.id)
    logprobs = masked_logprobs(lm, queries, progress=progress, desc="StereoSet")
    per_sentence: dict[str, list[float]] = defaultdict(list)
    for sid, lp in zip(owners, logprobs, strict=True):
        per_sentence[sid].append(float(np.exp(lp)))
    return {sid: float(np.mean(v)) for sid, v in per_sentence.items()}


def _generative_scores(lm, examples, split: str, progress: bool) -> dict[str, float]:
    tok = lm.tokenizer
    prefix = [prefix_token_id(tok)]
    items, owners = [], []
    for example in examples:
        context = []
        if split == "intersentence":
            context = tok(example.context, add_special_tokens=False)["input_ids"]
        for sentence in example.sentences:
            if lm.family == "causal":
                text = f" {sentence.sentence}" if context else sentence.sentence
                items.append((prefix + context, tok(text, add_special_tokens=False)["input_ids"]))
            else:
                source = tok(example.context)["input_ids"] if context else prefix
                items.append((source, tok(sentence.sentence)["input_ids"]))
            owners.append(sentence.id)
    engine = causal_logprobs if lm.family == "causal" else seq2seq_logprobs
    token_lps = engine(lm, items, progress=progress, desc=f"StereoSet {split}")
    return {sid: float(np.exp(lps.mean())) for sid, lps in zip(owners, token_lps, strict=True)}


def _likelihood_lengths(lm, example: Example) -> list[int]:
    """Positions the model reads for each sentence of ``example`` in the likelihood form."""
    tok = lm.tokenizer
    inter = example.split == "intersentence"
    lengths = []
    for sentence in example.sentences:
        if lm.family == "masked":
            lengths.append(len(tok(sentence.sentence)["input_ids"]))
        elif lm.family == "causal":
            text = f"{example.context} {sentence.sentence}" if inter else sentence.sentence
            lengths.append(len(tok(text, add_special_tokens=False)["input_ids"]))
        else:
            source = len(tok(example.context)["input_ids"]) if inter else 1
            lengths.append(max(source, len(tok(sentence.sentence)["input_ids"])))
    return lengths


def fitting_examples(
    lm, gold: StereoSet, splits, lengths_of, *, too_long: str = "error"
) -> tuple[StereoSet, list[str]]:
    """``gold`` without the examples the model cannot read whole, per the ``too_long`` policy.

    ``lengths_of(lm, example)`` gives the lengths of every sequence scored for an example;
    an example is kept only whole (its options are compared with each other). Returns the
    filtered set and the ids of the examples left out.
    """
    kept = StereoSet(source=gold.source, version=gold.version)
    skipped: list[str] = []
    where = gold.source or "StereoSet"
    for split in splits:
        examples = gold.split(split)
        keep, dropped = select_by_length(
            lm,
            [lengths_of(lm, example) for example in examples],
            lambda k, examples=examples, split=split: (
                f"{where}: example {examples[k].id} ({split})"
            ),
            policy=too_long,
        )
        setattr(kept, split, [examples[k] for k in keep])
        skipped += [examples[k].id for k in dropped]
    return kept, skipped


def likelihood_scores(lm, gold: StereoSet, splits=None, *, progress: bool = True):
    """Per-sentence scores ``{split: {sentence_id: score}}`` (official predictions content)."""
    splits = default_splits(lm.family) if splits is None else tuple(splits)
    out: dict[str, dict[str, float]] = {}
    for split in splits:
        examples = gold.split(split)
        if not examples:
            continue
        if lm.family == "masked":
            if split != "intrasentence":
                raise ValueError("masked LMs are scored on intrasentence only (no NSP head)")
            out[split] = _masked_intrasentence_scores(lm, examples, progress)
        else:
            out[split] = _generative_scores(lm, examples, split, progress)
    return out


def default_splits(family: str) -> tuple[str, ...]:
    return ("intrasentence",) if family == "masked" else SPLITS


def run_likelihood(
    lm,
    gold: StereoSet,
    *,
    splits=None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    too_long: str = "error",
) -> BenchmarkOutput:
    """Score every sentence, aggregate as ``evaluation.py``, bootstrap CIs over examples.

    ``too_long``: examples with a sentence longer than the model reads: ``error`` (default,
    names the example) or ``skip`` (left out, counted in the config as ``n_skipped_too_long``).
    """
    splits = default_splits(lm.family) if splits is None else tuple(splits)
    gold, skipped = fitting_examples(lm, gold, splits, _likelihood_lengths, too_long=too_long)
    by_split = likelihood_scores(lm, gold, splits, progress=progress)
    if not by_split:
        raise ValueError("StereoSet: no examples to score in the requested splits")
    flat = {sid: s for scores in by_split.values() for sid, s in scores.items()}
    metrics, ci = stereoset_eval.evaluate_with_ci(
        gold, flat, splits=tuple(by_split), n_boot=n_boot, seed=seed
    )
    items = _items(gold, by_split)
    return BenchmarkOutput(
        benchmark="stereoset",
        metrics=metrics,
        ci=ci,
        higher_is_better={k: stereoset_eval.higher_is_better(k) for k in metrics},
        ideal={k: 50.0 for k in metrics if k.endswith("/ss")},
        n_items=int(sum(len(gold.split(s)) for s in by_split)),
        items=items,
        config={
            "form": "likelihood",
            "splits": list(by_split),
            "n_boot": n_boot,
            "seed": seed,
            "n_skipped_too_long": len(skipped),
            "skipped_too_long": skipped,
        },
        artifacts={
            "predictions": {  # the official predictions format
                split: [{"id": sid, "score": score} for sid, score in scores.items()]
                for split, scores in by_split.items()
            }
        },
    )


def _items(gold: StereoSet, by_split) -> pd.DataFrame:
    rows = []
    for split, scores in by_split.items():
        for example in gold.split(split):
            for sentence in example.sentences:
                rows.append(
                    {
                        "split": split,
                        "example_id": example.id,
                        "target": example.target,
                        "bias_type": example.bias_type,
                        "sentence_id": sentence.id,
                        "gold_label": sentence.gold_label,
                        "sentence": sentence.sentence,
                        "score": scores[sentence.id],
                    }
                )
    return pd.DataFrame(rows)
