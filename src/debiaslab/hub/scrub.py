"""What may leave the machine for the Hub: no token, no local paths, no secret-looking files.

Cards and error messages are scrubbed (:func:`scrub`: the token, ``hf_...`` strings and local
absolute paths, of which the last part stays); a folder to upload is refused when a file looks
like a credential or contains the token; a local base-model path gives way to its public hub id
(:func:`hub_id`). Example: ``scrub("saved to /home/ana/runs/cda-lora")`` is
``'saved to cda-lora'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from debiaslab.config import get_preset
from debiaslab.errors import ConfigError
from debiaslab.folders import SECRET_NAME, SKIP_DIRS, walk_files

TOKEN_NAME = "HF_TOKEN"  # the secret (environment variable, Kaggle or Colab secret)
HUB_URL = "https://huggingface.co"
REDACTED = "<redacted>"
REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
SCAN_LIMIT = 50 * 2**20  # files up to this size are searched for the token itself
_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
_PATH_CHARS = r"[^\s/\\'\"`|<>()\[\]{},;]"
# A path starts a word: at the start, or after a space, quote, bracket, "=" or ",". Text such as
# "*his*/*him*" or "he/him" has a slash inside a word and is left alone.
_POSIX_PATH_RE = re.compile(rf"(?<![^\s'\"`(\[{{<=,])~?/(?:{_PATH_CHARS}+/)*({_PATH_CHARS}+)/?")
_WINDOWS_PATH_RE = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\'\"`|<>]+\\)*([^\s\\'\"`|<>]+)\\?")


def scrub(text: str, token: str | None = None) -> str:
    """Remove the token, token-like strings and local absolute paths (kept: their last part).

    Example:
        >>> scrub("saved to /home/ana/runs/cda-lora and C:\\\\Users\\\\ana\\\\gpt2")
        'saved to cda-lora and gpt2'
        >>> scrub("see https://huggingface.co/openai-community/gpt2, 8/10, *his*/*him*")
        'see https://huggingface.co/openai-community/gpt2, 8/10, *his*/*him*'
    """
    if token:
        text = text.replace(token, REDACTED)
    text = _HF_TOKEN_RE.sub(REDACTED, text)
    text = _POSIX_PATH_RE.sub(lambda m: m.group(1), text)
    return _WINDOWS_PATH_RE.sub(lambda m: m.group(1), text)


def is_local_path(name: str) -> bool:
    """Whether ``name`` is written as a local path (absolute, ``~``, ``./``, ``../``, ``C:\\``)."""
    return (
        os.path.isabs(name)
        or name.startswith(("~", "./", "../"))
        or bool(re.match(r"^[A-Za-z]:[\\/]", name))
    )


def hub_id(name: str) -> str | None:
    """The hub id that ``name`` (preset or hub id) stands for, or ``None`` (path, tiny model).

    Example:
        >>> hub_id("gpt2"), hub_id("Qwen/Qwen2.5-0.5B"), hub_id("/tmp/x"), hub_id("tiny-gpt2")
        ('openai-community/gpt2', 'Qwen/Qwen2.5-0.5B', None, None)
    """
    preset = get_preset(name)
    if preset is not None:
        return preset.hub_id
    if is_local_path(name) or not REPO_ID_RE.match(name):
        return None
    return name


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`ConfigError` unless ``repo_id`` is a Hub repo id (``user/name``)."""
    if not isinstance(repo_id, str) or not REPO_ID_RE.match(repo_id):
        raise ConfigError(
            f"{repo_id!r} is not a Hugging Face repo id (expected 'user/name', letters, digits, "
            "'-', '_', '.')"
        )


# --------------------------------------------------------------------------- folders to upload


def folder_files(folder: Path, *, warn_links: bool = True) -> list[Path]:
    """Files to upload, relative to ``folder``, sorted; refuses names that look like secrets.

    Symbolic links that leave ``folder`` are skipped, with a warning if ``warn_links``
    (:mod:`debiaslab.folders`).
    """
    files = sorted(walk_files(folder, skip_dir=SKIP_DIRS.__contains__, warn=warn_links))
    secret = [str(f) for f in files if SECRET_NAME.match(f.name)]
    if secret:
        raise ConfigError(
            f"{folder}: refusing to upload files that look like secrets: {', '.join(secret)}. "
            "Move them out of the folder (tokens belong in HF_TOKEN, a Kaggle or Colab secret)."
        )
    return files


def check_no_token(folder: Path, files: Sequence[Path], token: str) -> None:
    """Refuse to upload a (small enough to read) file that contains the token itself."""
    needle = token.encode()
    leaking = []
    for rel in files:
        path = folder / rel
        if path.stat().st_size <= SCAN_LIMIT and needle in path.read_bytes():
            leaking.append(str(rel))
    if leaking:
        raise ConfigError(
            f"{folder}: refusing to upload, the Hugging Face token appears in: "
            f"{', '.join(leaking)}. Remove it from these files first."
        )


# --------------------------------------------------------------------------- errors


def leaks(exc: BaseException, token: str | None) -> bool:
    """Whether the token appears anywhere in an exception or its causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while token and current is not None and id(current) not in seen:
        seen.add(id(current))
        if token in str(current) or token in repr(current.args):
            return True
        current = current.__cause__ or current.__context__
    return False


def hub_error(
    action: str, repo_id: str, exc: Exception, token: str | None, advice: str = ""
) -> ConfigError:
    """A :class:`ConfigError` that says what failed and what to do, without the token."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    detail = scrub(f"{type(exc).__name__}: {exc}", token).strip()
    if len(detail) > 400:
        detail = detail[:400] + " ..."
    if status == 401:
        hint = (
            f"the Hub rejected the token: check {TOKEN_NAME} (environment variable, Kaggle or "
            "Colab secret)"
        )
    elif status == 403:
        hint = "the token may not write to this repo: use a write token and your own namespace"
    elif status == 404:
        hint = "the repo does not exist, or it is private and the token cannot read it"
    else:
        hint = "is this machine online? (on Kaggle: Settings → Internet on)"
    message = f"could not {action} Hugging Face repo {repo_id!r}: {hint}. ({detail})"
    return ConfigError(f"{message} {advice}" if advice else message)


@contextmanager
def hub_errors(action: str, repo_id: str, token: str | None, advice: str = "") -> Iterator[None]:
    """Turn any error of the Hub calls inside into :func:`hub_error`; the original exception is
    chained only when no part of it contains the token."""
    try:
        yield
    except Exception as exc:
        error = hub_error(action, repo_id, exc, token, advice)
        if leaks(exc, token):
            raise error from None
        raise error from exc
