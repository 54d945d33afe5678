"""Where a model comes from — a preset, a local folder or a Hub repo — checked before loading.

A ``--model`` (or a notebook's ``MODEL``) is looked up in that order; what cannot work fails at
once with one line that names the value and what to do, instead of a transformers traceback or
half a minute of Hub retries. Entry points: :func:`check_model`, :func:`check_adapter`,
:func:`folder_kind`.
"""

from __future__ import annotations

import os
from pathlib import Path

from debiaslab.config import get_preset
from debiaslab.errors import ConfigError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
PICKLE_HINT = (
    "pickle files can run code when loaded, so debiaslab loads safetensors only; if you trust "
    "this file, pass --allow-pickle-weights (debiaslab eval) or use_safetensors=None (Python), "
    "or convert it with save_pretrained(folder)"
)
OFFLINE = "offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)"
CHOICES = "a preset (see `debiaslab models`), a local model folder or a Hub id (owner/name)"


def looks_like_path(name: str) -> bool:
    """Whether ``name`` is written as a file-system path rather than a Hub id.

    Hub ids have at most one ``/`` and never start with ``/``, ``.`` or ``~``.

    Example:
        >>> [looks_like_path(n) for n in ("gpt2", "org/model", "./m", "/m", "~/m", "a/b/c")]
        [False, False, True, True, True, True]
    """
    return (
        name.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or name in (".", "..")
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
        or (os.altsep is not None and os.altsep != "/" and os.altsep in name)
    )


def is_repo_id(name: str) -> bool:
    """Whether ``name`` is a syntactically valid Hugging Face repo id.

    Example:
        >>> [is_repo_id(n) for n in ("gpt2", "google/flan-t5-base", "not a model", "a--b")]
        [True, True, False, False]
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def offline_mode() -> bool:
    """Whether Hugging Face offline mode is on (read now, not when the Hub library loaded)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (value or "").upper() in constants.ENV_VARS_TRUE_VALUES for value in flags
    )


