# %% [markdown]
# # {{TITLE}} — 2. Fine-tuning mitigation
#
# **Purpose.** Fine-tune `{{MODEL}}` on counter-stereotypical text — by default the
# counter-stereotypical side of the CrowS-Pairs *training* half (the seed project's recipe) —
# with full fine-tuning, LoRA or QLoRA as the preset's hardware settings say. Checkpoints are
# written every `SAVE_STEPS` steps and a rerun resumes from the last one. An interactive Kaggle
# session's working folder is lost when the session ends: set `HUB_REPO` (with the `HF_TOKEN`
# secret) and each checkpoint is pushed to the Hub as it is saved and a new session resumes
# from it; or use "Save Version → Save & Run All", whose output Kaggle keeps.
#
# **Read this.** CrowS-Pairs' data statement asks that it be used to *evaluate*, not to train.
# This recipe is a research baseline: notebook 3 scores only the held-out half, and debiaslab
# refuses to score the training pairs of a model trained on them. `RECIPE = "cda"` with a text
# corpus in `DATA` (one text per line) uses counterfactual data augmentation instead.
#
# **Hardware.** {{HARDWARE_NOTE}} With two GPUs (Kaggle T4×2) training runs under
# `accelerate launch`, one process per GPU. **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
HARDWARE = "{{HARDWARE}}"  # t4x2, p100 or cpu-ci: batch size, method, precision from the preset
METHOD = None  # None: the preset's choice for HARDWARE; or "full", "lora", "qlora"
RECIPE = "crows_counter"  # or "cda" / "texts" with DATA
DATA = None  # CrowS-Pairs CSV (default: downloaded) or a text file
STEPS = 300
LEARNING_RATE = None  # None: 5e-5 full, 2e-4 LoRA/QLoRA
SAVE_STEPS = 50
RUN_DIR = "runs/{{SLUG}}"
HUB_REPO = None  # e.g. "your-name/{{SLUG}}-checkpoints": checkpoints survive the session
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env
from debiaslab.hub.checkpoints import checkpoint_store
from debiaslab.mitigation import finetune

environment = env.setup(seed=SEED, model=MODEL)
STEPS = env.sized(RUN, STEPS=STEPS)
config = finetune.config_for(
    MODEL, HARDWARE, method=METHOD, steps=STEPS, lr=LEARNING_RATE, save_steps=SAVE_STEPS, seed=SEED
)
config

# %%
store = checkpoint_store(HUB_REPO)
run = finetune.run_finetune(
    MODEL,
    environment.output_root / RUN_DIR,
    config,
    recipe=RECIPE,
    data=DATA,
    split_seed=SEED,
    store=store,
)
run.manifest["metrics"]
