"""The Hugging Face Hub: every call debiaslab makes to it, and what keeps secrets out of them.

* :mod:`~debiaslab.hub.client`: push an adapter or model with its card, push a synthetic
  dataset, pull a snapshot (``debiaslab push``, ``pull``, ``synth push``);
* :mod:`~debiaslab.hub.scrub`: the token and local paths out of cards and errors, secret-looking
  files out of uploads.

Results folders travel through :mod:`debiaslab.results_share`; the cards are
:mod:`debiaslab.cards`.
"""
