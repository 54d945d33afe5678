# %% [markdown]
# # {{TITLE}} — 1. Dataset
#
# **Purpose.** Build PreciseDebias's training data (Clemmer et al., WACV 2024): generic
# text-to-image prompts of people at work, each paired with the same prompt naming a specific
# group (4 races × 2 genders, the groups of the paper's BLS target). Prompts come from a
# language model asked for scenes per occupation (`SOURCE = "synthesize"`), or from a file
# (the seed's `synthetic_prompts.json`, or one prompt per line). Demographic words are replaced
# by placeholders first — only where they describe a person ("a white truck", "black coffee"
# stay) — and conflicting pronouns are neutralised. Pairs are split **by prompt**, so no
# prompt is in both train and test (the seed split its pair list, which can leak).
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
SOURCE = "synthesize"  # or a prompts file under the output root (JSON list, or one per line)
WRITER_BACKEND = "hf"  # or "openai" (OPENAI_API_KEY secret, OPENAI_BASE_URL)
WRITER = "{{MODEL}}"
OCCUPATIONS = [
    "doctor", "nurse", "software developer", "chef", "construction worker", "teacher",
    "lawyer", "cashier", "pilot", "janitor", "scientist", "hairdresser",
]
PROMPTS_PER_OCCUPATION = 20
TEST_FRACTION = 0.2
DATA = "runs/{{SLUG}}/data"
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env
from debiaslab.synth import backends
from debiaslab.t2i.precise_debias import pairs as precise_pairs

environment = env.setup(seed=SEED)
PROMPTS_PER_OCCUPATION = env.sized(RUN, PROMPTS_PER_OCCUPATION=PROMPTS_PER_OCCUPATION)
data = environment.output_root / DATA
if SOURCE == "synthesize":
    writer = backends.make_backend(WRITER_BACKEND, WRITER, max_new_tokens=80, seed=SEED)
    generic = precise_pairs.synthesize_prompts(
        writer, OCCUPATIONS, PROMPTS_PER_OCCUPATION, data / "raw.jsonl"
    )
else:
    generic = precise_pairs.load_seed_prompts(environment.output_root / SOURCE)
pairs = precise_pairs.instruction_pairs(generic)
train, test = precise_pairs.split_by_prompt(pairs, TEST_FRACTION, seed=SEED)
precise_pairs.save_pairs(train, data / "train.json")
precise_pairs.save_pairs(test, data / "test.json")
print(f"{len(generic)} prompts → {len(train)} train and {len(test)} test pairs")
print("prompts in both splits:", len(precise_pairs.leaked_prompts(train, test)))
train[:3]
