"""``debiaslab data pull``: fill a data folder with every registered file, verified.

Each file comes from the first place that has it, in :func:`debiaslab.data.fetch.resolve`'s
order with ``--from DIR`` as the explicit path: ``DIR`` → ``$DEBIASLAB_DATA_DIR`` → cache →
download. Files already there with the right checksum are skipped, so a pull resumes.
Example: ``debiaslab data pull --out data/`` then ``DEBIASLAB_DATA_DIR=data`` works offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from debiaslab import validate as check
from debiaslab.data import fetch
from debiaslab.errors import ChecksumError, ConfigError, DataNotFoundError


@dataclass
class PullReport:
    """What one pull did, file by file (relpaths below the output folder)."""

    copied: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # relpath → one-line reason

    def summary(self) -> str:
        return (
            f"{len(self.copied)} copied, {len(self.downloaded)} downloaded, "
            f"{len(self.present)} already present, {len(self.failed)} failed"
        )


def select(only: Iterable[str] | None = None) -> dict[str, fetch.RemoteFile]:
    """Registry entries named in ``only`` (entry or benchmark names); all when ``None``.

    Raises:
        ConfigError: a name is neither an entry nor a benchmark.
    """
    if not only:
        return dict(fetch.REGISTRY)
    wanted = set(only)
    benchmarks = {remote.benchmark for remote in fetch.REGISTRY.values()}
    unknown = sorted(wanted - set(fetch.REGISTRY) - benchmarks)
    if unknown:
        raise ConfigError(
            f"--only {', '.join(unknown)}: not in the data registry; benchmarks: "
            f"{', '.join(sorted(benchmarks))}; files: {', '.join(fetch.REGISTRY)}"
        )
    return {
        name: remote
        for name, remote in fetch.REGISTRY.items()
        if name in wanted or remote.benchmark in wanted
    }


def pull(
    out: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    only: Iterable[str] | None = None,
    echo=None,
) -> PullReport:
    """Put every selected registry file at ``out/<file>``, checksum-verified and atomically.

    Args:
        out: the data folder to fill.
        source: a local folder laid out like ``out`` (e.g. another data folder) to copy from.
        only: entry or benchmark names (see :func:`select`); default all.
        echo: called with one line per file acted on (e.g. ``print``).

    Returns:
        A :class:`PullReport`; a file that failed (wrong checksum, no source, no network) is
        listed with its one-line reason and leaves nothing at its destination.
    """
    report = PullReport()
    root = Path(out)
    say = echo or (lambda line: None)
    for name, remote in select(only).items():
        dest = root / remote.relpath
        try:
            if dest.is_file() and _verifies(dest, remote):
                report.present.append(remote.relpath)
                continue
            local = _local_copy(name, remote, source, dest)
            if local is not None:
                fetch.copy_verified(local, remote, dest)
                report.copied.append(remote.relpath)
                say(f"copied {remote.relpath} from {local}")
            else:
                fetch.download(remote, dest)
                report.downloaded.append(remote.relpath)
                say(f"downloaded {remote.relpath} from {remote.url}")
        except (ChecksumError, DataNotFoundError) as exc:
            report.failed[remote.relpath] = str(exc)
    return report


def _verifies(path: Path, remote: fetch.RemoteFile) -> bool:
    try:
        fetch.verify(path, remote)
    except ChecksumError:
        return False  # replaced below, atomically
    return True


def _local_copy(
    name: str, remote: fetch.RemoteFile, source: str | os.PathLike | None, dest: Path
) -> Path | None:
    """A local file to copy, by ``resolve``'s order without downloading; ``None`` if none."""
    explicit = Path(source) / remote.relpath if source is not None else None
    try:
        found = fetch.resolve(
            name, explicit if explicit and explicit.is_file() else None, download_ok=False
        )
    except DataNotFoundError:
        return None
    # the destination itself (out is $DEBIASLAB_DATA_DIR) failed verification: fetch anew
    return None if found.resolve() == dest.resolve() else found


def add_data_commands(subparsers) -> None:
    """Register ``debiaslab data pull`` and ``debiaslab data list`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "data",
        help="benchmark files: list the registry, pull every file into a folder for offline use",
        description="The download registry is data/registry.yaml (URL, sha256, licence, "
        "citation per file). Check each file's licence before you redistribute it.",
    )
    verbs = parser.add_subparsers(dest="data_verb", required=True, metavar="DATA_VERB")
    pl = verbs.add_parser(
        "pull",
        help="copy or download every registered file into --out, checksum-verified (resumes)",
        description="Each file comes from --from DIR, else $DEBIASLAB_DATA_DIR, else the cache, "
        "else its pinned download address. Files already in --out with the right checksum "
        "are skipped. Afterwards DEBIASLAB_DATA_DIR=OUT makes every loader work offline.",
    )
    pl.add_argument("--out", type=check.output_dir, default="data", help="data folder to fill")
    pl.add_argument("--from", dest="source", help="a local data folder to copy from")
    pl.add_argument(
        "--only", nargs="+", metavar="NAME", help="registry entries or benchmarks (default: all)"
    )
    pl.set_defaults(func=cmd_data_pull)
    ls = verbs.add_parser("list", help="the registry: name, benchmark, file, size, licence")
    ls.set_defaults(func=cmd_data_list)


def cmd_data_pull(args: argparse.Namespace) -> int:
    if args.source is not None and not Path(args.source).is_dir():
        raise ConfigError(f"--from {args.source}: no such folder")
    report = pull(args.out, source=args.source, only=args.only, echo=print)
    for line in report.failed.values():
        print(f"debiaslab data pull: error: {line}", file=sys.stderr)
    print(f"{args.out}: {report.summary()}")
    return 1 if report.failed else 0


def cmd_data_list(args: argparse.Namespace) -> int:
    for name, remote in fetch.REGISTRY.items():
        size = "?" if remote.size is None else f"{remote.size:,}"
        print(f"{name}\t{remote.benchmark}\t{remote.relpath}\t{size} bytes\t{remote.licence}")
    return 0
