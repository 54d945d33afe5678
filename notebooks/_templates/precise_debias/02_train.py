# %% [markdown]
# # {{TITLE}} — 2. Train and align the rewriter
#
# **Purpose.** LoRA-train `{{MODEL}}` to rewrite a generic prompt into one naming a group, then
# run the measure-and-align loop: sample `ALIGN_N` rewrites per prompt, measure each group's
# share, Δ_c = target_c − share_c, and train the same adapter further on the
# under-represented groups with a learning rate ∝ Δ_c, until every |Δ_c| < `THRESHOLD` or after
# `ALIGN_ITERATIONS` rounds. Target: the paper's BLS vector (White 0.77, Black 0.126, Asian
# 0.066, Hispanic 0.184, each split 50/50 by gender), renormalised over the 8 groups because
# Hispanic overlaps race. The curve goes to `figures/align_curve.png`.
#
# **Hardware.** {{HARDWARE_NOTE}} The 1.5B default trains with LoRA on one T4; set
# `MODEL = "qwen2.5-7b-instruct"` for the paper's scale (QLoRA, 4-bit). **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
HARDWARE = "{{HARDWARE}}"
METHOD = None  # None: the preset's choice for HARDWARE (LoRA / QLoRA)
STEPS = 300
SEQ_LEN = 256  # tokens per training text: prompt, instruction and rewrite must fit
DATA = "runs/{{SLUG}}/data"  # notebook 1's pairs (an attached output, else here)
RUN_DIR = "runs/{{SLUG}}/rewriter"
ALIGN_PROMPTS = 40
ALIGN_N = 10
ALIGN_ITERATIONS = 5
ALIGN_STEPS = 20
BASE_LR = 1e-4
THRESHOLD = 0.02
FIGURES = "figures"
RESULTS = "results/{{SLUG}}"
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
import pandas as pd

from debiaslab import env, handoff, plots
from debiaslab.mitigation import finetune
from debiaslab.models import load_model
from debiaslab.t2i.precise_debias import align, groups, pairs, rewriter

environment = env.setup(seed=SEED, model=MODEL)
STEPS, ALIGN_PROMPTS, ALIGN_ITERATIONS = env.sized(
    RUN, STEPS=STEPS, ALIGN_PROMPTS=ALIGN_PROMPTS, ALIGN_ITERATIONS=ALIGN_ITERATIONS
)
run_dir = environment.output_root / RUN_DIR
train = pairs.load_seed_pairs(handoff.locate(DATA, upstream="{{SLUG}}/01_dataset") / "train.json")
config = finetune.config_for(
    MODEL, HARDWARE, method=METHOD, steps=STEPS, seq_len=SEQ_LEN, seed=SEED
)
run = rewriter.train_rewriter(MODEL, train, run_dir, config)
run.manifest["metrics"]

# %%
lm = load_model(MODEL, adapter=str(run.weights))
prompts = sorted({pair["input"] for pair in train})[:ALIGN_PROMPTS]
aligned = align.align(
    lm,
    prompts,
    pairs_by_group=groups.pairs_by_group(train),
    output=run_dir / "align",
    figures=environment.output_root / FIGURES,
    results=environment.output_root / RESULTS,
    n=ALIGN_N,
    threshold=THRESHOLD,
    max_iterations=ALIGN_ITERATIONS,
    base_lr=BASE_LR,
    steps=ALIGN_STEPS,
    seed=SEED,
)
print("stopped by", aligned.stopped, "— adapter in", aligned.adapter)
pd.DataFrame(aligned.curve)[["iteration", "max_abs_delta", "tv"]]

# %%
plots.show(aligned.figures)
