"""Fine-tuning mitigation: full, LoRA and QLoRA, with the objective of each model family.

The loop is transformers' ``Trainer`` (data parallelism via ``accelerate launch`` /
``torchrun``), with peft for LoRA and bitsandbytes NF4 for QLoRA; a resumed run reaches the
same final weights and ``train_loss`` as an uninterrupted one (tested). Entry points:
:class:`FinetuneConfig`, :func:`finetune`, :func:`config_for`, :func:`run_finetune`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from debiaslab import distributed
from debiaslab.cards.model import WEIGHT_KEYS
from debiaslab.config import get_preset
from debiaslab.env import check_fp16_ok
from debiaslab.errors import ConfigError
from debiaslab.io import write_bytes_atomic
from debiaslab.mitigation import checkpoints as ckpt
from debiaslab.mitigation.data import recipe_texts
from debiaslab.mitigation.encoding import TokenRows, collator, encode_rows

log = logging.getLogger(__name__)

METHODS = ("full", "lora", "qlora")
RECIPES = ("crows_counter", "cda", "texts", "synthetic", "precise_debias")
MANIFEST = "finetune.json"
DEFAULT_LR = {"full": 5e-5, "lora": 2e-4, "qlora": 2e-4}
# LoRA targets when the preset names none: the attention projections of common families.
LORA_TARGETS = {
    "gpt2": ["c_attn"],
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "bloom": ["query_key_value"],
    "t5": ["q", "v"],
    "llama": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
}


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (all recorded in the manifest)."""

    method: str = "lora"
    steps: int = 200
    lr: float | None = None  # default per method: DEFAULT_LR
    batch_size: int = 8
    grad_accum: int = 1
    seq_len: int = 64
    warmup_steps: int = 10
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    fp16: bool = False
    gradient_checkpointing: bool = False
    quantization: str | None = None  # "8bit" base for LoRA; QLoRA is always 4-bit
    save_steps: int = 50
    eval_fraction: float = 0.1
    mlm_probability: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; expected one of {METHODS}")
        for name in ("steps", "batch_size", "grad_accum", "seq_len", "save_steps", "lora_r"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.quantization not in (None, "8bit") or (
            self.quantization and self.method != "lora"
        ):
            raise ConfigError(
                f"quantization {self.quantization!r} with method {self.method!r}: an 8-bit base "
                "goes with lora; qlora is 4-bit by itself; full fine-tuning is not quantized"
            )
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")

    @property
    def base_quantization(self) -> str | None:
        """How the frozen base model is loaded."""
        return "4bit" if self.method == "qlora" else self.quantization

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]


@dataclass
class FinetuneResult:
    output: Path
    weights: Path  # the adapter or model directory
    manifest: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # the run was already finished: nothing was trained or written


def read_manifest(path: str | Path | None) -> dict[str, Any] | None:
    """The fine-tuning manifest of a model or adapter directory (or its parent), if any."""
    if path is None:
        return None
    path = Path(path)
    for candidate in (path / MANIFEST, path.parent / MANIFEST):
        if candidate.is_file():
            return json.loads(candidate.read_text("utf-8"))
    return None


def _lora_targets(model, config: FinetuneConfig) -> list[str]:
    if config.lora_targets:
        return list(config.lora_targets)
    model_type = getattr(model.config, "model_type", "")
    if model_type not in LORA_TARGETS:
        raise ConfigError(
            f"no default LoRA target modules for model type {model_type!r}; give lora_targets"
        )
    return LORA_TARGETS[model_type]


def _prepare(lm, config: FinetuneConfig):
    """The trainable model: full weights, or LoRA (on a 4-bit base for QLoRA)."""
    model = lm.model
    if config.method == "full":
        model.train()
        return model
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if config.base_quantization is not None:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    task = {"causal": TaskType.CAUSAL_LM, "seq2seq": TaskType.SEQ_2_SEQ_LM}.get(lm.family)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_lora_targets(model, config),
        task_type=task,
    )
    model = get_peft_model(model, lora)
    model.train()
    return model


