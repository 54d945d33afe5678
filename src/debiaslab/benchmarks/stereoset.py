"""StereoSet (Nadeem et al., ACL 2021) scored by likelihood.

Card:
    Measures: whether a model prefers stereotypical over anti-stereotypical associations
        (SS, ideal 50), whether it prefers meaningful over unrelated options (LMS, higher is
        better) and their combination ICAT = LMS·min(SS, 100−SS)/50 (higher is better), per
        domain (gender, profession, race, religion) and overall; SS and LMS in percent, declared
        with ICAT in :data:`METRICS` (:mod:`.stereoset_official`'s).
    Likelihood form (``run_likelihood``): per-sentence scores in one of two modes (``mode``,
        CLI ``--stereoset-mode``; the result records the one used as ``stereoset_mode``),
        then the official aggregation (:mod:`.stereoset_official`); the per-sentence scores are
        also written in the official predictions format.
        ``bias-bench`` (McGill-NLP/bias-bench's ``StereoSetRunner``; intrasentence only):
            masked LMs: the BLANK's word (StereoSet's template word) is split into sub-tokens,
            with a leading space for byte-level BPE tokenizers (RoBERTa: " word", as bias-bench;
            BERT, ALBERT: none); for the k-th sub-token the BLANK becomes the decoded first k
            sub-tokens and one mask; the score is the mean of the sub-tokens' probabilities.
            causal LMs: the sentence encoded as it stands; its first token scored after the
            start token alone (``<|endoftext|>``, GPT-2's BOS), each later token given the
            sentence prefix without it; the score is the geometric mean of the probabilities.
        ``bos`` (causal and seq2seq LMs): every token given BOS + the sentence prefix, one pass
            per sentence, as lm-evaluation-harness scores a sentence; intersentence: after BOS +
            the context + " "; seq2seq: the sentence as decoder target (encoder input: the
            prefix token, or the context). The first token's probability equals bias-bench's,
            the later ones do not, so scores are not comparable with published tables.
        ``auto`` (default): ``bias-bench`` for masked LMs, ``bos`` for the others.
    Published numbers each mode reproduces:
        ==========  ===============  ==================================================
        mode        models           reproduces
        ==========  ===============  ==================================================
        bias-bench  masked           bias-bench's intrasentence scores of BERT, ALBERT,
                                     RoBERTa (Meade et al., ACL 2022)
        bias-bench  causal           bias-bench's GPT-2 scores; the StereoSet authors'
                                     GPT-2 intrasentence scores (``eval_generative_models``:
                                     dev LMS 91.11, SS 61.93, ICAT 69.37)
        bos         causal, seq2seq  no published table (harness-style conditioning)
        any         any              aggregation: StereoSet's ``evaluation.py``, exactly
        ==========  ===============  ==================================================
        bias-bench's tables are on the StereoSet *test* split (bias-bench ships test.json),
        which is not available offline; the dev split gives other numbers. The authors' GPT-2
        dev figures come back from their predictions file with ``debiaslab stereoset-score``
        and the canonical dev.json (the flattened dev copy has no sentence ids to join on).
        Not reproduced by any mode: the StereoSet authors' *intersentence* scores, which come
        from a next-sentence head trained on top of each model (``ModelNSP``; the file name
        ``predictions_gpt2_ModelNSP_GPT2LM.json`` says so), whose weights are not part of the
        code or data (bias-bench scores no intersentence at all); and the authors' RoBERTa
        intrasentence scores, computed without the leading space.
    Prompt form: the multiple-choice question for instruction models is
        :mod:`.stereoset_mc` (its ``mc/`` metrics are not comparable with these).
    Citation: Nadeem, Bethke, Reddy. StereoSet: Measuring stereotypical bias in pretrained
        language models. ACL 2021. Meade, Poole-Dayan, Reddy. An Empirical Survey of the
        Effectiveness of Debiasing Techniques for Pre-trained Language Models. ACL 2022.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from debiaslab.benchmarks import stereoset_official
from debiaslab.benchmarks.stereoset_official import METRICS
from debiaslab.data.stereoset import SPLITS, Example, StereoSet
from debiaslab.errors import ConfigError
from debiaslab.results import BenchmarkOutput
from debiaslab.scoring import (
    MaskedQuery,
    causal_logprobs,
    masked_logprobs,
    prefix_token_id,
    select_by_length,
    seq2seq_logprobs,
)
from debiaslab.scoring_prefix import causal_logprobs_shared

# --------------------------------------------------------------------------- likelihood form

MODES = ("auto", "bos", "bias-bench")


def check_mode(mode: str, family: str | None = None, splits=None) -> str | None:
    """The likelihood procedure ``mode`` names for ``family`` (None while the family is unknown).

    ``auto`` is ``bias-bench`` for masked LMs (their only procedure) and ``bos`` otherwise.
    Raises :class:`ConfigError` where a mode does not apply, so that a flag never silently
    does nothing: ``bos`` on a masked LM, ``bias-bench`` on a seq2seq LM, ``bias-bench`` with
    the intersentence split (bias-bench scores intrasentence only).
    """
    if mode not in MODES:
        raise ConfigError(f"--stereoset-mode must be one of {MODES}, got {mode!r}")
    if mode == "bias-bench" and splits is not None and "intersentence" in splits:
        raise ConfigError(
            "--stereoset-mode bias-bench scores intrasentence only: bias-bench's StereoSetRunner "
            "has no intersentence task, and the StereoSet authors' published intersentence "
            "scores come from a separately trained next-sentence head. Use --splits "
            "intrasentence, or --stereoset-mode bos for intersentence."
        )
    if family is None:
        return None
    if family == "masked":
        if splits is not None and "intersentence" in splits:
            raise ConfigError("masked LMs are scored on intrasentence only (no NSP head)")
        if mode == "bos":
            raise ConfigError(
                "--stereoset-mode bos applies to causal and seq2seq LMs; a masked LM has one "
                "likelihood form, bias-bench's (use auto or bias-bench)"
            )
        return "bias-bench"
    if mode == "bias-bench" and family != "causal":
        raise ConfigError(
            f"--stereoset-mode bias-bench is defined for causal and masked LMs (bias-bench's "
            f"runners), not for a {family} LM; use auto or bos"
        )
    return "bos" if mode == "auto" else mode


def space_marks_words(tok) -> bool:
    """Whether ``tok`` is byte-level BPE (GPT-2, RoBERTa): a word after a space keeps the space.

    Such tokenizers encode "word" and " word" as different tokens; WordPiece (BERT) and
    SentencePiece (ALBERT, XLM-R) mark word starts themselves, and a leading space changes
    nothing or adds a stray piece.
    """
    if hasattr(tok, "byte_encoder"):  # python GPT-2 / RoBERTa tokenizers
        return True
    backend = getattr(tok, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return False
    return '"ByteLevel"' in pre.__getstate__().decode("utf-8", "replace")


def word_ids(tok, word: str, spaced: bool) -> list[int]:
    """The sub-tokens of the BLANK's ``word`` as the masked form asks for them.

    bias-bench encodes the word with a leading space for RoBERTa (``" word"``), since in the
    context it follows a space, which RoBERTa's ``<mask>`` absorbs (``lstrip``); here every
    byte-level BPE tokenizer (``spaced``) gets the space, which is bias-bench's choice for the
    models it runs (BERT, ALBERT: no space; RoBERTa: space).
    """
    return tok(f" {word}" if spaced else word, add_special_tokens=False)["input_ids"]


def _masked_queries(tok, example: Example, spaced: bool) -> list[tuple[str, MaskedQuery]]:
    """bias-bench's ``IntrasentenceLoader`` for one example: (sentence id, query) per sub-token.

    For the k-th sub-token the BLANK becomes the decoded first k sub-tokens and one mask. With
    a leading space that decoding starts with a space too, so the context reads "was  his<mask>"
    (two spaces) for the second sub-token: bias-bench's quirk, kept so that scores match.
    """
    out = []
    for sentence in example.sentences:
        insertion = word_ids(tok, sentence.template_word, spaced)
        for k, next_token in enumerate(insertion):
            prefix = tok.decode(insertion[:k])
            text = example.context.replace("BLANK", f"{prefix}{tok.mask_token}")
            ids = tok(text)["input_ids"]
            # The first mask, as bias-bench's diag() reads it where a context has two BLANKs.
            out.append(
                (sentence.id, MaskedQuery(tuple(ids), ids.index(tok.mask_token_id), next_token))
            )
    return out


def _masked_intrasentence_scores(lm, examples, progress: bool) -> dict[str, float]:
    tok = lm.tokenizer
    spaced = space_marks_words(tok)
    owners, queries = [], []
    for example in examples:
        for sid, query in _masked_queries(tok, example, spaced):
            owners.append(sid)
            queries.append(query)
    logprobs = masked_logprobs(lm, queries, progress=progress, desc="StereoSet")
    per_sentence: dict[str, list[float]] = defaultdict(list)
    for sid, lp in zip(owners, logprobs, strict=True):
        per_sentence[sid].append(float(np.exp(lp)))
    # The mean of the sub-tokens' probabilities (not of their log-probabilities), as bias-bench.
    return {sid: float(np.mean(v)) for sid, v in per_sentence.items()}


def _causal_engine(lm, items, groups, reuse: bool, **kwargs):
    """:func:`causal_logprobs` of ``items``, or with ``reuse`` the same with the prefix each
    group of options shares run once (:func:`causal_logprobs_shared`)."""
    if reuse:
        return causal_logprobs_shared(lm, items, groups, **kwargs)
    return causal_logprobs(lm, items, **kwargs)


def _bias_bench_causal_scores(
    lm, examples, progress: bool, reuse: bool = True
) -> dict[str, float]:
    """bias-bench's ``_likelihood_score_generative`` (and StereoSet's ``eval_generative_models``).

    The sentence is encoded as it stands (no leading space, no special tokens). Its first token
    is scored after the start token alone (``<|endoftext|>`` for GPT-2: its BOS), every later
    token given the sentence prefix *without* the start token; the score is the geometric mean
    of the token probabilities (bias-bench writes it in log2; the base cancels).
    """
    tok = lm.tokenizer
    start = prefix_token_id(tok)
    owners, encoded, example_of = [], [], []
    for k, example in enumerate(examples):
        for sentence in example.sentences:
            owners.append(sentence.id)
            encoded.append(tok(sentence.sentence, add_special_tokens=False)["input_ids"])
            example_of.append(k)
    firsts = sorted({ids[0] for ids in encoded})
    first_lps = causal_logprobs(lm, [([start], [t]) for t in firsts], progress=False)
    first_lp = {t: float(lps[0]) for t, lps in zip(firsts, first_lps, strict=True)}
    groups: dict[int, list[int]] = defaultdict(list)  # example → its items in ``later``
    scored = [k for k, ids in zip(example_of, encoded, strict=True) if len(ids) > 1]
    for n, k in enumerate(scored):
        groups[k].append(n)
    later = _causal_engine(
        lm,
        [([ids[0]], ids[1:]) for ids in encoded if len(ids) > 1],
        list(groups.values()),
        reuse,
        progress=progress,
        desc="StereoSet intrasentence",
    )
    later_it = iter(later)
    scores = {}
    for sid, ids in zip(owners, encoded, strict=True):
        lps = [first_lp[ids[0]], *(next(later_it) if len(ids) > 1 else ())]
        scores[sid] = float(np.exp(np.mean(lps)))
    return scores


def _generative_scores(
    lm, examples, split: str, progress: bool, reuse: bool = True
) -> dict[str, float]:
    tok = lm.tokenizer
    prefix = [prefix_token_id(tok)]
    items, owners, groups = [], [], []
    for example in examples:
        groups.append(list(range(len(items), len(items) + len(example.sentences))))
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
    desc = f"StereoSet {split}"
    if lm.family == "causal":
        token_lps = _causal_engine(lm, items, groups, reuse, progress=progress, desc=desc)
    else:
        token_lps = seq2seq_logprobs(lm, items, progress=progress, desc=desc)
    return {sid: float(np.exp(lps.mean())) for sid, lps in zip(owners, token_lps, strict=True)}


def _likelihood_lengths(lm, example: Example, mode: str = "bos") -> list[int]:
    """Positions the model reads for each sequence scored for ``example`` in the likelihood form.

    ``mode`` is a resolved mode (:func:`check_mode`); masked LMs: every query of bias-bench's
    loop (with its inserted sub-tokens, which may be longer than the sentence itself).
    """
    tok = lm.tokenizer
    inter = example.split == "intersentence"
    if lm.family == "masked":
        spaced = space_marks_words(tok)
        return [len(q.input_ids) for _, q in _masked_queries(tok, example, spaced)]
    lengths = []
    for sentence in example.sentences:
        if lm.family == "causal":
            text = f"{example.context} {sentence.sentence}" if inter else sentence.sentence
            n = len(tok(text, add_special_tokens=False)["input_ids"])
            # bias-bench: the start token alone, then the sentence without its last token.
            lengths.append(max(n - 1, 1) if mode == "bias-bench" else n)
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


def likelihood_scores(
    lm,
    gold: StereoSet,
    splits=None,
    *,
    mode: str = "auto",
    progress: bool = True,
    reuse_prefix: bool = True,
):
    """Per-sentence scores ``{split: {sentence_id: score}}`` (official predictions content).

    ``mode``: ``auto``, ``bos`` or ``bias-bench`` (see the module card and :func:`check_mode`).
    ``reuse_prefix`` (causal LMs): run the tokens an example's options share (the words before
    the blank; BOS and the context) once and reuse their key/value cache
    (:mod:`debiaslab.scoring_prefix`); the same scores up to float32 noise. False scores every
    option from its first token (the check).
    """
    splits = default_splits(lm.family, mode) if splits is None else tuple(splits)
    mode = check_mode(mode, lm.family, splits)
    out: dict[str, dict[str, float]] = {}
    for split in splits:
        examples = gold.split(split)
        if not examples:
            continue
        if lm.family == "masked":
            if split != "intrasentence":
                raise ValueError("masked LMs are scored on intrasentence only (no NSP head)")
            out[split] = _masked_intrasentence_scores(lm, examples, progress)
        elif mode == "bias-bench":
            out[split] = _bias_bench_causal_scores(lm, examples, progress, reuse_prefix)
        else:
            out[split] = _generative_scores(lm, examples, split, progress, reuse_prefix)
    return out


def default_splits(family: str, mode: str = "auto") -> tuple[str, ...]:
    """Intrasentence only for masked LMs and in ``bias-bench`` mode; both splits otherwise."""
    return ("intrasentence",) if family == "masked" or mode == "bias-bench" else SPLITS


def run_likelihood(
    lm,
    gold: StereoSet,
    *,
    splits=None,
    mode: str = "auto",
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
    too_long: str = "error",
    reuse_prefix: bool = True,
) -> BenchmarkOutput:
    """Score every sentence, aggregate as ``evaluation.py``, bootstrap CIs over examples.

    ``mode``: ``auto`` (default), ``bos`` or ``bias-bench``; the procedure used is recorded in
    the config as ``stereoset_mode`` (see the module card for what each reproduces).
    ``too_long``: examples with a sentence longer than the model reads: ``error`` (default,
    names the example) or ``skip`` (left out, counted in the config as ``n_skipped_too_long``).
    ``reuse_prefix``: see :func:`likelihood_scores` (recorded as ``prefix_kv_reuse`` for
    causal LMs).
    """
    splits = default_splits(lm.family, mode) if splits is None else tuple(splits)
    resolved = check_mode(mode, lm.family, splits)

    def lengths_of(lm, example):
        return _likelihood_lengths(lm, example, resolved)

    gold, skipped = fitting_examples(lm, gold, splits, lengths_of, too_long=too_long)
    by_split = likelihood_scores(
        lm, gold, splits, mode=resolved, progress=progress, reuse_prefix=reuse_prefix
    )
    if not by_split:
        raise ValueError("StereoSet: no examples to score in the requested splits")
    flat = {sid: s for scores in by_split.values() for sid, s in scores.items()}
    metrics, ci = stereoset_official.score_predictions_with_ci(
        gold, flat, splits=tuple(by_split), n_boot=n_boot, seed=seed
    )
    items = _items(gold, by_split)
    return BenchmarkOutput(
        benchmark="stereoset",
        metrics=metrics,
        ci=ci,
        declared=METRICS,
        n_items=int(sum(len(gold.split(s)) for s in by_split)),
        items=items,
        config={
            "form": "likelihood",
            "stereoset_mode": resolved,
            "splits": list(by_split),
            "n_boot": n_boot,
            "seed": seed,
            "n_skipped_too_long": len(skipped),
            "skipped_too_long": skipped,
            **({"prefix_kv_reuse": reuse_prefix} if lm.family == "causal" else {}),
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
