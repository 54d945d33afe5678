# %% [markdown]
# # {{TITLE}} — 2. Evaluate
#
# **Purpose.** Read notebook 1's records and result: mean CLIPScore of the first, best and last
# cycle with 95% bootstrap intervals over prompts, the improvement best − first, the CLIPScore
# per cycle (a curve), and each prompt's rewrites and captions next to its best image.
#
# **Read this.** CLIPScore measures image–text agreement through CLIP's eyes; a higher score
# after rewriting can also mean the rewrite learned CLIP's preferences. Look at the images.
#
# **Hardware.** Any (CPU is enough). **Runtime.** Seconds.

# %% tags=["parameters"]
RESULTS = "results/{{SLUG}}"
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, plots_t2i, results
from debiaslab.t2i import socratic

environment = env.setup(seed=SEED)
output = environment.output_root / RESULTS
record = next(r for _, r in results.read_all(output) if r["benchmark"] == "socratic")
socratic.summary_table(record).round(2)

# %%
records = socratic.read_records(output / "socratic")
plots_t2i.socratic_curve(record, output / "socratic_clipscore")
socratic.cycle_table(records)
