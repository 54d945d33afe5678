"""Several processes, one per GPU (Kaggle's T4×2): who am I, share the work, launch them.

Work is shared at the batch level (:func:`share`, used by :func:`debiaslab.batching.run_batches`
for every engine): the batches a single process would run are dealt round-robin, each process
runs its own, and the results are gathered on every process, so a result file is the same as
a one-process run's (the same batches, each computed once). Writing results is the main
process's job (:func:`is_main`); :func:`barrier` keeps the others from racing ahead.

:func:`launch_command` is ``accelerate launch`` for N processes: one per GPU, or, on a machine
without one (CI, tests), N CPU processes talking over gloo (``ACCELERATE_USE_CPU``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def _group():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def rank_and_world() -> tuple[int, int]:
    """``(this process's index, number of processes)``; ``(0, 1)`` when not launched."""
    dist = _group()
    return (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)


def is_main() -> bool:
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in one process)."""
    dist = _group()
    if dist is not None:
        dist.barrier()


def init() -> tuple[int, int]:
    """Join the process group when this process was launched as one of several (``WORLD_SIZE``
    > 1), on the GPU of its ``LOCAL_RANK`` or, without GPUs, on the CPU (gloo)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and _group() is None:
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())
    return rank_and_world()


def share(
    batches: list[list[int]], run_mine: Callable[[list[list[int]]], list], n_items: int
) -> list:
    """Run ``batches`` across the processes: ``run_mine(my_batches)`` returns results by item
    (a list of ``n_items``, ``None`` where not mine); every process gets all of them."""
    rank, world = rank_and_world()
    if world == 1:
        return run_mine(batches)
    failure: BaseException | None = None
    try:
        mine = run_mine(batches[rank::world])
        payload: dict[str, Any] = {
            "items": {i: mine[i] for batch in batches[rank::world] for i in batch}
        }
    except Exception as exc:  # every process must reach the gather, or the others hang
        failure, payload = exc, {"error": f"{type(exc).__name__}: {exc}"}
    gathered: list[Any] = [None] * world
    _group().all_gather_object(gathered, payload)
    if failure is not None:
        raise failure
    errors = [
        f"process {k}: {part['error']}" for k, part in enumerate(gathered) if "error" in part
    ]
    if errors:
        raise RuntimeError("another process failed: " + "; ".join(errors))
    results: list = [None] * n_items
    for part in gathered:
        for i, value in part["items"].items():
            results[i] = value
    return results


def launch_command(processes: int, arguments: Sequence[str]) -> list[str]:
    """``accelerate launch`` of ``python -m <arguments>`` in ``processes`` processes."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", *arguments,
    ]  # fmt: skip


def launch_env(processes: int, gpus: int) -> dict[str, str]:
    """The launched processes' environment: on a machine without enough GPUs, CPU processes
    (gloo), each with its share of the cores."""
    env = dict(os.environ)
    if gpus < processes:
        threads = str(max(1, (os.cpu_count() or 1) // processes))
        env.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    return env


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
