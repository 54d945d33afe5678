"""Checks of user input made before anything loads: numbers, output folders, write failures.

Each number check (:class:`NumberCheck`) is both an argparse ``type=`` and a check for API
values (:func:`require`), so the command line and the Python API say the same thing; output
folders are checked by :func:`check_output_dir`, write failures worded by :func:`write_error`.

Example:
    >>> positive_int("3"), require(non_negative_int, "n_boot", 0), require(probability, "p", None)
    (3, 0, None)
    >>> require(positive_int, "batch_size", 0)
    Traceback (most recent call last):
    ...
    debiaslab.errors.ConfigError: batch_size must be an integer >= 1, got 0
"""

from __future__ import annotations

import argparse
import errno
import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from debiaslab.errors import ConfigError, OutputError


class NumberCheck:
    """A number type with a condition: an argparse ``type=`` and a check for API values.

    Used two ways, so the command line and the Python API say the same thing:

    * as an argparse ``type=`` — ``debiaslab eval --n-boot -5`` stops at parse time with
      ``argument --n-boot: must be an integer >= 0, got '-5'``;
    * through :func:`require` — ``EvalConfig(..., n_boot=-5)`` raises
      :class:`~debiaslab.errors.ConfigError` ``n_boot must be an integer >= 0, got -5`` before
      a model or a data file is read.

    Args:
        kind: ``int`` or ``float``.
        test: the condition a parsed value must meet.
        requirement: what the condition says, in words (``an integer >= 1``).
        name: the type's name in argparse messages and ``repr``.
    """

    def __init__(self, kind: type, test: Callable[[Any], bool], requirement: str, name: str):
        self.kind, self.test, self.requirement, self.__name__ = kind, test, requirement, name

    def __repr__(self) -> str:
        return self.__name__

    def parse(self, value: Any) -> int | float:
        """``value`` (a flag's text or a Python number) as a checked number; ValueError if not."""
        if isinstance(value, bool):  # True is an int to Python, never to a user
            raise ValueError(value)
        if self.kind is int:
            if isinstance(value, str):
                number = int(value.strip())
            elif isinstance(value, numbers.Integral):
                number = int(value)
            else:
                raise ValueError(value)
        else:
            if not isinstance(value, str | numbers.Real):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
        if not self.test(number):
            raise ValueError(value)
        return number

    def __call__(self, text: str) -> int | float:
        """argparse's ``type=``: the message names the requirement and the value given."""
        try:
            return self.parse(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {self.requirement}, got {text!r}") from None


def require(check: NumberCheck, name: str, value: Any) -> Any:
    """``value`` if ``check`` accepts it (``None`` passes: "not given"), else ConfigError.

    The message names the argument, the requirement and the value.
    """
    if value is None:
        return None
    try:
        return check.parse(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {check.requirement}, got {value!r}") from None


positive_int = NumberCheck(int, lambda v: v >= 1, "an integer >= 1", "positive_int")
non_negative_int = NumberCheck(int, lambda v: v >= 0, "an integer >= 0", "non_negative_int")
positive_float = NumberCheck(float, lambda v: v > 0, "a number > 0", "positive_float")
non_negative_float = NumberCheck(float, lambda v: v >= 0, "a number >= 0", "non_negative_float")
probability = NumberCheck(float, lambda v: 0 <= v <= 1, "a number in [0, 1]", "probability")
# Toxicity threshold: a score >= threshold counts as toxic, so 0 makes every text toxic and
# anything above 1 none: both are ratios fixed by construction.
threshold = NumberCheck(float, lambda v: 0 < v <= 1, "a number in (0, 1]", "threshold")
# Nucleus mass as transformers accepts it.
top_p = NumberCheck(float, lambda v: 0 < v <= 1, "a number in (0, 1]", "top_p")
# Shares that must leave something on both sides (held-out texts, dropout).
fraction = NumberCheck(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "fraction")
open_fraction = NumberCheck(float, lambda v: 0 < v < 1, "a number in (0, 1)", "open_fraction")
cosine = NumberCheck(float, lambda v: -1 <= v <= 1, "a number in [-1, 1]", "cosine")
# Stable Diffusion's VAE works on 8-pixel blocks: other sizes fail inside the pipeline.
image_size = NumberCheck(
    int, lambda v: v >= 8 and v % 8 == 0, "a multiple of 8 (pixels), at least 8", "image_size"
)


# ------------------------------------------------------------------------ output folders


def output_problem(path: str | os.PathLike) -> str | None:
    """Why results cannot be written under the folder ``path`` (None: nothing found).

    The folder need not exist (it is created); what is checked is that neither it nor a
    parent is a file, and that the nearest existing folder is writable.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        return f"{path} is a file, not a folder: give a folder for the output (created if missing)"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return (
            f"{path} is under {existing}, which is a file, not a folder: give a folder for the "
            "output (created if missing)"
        )
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        return (
            f"{existing} is not writable (read-only or no permission), so {path} cannot be "
            "written: choose another output folder or fix its permissions"
        )
    return None


def output_dir(text: str) -> str:
    """argparse ``type=`` of an output folder: fails at parse time on a file in the way or a
    read-only folder; returns the text unchanged."""
    problem = output_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def check_output_dir(path: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` if results cannot be written under ``path``."""
    problem = output_problem(path)
    if problem:
        raise ConfigError(problem)


# Errors that mean "this machine cannot write there", not "debiaslab has a bug".
WRITE_ERRNOS = {
    errno.ENOSPC: "the disk is full: free some space or choose an output folder on another disk",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another output folder",
    errno.EROFS: "the file system is read-only: choose another output folder",
    errno.EACCES: "permission denied: choose another output folder or fix its permissions",
    errno.EPERM: "operation not permitted: choose another output folder or fix its permissions",
    errno.ENOTDIR: "a file is in the way of a folder on that path: choose another output folder",
    errno.EEXIST: "a file is in the way of a folder on that path: choose another output folder",
    errno.EISDIR: "a folder is in the way of a file on that path: choose another output folder",
}


def is_write_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError a user fixes by freeing space or choosing a folder."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def write_error(
    exc: OSError, path: str | os.PathLike | None = None, *, atomic: bool = False
) -> OutputError:
    """One-line :class:`OutputError` for a failed write: what failed, where, what to do.

    ``atomic``: the writer leaves nothing half-written (the message says so).

    Example:
        >>> str(write_error(OSError(errno.ENOSPC, "No space left on device"), "out/r.json"))
        'cannot write out/r.json: the disk is full: free some space or choose an output \
folder on another disk'
    """
    where = path if path is not None else exc.filename
    advice = WRITE_ERRNOS.get(exc.errno) or " ".join(str(exc.strerror or exc).split())
    target = f"cannot write {where}" if where is not None else "cannot write the output"
    kept = " (nothing was left half-written; earlier results are unchanged)" if atomic else ""
    return OutputError(f"{target}: {advice}{kept}")
