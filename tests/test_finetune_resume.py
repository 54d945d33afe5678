"""Fine-tuning reruns: a finished run is not trained again, a checkpoint whose save was
interrupted is passed over, and a resumed run records the loss of all its steps.

Exactness: these runs are on the CPU (even where a GPU is visible, whose kernels need not be
deterministic), in one process, with the same thread count. A resumed
run restores the weights (safetensors), the optimizer and scheduler state (``torch.save``),
the RNG state and the data order, so it repeats every floating-point operation of the
uninterrupted run: the final weights are compared for equality, not closeness.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from debiaslab import cli
from debiaslab.errors import ConfigError
from debiaslab.mitigation import finetune as ft
from debiaslab.mitigation.finetune import FinetuneConfig, finetune
from debiaslab.tiny import corpus

pytestmark = pytest.mark.slow  # every test here trains (and kills, and resumes) a tiny model

TEXTS = corpus.planted_texts(0.5, 40, seed=0)
# Checkpoints at 3, 6 and 8 (the last step, not a multiple of the logging interval of 3).
CONFIG = FinetuneConfig(method="lora", steps=8, save_steps=3, batch_size=4, lr=1e-3)


class KillAtTrainEnd(TrainerCallback):
    """A kill after the last checkpoint was saved, before the adapter and manifest."""

    def on_train_end(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


class TrainerLoss(TrainerCallback):
    """The ``train_loss`` the Trainer itself reports at the end of ``train()``."""

    value: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "train_loss" in logs:
            self.value = logs["train_loss"]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (adapter, manifest, checkpoints)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(directory / "adapter_model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key  # bit-identical: see the module docstring


@pytest.fixture(scope="module")
def runs(tiny_dirs, tmp_path_factory, kill_after):
    """An uninterrupted run, and a run killed at step 7 (checkpoints 3 and 6 saved)."""
    root = tmp_path_factory.mktemp("runs")
    model = str(tiny_dirs["causal"])
    loss = TrainerLoss()
    whole = finetune(
        model, root / "whole", TEXTS, CONFIG, progress=False, device="cpu", callbacks=[loss]
    )
    with pytest.raises(KeyboardInterrupt):
        finetune(
            model,
            root / "killed",
            TEXTS,
            CONFIG,
            progress=False,
            device="cpu",
            callbacks=[kill_after(7)],
        )
    return {"model": model, "whole": whole, "killed": root / "killed", "trainer_loss": loss.value}


# --------------------------------------------------------------------- finished runs (point 9)


def test_rerunning_a_finished_run_is_a_no_op_that_says_so(tiny_dirs, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS[:60]))
    out = tmp_path / "run"
    argv = [
        *("finetune", "--model", str(tiny_dirs["causal"]), "--recipe", "texts"),
        *("--data", str(corpus), "--output", str(out), "--steps", "4", "--save-steps", "2"),
        *("--batch-size", "4", "--device", "cpu", "--resume", "--no-progress"),
    ]
    assert cli.main(argv) == 0
    before = digests(out)
    capsys.readouterr()
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert "already finished" in printed.out + printed.err
    assert digests(out) == before  # no step 5, the same adapter bytes, the same manifest
    assert not (out / "checkpoints" / "checkpoint-5").exists()
    # Without --resume a used folder is refused, as before, saying that the run is finished.
    assert cli.main([a for a in argv if a != "--resume"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err

    # Notebook 2 reruns through finetune.run_finetune, which resumes by default: no drift either.
    config = FinetuneConfig(steps=4, save_steps=2, batch_size=4)
    again = ft.run_finetune(
        str(tiny_dirs["causal"]), out, config, recipe="texts", data=str(corpus), gpus=1
    )
    assert again.skipped and again.manifest["metrics"]["steps"] == 4
    assert digests(out) == before

    # Other settings in a finished run's folder: refused, saying what differs and what to do.
    longer = FinetuneConfig(steps=6, save_steps=2, batch_size=4)
    with pytest.raises(ConfigError, match=r"finished run.*steps 4 -> 6.*new output folder"):
        ft.run_finetune(
            str(tiny_dirs["causal"]), out, longer, recipe="texts", data=str(corpus), gpus=1
        )
    other_texts = TEXTS[60:120]
    with pytest.raises(ConfigError, match=r"finished run.*training texts"):
        finetune(str(tiny_dirs["causal"]), out, other_texts, config, recipe="texts", resume=True)
    assert digests(out) == before


def test_a_run_killed_after_its_last_checkpoint_finishes_without_another_step(runs, tmp_path):
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        finetune(
            runs["model"],
            out,
            TEXTS,
            CONFIG,
            progress=False,
            device="cpu",
            callbacks=[KillAtTrainEnd()],
        )
    assert not (out / "finetune.json").exists() and not (out / "adapter").exists()
    done = finetune(runs["model"], out, TEXTS, CONFIG, progress=False, device="cpu", resume=True)
    assert done.manifest["resumed_from"] == "checkpoint-8"
    assert done.manifest["metrics"]["steps"] == 8
    assert not (out / "checkpoints" / "checkpoint-9").exists()
    assert_same_weights(runs["whole"].weights, done.weights)
    whole = runs["whole"].manifest["metrics"]
    assert done.manifest["metrics"]["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)
    assert done.manifest["metrics"]["train_loss_steps"] == 8


# ------------------------------------------------------- interrupted checkpoint saves (point 10)


def _folder_only(ckpt: Path) -> None:
    for p in ckpt.iterdir():
        p.unlink()


def _weights_half_written(ckpt: Path) -> None:
    data = (ckpt / "adapter_model.safetensors").read_bytes()
    _folder_only(ckpt)
    (ckpt / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])


def _no_trainer_state(ckpt: Path) -> None:
    (ckpt / "trainer_state.json").unlink()  # the Trainer writes it last


def _trainer_state_half_written(ckpt: Path) -> None:
    text = (ckpt / "trainer_state.json").read_text()
    (ckpt / "trainer_state.json").write_text(text[: len(text) // 2])


@pytest.mark.parametrize(
    "interrupt",
    [_folder_only, _weights_half_written, _no_trainer_state, _trainer_state_half_written],
)
def test_a_kill_during_a_checkpoint_save_resumes_from_the_last_complete_one(
    interrupt, runs, tmp_path
):
    out = tmp_path / "killed"
    shutil.copytree(runs["killed"], out)
    interrupt(out / "checkpoints" / "checkpoint-6")  # the kill came while checkpoint-6 was saved
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        finetune(runs["model"], out, TEXTS, CONFIG, progress=False, device="cpu")
    resumed = finetune(
        runs["model"], out, TEXTS, CONFIG, progress=False, device="cpu", resume=True
    )
    assert resumed.manifest["resumed_from"] == "checkpoint-3"
    assert resumed.manifest["metrics"]["steps"] == 8
    assert_same_weights(runs["whole"].weights, resumed.weights)
    whole = runs["whole"].manifest["metrics"]  # the loss of steps 1-3 comes from checkpoint-3
    assert resumed.manifest["metrics"]["train_loss"] == pytest.approx(
        whole["train_loss"], rel=1e-6
    )
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6  # saved again, whole, by the resumed run


# ------------------------------------------------------------ train_loss of all steps (point 11)


def test_a_resumed_run_records_the_loss_of_all_steps(runs, tmp_path):
    """The uninterrupted run's train_loss is the Trainer's own (the mean loss of its 8 steps);
    the resumed run's, whose ``train()`` ran only steps 7 and 8, is the same figure.

    Tolerance: both are float64 sums of the same float32 per-interval loss sums (the weights,
    hence the losses, are bit-identical), so they differ by float64 rounding (~1e-16). 1e-6
    relative leaves room for that only: the mean of steps 7–8 alone, which was recorded
    before, is 2.7e-4 relative off here.
    """
    out = tmp_path / "killed"
    shutil.copytree(runs["killed"], out)
    resumed = finetune(
        runs["model"], out, TEXTS, CONFIG, progress=False, device="cpu", resume=True
    )
    assert resumed.manifest["resumed_from"] == "checkpoint-6"
    whole = runs["whole"].manifest["metrics"]
    assert whole["train_loss"] == pytest.approx(runs["trainer_loss"], rel=1e-6)
    got = resumed.manifest["metrics"]
    assert got["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)
    assert got["train_loss_steps"] == whole["train_loss_steps"] == 8


# ------------------------------------------------- a Kaggle session lost with its working folder


def test_a_lost_session_resumes_from_the_checkpoint_pushed_to_the_hub(
    runs, tmp_path, fake_hub, kill_after, monkeypatch
):
    """Checkpoints pushed as saved (3, 6); the session dies at step 7 and its folder with it;
    a new session in an empty folder restores checkpoint 6 from the Hub and ends with the
    uninterrupted run's weights."""
    from debiaslab.hub.checkpoints import HubCheckpoints, checkpoint_store

    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    store = checkpoint_store("ada/tiny-checkpoints", say=lambda line: None)
    assert isinstance(store, HubCheckpoints)
    lost = tmp_path / "session-1"
    with pytest.raises(KeyboardInterrupt):
        finetune(runs["model"], lost, TEXTS, CONFIG, progress=False, device="cpu",
                 callbacks=[kill_after(7)], store=store)  # fmt: skip
    pushed = fake_hub.files("ada/tiny-checkpoints")
    assert json.loads(pushed["last-checkpoint/trainer_state.json"])["global_step"] == 6
    assert fake_hub.private[("model", "ada/tiny-checkpoints")]
    shutil.rmtree(lost)  # the interactive session ended: /kaggle/working is gone

    again = finetune(runs["model"], tmp_path / "session-2", TEXTS, CONFIG, progress=False,
                     device="cpu", resume=True, store=store)  # fmt: skip
    assert again.manifest["resumed_from"] == "checkpoint-6"
    assert_same_weights(again.weights, runs["whole"].weights)


def test_without_a_repo_or_token_the_notebook_says_what_is_lost(fake_hub, monkeypatch):
    from debiaslab.hub.checkpoints import LOST, checkpoint_store

    said: list[str] = []
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert checkpoint_store(None, say=said.append) is None
    assert checkpoint_store("ada/x", say=said.append) is None  # no HF_TOKEN
    assert said == [
        f"HUB_REPO is not set: {LOST}",
        f"HUB_REPO is set but no HF_TOKEN secret: {LOST}",
    ]
    assert "Save Version → Save & Run All" in LOST and "/kaggle/working is lost" in LOST
    assert fake_hub.calls == []
