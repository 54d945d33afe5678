"""Every call debiaslab makes to the Hugging Face Hub: push an adapter, model or dataset, pull one.

The client is injectable (``api=``; default :func:`default_api`, a ``huggingface_hub.HfApi``),
so tests run against a local fake and nothing touches the network at import time. Offline
first: :func:`push` without a token logs why and returns ``None``; :func:`pull` takes a local
folder wherever a repo id is expected. The caller's folder is never modified (the upload is
staged in a temporary copy, with the card as ``README.md``); what is uploaded passes the checks
of :mod:`debiaslab.hub.scrub` first, and errors never show the token.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import debiaslab
from debiaslab.cards.dataset import dataset_card
from debiaslab.cards.model import model_card
from debiaslab.env import get_secret
from debiaslab.errors import ConfigError
from debiaslab.hub.scrub import (
    HUB_URL,
    REPO_ID_RE,
    TOKEN_NAME,
    check_no_token,
    check_repo_id,
    folder_files,
    hub_errors,
    hub_id,
    is_local_path,
    scrub,
)
from debiaslab.io import write_bytes_atomic
from debiaslab.mitigation.finetune import MANIFEST
from debiaslab.mitigation.finetune import read_manifest as read_training_manifest
from debiaslab.model_source import ADAPTER_CONFIG, MODEL_CONFIG, folder_kind
from debiaslab.results import read_all, read_result
from debiaslab.synth.pipeline import CARD
from debiaslab.synth.pipeline import read_manifest as read_dataset_manifest

log = logging.getLogger(__name__)

CARD_NAME = "README.md"
# What pull downloads: configs, safetensors weights, tokenizer files and the card (no pickles).
PULL_PATTERNS = ("*.json", "*.safetensors", "*.md", "*.txt", "*.model", "*.tiktoken")


def default_api() -> Any:
    """The real Hub client, ``huggingface_hub.HfApi()`` (tests pass a fake as ``api=``)."""
    from huggingface_hub import HfApi

    return HfApi()


def connect(api: Any = None) -> Any:
    """The client to call: ``api`` if given, else :func:`default_api`."""
    return api if api is not None else default_api()


def read_token(token: str | None = None) -> str | None:
    """``token`` if given, else the ``HF_TOKEN`` secret (:func:`debiaslab.env.get_secret`)."""
    return token or get_secret(TOKEN_NAME)


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


@contextmanager
def _staging(folder: Path, files: Sequence[Path]) -> Iterator[Path]:
    """A temporary copy of ``folder``'s ``files``, beside it when possible (hard links)."""
    tmp: tempfile.TemporaryDirectory[str] | None = None
    for parent in (folder.resolve().parent, None):
        try:
            tmp = tempfile.TemporaryDirectory(prefix=".debiaslab-push-", dir=parent)
            break
        except OSError:
            continue
    if tmp is None:  # pragma: no cover - both locations unwritable
        raise ConfigError("cannot create a temporary directory to stage the upload")
    with tmp as name:
        stage = Path(name)
        for rel in files:
            _link_or_copy(folder / rel, stage / rel)
        yield stage  # files written here replace links (write_bytes_atomic), never edit them


def _load_records(
    results: Sequence[Mapping[str, Any] | str | os.PathLike[str]] | str | os.PathLike[str] | None,
) -> list[Mapping[str, Any]]:
    """Records from dicts, result files, or directories of result files."""
    if results is None:
        return []
    if isinstance(results, str | os.PathLike):
        results = [results]
    records: list[Mapping[str, Any]] = []
    for item in results:
        if isinstance(item, Mapping):
            records.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            records += [record for _, record in read_all(path)]
        else:
            records.append(read_result(path))
    return records


