"""Shared fixtures. None is autouse: a test asks for what it needs."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import urllib.error
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import CommitInfo, RepoUrl

from debiaslab.data import fetch
from debiaslab.tiny import planted
from debiaslab.tiny.build import build_tiny, save_tiny


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
    machine: into the debiaslab cache (`planted.planted_dir`), where the calibration study finds
    the same models; ``$DEBIASLAB_TEST_MODELS`` names another folder. A change of the corpus,
    the training code or settings retrains (the manifest records them).
    """
    import os

    keep = os.environ.get("DEBIASLAB_TEST_MODELS")
    out = Path(keep) if keep else planted.planted_dir()
    workers = min(2, os.cpu_count() or 1)
    return planted.planted_models(
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
    offline preset, two at a time, beside the real-model slice on SmolLM2, then the results
    notebook and the report), into a private output root. Returns the
    :class:`debiaslab.collection.RunSummary` even when a notebook failed:
    ``summary.executed(name)`` then fails the tests that need it, with its log's tail.
    """
    from debiaslab import collection

    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
        patch.delenv("HF_TOKEN", raising=False)
        try:
            return collection.run_collection(
                root / "run",
                output_root=root / "out",
                workers=2,
                real=collection.real_step("demo"),
            )
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


# --------------------------------------------------------------------------- a local Hub


class FakeHub:
    """A local stand-in for ``huggingface_hub.HfApi``: the three calls debiaslab makes, with the
    real signatures (a subset of their parameters: any other is a ``TypeError``), return types and
    errors. A repo is a folder under ``root/remote/<type>s/<repo id>``.

    * ``create_repo`` returns a ``RepoUrl`` (``.../datasets/<id>`` for a dataset); an existing
      repo keeps its visibility.
    * ``upload_folder`` copies the folder into the repo (files of the same name replaced, others
      kept, ``.git`` left out) and returns a ``CommitInfo``; into a missing repo: 404.
    * ``snapshot_download`` lays out what matches ``allow_patterns`` as the Hugging Face cache
      does (``<cache>/<type>s--<owner>--<name>/snapshots/<commit>/``, each file a relative link
      into ``blobs/``) and returns that folder. A missing repo, or a private one read without a
      token, is a ``RepositoryNotFoundError`` (401 without a token, 404 with one, as the Hub
      answers); a revision other than ``main`` or the current commit a ``RevisionNotFoundError``.

    Writing without a token is a 401 (no token is saved on a test machine). ``fail``: an
    exception every call raises after it is recorded (offline, refused). ``calls``: ``(method,
    repo_id, {every other argument: value})``.
    """

    def __init__(self, root: Path, fail: Exception | None = None) -> None:
        self.remote = root / "remote"
        self.cache = root / "hf-cache"  # snapshot_download's cache_dir when none is given
        self.fail = fail
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.private: dict[tuple[str, str], bool] = {}

    # -- what tests read
    def folder(self, repo_id: str, repo_type: str | None = None) -> Path:
        """The folder holding a repo's files."""
        return self.remote / f"{repo_type or 'model'}s" / repo_id

    def files(self, repo_id: str, repo_type: str | None = None) -> dict[str, bytes]:
        """A repo's files: path in the repo → bytes."""
        root = self.folder(repo_id, repo_type)
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in _files(root)}

    def commit(self, repo_id: str, repo_type: str | None = None) -> str:
        """The repo's current commit: a hash of its files (40 hex digits, like a git oid)."""
        digest = hashlib.sha1()
        for name, data in sorted(self.files(repo_id, repo_type).items()):
            digest.update(name.encode() + b"\0" + hashlib.sha1(data).digest())
        return digest.hexdigest()

    # -- the HfApi calls
    def create_repo(
        self,
        repo_id: str,
        *,
        token: str | bool | None = None,
        private: bool | None = None,
        repo_type: str | None = None,
        exist_ok: bool = False,
    ) -> RepoUrl:
        arguments = {"token": token, "private": private, "repo_type": repo_type}
        self._call("create_repo", repo_id, **arguments, exist_ok=exist_ok)
        self._check_type(repo_type)
        self._need_token(token)
        folder = self.folder(repo_id, repo_type)
        if folder.is_dir():
            if not exist_ok:
                message = f"409 Client Error: Conflict: You already created this repo: {repo_id}"
                raise _http_error(HfHubHTTPError, 409, message)
        else:
            folder.mkdir(parents=True)
            self.private[(repo_type or "model", repo_id)] = bool(private)
        prefix = constants.REPO_TYPES_URL_PREFIXES.get(repo_type or "model", "")
        return RepoUrl(f"{constants.ENDPOINT}/{prefix}{repo_id}")

    def upload_folder(
        self,
        *,
        repo_id: str,
        folder_path: str | Path,
        commit_message: str | None = None,
        token: str | bool | None = None,
        repo_type: str | None = None,
    ) -> CommitInfo:
        arguments = {"commit_message": commit_message, "token": token, "repo_type": repo_type}
        self._call("upload_folder", repo_id, folder_path=folder_path, **arguments)
        self._check_type(repo_type)
        self._need_token(token)
        folder = self._existing(repo_id, repo_type, token)
        source = Path(folder_path)
        for path in _files(source):
            rel = path.relative_to(source)
            if ".git" not in rel.parts:
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, folder / rel)
        oid = self.commit(repo_id, repo_type)
        prefix = constants.REPO_TYPES_URL_PREFIXES.get(repo_type or "model", "")
        return CommitInfo(
            commit_url=f"{constants.ENDPOINT}/{prefix}{repo_id}/commit/{oid}",
            commit_message=commit_message or "Upload folder using huggingface_hub",
            commit_description="",
            oid=oid,
        )

    def snapshot_download(
        self,
        repo_id: str,
        *,
        repo_type: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        token: str | bool | None = None,
        allow_patterns: list[str] | str | None = None,
    ) -> str:
        arguments = {"repo_type": repo_type, "revision": revision, "cache_dir": cache_dir}
        self._call(
            "snapshot_download", repo_id, **arguments, token=token, allow_patterns=allow_patterns
        )
        self._check_type(repo_type)
        folder = self._existing(repo_id, repo_type, token)
        commit = self.commit(repo_id, repo_type)
        if revision not in (None, "main", commit):
            message = f"404 Client Error.\n\nRevision Not Found for url: {repo_id}@{revision}."
            raise _http_error(RevisionNotFoundError, 404, message)
        patterns = [allow_patterns] if isinstance(allow_patterns, str) else allow_patterns
        repo = Path(cache_dir or self.cache) / repo_folder_name(
            repo_id=repo_id, repo_type=repo_type or "model"
        )
        snapshot = repo / "snapshots" / commit
        for path in _files(folder):
            rel = path.relative_to(folder).as_posix()
            if patterns is not None and not any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, blob)
            pointer = snapshot / rel
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.unlink(missing_ok=True)
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        snapshot.mkdir(parents=True, exist_ok=True)
        return str(snapshot)

    # -- helpers
    def _call(self, method: str, repo_id: str, **arguments: Any) -> None:
        self.calls.append((method, repo_id, arguments))
        if self.fail is not None:
            raise self.fail

    @staticmethod
    def _check_type(repo_type: str | None) -> None:
        if repo_type not in constants.REPO_TYPES:
            raise ValueError(f"Invalid repo type, must be one of {constants.REPO_TYPES}")

    @staticmethod
    def _need_token(token: str | bool | None) -> None:
        if not token or token is True:
            raise _http_error(HfHubHTTPError, 401, "401 Client Error: Unauthorized (no token)")

    def _existing(self, repo_id: str, repo_type: str | None, token: str | bool | None) -> Path:
        folder = self.folder(repo_id, repo_type)
        private = self.private.get((repo_type or "model", repo_id), False)
        if not folder.is_dir() or (private and not token):
            status = 404 if token else 401
            message = f"{status} Client Error.\n\nRepository Not Found for url: {repo_id}."
            raise _http_error(RepositoryNotFoundError, status, message)
        return folder


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _http_error(kind: type[HfHubHTTPError], status: int, message: str) -> HfHubHTTPError:
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return kind(message, response=response)


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """A :class:`FakeHub` under ``tmp_path/hub``, which is also what the code gets when it calls
    the Hub without ``api=``; the machine's ``HF_TOKEN`` is unset (a test sets its own)."""
    from debiaslab.hub import client  # here: importing it loads the fine-tuning stack

    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(client, "default_api", lambda: fake)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return fake
