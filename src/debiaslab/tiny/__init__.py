"""Tiny offline models and planted-bias corpora: the embedded default for the demo, tests and CI.

No machine that builds or tests debiaslab reaches a model hub, so this package makes everything
a benchmark needs from nothing, one module per job:

    lexicon      the planted axes (groups, attributes, templates), general English
    corpus       planted corpora and the held-out planted CrowS-Pairs / StereoSet
    build        locally trained tokenizers; random tiny BERT / GPT-2 / T5 (`build_tiny`)
    train        the AdamW loop and `train_tiny`
    cache        `save_beside`: a model folder built once, published by a rename
    planted      planted-bias models trained once per machine (`planted_models`)
    toxicity     causal LMs with planted group toxicity or a trigger backdoor
    classifiers  the ``tiny-toxicity`` / ``tiny-regard`` classifiers and their labelled lines
    llama        a tiny Llama with a SentencePiece-style tokenizer
    roberta      a tiny RoBERTa with a byte-level BPE tokenizer
    t2i          tiny Stable Diffusion, CLIP and BLIP
"""