def _public_base(
    base_model: str | None, records: Sequence[Mapping[str, Any]], folder: Path
) -> str:
    """The public base model: the argument, else the ``pre`` record's model, else the adapter's.

    A candidate that is a hub id or a preset wins over one that is a local path.
    """
    candidates = [base_model] if base_model else []
    candidates += [(r.get("model") or {}).get("name") for r in records if r.get("stage") == "pre"]
    config = folder / ADAPTER_CONFIG
    if config.is_file():
        with suppress(json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            candidates.append(json.loads(config.read_text("utf-8")).get("base_model_name_or_path"))
    named = [str(c) for c in candidates if c]
    return next((c for c in named if not is_local_path(c)), named[0] if named else "unknown")


def _publish_base(stage: Path, base: str) -> None:
    """Replace a local base-model path in the staged ``adapter_config.json`` by its hub id.

    Without a known hub id the path is kept (a guess could name the wrong model) and a warning
    says that users must supply the base model themselves.
    """
    path = stage / ADAPTER_CONFIG
    config = json.loads(path.read_text("utf-8"))
    current = config.get("base_model_name_or_path")
    if not isinstance(current, str) or not is_local_path(current):
        return
    public = hub_id(base)
    if public is None:
        log.warning(
            "adapter_config.json names a local base model (%s) and no hub id is known for it: "
            "users of the adapter must load that base model themselves",
            scrub(current),
        )
        return
    config["base_model_name_or_path"] = public
    log.info("adapter_config.json: local base model path replaced by %r", public)
    write_bytes_atomic(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


def training_from_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The training facts of a fine-tuning run (its ``finetune.json``) for the card."""

    manifest = read_training_manifest(folder) or {}
    training = {
        "method": manifest.get("method"),
        "recipe": manifest.get("recipe"),
        **manifest.get("config", {}),
        "data": manifest.get("recipe_info"),
        "seconds": manifest.get("seconds"),
    }
    return {k: v for k, v in training.items() if v is not None}


def push(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    results: Sequence[Mapping[str, Any] | str | os.PathLike[str]]
    | str
    | os.PathLike[str]
    | None = None,
    card: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    training: Mapping[str, Any] | None = None,
    limitations: Sequence[str] | None = None,
    license: str | None = None,
    private: bool = True,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
) -> str | None:
    """Upload an adapter (or full model) folder to the Hub with a generated model card.

    The folder is checked, copied to a temporary directory with ``README.md`` (the card) added,
    and uploaded; the caller's folder is not modified.

    Args:
        folder: a directory written by ``save_pretrained`` (adapter or full model).
        repo_id: ``user/name`` on the Hub; created if missing.
        results: pre/post result records, result files or directories of them, for the card.
        card: the card's Markdown; generated by :func:`model_card` when ``None``.
        base_model: base model (preset, hub id); default: the ``pre`` results' model, else the
            adapter config's.
        method: mitigation method; default ``training["method"]``.
        training: training settings for the card.
        limitations: extra limitations for the card.
        license: license id for the card's front matter.
        private: create the repo private (an existing repo keeps its visibility).
        token: Hub token; default ``get_secret("HF_TOKEN")``. Never logged.
        commit_message: default ``"debiaslab <version>: upload <kind>"``.
        api: Hub client (``HfApi``-like); default :func:`default_api`.

    Returns:
        The repo URL, or ``None`` when no token is available (the upload is skipped and logged).

    Raises:
        ConfigError: a bad folder or repo id, files that look like secrets or contain the token,
            or a Hub error (message without the token).
    """
    folder = Path(folder)
    check_repo_id(repo_id)
    kind = folder_kind(folder)
    files = folder_files(folder)
    token = push_token(folder, files, repo_id, token)
    if token is None:
        return None
    records = _load_records(results)
    base = _public_base(base_model, records, folder)
    if card is None:
        training = dict(training or training_from_manifest(folder))
        trained_on = (read_training_manifest(folder) or {}).get("base_weights")
        card = model_card(
            records,
            base_model=base,
            method=method or str(training.get("method") or "unspecified"),
            training=training,
            repo_id=repo_id,
            limitations=limitations,
            adapter=kind == "adapter",
            license=license,
            base_weights=trained_on,  # else what the pre/post records say
        )
    message = commit_message or f"debiaslab {debiaslab.__version__}: upload {kind}"
    return upload(
        folder,
        files,
        repo_id,
        card=card,
        token=token,
        api=api,
        private=private,
        message=message,
        prepare=(lambda stage: _publish_base(stage, base)) if kind == "adapter" else None,
    )


def push_token(folder: Path, files: Sequence[Path], repo_id: str, token: str | None) -> str | None:
    """The token to push with (argument, else the secret), after checking that no file to
    upload contains it; ``None`` (logged) when there is none."""
    token = read_token(token)
    if not token:
        _no_token(folder, repo_id)
        return None
    check_no_token(folder, files, token)
    return token


def _no_token(folder: Path, repo_id: str) -> None:
    log.warning(
        "not pushing %s to the Hugging Face Hub (%s): no token. Set %s as an environment "
        "variable, a Kaggle secret (Add-ons → Secrets) or a Colab secret, with write access.",
        folder.name,
        repo_id,
        TOKEN_NAME,
    )


def upload(
    folder: Path,
    files: Sequence[Path],
    repo_id: str,
    *,
    card: str,
    token: str,
    api: Any,
    private: bool,
    message: str,
    repo_type: str = "model",
    prepare: Any = None,
) -> str:
    """Stage ``files`` of ``folder`` with ``card`` as README.md and upload them to a repo."""
    card = scrub(card, token)
    if Path(CARD_NAME) in files:
        log.info("%s/%s is replaced by the generated card in the upload", folder.name, CARD_NAME)
    client = connect(api)
    with _staging(folder, files) as stage:
        if prepare is not None:
            prepare(stage)
        write_bytes_atomic(stage / CARD_NAME, card.encode("utf-8"))
        log.info("pushing %s (%d files + card) to %s", folder.name, len(files), repo_id)
        with hub_errors("push to", repo_id, token):
            url = client.create_repo(
                repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token
            )
            client.upload_folder(
                folder_path=str(stage),
                repo_id=repo_id,
                repo_type=repo_type,
                commit_message=message,
                token=token,
            )
    prefix = "datasets/" if repo_type == "dataset" else ""
    url = str(url) if url else f"{HUB_URL}/{prefix}{repo_id}"
    log.info("pushed to %s", url)
    return url


def push_dataset(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
) -> str | None:
    """Upload a dataset folder written by ``debiaslab synth generate`` as a Hub dataset.

    Uploaded: the parquet splits (``data/``), the dataset card (``README.md``) and the manifest
    (``synth.json``); the raw, unfiltered generations (``raw/``) stay local. Token handling,
    secret checks and errors are those of :func:`push`.

    Returns:
        The dataset's URL, or ``None`` when no token is available (skipped and logged).
    """

    folder = Path(folder)
    check_repo_id(repo_id)
    manifest = read_dataset_manifest(folder)
    files = [f for f in folder_files(folder) if f.parts[0] in ("data", CARD, "synth.json")]
    if not any(f.parts[0] == "data" and f.suffix == ".parquet" for f in files):
        raise ConfigError(f"{folder}: no data/*.parquet to upload")
    token = push_token(folder, files, repo_id, token)
    if token is None:
        return None
    return upload(
        folder,
        files,
        repo_id,
        card=dataset_card(manifest),
        token=token,
        api=api,
        private=private,
        message=commit_message or f"debiaslab {debiaslab.__version__}: upload dataset",
        repo_type="dataset",
    )


def pull(
    repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    api: Any = None,
    local_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Download an adapter (or model) snapshot and return its local directory.

    Only configs, safetensors weights, tokenizer files and the card are fetched
    (:data:`PULL_PATTERNS`). A local directory given as ``repo_id`` is checked and returned as
    is, so offline code can pass a path where it would pass a repo id.

    Args:
        repo_id: ``user/name`` on the Hub, or a local directory: an adapter or model, or a
            fine-tuning run directory (its ``adapter/`` or ``model/`` is returned).
        revision: branch, tag or commit.
        token: Hub token for private repos; default ``get_secret("HF_TOKEN")`` (may be none).
        cache_dir: Hugging Face cache directory (default: the library's).
        api: Hub client (``HfApi``-like); default :func:`default_api`.
        local_root: look for ``repo_id`` as a directory under it first (a notebook's output
            root, where a fine-tuning run left its adapter).

    Raises:
        ConfigError: the repo cannot be reached or read (message without the token), or the
            snapshot holds neither ``adapter_config.json`` nor ``config.json``.
    """
    local = Path(repo_id).expanduser()
    if local_root is not None and (Path(local_root) / local).is_dir():
        local = Path(local_root) / local
    if local.is_dir():
        if (local / MANIFEST).is_file():  # a fine-tuning run: its adapter or full model
            local = next((w for w in (local / "adapter", local / "model") if w.is_dir()), local)
        folder_kind(local)
        return local
    repo_id = str(repo_id)
    if not REPO_ID_RE.match(repo_id):
        raise ConfigError(
            f"{repo_id!r} is neither a local directory nor a Hugging Face repo id ('user/name')"
        )
    token = read_token(token)
    client = connect(api)
    advice = "Offline, pass the local adapter directory instead of the repo id."
    with hub_errors("download", repo_id, token, advice):
        path = client.snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=None if cache_dir is None else str(cache_dir),
            allow_patterns=list(PULL_PATTERNS),
        )
    path = Path(path)
    if not (path / ADAPTER_CONFIG).is_file() and not (path / MODEL_CONFIG).is_file():
        raise ConfigError(
            f"Hugging Face repo {repo_id!r} holds neither {ADAPTER_CONFIG} nor {MODEL_CONFIG} "
            "(or only pickle weights, which debiaslab does not download)"
        )
    log.info("pulled %s to %s", repo_id, path)
    return path
