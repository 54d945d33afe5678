"""debiaslab: measure, mitigate and re-measure social bias in language and text-to-image models.

Layers, lowest first. A module imports only from its own layer or below, and the imports
form no cycle (``tests/test_layers.py`` reads this table and checks every import, at the
top of a module or inside a function). A name covers a module or a whole package.

    base        debiaslab errors env config io folders validate stats model_source metrics
    records     results plots plots_mc
    data        data
    models      models planner batching tiny tiny_llama tiny_roberta
    engines     scoring generation textclass
    benchmarks  benchmarks
    methods     mitigation synth t2i
    evaluate    runner
    outputs     gather hub report calibration_tables
    studies     calibration notebooks collection
    cli         cli

Where the code taught us better than the first design (DESIGN.md's order):

* ``results`` (the record schema, atomic writing, ``load_all``) is low, not above the methods:
  benchmarks, generation, the methods and the t2i audit all build result records. Reading
  results back into tables (``gather``, ``report``, ``calibration_tables``) stays high.
* ``plots`` is low too: it draws from plain records and imports nothing but ``io``, and the
  PreciseDebias loop (``t2i.rewriter``) draws its own alignment curve with it.
* the methods sit below ``runner``: an evaluation applies decoding balance and head gates and
  reads a fine-tuning manifest's held-out split, while no method calls ``evaluate``.
* ``calibration`` (the planted-bias study) trains and evaluates models, so it sits with the
  notebooks above the report; the report reads the study's results through
  ``calibration_tables``.

A function-level import of debiaslab is allowed only where it says why on its line or the line
above: ``# deferred: <reason>`` (a heavy optional dependency kept out of a light import path).
"""

__version__ = "0.1.0"
