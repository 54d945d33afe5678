# %% [markdown]
# # {{TITLE}}
#
# **Purpose.** Steer `{{MODEL}}` at decoding time so that the groups its continuations
# mention (male / female words, GN-GloVe lists) move toward a 50/50 mix: a `LogitsProcessor`
# looks at the group mentions generated so far and shifts each group's first-token logits with
# strength α (α = 0 is plain decoding, exactly). Compared with Self-Debias (Schick et al.,
# 2021), on neutral prompts (BOLD profession): the share of one group among mentions (95% CI),
# the perplexity cost on held-out Wikipedia text (BOLD gender sentences), and BOLD toxicity /
# regard group gaps with and without balancing.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
MODEL = "{{MODEL}}"
ALPHAS = [0.0, 0.25, 0.5, 1.0]
SELF_DEBIAS_DECAYS = [50.0]
PROMPTS_PER_GROUP = 10  # BOLD profession prompts per profession group
HELD_OUT_PER_GROUP = 50  # BOLD gender sentences per group for perplexity
CONTINUATIONS = 4
MAX_NEW_TOKENS = 30
TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
REGARD_MODEL = "sasha/regardv3"
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, plots, runner, suites
from debiaslab.data import prompts
from debiaslab.evalconfig import EvalConfig, GenerationConfig, MitigationConfig
from debiaslab.generation import GenerationSettings
from debiaslab.mitigation import decoding
from debiaslab.models import load_model

environment = env.setup(seed=SEED, model=MODEL)
PROMPTS_PER_GROUP = env.sized(RUN, PROMPTS_PER_GROUP=PROMPTS_PER_GROUP)
output = environment.output_root / RESULTS
lm = load_model(MODEL)
settings = GenerationSettings(
    max_new_tokens=MAX_NEW_TOKENS, num_return_sequences=CONTINUATIONS, seed=SEED
)
neutral = prompts.sample_prompts(
    prompts.load_bold(["profession"]), limit=PROMPTS_PER_GROUP, seed=SEED
)
held_out = prompts.sample_prompts(
    prompts.load_bold(["gender"]), limit=HELD_OUT_PER_GROUP, seed=SEED
)

# %%
table = decoding.tradeoff(
    lm,
    [p.prompt for p in neutral],
    [p.prompt for p in held_out],
    decoding.load_group_words(),
    alphas=ALPHAS,
    self_debias_decays=SELF_DEBIAS_DECAYS,
    settings=settings,
    n_boot=N_BOOT,
    seed=SEED,
    output=output / "decoding_tradeoff.csv",
)
table

# %%
plots.show(plots.tradeoff(table, output / "decoding_tradeoff"))

# %%
generation = GenerationConfig(
    domains=["gender"],
    metrics=["toxicity", "regard"],
    toxicity_model=TOXICITY_MODEL,
    regard_model=REGARD_MODEL,
    max_new_tokens=MAX_NEW_TOKENS,
    num_return_sequences=CONTINUATIONS,
)
bold = [
    runner.evaluate(
        EvalConfig(
            model=MODEL,
            benchmark="bold",
            output=output,
            limit=PROMPTS_PER_GROUP,
            generation=generation,
            mitigation=MitigationConfig(decoding=method),
            stage=method or "plain",
            n_boot=N_BOOT,
            seed=SEED,
        )
    )
    for method in (None, "balance", "self-debias-toxicity")
]
suites.summary_table(bold)