def in_hub_cache(repo_id: str, filename: str, revision: str | None = None) -> bool:
    """Whether ``filename`` of ``repo_id`` is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str)


def _named(name: str, source: str) -> str:
    return repr(name) if name == source else f"{name!r} (Hub id {source!r})"


def check_model(
    name: str,
    source: str | None = None,
    *,
    what: str = "model",
    revision: str | None = None,
    use_safetensors: bool | None = True,
    choices: str = CHOICES,
) -> None:
    """Raise a one-line :class:`ConfigError` if ``name`` cannot be a loadable model.

    Refused at once:

    * a path-like name (``/x``, ``./x``, ``~/x``, ``a/b/c``) that does not exist is a missing
      folder, never looked up on the Hub;
    * a folder without ``config.json``, or with only pickle weights (``*.bin``) while
      safetensors are required (say ``--allow-pickle-weights`` / ``use_safetensors=None`` to
      accept them);
    * a name that is no valid Hub repo id (``name`` or ``owner/name``);
    * with offline mode on (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), a Hub id that is
      not in the local Hugging Face cache.

    A valid Hub id with offline mode off is left to the Hub: only it knows whether the repo
    exists.

    Args:
        name: what the user gave (a preset, a folder or a Hub id).
        source: what it resolves to (a preset's Hub id or folder); default: the preset's
            Hub id, or ``name`` itself. Tiny presets always pass, and so do presets with an
            ``offline`` source while offline mode is on.
        what: the noun in messages (``model``, ``text classifier``).
        revision: Hub revision whose cache entry counts in offline mode.
        use_safetensors: ``True`` refuses a folder with only pickle weights.
        choices: what the user could give instead, in messages.
    """
    if source is None:
        preset = get_preset(name)
        if preset is not None and (preset.tiny or (preset.offline and offline_mode())):
            return  # built or fetched on load (debiaslab.tiny, debiaslab.smollm2)
        source = preset.hub_id if preset is not None else name
    folder = Path(source).expanduser()
    if folder.exists():
        _check_folder(name, folder, what, use_safetensors, choices)
        return
    if looks_like_path(source):
        raise ConfigError(
            f"{what} folder {source} does not exist (a path is not looked up on the Hub): "
            f"check the path, or give {choices}"
        )
    if not is_repo_id(source):
        raise ConfigError(
            f"{what} {name!r} is neither a preset, a local folder nor a valid Hub repo id "
            f"('name' or 'owner/name': letters, digits, '-', '_', '.'): give {choices}"
        )
    if offline_mode() and not in_hub_cache(source, "config.json", revision):
        raise ConfigError(
            f"{what} {_named(name, source)} is no local folder, and not in the local Hugging "
            f"Face cache while {OFFLINE}: download it once with offline mode off, or give "
            f"{choices} that is available here"
        )


def _check_folder(
    name: str, folder: Path, what: str, use_safetensors: bool | None, choices: str
) -> None:
    if not folder.is_dir():
        raise ConfigError(
            f"{what} {name!r}: {folder} is a file; give the folder that holds config.json "
            f"and the weights, or {choices}"
        )
    if not (folder / "config.json").is_file():
        hint = (
            " (it holds a PEFT adapter: give its base model as the model and this folder as "
            "the adapter)"
            if (folder / "adapter_config.json").is_file()
            else ""
        )
        raise ConfigError(
            f"{what} folder {folder} has no config.json, so it is not a saved model{hint}: "
            f"save one with save_pretrained(folder), or give {choices}"
        )
    files = [p.name for p in folder.iterdir() if p.is_file()]
    if use_safetensors and not any(f.endswith(".safetensors") for f in files):
        pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
        if pickles:
            raise ConfigError(
                f"{what} folder {folder} has only pickle weights ({', '.join(pickles[:3])}), "
                f"no safetensors: {PICKLE_HINT}"
            )


def check_adapter(adapter: str, *, revision: str | None = None) -> None:
    """Raise a one-line :class:`ConfigError` if ``adapter`` cannot be a PEFT adapter."""
    folder = Path(adapter).expanduser()
    if folder.exists():
        if folder.is_dir() and (folder / "adapter_config.json").is_file():
            return
        if folder.is_dir() and (folder / "config.json").is_file():
            raise ConfigError(
                f"adapter folder {folder} holds a full model (config.json), not a PEFT adapter "
                "(adapter_config.json): give it as the model, without an adapter"
            )
        raise ConfigError(
            f"adapter {adapter}: {folder} has no adapter_config.json, so it is not a PEFT "
            "adapter: give the adapter folder a fine-tuning run wrote (OUTPUT/adapter) or a "
            "Hub id"
        )
    if looks_like_path(adapter):
        raise ConfigError(
            f"adapter folder {adapter} does not exist (a path is not looked up on the Hub): "
            "check the path, e.g. the OUTPUT/adapter folder of `debiaslab finetune`"
        )
    if not is_repo_id(adapter):
        raise ConfigError(
            f"adapter {adapter!r} is neither a local folder nor a valid Hub repo id "
            "('name' or 'owner/name'): check the spelling"
        )
    if offline_mode() and not in_hub_cache(adapter, "adapter_config.json", revision):
        raise ConfigError(
            f"adapter {adapter!r} is no local folder, and not in the local Hugging Face cache "
            f"while {OFFLINE}: download it once with offline mode off, or give a local adapter "
            "folder"
        )


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (transformers' messages span several)."""
    return " ".join(str(exc).split()).rstrip(".")


# --------------------------------------------------------------------------- saved folders

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a PEFT adapter (``adapter_config.json``).

    Example:
        >>> is_adapter_dir("/nonexistent")
        False
    """
    path = Path(path)
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


def folder_kind(folder: str | os.PathLike[str]) -> str:
    """``"adapter"`` (PEFT adapter) or ``"model"`` (full model) for a folder ready to share.

    Raises:
        ConfigError: not a directory, neither ``adapter_config.json`` nor ``config.json``, or a
            config without weights next to it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a directory (expected a saved adapter or model)")
    if is_adapter_dir(folder):
        if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
            raise ConfigError(
                f"{folder}: has {ADAPTER_CONFIG} but no adapter weights "
                f"({' or '.join(ADAPTER_WEIGHTS)}); save it with model.save_pretrained(folder)"
            )
        return "adapter"
    if (folder / MODEL_CONFIG).is_file():
        if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file()):
            raise ConfigError(
                f"{folder}: has {MODEL_CONFIG} but no weights (*.safetensors or *.bin); "
                "save it with model.save_pretrained(folder)"
            )
        return "model"
    raise ConfigError(
        f"{folder}: holds neither {ADAPTER_CONFIG} (a PEFT adapter) nor {MODEL_CONFIG} (a full "
        "model); point to the directory written by save_pretrained"
    )
