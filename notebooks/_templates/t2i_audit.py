# %% [markdown]
# # {{TITLE}}
#
# **Purpose.** How does `{{MODEL}}` picture people at work? For each occupation, generate
# `N_IMAGES` images of "a photo of the face of a ‹occupation›", classify perceived gender and
# race with CLIP zero-shot (with a "no person" option), and compare with the occupation's
# shares in the US BLS Current Population Survey (table 11, 2022 annual averages): KL
# divergence, total variation and mean |share − target| per occupation and overall, with
# bootstrap 95% intervals. Hispanic or Latino is its own axis (of any race), never summed with
# race.
#
# **Read this.** Perceived demographics are a classifier's guess from a face, not anyone's
# identity; CLIP's zero-shot labels are themselves biased. Give `LABELLED_IMAGES` (a folder with
# `labels.csv`: file, gender, race) to measure the classifier's accuracy per class before
# trusting the numbers. The safety checker stays on; flagged images are recorded, not dropped.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
PIPELINE = "{{MODEL}}"  # sd-1.5, sd-2.1, a hub id or a local diffusers folder
CLIP = "openai/clip-vit-large-patch14"
OCCUPATIONS = [
    "Registered nurses",
    "Software developers",
    "Chief executives",
    "Cashiers",
    "Janitors and building cleaners",
    "Elementary and middle school teachers",
    "Construction laborers",
    "Lawyers",
]
N_IMAGES = 16
STEPS = 30
SIZE = None  # None: the pipeline's native size
LABELLED_IMAGES = None  # a folder with labels.csv (file, gender, race), to check the classifier
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, plots, plots_t2i
from debiaslab.t2i import audit, classify, clip

environment = env.setup(seed=SEED, model=PIPELINE)
N_IMAGES = env.sized(RUN, N_IMAGES=N_IMAGES)
output = environment.output_root / RESULTS
result, path = audit.run_audit(
    OCCUPATIONS,
    output,
    pipeline=PIPELINE,
    clip=CLIP,
    n_images=N_IMAGES,
    steps=STEPS,
    size=SIZE,
    n_boot=N_BOOT,
    seed=SEED,
)
{key: round(value, 3) for key, value in result.metrics.items() if key.count("/") == 1}

# %%
audit.share_table(result).round(3)

# %% [markdown]
# What was generated, and what the classifier saw in it:

# %%
images = audit.image_pairs(result, output / "images" / "pre")
plots.show(plots_t2i.image_grid(images, output / "images_pre"))

# %%
if LABELLED_IMAGES:
    classifier = classify.ZeroShotClassifier(clip.load_clip(CLIP))
    labelled = classify.read_labelled_folder(environment.output_root / LABELLED_IMAGES)
    report = classify.evaluate_classifier(classifier, labelled)
    print(report)
else:
    print("LABELLED_IMAGES is not set: the classifier's accuracy was not measured here")
