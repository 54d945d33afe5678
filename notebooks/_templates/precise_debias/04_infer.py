# %% [markdown]
# # {{TITLE}} — 4. Rewrite your prompts
#
# **Purpose.** Load a trained rewriter (the run directory of notebook 2, or an adapter pushed to
# the Hugging Face Hub) and rewrite your own prompts, `N` samples each; optionally generate an
# image from each rewrite. The command line does the same in batch:
# `debiaslab t2i rewrite --model MODEL --adapter ADAPTER --prompts prompts.txt --n 4`.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** Seconds per prompt.

# %% tags=["parameters"]
MODEL = "{{MODEL}}"
ADAPTER = "runs/{{SLUG}}/rewriter/align/adapter"  # notebook 2's (attached, here) or a Hub id
PROMPTS = ["A doctor reading an X-ray in a dim hospital room", "A chef plating a dessert"]
N = 4
PIPELINE = None  # e.g. "sd-1.5" to draw each rewrite
STEPS = 30
SIZE = None
OUTPUT = "runs/{{SLUG}}/infer"
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, handoff, plots, plots_t2i
from debiaslab.models import load_model
from debiaslab.t2i.precise_debias import rewriter

environment = env.setup(seed=SEED, model=MODEL)
adapter = handoff.adapter(ADAPTER, upstream="{{SLUG}}/02_train")
lm = load_model(MODEL, adapter=str(adapter))
rewrites = rewriter.rewrite(lm, PROMPTS, n=N)
dict(zip(PROMPTS, rewrites))

# %%
if PIPELINE:
    from debiaslab.t2i.generate import generate_images, load_pipeline

    rows = generate_images(
        load_pipeline(PIPELINE),
        [text for texts in rewrites for text in texts],
        [SEED],
        environment.output_root / OUTPUT,
        steps=STEPS,
        height=SIZE,
        width=SIZE,
    )
    print(len(rows), "images in", environment.output_root / OUTPUT)
    drawn = [(environment.output_root / OUTPUT / row["file"], row["prompt"]) for row in rows]
    grid = plots_t2i.image_grid(drawn, environment.output_root / "figures" / "rewrites_drawn")
    display(plots.show(grid))
else:
    print("PIPELINE is not set: no images drawn")
