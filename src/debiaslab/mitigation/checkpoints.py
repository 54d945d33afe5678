"""Run state of a fine-tuning output folder: finished, resumable, and the loss of all its steps.

Decides, for :func:`debiaslab.mitigation.finetune.finetune`, about the folders transformers'
``Trainer`` writes (as read in its code, transformers 5.25): whether a run is finished
(:func:`finished_run`), which checkpoint is complete and resumable (:func:`last_complete`,
:func:`check_resumable`), and the mean loss over all steps of a resumed run
(:func:`train_from`, :class:`LogAtSave`) — the same as an uninterrupted run's to float64
rounding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from debiaslab.errors import ConfigError

log = logging.getLogger(__name__)

STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # transformers.trainer_utils.PREFIX_CHECKPOINT_DIR
# Model files of a checkpoint, as the Trainer's ``_load_from_checkpoint`` accepts them.
_WEIGHTS = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TRAINING_STATE = ("optimizer.pt", "scheduler.pt")  # written before trainer_state.json


def texts_sha256(texts: list[str]) -> str:
    """A fingerprint of the training texts (their order included: it sets the data order)."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()


def _describe(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def finished_run(
    manifest: Path, weights: Path, settings: dict[str, Any], resume: bool
) -> dict[str, Any] | None:
    """The manifest of the finished run of ``manifest`` if it was trained with ``settings``.

    ``OUTPUT/finetune.json`` is written atomically after the weights; with the weights folder
    present it marks a finished run. A rerun with the same settings (base model, method,
    recipe, config, sha256 of the training texts) is a no-op: the Trainer, resumed from a
    run's last checkpoint, trains one step past ``max_steps`` (it checks the limit only after a
    step), so "resume" alone cannot be trusted to stop. A rerun with other settings is
    refused, naming what differs.

    Args:
        manifest: the run's ``finetune.json``.
        weights: its adapter or model folder.
        settings: ``base_model``, ``method``, ``recipe``, ``config`` and ``texts_sha256`` as
            the manifest records them.
        resume: whether the caller continues a run in this folder; without it, a used
            folder is refused (as one with checkpoints is).

    Returns:
        The manifest's content, or None when the run is not finished (no manifest, or the
        weights folder lost its weights).

    Raises:
        ConfigError: the run was finished with other settings, or ``resume`` is off.
    """
    if not manifest.is_file() or not any(weights.glob("*.safetensors")):
        return None
    recorded = json.loads(manifest.read_text("utf-8"))
    differences = []
    for key, wanted in settings.items():
        if key not in recorded:  # a manifest from before the key was recorded
            continue
        had = recorded[key]
        if key == "texts_sha256" and had != wanted:
            differences.append("the training texts differ")
        elif key == "config":
            for name in sorted(set(had) | set(wanted)):
                if had.get(name) != wanted.get(name):
                    differences.append(
                        f"{name} {_describe(had.get(name))} -> {_describe(wanted.get(name))}"
                    )
        elif had != wanted:
            differences.append(f"{key} {_describe(had)} -> {_describe(wanted)}")
    if differences:
        raise ConfigError(
            f"{manifest.parent} holds a finished run with other settings "
            f"({'; '.join(differences)}): train into a new output folder, or delete this one "
            "to train it again"
        )
    if not resume:
        raise ConfigError(
            f"{manifest.parent} already holds a finished run ({manifest.name}): pass resume to "
            "take it as it is (nothing is trained again), or use a new output directory"
        )
    # A warning, so that a notebook without logging configured shows it too.
    log.warning(
        "%s: already finished (%s steps, %s); not trained again. To train again, use a new "
        "output folder or delete this one",
        manifest.parent,
        recorded.get("metrics", {}).get("steps"),
        manifest.name,
    )
    return recorded


def incomplete(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed (an interrupted save), or None if it is whole."""
    match = _CHECKPOINT.match(checkpoint.name)
    try:
        state = json.loads((checkpoint / STATE).read_text("utf-8"))
    except FileNotFoundError:
        return f"no {STATE}"
    except (ValueError, UnicodeDecodeError):
        return f"{STATE} is cut short"
    if not isinstance(state, dict):
        return f"{STATE} is not a Trainer state"
    if not match or state.get("global_step") != int(match.group(1)):
        return f"{STATE} is for step {state.get('global_step')}"
    if not any((checkpoint / name).is_file() for name in _WEIGHTS):
        return "no model weights"
    missing = [name for name in _TRAINING_STATE if not (checkpoint / name).is_file()]
    return f"no {', '.join(missing)}" if missing else None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step number of a ``checkpoint-N`` folder."""
    match = _CHECKPOINT.match(Path(checkpoint).name)
    if not match:
        raise ValueError(f"not a checkpoint folder: {checkpoint}")
    return int(match.group(1))


def last_complete(folder: Path, *, remove_incomplete: bool = False) -> Path | None:
    """The complete checkpoint of the highest step in ``folder`` (None if there is none).

    The Trainer writes a checkpoint's weights, then optimizer, scheduler and RNG state, and
    ``trainer_state.json`` last. Its ``get_last_checkpoint`` takes the highest-numbered
    ``checkpoint-N`` whatever it holds, so a kill during a save left a run that could not
    resume. Here a checkpoint counts only if its ``trainer_state.json`` parses and names step
    N and its weights, optimizer and scheduler files exist (:func:`incomplete`); the last
    complete one is resumed, incomplete ones are removed.

    Args:
        folder: the Trainer's ``output_dir``.
        remove_incomplete: delete incomplete checkpoints (only the main process should: the
            others would race it).
    """
    if not folder.is_dir():
        return None
    found = sorted(
        (p for p in folder.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)),
        key=checkpoint_step,
    )
    complete = []
    for path in found:
        reason = incomplete(path)
        if reason is None:
            complete.append(path)
            continue
        if remove_incomplete:
            log.warning("removing %s: its save was interrupted (%s)", path, reason)
            shutil.rmtree(path)
    return complete[-1] if complete else None


def check_resumable(folder: Path, resume: bool, steps: int) -> None:
    """Refuse a checkpoint folder that this run must not continue.

    Raises:
        ConfigError: ``folder`` holds a complete checkpoint and ``resume`` is off, or its last
            one is past ``steps`` (a run with more steps).
    """
    found = last_complete(folder)
    if found is None:
        return
    if not resume:
        raise ConfigError(
            f"{folder} already holds checkpoints: pass resume to continue that run, or use a "
            "new output directory"
        )
    if checkpoint_step(found) > steps:
        raise ConfigError(
            f"{found} is past steps={steps}: it belongs to a run with more steps; use a new "
            "output directory"
        )


def train_from(trainer, last: Path | None, steps: int) -> dict[str, Any]:
    """Train from ``last`` (a complete checkpoint, or None) to ``steps``; the run's metrics.

    ``train_loss`` is the mean loss over all steps: the loss logged up to ``last`` plus the
    Trainer's mean over the steps this call ran (the Trainer's own figure covers only
    those); ``train_loss_steps`` says how many steps it covers.

    The Trainer reports the mean loss of the steps run in *this* call of ``train()``
    (``_total_loss_scalar`` over ``global_step - _initial_global_step``), so a resumed run
    recorded another figure than an uninterrupted one. The loss is logged at every checkpoint
    (:class:`LogAtSave`), so a checkpoint's ``log_history`` covers each of its steps; the sum
    here is the same as an uninterrupted run's to float64 rounding, as transformers 5 logs the
    loss unrounded (4.x rounded it to 4 decimals, which would leave up to ~1e-5 relative).
    """
    done = checkpoint_step(last) if last is not None else 0
    loss_sum = 0.0 if last is None else logged_loss_sum(read_state(last)["log_history"], done)
    if loss_sum is None:
        log.warning(
            "%s does not log the loss of all its steps (an older checkpoint): train_loss "
            "covers the steps after it only",
            last,
        )
    covered = done if loss_sum is not None else 0
    loss_sum = loss_sum or 0.0
    if done < steps:
        train = trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
        ran = int(train.global_step) - done
        loss_sum += float(train.training_loss) * ran
        covered += ran
        done = int(train.global_step)
    else:
        # The last checkpoint ends the run (a kill came before the adapter and manifest were
        # written). train() would take a step past max_steps (the Trainer checks the limit
        # after a step): load its weights as train() does on resume, and train nothing.
        trainer._load_from_checkpoint(str(last))
    return {
        "train_loss": loss_sum / covered if covered else None,
        "train_loss_steps": covered,
        "steps": done,
    }


def read_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.json``."""
    return json.loads((checkpoint / STATE).read_text("utf-8"))


def logged_loss_sum(log_history: list[dict[str, Any]], step: int) -> float | None:
    """The summed training loss of steps 1..``step`` from the Trainer's ``log_history``.

    Each ``loss`` entry is the mean over the steps since the previous one. Returns None
    when the entries do not end exactly at ``step`` (steps after the last entry are not
    known: a checkpoint written before :class:`LogAtSave` existed).
    """
    total, last = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] <= step:
            total += entry["loss"] * (entry["step"] - last)
            last = entry["step"]
    return total if last == step else None


class LogAtSave(TrainerCallback):
    """Log the training loss at every checkpoint, so its ``log_history`` covers all its steps.

    Logging drains the Trainer's loss accumulator into its running total and nothing else:
    the weights do not change.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:  # set by DefaultFlowCallback, which runs first
            control.should_log = True
        return control


class PushAtSave(TrainerCallback):
    """Hand each checkpoint to a store as soon as it is saved (main process only), e.g.
    :class:`debiaslab.hub.checkpoints.HubCheckpoints`: ``store.save(folder, step)``."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            step = state.global_step
            self.store.save(Path(args.output_dir) / f"checkpoint-{step}", step)
        return control
