# %% [markdown]
# # {{TITLE}} — 1. Run the loop
#
# **Purpose.** Refine text-to-image prompts by asking: generate an image with `{{MODEL}}`,
# caption it with BLIP, and let a language model rewrite the prompt from the user's request and
# what the caption says was drawn; repeat up to `MAX_CYCLES` times, or stop early when the
# caption is close enough to the request (`STOP_SIMILARITY`) or the language model says it
# matches (`JUDGE`). Every cycle's prompt, caption, image and CLIPScore (against the user's
# prompt, torchmetrics scale 100·max(cos, 0)) is recorded; the best image per prompt is kept.
# Prompts: PartiPrompts (Yu et al., 2022) by category.
#
# **Language model.** `LLM_BACKEND = "hf"` runs `LLM` here; `"openai"` calls an
# OpenAI-compatible API (`OPENAI_API_KEY` secret, `OPENAI_BASE_URL`).
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
PIPELINE = "{{MODEL}}"
CAPTIONER = "Salesforce/blip-image-captioning-base"
CLIP = "openai/clip-vit-large-patch14"
LLM_BACKEND = "hf"  # or "openai"
LLM = "qwen2.5-1.5b-instruct"
CATEGORIES = ["People", "Animals", "Artifacts"]
LIMIT = 10  # PartiPrompts per category
MAX_CYCLES = 3
STOP_SIMILARITY = None  # e.g. 0.9: stop when the caption is this close to the request
JUDGE = False
STEPS = 30
SIZE = None
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, plots, plots_t2i
from debiaslab.data import prompts
from debiaslab.t2i import socratic

environment = env.setup(seed=SEED, model=PIPELINE)
MAX_CYCLES = env.sized(RUN, MAX_CYCLES=MAX_CYCLES)
output = environment.output_root / RESULTS
chosen = prompts.load_partiprompts(categories=CATEGORIES, limit=LIMIT, seed=SEED)
settings = socratic.SocraticSettings(
    max_cycles=MAX_CYCLES,
    stop_similarity=STOP_SIMILARITY,
    judge=JUDGE,
    steps=STEPS,
    size=SIZE,
    seed=SEED,
)
records, path = socratic.run_socratic(
    [p.prompt for p in chosen],
    output,
    pipeline=PIPELINE,
    captioner=CAPTIONER,
    clip=CLIP,
    llm_backend=LLM_BACKEND,
    llm=LLM,
    settings=settings,
    n_boot=N_BOOT,
    source="PartiPrompts " + ", ".join(CATEGORIES),
)
print(path)

# %%
images = socratic.image_pairs(records, output / "socratic")
plots.show(plots_t2i.image_grid(images, output / "socratic_images"))
