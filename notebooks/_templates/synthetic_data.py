# %% [markdown]
# # {{TITLE}}
#
# **Purpose.** Build a low-bias training set with a strong model, share it, and fine-tune on
# it. A spec crosses demographic groups × topics × instruction templates (default: the shipped
# `gender-work` spec); a writer model answers every cell equally often; filters remove short
# texts, exact and near duplicates and toxic texts, balance regard across groups per topic, and
# pair each text with its counterfactual (group words swapped). The result is a Hugging Face
# dataset with a card (spec, models, filters, counts), optionally pushed to the Hub. Then
# `{{MODEL}}` is fine-tuned on its train split and scored before and after.
#
# **Writer.** `BACKEND = "hf"` runs `WRITER` here (a chat model's template is applied);
# `BACKEND = "openai"` calls an OpenAI-compatible API (OpenAI, vLLM, TGI …) with the key in
# the `OPENAI_API_KEY` secret and the URL in `OPENAI_BASE_URL`, rate-limited and retried;
# answers are saved as they come, so rerunning the cell resumes. Pushing needs a write token in
# the `HF_TOKEN` secret; without one it is skipped. Check the writer's terms of use before
# publishing its outputs.
#
# **Hardware.** {{HARDWARE_NOTE}} **Runtime.** {{RUNTIME}}

# %% tags=["parameters"]
RUN = "full"  # or "quick": a first run in minutes (sizes capped: debiaslab.env.QUICK)
SPEC = "gender-work"  # a shipped example or a YAML file
BACKEND = "hf"  # or "openai"
WRITER = "qwen2.5-0.5b-instruct"  # hf: preset / hub id; openai: the API's model name
N = 600  # texts to generate before filtering
MAX_NEW_TOKENS = 60
TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
REGARD_MODEL = "sasha/regardv3"
DATASET = "datasets/synthetic-gender-work"
HUB_DATASET = None  # e.g. "your-name/synthetic-gender-work"
MODEL = "{{MODEL}}"  # the model to debias with the data
HARDWARE = "{{HARDWARE}}"
STEPS = 300
LIMIT = None
GENERATION_LIMIT = 20
RUN_DIR = "runs/{{SLUG}}"
RESULTS = "results/{{SLUG}}"
N_BOOT = 1000
SEED = 0

# %%
{{BOOTSTRAP}}

# %%
from debiaslab import env, suites
from debiaslab.hub.client import push_dataset
from debiaslab.mitigation import finetune
from debiaslab.synth import backends, pipeline, spec

environment = env.setup(seed=SEED, model=MODEL)
N, STEPS, LIMIT, GENERATION_LIMIT = env.sized(
    RUN, N=N, STEPS=STEPS, LIMIT=LIMIT, GENERATION_LIMIT=GENERATION_LIMIT
)
dataset = environment.output_root / DATASET
request = spec.load_spec(SPEC)
writer = backends.make_backend(
    BACKEND, WRITER, spec=request, max_new_tokens=MAX_NEW_TOKENS, seed=SEED
)
manifest = pipeline.synthesize(
    request,
    writer,
    N,
    dataset,
    toxicity_model=TOXICITY_MODEL,
    regard_model=REGARD_MODEL,
    seed=SEED,
)
pipeline.steps_table(manifest)

# %%
pipeline.regard_table(manifest)

# %%
print((dataset / "README.md").read_text()[:3000])

# %%
if HUB_DATASET:
    push_dataset(dataset, HUB_DATASET)
else:
    print("HUB_DATASET is not set: nothing pushed")

# %%
config = finetune.config_for(MODEL, HARDWARE, steps=STEPS, seed=SEED)
run = finetune.run_finetune(
    MODEL, environment.output_root / RUN_DIR, config, recipe="synthetic", data=str(dataset)
)
run.manifest["metrics"]

# %%
output = environment.output_root / RESULTS
settings = dict(
    limit=LIMIT,
    generation_limit=GENERATION_LIMIT,
    toxicity_model=TOXICITY_MODEL,
    regard_model=REGARD_MODEL,
    n_boot=N_BOOT,
    seed=SEED,
)
pre = suites.evaluate_suite(MODEL, output, stage="pre", **settings)
post = suites.evaluate_suite(MODEL, output, stage="post", adapter=str(run.weights), **settings)
suites.compare(pre, post, n_boot=N_BOOT, seed=SEED)
