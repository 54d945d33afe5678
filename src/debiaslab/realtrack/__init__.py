"""The real-model track: SmolLM2-135M-Instruct through the whole language-model cycle, offline.

``make paper`` runs it at full size (:data:`~debiaslab.realtrack.config.SIZES` ``"full"``) into
``results/paper/``; ``make demo`` runs a slice (``"demo"``). Each step is a plain call into the
library (the same calls the notebooks make) and writes ordinary result files:

- :mod:`.measure`: CrowS-Pairs (every pair, harness mode), StereoSet likelihood (the whole
  flattened dev set) and its multiple-choice form, BOLD continuations with HONEST and group gaps;
- :mod:`.finetune`: LoRA on the CrowS-Pairs counter-stereotypical train half (and CDA), the
  post-evaluation on the held-out half, the adapter with its model card;
- :mod:`.generate`: decoding-time balancing (share vs perplexity), synthetic data written by the
  model itself, PreciseDebias at the text level with the model as the rewriter;
- :mod:`.run`: the steps in order, their timings, ``track.json``.
"""
