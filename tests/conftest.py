"""Shared fixtures. None is autouse: a test asks for what it needs."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from debiaslab import tiny
from debiaslab.data import fetch
from debiaslab.tiny import build_tiny, save_tiny


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the whole-collection run is ``e2e`` (``make test`` only): marked
    here from the fixtures it requests, so a new one cannot be left in the fast tier."""
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark files in ``../shared/data`` (next to the repository); skip if absent."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not root.is_dir():
        pytest.skip(
            f"real benchmark files not found at {root}; these tests need the shared data "
            "directory next to the repository (see shared/data/SOURCES.md)"
        )
    return root


@pytest.fixture
def offline_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, no ``$DEBIASLAB_DATA_DIR`` and no network; returns the cache directory.

    Any download attempt fails with :class:`~debiaslab.errors.DataNotFoundError` unless the test
    patches ``urllib.request.urlopen`` itself.
    """
    cache = tmp_path / "cache"
    monkeypatch.setenv(fetch.CACHE_DIR_ENV, str(cache))
    monkeypatch.delenv(fetch.DATA_DIR_ENV, raising=False)

    def no_network(url, timeout=None):
        raise urllib.error.URLError(f"tests are offline (tried {url})")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    return cache


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """Randomly initialised tiny models saved as local directories, one per family."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        family: save_tiny(*build_tiny(family, seed=0), root / family)
        for family in ("masked", "causal", "seq2seq")
    }


@pytest.fixture(scope="session")
def planted_models() -> dict[tuple[str, float], Path]:
    """Planted-bias tiny models (causal and masked at rates 0.2, 0.5, 0.8), trained once per
    machine: into the debiaslab cache (`tiny.planted_dir`), where the calibration study finds
    the same models; ``$DEBIASLAB_TEST_MODELS`` names another folder. A change of the corpus,
    the training code or settings retrains (the manifest records them).
    """
    import os

    keep = os.environ.get("DEBIASLAB_TEST_MODELS")
    out = Path(keep) if keep else tiny.planted_dir()
    workers = min(2, os.cpu_count() or 1)
    return tiny.planted_models(
        (0.2, 0.5, 0.8), ("causal", "masked"), out_dir=out, seed=0, workers=workers
    )


@pytest.fixture(scope="module")
def t2i_cache(tmp_path_factory):
    """A private debiaslab cache for the module, where the tiny models are built once; one
    torch thread (the tiny models gain nothing from two, and lose much when the CPU is busy)."""
    cache = tmp_path_factory.mktemp("t2i-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(fetch.CACHE_DIR_ENV, str(cache))
            yield cache
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, shared_data):
    """The whole collection executed once, as `make demo` does (every notebook on its tiny
    offline preset, two at a time, then the results notebook and the report), into a private
    output root. Returns the :class:`debiaslab.collection.RunSummary` even when a notebook
    failed: ``summary.executed(name)`` then fails the tests that need it, with its log's tail.
    """
    from debiaslab import collection

    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
        patch.delenv("HF_TOKEN", raising=False)
        try:
            return collection.run_collection(root / "run", output_root=root / "out", workers=2)
        except collection.CollectionError as exc:
            return exc.summary


@pytest.fixture(scope="session")
def kill_after():
    """A factory of Trainer callbacks that stop the run like a lost Kaggle session: a
    ``KeyboardInterrupt`` at the end of step ``step``."""
    from transformers import TrainerCallback

    class KillAfter(TrainerCallback):
        def __init__(self, step: int) -> None:
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.step:
                raise KeyboardInterrupt

    return KillAfter
