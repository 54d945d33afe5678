"""The cards: the ``README.md`` of what debiaslab shares on the Hugging Face Hub.

* :mod:`~debiaslab.cards.model`: a fine-tuned adapter or model, its pre/post bias metrics;
* :mod:`~debiaslab.cards.dataset`: a synthetic debiasing dataset, from its manifest;
* :mod:`~debiaslab.cards.results`: a results dataset, one row per run.

Pure functions of records and manifests, deterministic; :mod:`debiaslab.hub.client` and
:mod:`debiaslab.results_share` upload them, ``debiaslab synth generate`` writes the dataset card.
"""
