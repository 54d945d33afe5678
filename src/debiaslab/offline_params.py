"""The tiny offline parameters each notebook of the collection runs with (``make demo``, CI).

:func:`ci_parameters` gives, per stage, what :mod:`debiaslab.collection` hands papermill: the
family's tiny preset, a few items, ``RUN = "quick"``, the tiny classifiers; enough to run every
cell of the notebook in seconds, offline.
"""

from __future__ import annotations

from debiaslab.data.fetch import data_dir
from debiaslab.notebooks import Entry


def ci_parameters(entry: Entry, stage: str) -> dict:
    """Offline parameters that run a stage on the family's tiny preset in seconds."""
    common = {"MODEL": entry.tiny, "SEED": 0, "RUN": "quick"}
    if stage == "calibration":
        return {"QUICK": True}
    if stage == "results":
        return {}
    if stage == "decoding_balance":
        return {
            **common,
            "ALPHAS": [0.0, 1.0],
            "SELF_DEBIAS_DECAYS": [50.0],
            "PROMPTS_PER_GROUP": 1,
            "HELD_OUT_PER_GROUP": 2,
            "CONTINUATIONS": 2,
            "MAX_NEW_TOKENS": 6,
            "TOXICITY_MODEL": "tiny-toxicity",
            "REGARD_MODEL": "tiny-regard",
            "N_BOOT": 50,
        }
    if stage == "attention_gate":
        return {
            **common,
            "ATTRIBUTION_PROMPTS": 2,
            "EVALUATION_PROMPTS": 1,
            "HELD_OUT_PER_GROUP": 2,
            "CONTINUATIONS": 2,
            "MAX_NEW_TOKENS": 10,
            "HEADS": [1, 2],
            "TOXICITY_MODEL": "tiny-toxicity",
            "REGARD_MODEL": "tiny-regard",
            "LIMIT": 12,
            "GENERATION_LIMIT": 2,
            "N_BOOT": 50,
        }
    if stage == "t2i_audit":
        return {
            "PIPELINE": "tiny-sd",
            "CLIP": "tiny-clip",
            "OCCUPATIONS": ["Registered nurses", "Software developers"],
            "N_IMAGES": 2,
            "STEPS": 2,
            "SIZE": 32,
            "N_BOOT": 50,
            "SEED": 0,
        }
    if entry.slug == "precise_debias":
        common = {"MODEL": entry.tiny, "SEED": 0}
        return {
            "01_dataset": {
                "WRITER": entry.tiny, "OCCUPATIONS": ["doctor", "nurse"],
                "PROMPTS_PER_OCCUPATION": 2, "SEED": 0, **_seed_prompts(),
            },
            "02_train": {
                **common, "HARDWARE": "cpu-ci", "METHOD": "lora", "STEPS": 4, "SEQ_LEN": 512,
                "ALIGN_PROMPTS": 4, "ALIGN_N": 2, "ALIGN_ITERATIONS": 1, "ALIGN_STEPS": 2,
            },
            "03_evaluate": {
                **common, "EVAL_PROMPTS": 2, "N_REWRITES": 2, "PIPELINE": "tiny-sd",
                "CLIP": "tiny-clip", "OCCUPATIONS": ["Cashiers"], "N_IMAGES": 2, "STEPS": 2,
                "SIZE": 32, "N_BOOT": 20,
            },
            "04_infer": {**common, "N": 2, "PIPELINE": "tiny-sd", "STEPS": 2, "SIZE": 32},
        }[stage]  # fmt: skip
    if entry.slug == "socratic":
        common = {"RESULTS": "results/socratic", "SEED": 0}
        if stage == "01_run":
            return {
                **common,
                "PIPELINE": "tiny-sd",
                "CAPTIONER": "tiny-blip",
                "CLIP": "tiny-clip",
                "LLM": "tiny-gpt2",
                "LIMIT": 1,
                "CATEGORIES": ["People", "Animals"],
                "MAX_CYCLES": 2,
                "STEPS": 2,
                "SIZE": 32,
                "N_BOOT": 50,
            }
        return common
    if stage == "synthetic_data":
        return {
            **common,
            "WRITER": "tiny-writer",
            "N": 48,
            "MAX_NEW_TOKENS": 20,
            "TOXICITY_MODEL": "tiny-toxicity",
            "REGARD_MODEL": "tiny-regard",
            "HARDWARE": "cpu-ci",
            "STEPS": 4,
            "LIMIT": 12,
            "GENERATION_LIMIT": 2,
            "N_BOOT": 50,
        }
    if stage == "02_finetune":
        # QLoRA (bitsandbytes NF4 on CPU) for the instruction models, LoRA for the others.
        method = "qlora" if entry.instruction else "lora"
        return {**common, "HARDWARE": "cpu-ci", "METHOD": method, "STEPS": 4, "SAVE_STEPS": 2}
    return {
        **common,
        "LIMIT": 12,
        "GENERATION_LIMIT": 2,
        "TOXICITY_MODEL": "tiny-toxicity",
        "REGARD_MODEL": "tiny-regard",
        "N_BOOT": 50,
    }


def _seed_prompts() -> dict:
    """The PreciseDebias seed's prompt file as SOURCE when the offline data folder has it (the
    tiny writer's text names no people, so it gives the rewriter nothing to learn)."""

    folder = data_dir()
    path = folder / "precise_debias" / "synthetic_prompts.json" if folder else None
    return {"SOURCE": str(path)} if path is not None and path.is_file() else {}
