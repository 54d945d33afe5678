"""debiaslab: measure, mitigate and re-measure social bias in language and text-to-image models.

Layers, lowest first. A module imports only from its own layer or below, and the imports
form no cycle (``tests/test_layers.py`` reads this table and checks every import, at the
top of a module or inside a function). A name covers a module or a whole package.

    base       debiaslab errors gpucheck sandbox env config io folders validate stats
               model_source metrics hub.scrub
    records    results plots plots_mc plots_t2i cards
    data       data
    models     models planner distributed batching tiny smollm2
    engines    scoring_head scoring scoring_prefix generation generation_cache textclass
    benchmarks benchmarks evalconfig
    methods    mitigation synth t2i
    evaluate   runner launch suites
    outputs    gather hub results_share handoff report calibration_tables
    studies    calibration notebooks offline_params realtrack collection kaggle_bundle
    cli        cli __main__

Where this corrects DESIGN.md's order: ``results``, ``plots`` and ``cards`` sit low, as
benchmarks, methods and the t2i audit build records, draw curves and write cards (reading
results back into tables stays high); ``hub.scrub`` sits in base, below the cards that scrub
themselves (the rest of ``hub`` calls the Hub, with the outputs); the methods sit below
``runner`` (an evaluation applies decoding balance, head gates and a fine-tuning manifest's
held-out split; no method calls ``evaluate``); ``calibration`` trains and evaluates, so it sits
with the notebooks above the report, which reads it through ``calibration_tables``.

A function-level import of debiaslab is allowed only where it says why on its line or the line
above: ``# deferred: <reason>`` (a heavy optional dependency kept out of a light import path).
"""

__version__ = "0.1.0"
