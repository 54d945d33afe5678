# %% [markdown]
# # {{TITLE}} — 3. Post-mitigation evaluation
#
# **Purpose.** Score the fine-tuned `{{MODEL}}` on the same benchmarks as notebook 1, compare
# pre and post (CrowS-Pairs with a paired bootstrap interval of the change), and optionally
# push the adapter to the Hugging Face Hub with a model card made from these results.
#
# **Inputs.** On Kaggle each notebook runs in its own session: attach notebooks 1 and 2 as
# inputs (Add Input → Notebook output; `debiaslab kaggle build` writes this into the
# notebook's metadata). `PRE_RESULTS` is notebook 1's results: read, not recomputed, when the
# settings match. `ADAPTER` is notebook 2's run (its LoRA adapter, or its full model after full
# fine-tuning), found in the attached output, else in this session's folder, or a Hub id such
# as `user/{{SLUG}}-debiased` to evaluate a pushed one. Pushing needs a write token in the
# `HF_TOKEN` secret (Kaggle: Add-ons → Secrets; Colab: the key icon); without one the push is
# skipped.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
INSTRUCTION = {{INSTRUCTION}}
PRE_RESULTS = "results/{{SLUG}}"  # notebook 1's results (an attached output, else here)
ADAPTER = "runs/{{SLUG}}"  # notebook 2's run (an attached output, else here), or a Hub id
LIMIT = None
GENERATION_LIMIT = 20
MC_ORDERS = "cyclic"  # StereoSet multiple choice: option orders (one, cyclic, all)
TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
REGARD_MODEL = "sasha/regardv3"
RESULTS = "results/{{SLUG}}"
HUB_REPO = None  # e.g. "your-name/{{SLUG}}-debiased" to push the adapter with its card
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, handoff, suites
from debiaslab.hub.client import push

environment = env.setup(seed=SEED, model=MODEL)
LIMIT, GENERATION_LIMIT = env.sized(RUN, LIMIT=LIMIT, GENERATION_LIMIT=GENERATION_LIMIT)
output = environment.output_root / RESULTS
adapter = handoff.adapter(ADAPTER, upstream="{{SLUG}}/02_finetune")
handoff.bring_results(PRE_RESULTS, upstream="{{SLUG}}/01_pre_eval", into=RESULTS)
settings = dict(
    instruction=INSTRUCTION,
    limit=LIMIT,
    generation_limit=GENERATION_LIMIT,
    toxicity_model=TOXICITY_MODEL,
    regard_model=REGARD_MODEL,
    mc_orders=MC_ORDERS,
    n_boot=N_BOOT,
    seed=SEED,
)

# %%
pre = suites.evaluate_suite(MODEL, output, stage="pre", **settings)
print(sum(r.skipped for r in pre), "of", len(pre), "pre-mitigation results read from notebook 1")
post = suites.evaluate_suite(MODEL, output, stage="post", adapter=str(adapter), **settings)
suites.compare(pre, post, n_boot=N_BOOT, seed=SEED)

# %%
if HUB_REPO:
    push(adapter, HUB_REPO, results=[r.record for r in pre + post], base_model=MODEL)
else:
    print("HUB_REPO is not set: nothing pushed")
