"""Walk a folder that is about to be copied or uploaded, never leaving it through a link.

:func:`walk_files` is the one walk ``debiaslab results gather`` and the Hub uploads (``results
push``, ``push``, ``synth push``) use: a link inside the folder is read as its file, a link
that leaves it is skipped with a warning and never read. It also holds what both leave out:
:data:`SKIP_DIRS` (version control, caches) and :data:`SECRET_NAME` (names that look like
credentials).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# Never uploaded, never looked into: version control, caches, notebook autosaves.
SKIP_DIRS = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".cache"})
# File names that look like credentials. ``tokenizer.json`` / ``special_tokens_map.json`` do not
# match: "token" must stand alone between separators.
SECRET_NAME = re.compile(
    r"^(?:\.env(?:\..*)?|\.netrc|\.git-credentials|id_(?:rsa|dsa|ecdsa|ed25519)(?:\.pub)?"
    r"|.*\.(?:pem|key|p12|pfx)"
    r"|(?:.*[_.-])?(?:token|secrets?|credentials?|api[_-]?key|password)(?:[_.-].*)?)$",
    re.IGNORECASE,
)


def _leaves(path: Path, roots: list[Path]) -> str | None:
    """Why ``path`` is a symbolic link not to follow (its target outside ``roots``, or a loop),
    or ``None`` (not a link, or a link inside the first or another allowed root)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13)
        return "a symbolic link loop"
    if any(target.is_relative_to(root) for root in roots):
        return None
    return f"a symbolic link to {target}, outside {roots[0]}"


def walk_files(
    folder: str | os.PathLike[str],
    *,
    skip_dir: Callable[[str], bool] = lambda name: False,
    warn: bool = True,
    links_within: str | os.PathLike[str] | None = None,
) -> Iterator[Path]:
    """The regular files under ``folder``, relative to it, in sorted walk order.

    A symbolic link in a folder about to be copied or uploaded can point anywhere:
    ``results/gpt2/notes.json -> ~/.ssh/id_ed25519`` would copy or upload a file that was never
    part of the run. So:

    * a link whose target (every link along the way resolved) lies inside the folder is read
      as the file it points to, like a plain file;
    * a link that leaves the folder, to a file or a folder, is skipped with a warning naming
      the link and its target, and never read. Skipped rather than refused: notebook outputs
      often hold links to input data or model caches (Kaggle's ``/kaggle/input``, a Drive
      mount) that are not results, and one such link should not block bringing the results
      home;
    * a Hugging Face cache snapshot (``results pull``) is a folder of links into its
      repository's ``blobs`` folder: that one folder may be named as a second place links can
      point into (``links_within``);
    * links to folders are never descended (a folder inside is walked anyway; a broken link or
      a link to something that is not a regular file is skipped).

    Args:
        folder: the folder to walk.
        skip_dir: folder names not to enter (e.g. ``.git``).
        warn: log each skipped link as a warning (else at debug level: a second walk of a
            folder already warned about).
        links_within: one more folder that links may point into (a Hugging Face cache
            snapshot's files are links into the repository's ``blobs`` folder).

    Yields:
        Paths relative to ``folder`` of regular files (or links to regular files inside it).
    """
    root = Path(folder)
    real_roots = [root.resolve()]
    if links_within is not None:
        real_roots.append(Path(links_within).resolve())
    for dirpath, dirs, names in os.walk(root):  # followlinks=False: linked folders not entered
        here = Path(dirpath)
        for name in dirs:
            why = _leaves(here / name, real_roots)
            if why is not None and not skip_dir(name):
                _skipped(here / name, why, warn)
        dirs[:] = sorted(d for d in dirs if not skip_dir(d))
        for name in sorted(names):
            path = here / name
            why = _leaves(path, real_roots)
            if why is not None:
                _skipped(path, why, warn)
            elif path.is_file():
                yield path.relative_to(root)
            else:
                log.debug("skipped (not a regular file, or a broken link): %s", path)


def _skipped(link: Path, why: str, warn: bool) -> None:
    log.log(
        logging.WARNING if warn else logging.DEBUG,
        "skipped %s: %s (links that leave the folder are never followed; copy the file in if "
        "it belongs to the run)",
        link,
        why,
    )
