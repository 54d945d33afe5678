# %% [markdown]
# # {{TITLE}} — 1. Pre-mitigation evaluation
#
# **Purpose.** Measure the social bias of `{{MODEL}}` before any mitigation: CrowS-Pairs
# (the held-out half that fine-tuning never trains on), StereoSet{{STEREOSET_MC_NOTE}}, and
# {{GENERATIVE_NOTE}}. Every number comes with a 95% bootstrap confidence interval; results are
# written as JSON files that notebooks 2 and 3 and the results notebook read.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}
#
# **Data.** Benchmark files are downloaded from their canonical sources and checksum-verified
# (or read from an attached dataset through `DEBIASLAB_DATA_DIR`). BOLD toxicity and regard use
# the classifiers `facebook/roberta-hate-speech-dynabench-r4-target` and `sasha/regardv3`.

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
INSTRUCTION = {{INSTRUCTION}}
LIMIT = None  # CrowS-Pairs pairs and StereoSet examples per split (None: all)
GENERATION_LIMIT = 20  # BOLD prompts and HONEST templates per group
MC_ORDERS = "cyclic"  # StereoSet multiple choice: option orders (one, cyclic, all)
TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
REGARD_MODEL = "sasha/regardv3"
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, suites

environment = env.setup(seed=SEED, model=MODEL)
LIMIT, GENERATION_LIMIT = env.sized(RUN, LIMIT=LIMIT, GENERATION_LIMIT=GENERATION_LIMIT)
output = environment.output_root / RESULTS

# %%
pre = suites.evaluate_suite(
    MODEL,
    output,
    stage="pre",
    instruction=INSTRUCTION,
    limit=LIMIT,
    generation_limit=GENERATION_LIMIT,
    toxicity_model=TOXICITY_MODEL,
    regard_model=REGARD_MODEL,
    mc_orders=MC_ORDERS,
    n_boot=N_BOOT,
    seed=SEED,
)
suites.summary_table(pre)
