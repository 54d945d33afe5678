"""Two processes where Kaggle gives two GPUs: here two CPU processes over gloo, launched for
real with `accelerate launch` (no mock), against one process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from debiaslab import distributed, launch
from debiaslab.evalconfig import EvalConfig
from debiaslab.mitigation import finetune


def _comparable(path: Path, out: Path) -> dict:
    """A result record without what describes the run rather than its results (its date, its
    wall-clock times, the machine: processes and threads), its own folder's name taken out."""
    record = json.loads(path.read_text().replace(str(out), "OUT"))
    for key in ("date", "timing", "environment"):
        record.pop(key)
    for scorer in record["config"].get("scorers", {}).values():
        scorer.pop("load_seconds", None)  # the classifiers' load times, kept beside their names
    return record


@pytest.mark.slow
def test_two_processes_write_the_same_results_as_one(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))

    def configs(out: Path) -> list[EvalConfig]:
        common = dict(n_boot=50, seed=0, progress=False)
        return [
            EvalConfig.of("tiny-gpt2", "crows_pairs", out, limit=24, **common),
            EvalConfig.of("tiny-gpt2", "stereoset", out, limit=12, **common),
            EvalConfig.of(
                "tiny-gpt2",
                "bold",
                out,
                limit=3,
                domains=["gender"],
                toxicity_model="tiny-toxicity",
                regard_model="tiny-regard",
                **common,
            ),
            EvalConfig.of("tiny-bert", "crows_pairs", out, limit=12, **common),
        ]

    one_out, two_out = tmp_path / "one", tmp_path / "two"
    one = launch.evaluate_all(configs(one_out), processes=1)
    two = launch.evaluate_all(configs(two_out), processes=2)

    assert [r.path.name for r in one] == [r.path.name for r in two]
    for a, b in zip(one, two, strict=True):
        assert _comparable(a.path, one_out) == _comparable(b.path, two_out), a.path.name
        assert (a.record["environment"]["processes"], b.record["environment"]["processes"]) == (
            1,
            2,
        )
        items = a.record.get("items_file")
        if items:
            assert (one_out / items).read_bytes() == (two_out / items).read_bytes()
    # Both processes appended their continuations to one cache file, no line torn.
    (cache,) = (two_out / "generations").glob("*.jsonl")
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    expected = pd.read_csv(one_out / one[2].record["items_file"])
    assert len(rows) == len(expected) and len({r["key"] for r in rows}) == len(rows)


@pytest.mark.slow
def test_a_two_process_lora_run_reaches_the_one_process_loss(tmp_path, shared_data, monkeypatch):
    """Data parallel over two processes with half the per-process batch: the same number of
    sequences per step, so the loss after the same steps agrees within 5% (the order in which
    the sequences are drawn differs: DistributedSampler against one sampler)."""
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    settings = dict(method="lora", steps=12, seq_len=32, save_steps=50, seed=0, lr=5e-3)
    one = finetune.run_finetune(
        "tiny-gpt2", tmp_path / "one", finetune.FinetuneConfig(batch_size=8, **settings),
        gpus=1, progress=False,
    )  # fmt: skip
    two = finetune.run_finetune(
        "tiny-gpt2", tmp_path / "two", finetune.FinetuneConfig(batch_size=4, **settings),
        gpus=2, progress=False,
    )  # fmt: skip
    loss_one, loss_two = (
        one.manifest["metrics"]["train_loss"],
        two.manifest["metrics"]["train_loss"],
    )
    assert two.manifest["n_processes"] == 2 and one.manifest["n_processes"] == 1
    assert abs(loss_two - loss_one) <= 0.05 * loss_one, (loss_one, loss_two)
    assert (two.weights / "adapter_model.safetensors").is_file()


def test_work_is_shared_batch_by_batch_and_everyone_gets_every_result(monkeypatch):
    """One process: all batches, in order (the launched case is the tests above)."""
    seen = []

    def run_mine(batches):
        seen.extend(batches)
        out = [None] * 5
        for batch in batches:
            for i in batch:
                out[i] = i * i
        return out

    assert distributed.share([[4, 3], [2], [1, 0]], run_mine, 5) == [0, 1, 4, 9, 16]
    assert seen == [[4, 3], [2], [1, 0]] and distributed.rank_and_world() == (0, 1)
    command = distributed.launch_command(2, ["debiaslab.launch", "a", "b"])
    assert command[1:5] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes"]
    assert command[-3:] == ["debiaslab.launch", "a", "b"]
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert distributed.launch_env(2, gpus=0)["ACCELERATE_USE_CPU"] == "true"
    assert "ACCELERATE_USE_CPU" not in distributed.launch_env(2, gpus=2)


def _share_in_group(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)

    def run_mine(batches):
        if rank == 1:
            raise ValueError("sequence 3 is too long")
        return [i * 10 if any(i in b for b in batches) else None for i in range(4)]

    try:
        distributed.share([[0, 1], [2, 3]], run_mine, 4)
        message = "no error"
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
    Path(out, f"rank{rank}.txt").write_text(message)
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_process_that_fails_stops_every_process_instead_of_hanging_them(tmp_path):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_share_in_group, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank1.txt").read_text() == "ValueError: sequence 3 is too long"
    assert (tmp_path / "rank0.txt").read_text() == (
        "RuntimeError: another process failed: process 1: ValueError: sequence 3 is too long"
    )
