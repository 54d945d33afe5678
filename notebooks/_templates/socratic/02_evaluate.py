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
RUN_RESULTS = "results/{{SLUG}}"  # notebook 1's results (an attached output, else here)
RESULTS = "results/{{SLUG}}"
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, handoff, plots, plots_t2i
from debiaslab.t2i import socratic

environment = env.setup(seed=SEED)
run = handoff.locate(RUN_RESULTS, upstream="{{SLUG}}/01_run")
record = socratic.read_result(run)
socratic.summary_table(record).round(2)

# %%
records = socratic.read_records(run / "socratic")
socratic.cycle_table(records)

# %%
here = environment.output_root / RESULTS
plots.show(plots_t2i.socratic_curve(record, here / "socratic_clipscore"))

# %%
images = socratic.image_pairs(records, run / "socratic")
plots.show(plots_t2i.image_grid(images, here / "socratic_images"))