def finetune(
    model: str,
    output: str | Path,
    texts: list[str],
    config: FinetuneConfig | None = None,
    *,
    recipe: str = "texts",
    recipe_info: dict[str, Any] | None = None,
    family: str | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
    callbacks: list | None = None,
    store: Any = None,
    prompts: list[str] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``texts`` and save the adapter (or model) under ``output``.

    The loop is transformers' ``Trainer`` (so ``accelerate launch`` / ``torchrun`` give data
    parallelism on two GPUs without changes, and checkpoints hold model, optimizer, scheduler,
    RNG and data-order state), with peft for LoRA and bitsandbytes NF4 for QLoRA
    (``prepare_model_for_kbit_training`` + LoRA on the 4-bit model).

    Objectives: masked LM (``DataCollatorForLanguageModeling``, 15% masking) for BERT-style
    models; causal LM for GPT-2 / Bloomz / Llama; for T5 / FLAN-T5, a sentence with some words
    hidden behind sentinels as input and the whole sentence as target (the same denoising
    objective as the tiny T5, :func:`debiaslab.tiny.train.sentinel_input`), seeded per text.

    Checkpoints every ``save_steps`` under ``OUTPUT/checkpoints``; ``resume=True`` continues
    from the last complete one (a save cut short by a kill is passed over) and reaches the same
    final weights and ``train_loss`` (the mean over all steps) as an uninterrupted run
    (tested). The result is ``OUTPUT/adapter`` (LoRA, QLoRA) or ``OUTPUT/model`` (full), with
    the tokenizer, and ``OUTPUT/finetune.json``: base model, method, recipe, data split and
    fingerprint, settings, losses, time. The manifest is written last, atomically: a directory
    without it is unfinished, and rerunning a finished run with the same settings is a no-op
    (:mod:`debiaslab.mitigation.checkpoints`).

    Args:
        model: preset, hub id or local directory (see :func:`debiaslab.models.load_model`).
        output: run directory: ``checkpoints/``, ``adapter/`` or ``model/``, ``finetune.json``.
        texts: training sentences (e.g. :func:`debiaslab.mitigation.data.crows_counter_texts`).
        config: settings (default :class:`FinetuneConfig`).
        recipe: ``crows_counter``, ``cda``, ``texts`` or ``synthetic`` — recorded;
            ``crows_counter`` makes later CrowS-Pairs evaluations refuse the training pairs.
        recipe_info: facts about the data to record (source, split seed and fraction, sizes).
        family: model family if it cannot be inferred.
        device: ``cpu``, ``cuda`` …; under ``accelerate launch`` each process takes its
            ``LOCAL_RANK`` GPU.
        resume: continue from the last complete checkpoint in ``output/checkpoints`` if there
            is one; a finished run in ``output`` with the same settings is returned as it is
            (``skipped``: nothing trained or written). A finished run with other settings
            is refused, and so is a used ``output`` without ``resume``.
        progress: show the Trainer's progress bar.
        trust_remote_code: as for model loading.
        callbacks: extra ``transformers.TrainerCallback`` objects (e.g. early stopping).
        store: where checkpoints also go as they are saved, and a resume restores the last
            one from when this folder has none (:class:`debiaslab.hub.checkpoints.HubCheckpoints`:
            a Kaggle session's working folder does not outlive it).
        prompts: causal LMs only: the prompt each text begins with (one per text). The loss
            then covers the rest of the text (the completion and EOS), as instruction tuning
            without ``train_on_inputs`` does; None: the whole text.

    Raises:
        ConfigError: an unknown recipe, fewer than 2 texts, ``prompts`` not one per text or
            not a prefix of it, or given for a model that is not causal.
    """
    from transformers import Trainer, TrainingArguments, set_seed

    from debiaslab.models import load_model

    config = config or FinetuneConfig()
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; expected one of {RECIPES}")
    if prompts is not None:
        if len(prompts) != len(texts):
            raise ConfigError(f"prompts: {len(prompts)} for {len(texts)} texts (one per text)")
        bad = next(
            (
                i
                for i, (p, t) in enumerate(zip(prompts, texts, strict=True))
                if not t.startswith(p)
            ),
            None,
        )
        if bad is not None:
            raise ConfigError(f"prompts[{bad}] is not the beginning of texts[{bad}]")
        prompts = [p for p, t in zip(prompts, texts, strict=True) if t.strip()]
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        raise ConfigError(f"fine-tuning needs at least 2 non-empty texts, got {len(texts)}")
    output = Path(output)
    if config.fp16:  # before loading: a preset with fp16_ok: false overflows in float16
        check_fp16_ok(model)
    weights = output / ("model" if config.method == "full" else "adapter")
    settings = {
        "base_model": model,
        "method": config.method,
        "recipe": recipe,
        "config": {**asdict(config), "learning_rate": config.learning_rate},
        "texts_sha256": ckpt.texts_sha256(texts),
    }
    settings["loss"] = "whole text" if prompts is None else "completion"
    if prompts is not None:
        settings["prompts_sha256"] = ckpt.texts_sha256(prompts)
    settings = json.loads(json.dumps(settings))  # as the manifest reads back (lists, not tuples)
    finished = ckpt.finished_run(output / MANIFEST, weights, settings, resume)
    if finished is not None:
        return FinetuneResult(output, weights, finished, skipped=True)
    checkpoints = output / "checkpoints"
    if store is not None and resume and ckpt.last_complete(checkpoints) is None:
        store.restore(checkpoints)  # a new session: the last checkpoint the store holds
    ckpt.check_resumable(checkpoints, resume, config.steps)  # before loading the model
    lm = load_model(
        model,
        family=family,
        device=device,
        dtype="float32",  # master weights in fp32; fp16 autocast through the Trainer
        quantization=config.base_quantization,
        trust_remote_code=trust_remote_code,
    )
    on_gpu = str(lm.device).startswith("cuda")
    if config.fp16 and not on_gpu:
        log.warning("fp16 needs a GPU; training in fp32 on %s", lm.device)
    if config.fp16 and on_gpu and getattr(lm.model.config, "model_type", "") == "t5":
        raise ConfigError(
            "T5/FLAN-T5 overflows in fp16 (it was trained in bf16); on a T4 or P100 train in "
            "fp32 (fp16 false), or use QLoRA to save memory"
        )
    set_seed(config.seed)  # LoRA's random init: the same in a run and in its resumed twin
    trainable = _prepare(lm, config)
    if config.gradient_checkpointing and config.base_quantization is None:
        trainable.gradient_checkpointing_enable()
        if config.method == "lora":
            trainable.enable_input_require_grads()

    order = list(range(len(texts)))
    random.Random(f"eval-split:{config.seed}").shuffle(order)
    n_eval = int(len(texts) * config.eval_fraction)
    if prompts is not None and lm.family != "causal":
        raise ConfigError(
            f"prompts (completion-only loss) need a causal LM; {model} is {lm.family}"
        )

    def rows(indices: list[int]) -> list[dict[str, list[int]]]:
        given = None if prompts is None else [prompts[i] for i in indices]
        return encode_rows(lm, [texts[i] for i in indices], config.seq_len, config.seed, given)

    eval_rows, train_rows = rows(order[:n_eval]), rows(order[n_eval:])
    args = TrainingArguments(
        output_dir=str(checkpoints),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type="linear",
        logging_steps=max(1, min(10, config.save_steps)),
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if eval_rows else "no",
        eval_steps=config.save_steps,
        seed=config.seed,
        data_seed=config.seed,
        fp16=config.fp16 and on_gpu,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=not on_gpu,
    )
    trainer = Trainer(
        model=trainable,
        args=args,
        train_dataset=TokenRows(train_rows),
        eval_dataset=TokenRows(eval_rows) if eval_rows else None,
        data_collator=collator(
            lm, trainable, config.mlm_probability, labelled=prompts is not None
        ),
        callbacks=[
            ckpt.LogAtSave(),
            *([ckpt.PushAtSave(store)] if store is not None else []),
            *(callbacks or []),
        ],
    )
    last = ckpt.last_complete(checkpoints, remove_incomplete=trainer.is_world_process_zero())
    if resume and last is None:
        log.info("no checkpoint in %s: starting from the beginning", checkpoints)
    started = time.perf_counter()
    metrics = ckpt.train_from(trainer, last, config.steps)
    seconds = time.perf_counter() - started
    if eval_rows:
        set_seed(config.seed)  # masked LMs' eval masks: the same in a run and its resumed twin
        metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
    if trainer.is_world_process_zero():
        trainable.save_pretrained(weights)
        lm.tokenizer.save_pretrained(weights)
        manifest = {
            "base_model": model,
            "base_source": lm.info.get("source"),
            # the weights trained on, where they are not the Hub release (a dequantized GGUF)
            "base_weights": {k: lm.info[k] for k in WEIGHT_KEYS if k in lm.info} or None,
            "family": lm.family,
            "method": config.method,
            "recipe": recipe,
            "recipe_info": recipe_info or {},
            "n_train_texts": len(train_rows),
            "n_eval_texts": len(eval_rows),
            "config": settings["config"],
            "texts_sha256": settings["texts_sha256"],
            "loss": settings["loss"],
            **({"prompts_sha256": settings["prompts_sha256"]} if prompts is not None else {}),
            "metrics": metrics,
            "seconds": round(seconds, 1),
            "resumed_from": Path(last).name if last else None,
            "device": str(lm.device),
            "n_processes": trainer.args.world_size,
        }
        write_bytes_atomic(output / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    else:
        manifest = {}
    return FinetuneResult(output, weights, manifest)


def config_for(model: str, hardware: str, **overrides: Any) -> FinetuneConfig:
    """The fine-tuning settings of a preset on a machine (``t4x2``, ``p100``, ``cpu-ci``).

    Method, batch size, accumulation, sequence length, quantization, gradient checkpointing,
    fp16 (never for a model that overflows in it) and LoRA targets come from the preset's
    ``hardware`` entry (sized with :mod:`debiaslab.planner`); ``overrides`` that are not None
    win. A model that is not a preset gets the defaults plus the overrides.
    """

    given = {k: v for k, v in overrides.items() if v is not None}
    preset = get_preset(model)
    if preset is None:
        return FinetuneConfig(**given)
    settings = preset.settings(hardware)
    method = given.get("method", settings.method)
    base: dict[str, Any] = {
        "method": method,
        "batch_size": settings.batch_size,
        "grad_accum": settings.grad_accum,
        "seq_len": settings.seq_len,
        "gradient_checkpointing": settings.gradient_checkpointing,
        "fp16": settings.fp16 and preset.fp16_ok,
        "lora_targets": list(preset.lora_targets) or None,
        "quantization": settings.quantization if method == "lora" else None,
    }
    return FinetuneConfig(**{**base, **given})


def _cli_flags(config: FinetuneConfig) -> list[str]:
    """``debiaslab finetune`` flags that reproduce ``config``."""
    flags = []
    for key, value in asdict(config).items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, list):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


def launch_arguments(
    model: str,
    output: str | Path,
    config: FinetuneConfig,
    recipe: str,
    data: str | None,
    split_seed: int,
    resume: bool,
) -> list[str]:
    """The ``debiaslab finetune`` command line (after ``python -m``) each launched process
    runs: the same settings as ``config`` (:func:`debiaslab.cli.training.finetune_config`
    parses them back)."""
    return [
        "debiaslab.cli", "finetune", "--model", model, "--output", str(output),
        "--recipe", recipe, "--split-seed", str(split_seed),
        *(["--data", str(data)] if data else []),
        *(["--resume"] if resume else []),
        *_cli_flags(config),
    ]  # fmt: skip


def run_finetune(
    model: str,
    output: str | Path,
    config: FinetuneConfig | None = None,
    *,
    recipe: str = "crows_counter",
    data: str | None = None,
    split_seed: int = 0,
    resume: bool = True,
    gpus: int | str = "auto",
    progress: bool = True,
    store: Any = None,
) -> FinetuneResult:
    """Fine-tune from a notebook: in this process on one device, under ``accelerate launch``
    (one process per GPU, data parallel) when several GPUs are visible (Kaggle T4×2).

    A Trainer inside a notebook sees one GPU; two need a launcher. Each launched process
    builds the same training texts from ``recipe``/``data``/``split_seed``. ``resume``
    (default on) continues an interrupted run in ``output``; ``store`` (see :func:`finetune`)
    keeps the checkpoints beyond this session, its ``repo_id`` handed to launched processes.
    """
    import subprocess

    config = config or FinetuneConfig()
    n_gpus = distributed.visible_gpus() if gpus == "auto" else int(gpus)
    if n_gpus <= 1:
        texts, info = recipe_texts(recipe, data, split_seed=split_seed)
        return finetune(
            model,
            output,
            texts,
            config,
            recipe=recipe,
            recipe_info=info,
            resume=resume,
            progress=progress,
            store=store,
        )
    arguments = launch_arguments(model, output, config, recipe, data, split_seed, resume)
    if store is not None:
        arguments += ["--hub-checkpoints", store.repo_id]
    command = distributed.launch_command(n_gpus, arguments)
    log.info("launching %d processes: %s", n_gpus, " ".join(command))
    env = distributed.launch_env(n_gpus, distributed.visible_gpus())
    code = subprocess.run(command, env=env).returncode
    if code != 0:
        raise ConfigError(f"fine-tuning on {n_gpus} processes failed (exit {code}); see above")
    manifest = read_manifest(Path(output)) or {}
    weights = Path(output) / ("model" if config.method == "full" else "adapter")
    return FinetuneResult(Path(output), weights, manifest)
