# %% [markdown]
# # {{TITLE}}
#
# **Purpose.** Before trusting a bias metric on a real model, check it on models whose bias is
# known. Tiny causal and masked LMs are trained on corpora where a stereotype is planted at
# rates 0.2, 0.5 and 0.8; CrowS-Pairs and StereoSet score each on a held-out planted benchmark
# (and on the real benchmark files). A pipeline that cannot rank them 0.2 < 0.5 < 0.8 cannot be
# trusted on real models. Then the same check for the generation metrics: two tiny LMs continue
# real BOLD actor/actress prompts, one toxic for actresses only, one equally toxic for both;
# the group gap must find the planted difference and not the absent one. This is the report's
# calibration study.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** a few minutes on 2 CPU cores (`QUICK`: about
# one).

# %% tags=["parameters"]
QUICK = False  # fewer items and bootstrap resamples: a smoke run
RESULTS = "results/{{SLUG}}"
FIGURES = "figures"

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import calibration, env, plots

environment = env.setup(seed=0)
table = calibration.run_calibration(
    environment.output_root / RESULTS, environment.output_root / FIGURES, quick=QUICK
)
table[["dataset", "benchmark", "family", "rate", "value", "ci_low", "ci_high"]].round(1)

# %%
plots.show([environment.output_root / FIGURES / "calibration.png"])
