# %% [markdown]
# # {{TITLE}}
#
# **Purpose.** Render, and only render: every result JSON the other notebooks wrote (their
# outputs attached as inputs on Kaggle, this session's `RESULTS` folder on Colab or locally, or
# a results dataset on the Hub in `RESULTS_REPO`) is gathered into `RESULTS` and becomes
# one tidy table, and the figures the report shows are drawn from it into `FIGURES` as PNG and
# PDF: pre vs. post bias per model (forest plot), the mitigation effect against model size,
# group gaps, the decoding-balance and head-gating trade-offs, image demographics per
# occupation against BLS, the PreciseDebias align curve and CLIPScore per Socratic cycle.
# Each result is marked *tiny offline* or *real checkpoint* by the model it records.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** Seconds.

# %% tags=["parameters"]
RESULTS = "results"
RESULTS_REPO = None  # e.g. "your-name/debiaslab-results": a results dataset on the Hub
FIGURES = "figures"

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, handoff, report

environment = env.setup(seed=0)
print("results from", "; ".join(handoff.gather_results(RESULTS, repo=RESULTS_REPO)))
results = report.load(environment.output_root / RESULTS)
drawn = report.figures(results, environment.output_root / FIGURES)
print(len(results.records), "result files;", len(drawn), "figures:", ", ".join(drawn))
report.provenance(results)

# %% [markdown]
# ## Every metric, tidy (one row per run and metric)

# %%
results.frame[
    ["experiment", "model", "tiny", "benchmark", "stage", "metric", "value", "ci_low", "ci_high"]
]

# %% [markdown]
# ## Planted-bias calibration

# %%
report.show(drawn["calibration"]) if "calibration" in drawn else "no calibration results"

# %% [markdown]
# ## Pre vs. post mitigation, and the effect against model size

# %%
report.show(drawn["prepost_forest"]) if "prepost_forest" in drawn else "no pre/post pairs"

# %%
report.show(drawn["size_effect"]) if "size_effect" in drawn else "no pre/post pairs"

# %% [markdown]
# ## StereoSet multiple choice: answers per letter (1/3 each = no letter preferred)

# %%
report.show(drawn["mc_position"]) if "mc_position" in drawn else "no multiple-choice results"

# %% [markdown]
# ## Group gaps

# %%
report.show(drawn["group_gaps"]) if "group_gaps" in drawn else "no generation results"

# %% [markdown]
# ## Decoding-time balancing and head gating: effect against perplexity

# %%
report.show(drawn["decoding_tradeoff"]) if "decoding_tradeoff" in drawn else "none"

# %%
report.show(drawn["gating_tradeoff"]) if "gating_tradeoff" in drawn else "none"

# %% [markdown]
# ## Text-to-image: perceived demographics per occupation against BLS

# %%
report.show(drawn["demographics"]) if "demographics" in drawn else "no occupation audit"

# %% [markdown]
# ## PreciseDebias convergence and Socratic CLIPScore

# %%
report.show(drawn["align_curve"]) if "align_curve" in drawn else "no align results"

# %%
report.show(drawn["socratic_clipscore"]) if "socratic_clipscore" in drawn else "none"
