# %% [markdown]
# # {{TITLE}}
#
# **Purpose.** Find the attention heads of `{{MODEL}}` that push its continuations toward
# toxicity, and switch them off with per-head gates (forward hooks before each attention
# output projection; saved as a small safetensors file). Attribution pairs are the model's own
# BOLD continuations, split by the toxicity classifier into toxic and clean ones; a head's
# score is how much removing it lowers log p(toxic) − log p(clean) over the first `TOKENS`
# tokens of each continuation, where the choice is made. Prompts for attribution come from
# other BOLD domains than the evaluation. Then, for 1…K closed heads: the toxic-continuation
# rate (95% CI) against the perplexity on held-out text, and the full suite (CrowS-Pairs,
# StereoSet, BOLD) before and after gating.
#
# **Read this.** A planted model (tests/test_heads.py) shows the method finds a narrow toxic
# route when there is one. In a real model toxicity is spread across many heads and MLPs: a few
# closed heads may change little. The trade-off table says what it did here.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
ATTRIBUTION_DOMAINS = ["political_ideology", "religious_ideology", "profession"]
ATTRIBUTION_PROMPTS = 100  # BOLD prompts per group for attribution
EVALUATION_PROMPTS = 20  # BOLD prompts per group for the toxic-rate sweep (gender, race)
HELD_OUT_PER_GROUP = 50  # BOLD gender sentences per group for perplexity
CONTINUATIONS = 4
MAX_NEW_TOKENS = 30
TOKENS = 3
HEADS = [1, 2, 4, 8]
TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
REGARD_MODEL = "sasha/regardv3"
LIMIT = None
GENERATION_LIMIT = 20
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, plots, suites, textclass
from debiaslab.data import prompts
from debiaslab.generation import GenerationSettings
from debiaslab.mitigation import heads
from debiaslab.models import load_model

environment = env.setup(seed=SEED, model=MODEL)
ATTRIBUTION_PROMPTS, EVALUATION_PROMPTS, LIMIT, GENERATION_LIMIT = env.sized(
    RUN, ATTRIBUTION_PROMPTS=ATTRIBUTION_PROMPTS, EVALUATION_PROMPTS=EVALUATION_PROMPTS, LIMIT=LIMIT, GENERATION_LIMIT=GENERATION_LIMIT
)
output = environment.output_root / RESULTS
lm = load_model(MODEL)
classifier = textclass.load_classifier(TOXICITY_MODEL)
settings = GenerationSettings(
    max_new_tokens=MAX_NEW_TOKENS, num_return_sequences=CONTINUATIONS, seed=SEED
)
attribution = prompts.sample_prompts(
    prompts.load_bold(ATTRIBUTION_DOMAINS), limit=ATTRIBUTION_PROMPTS, seed=SEED
)
evaluation = prompts.sample_prompts(
    prompts.load_bold(["gender", "race"]), limit=EVALUATION_PROMPTS, seed=SEED
)
held_out = prompts.sample_prompts(
    prompts.load_bold(["gender"]), limit=HELD_OUT_PER_GROUP, seed=SEED + 1
)

# %%
toxic, clean = heads.toxicity_pairs(
    lm, [p.prompt for p in attribution], classifier, settings, cache=output / "attribution.jsonl"
)
scores = heads.attribute(lm, toxic, clean, tokens=TOKENS)
heads.score_table(scores).head(10)

# %%
table = heads.tradeoff(
    lm,
    scores,
    [p.prompt for p in evaluation],
    [p.prompt for p in held_out],
    classifier,
    ks=HEADS,
    settings=settings,
    n_boot=N_BOOT,
    seed=SEED,
    output=output / "gating_tradeoff.csv",
)
table

# %%
plots.show(
    plots.tradeoff(
        table,
        output / "gating_tradeoff",
        target=None,
        ylabel="toxic continuations (95% CI)",
        xlabel="perplexity relative to no gates",
    )
)

# %%
gates = heads.gate_top_k(lm.model, scores, max(HEADS))
gates_file = gates.save(output / "head_gates.safetensors")
suite = dict(
    limit=LIMIT,
    generation_limit=GENERATION_LIMIT,
    toxicity_model=TOXICITY_MODEL,
    regard_model=REGARD_MODEL,
    n_boot=N_BOOT,
    seed=SEED,
)
pre = suites.evaluate_suite(MODEL, output, stage="pre", **suite)
post = suites.evaluate_suite(MODEL, output, stage="post", head_gates=str(gates_file), **suite)
suites.compare(pre, post, n_boot=N_BOOT, seed=SEED)
