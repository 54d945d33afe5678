"""A Kaggle session's limits in this process: the network off, the inputs read-only.

For the emulated-Kaggle collection run (:mod:`debiaslab.collection`), which puts a
``sitecustomize`` that calls :func:`install` on the ``PYTHONPATH`` of every notebook, so code
that reaches for the network, or writes into another notebook's output, fails the run here
instead of on Kaggle.

* Network: every connection to a non-loopback address, and every name lookup of a host other
  than this machine, fails at once with an error that says why. Loopback stays open
  (Jupyter's kernel talks to papermill over it).
* Inputs: opening a file for writing, creating, renaming or deleting anything under a
  read-only root (the input root and the folders mounted in it) fails with ``EROFS``, as on
  Kaggle's read-only ``/kaggle/input``. The collection also drops the write permission bits,
  which is all a non-root user needs; this covers root, whom permission bits do not stop.
  Python-level file calls only (``open``, ``os.open``, ``os.mkdir``, ``os.rename``, ...).
"""

from __future__ import annotations

import builtins
import errno
import io
import ipaddress
import os
import socket
from collections.abc import Sequence

MESSAGE = "the network is off in this session (debiaslab's emulated Kaggle run)"
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_local(host: object) -> bool:
    """Whether ``host`` (a name or address) is this machine.

    Example:
        >>> is_local("127.0.0.1"), is_local("::1"), is_local("localhost"), is_local("10.0.0.1")
        (True, True, True, False)
    """
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in _LOCAL_NAMES or name == "":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def install(read_only: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Refuse non-loopback connections and lookups, and writes under ``read_only`` (each
    folder and, resolved, every folder linked directly inside it), in this process."""
    if read_only:
        _protect(read_only)
    if getattr(socket.socket.connect, "_debiaslab_guard", False):
        return
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise OSError(errno.ENETUNREACH, f"{MESSAGE}: cannot reach {address[0]}")
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            return errno.ENETUNREACH
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{MESSAGE}: cannot look up {host}")
        return getaddrinfo(host, *args, **kwargs)

    guarded_connect._debiaslab_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo


def _roots(folders: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    roots = []
    for folder in folders:
        roots.append(os.path.realpath(folder))
        if os.path.isdir(folder):
            roots += [os.path.realpath(entry.path) for entry in os.scandir(folder)]
    return tuple(sorted(set(roots)))


def _protect(folders: Sequence[str | os.PathLike[str]]) -> None:
    roots = _roots(folders)

    def blocked(path) -> bool:
        if isinstance(path, int) or not isinstance(path, str | bytes | os.PathLike):
            return False
        real = os.path.realpath(os.fsdecode(path))
        return any(real == root or real.startswith(root + os.sep) for root in roots)

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))

    real_open = io.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+") and blocked(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    os_open = os.open

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & writing and blocked(path):
            refuse(path)
        return os_open(path, flags, *args, **kwargs)

    def one_path(call):
        def guarded(path, *args, **kwargs):
            if blocked(path):
                refuse(path)
            return call(path, *args, **kwargs)

        return guarded

    def two_paths(call, *, source_too: bool = True):
        def guarded(src, dst, *args, **kwargs):
            for path in (src, dst) if source_too else (dst,):
                if blocked(path):
                    refuse(path)
            return call(src, dst, *args, **kwargs)

        return guarded

    builtins.open = io.open = guarded_open
    os.open = guarded_os_open
    for name in ("mkdir", "rmdir", "remove", "unlink", "chmod", "utime", "truncate"):
        setattr(os, name, one_path(getattr(os, name)))
    for name in ("rename", "replace"):
        setattr(os, name, two_paths(getattr(os, name)))
    for name in ("link", "symlink"):  # a new link may point into the inputs, not lie there
        setattr(os, name, two_paths(getattr(os, name), source_too=False))
