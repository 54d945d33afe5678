# %% [markdown]
# # {{TITLE}} — 3. Evaluate
#
# **Purpose.** Two levels. Text: on the held-out prompts, the group shares of the base model's
# and the aligned rewriter's rewrites against the target (total variation). Images (the seed
# measured only text): for BLS occupations, generate with the plain prompt and with rewritten
# prompts, classify perceived gender and race, and compare each with the occupation's BLS
# shares — the rewriter aims at the global target, so the comparison shows what that does to
# each occupation.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
ADAPTER = "runs/{{SLUG}}/rewriter/align/adapter"  # notebook 2's (attached, here) or a Hub id
DATA = "runs/{{SLUG}}/data"  # notebook 1's pairs (an attached output, else here)
EVAL_PROMPTS = 40
N_REWRITES = 10
PIPELINE = "sd-1.5"
CLIP = "openai/clip-vit-large-patch14"
OCCUPATIONS = ["Registered nurses", "Software developers", "Chief executives", "Cashiers"]
N_IMAGES = 8
STEPS = 30
SIZE = None
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
import pandas as pd

from debiaslab import env, handoff, plots, plots_t2i
from debiaslab.models import load_model
from debiaslab.t2i import audit
from debiaslab.t2i.precise_debias import align, pairs

environment = env.setup(seed=SEED, model=PIPELINE)
EVAL_PROMPTS, N_IMAGES = env.sized(RUN, EVAL_PROMPTS=EVAL_PROMPTS, N_IMAGES=N_IMAGES)
output = environment.output_root / RESULTS
adapter = handoff.adapter(ADAPTER, upstream="{{SLUG}}/02_train")
test = pairs.load_seed_pairs(handoff.locate(DATA, upstream="{{SLUG}}/01_dataset") / "test.json")
prompts = sorted({pair["input"] for pair in test})[:EVAL_PROMPTS]
models = {"base": load_model(MODEL), "rewriter": load_model(MODEL, adapter=str(adapter))}
shares = align.compare_shares(models, prompts, n=N_REWRITES)
shares.pivot(index="group", columns="model", values="share").round(3)

# %%
images = dict(clip=CLIP, n_images=N_IMAGES, steps=STEPS, size=SIZE, n_boot=N_BOOT, seed=SEED)
pre, _ = audit.run_audit(OCCUPATIONS, output, pipeline=PIPELINE, **images)
post, _ = audit.run_audit(
    OCCUPATIONS, output, pipeline=PIPELINE, rewriter=MODEL, rewriter_adapter=str(adapter), **images
)
before = audit.share_table(pre).assign(stage="plain prompt")
after = audit.share_table(post).assign(stage="rewritten")
pd.concat([before, after]).pivot_table(
    index=["occupation", "axis", "group", "bls"], columns="stage", values="perceived"
).round(3)

# %% [markdown]
# Plain prompts (first row) and rewritten ones, with what the classifier saw:

# %%
grid = audit.image_pairs(pre, output / "images" / "pre", limit=4)
grid += audit.image_pairs(post, output / "images" / "post", limit=4)
plots.show(plots_t2i.image_grid(grid, output / "images_plain_rewritten"))
