"""Planted-bias models on disk: trained once per machine into the debiaslab cache.

`planted_models` trains (or reuses) one tiny model per (family, stereotype rate) on
:func:`~debiaslab.tiny.corpus.planted_texts`; the calibration study and the tests share them
through `planted_dir`. A model is reused only while its manifest matches: the corpus hash, the
training settings and a hash of the source of every module that determines the weights
(`TRAINING_CODE`), so editing the lexicon, the templates, the tokenizers, the architecture or
the training loop retrains.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from debiaslab import batching
from debiaslab.data.fetch import cache_dir
from debiaslab.tiny import build, corpus, lexicon, train
from debiaslab.tiny.build import check_family, save_tiny
from debiaslab.tiny.cache import manifest_matches, save_beside
from debiaslab.tiny.corpus import planted_texts
from debiaslab.tiny.lexicon import AXES, PLANTED_VERSION
from debiaslab.tiny.train import MLM_PROBABILITY, TRAIN_DEFAULTS, train_tiny

log = logging.getLogger(__name__)

PLANTED_N_SENTENCES = 1000  # per axis; `planted_models` trains on 2,000 sentences
# The modules whose source determines a planted model's weights: lexicon and templates, corpus,
# tokenizers and architectures, the training loop and its padding. Add any module they come to
# use (tests/test_tiny.py checks that every tiny module they reach is listed).
TRAINING_CODE = (lexicon, corpus, build, train, batching)


def planted_dir() -> Path:
    """The per-machine folder of planted models (``<debiaslab cache>/tiny/planted``), shared by
    the calibration study and the tests: each model is trained once per machine."""
    return cache_dir() / "tiny" / "planted"


def training_code_files() -> list[Path]:
    """The source files hashed into a planted model's manifest: `TRAINING_CODE` and this
    module (which sets the record and the thread count)."""
    return [Path(module.__file__) for module in TRAINING_CODE] + [Path(__file__)]


def code_sha256(paths: Sequence[Path]) -> str:
    """A hash of the files' source and of the installed torch and transformers."""
    import torch
    import transformers

    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0".encode())
        digest.update(path.read_bytes())
    digest.update(f"torch {torch.__version__} transformers {transformers.__version__}".encode())
    return digest.hexdigest()


@functools.cache
def _planted_code_sha256() -> str:
    """`code_sha256` of `training_code_files`: any edit of them retrains (safe, and cheap: a
    minute or two once per machine)."""
    return code_sha256(training_code_files())


def _planted_record(family: str, rate: float, seed: int) -> dict[str, Any]:
    """What a saved planted model was made from; a directory is reused only on a match."""
    texts = "\n".join(planted_texts(rate, PLANTED_N_SENTENCES, seed))
    return {
        "family": family,
        "stereotype_rate": rate,
        "seed": seed,
        "n_sentences_per_axis": PLANTED_N_SENTENCES,
        "axes": list(AXES),
        "train": TRAIN_DEFAULTS[family],
        "mlm_probability": None if family == "causal" else MLM_PROBABILITY,
        "planted_version": PLANTED_VERSION,
        "corpus_sha256": hashlib.sha256(texts.encode()).hexdigest(),
        "code_sha256": _planted_code_sha256(),
        "torch_threads": 1,  # results depend on the thread count: always trained on one
    }


def planted_models(
    rates: Sequence[float] = (0.2, 0.5, 0.8),
    families: Sequence[str] = ("causal", "masked"),
    *,
    out_dir: str | Path,
    seed: int = 0,
    workers: int = 1,
) -> dict[tuple[str, float], Path]:
    """Train (or reuse) one planted-bias tiny model per (family, rate) under ``out_dir``.

    Each model is trained by `train_tiny` with the family's defaults on
    ``planted_texts(rate, PLANTED_N_SENTENCES, seed)`` and saved by `save_tiny` to
    ``out_dir/<family>-rate<rate>`` (e.g. ``causal-rate0.2``) with a ``planted.json``
    manifest. A directory whose manifest matches is reused, so reruns are cheap. Training
    happens in a temporary directory beside the target, renamed into place when complete: an
    interrupted run never leaves a directory that would be reused.

    Args:
        rates: stereotype rates to plant.
        families: model families (``"masked"``, ``"causal"``, ``"seq2seq"``).
        out_dir: where the model directories go (created if missing).
        seed: corpus and training seed.
        workers: processes training at once, each on one thread (the models are too small to
            use more); 2 on a 2-core machine nearly halves the wall time.

    Returns:
        ``{(family, rate): directory}`` for every requested pair.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, todo = {}, []
    for family in families:
        check_family(family)
        for rate in rates:
            path = out_dir / f"{family}-rate{rate}"
            record = _planted_record(family, rate, seed)
            if not manifest_matches(path, record):
                todo.append((path, record))
            paths[(family, rate)] = path
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        todo.sort(key=lambda job: job[1]["family"] != "masked")  # longest jobs first
        context = multiprocessing.get_context("spawn")  # no fork of a process running torch
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            for future in [pool.submit(_train_planted, *job) for job in todo]:
                future.result()
    else:
        for job in todo:
            _train_planted(*job)
    return paths


def _one_thread() -> None:
    """Worker initialiser: the tiny models gain nothing from more threads, and workers share."""
    import torch

    torch.set_num_threads(1)


def _train_planted(path: Path, record: dict[str, Any]) -> None:
    """Train one planted model and save it to ``path`` (see `save_beside`)."""
    family, rate, seed = str(record["family"]), float(record["stereotype_rate"]), record["seed"]

    def write(tmp: Path) -> None:
        import torch

        texts = planted_texts(rate, record["n_sentences_per_axis"], seed)  # the record's size
        threads = torch.get_num_threads()
        torch.set_num_threads(record["torch_threads"])  # same weights whoever builds them
        try:
            save_tiny(*train_tiny(family, texts, seed=seed), tmp)
        finally:
            torch.set_num_threads(threads)

    save_beside(path, record, write)
    log.info("saved planted %s model (rate %s) to %s", family, rate, path)
