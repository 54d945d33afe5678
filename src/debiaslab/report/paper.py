"""The paper: generated sections plus the repository's static source, compiled with Typst.

:func:`build` draws the figures, writes ``report/generated/`` (``numbers.json`` from
:mod:`debiaslab.report.numbers` and the prose of ``sections/*.typ`` that reads it) and compiles
``report/paper.typ`` to ``report/debiaslab-report.pdf``. No number in the paper is typed by
hand: change a result file, rebuild, and the paper follows.

A stale PDF is caught without Typst: :func:`digest` hashes the generated text (every number and
table of ``numbers.json`` but the figures' paths) with the prose sources; the build writes it to
``generated/digest.txt``, which ``paper.typ`` puts in the PDF's keywords (and under the title),
and :func:`pdf_digests` finds it again in the PDF's bytes, compressed streams included.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import zlib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from debiaslab.env import repo_root
from debiaslab.errors import ConfigError
from debiaslab.io import write_bytes_atomic
from debiaslab.report.figures import figures
from debiaslab.report.numbers import numbers
from debiaslab.report.tables import Results, load

PAPER = "paper.typ"
PDF = "debiaslab-report.pdf"
GENERATED = "generated"
NUMBERS = "numbers.json"  # what the sections read (``#let n = json("numbers.json")``)
SECTIONS = ("lib.typ", "abstract.typ", "setup.typ", "results.typ")  # shipped in sections/
DIGEST = "digest.txt"  # generated/: what paper.typ writes into the PDF's keywords
DIGEST_PREFIX = "debiaslab-generated-sha256:"
STATIC = ("paper.typ", "references.bib")  # with sections/*.typ: the report's static source
_DIGEST_RE = re.compile(rb"debiaslab-generated-sha256:([0-9a-f]{64})")
_STREAM_RE = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")


def prose_sources(report_dir: str | Path) -> dict[str, bytes]:
    """The report's words: the package's generated sections and ``report_dir``'s static source
    (``paper.typ``, ``references.bib``, ``sections/*.typ``), by name."""
    report_dir = Path(report_dir)
    sections = resources.files("debiaslab.report") / "sections"
    out = {f"package/{name}": (sections / name).read_bytes() for name in SECTIONS}
    for name in STATIC:
        if (report_dir / name).is_file():
            out[name] = (report_dir / name).read_bytes()
    for path in sorted((report_dir / "sections").glob("*.typ")):
        out[f"sections/{path.name}"] = path.read_bytes()
    return out


def digest(results: Results, report_dir: str | Path) -> str:
    """sha256 of the generated text (``numbers.json`` without the figures' file paths, which
    depend only on where figures go) and the prose sources: the same results and words give
    the same digest on any machine; any changed number or word gives another."""
    return digest_of(numbers(results, {}, Path(report_dir) / GENERATED), report_dir)


def digest_of(data: Mapping[str, Any], report_dir: str | Path) -> str:
    """:func:`digest` of numbers already computed (``numbers.json``'s content)."""
    data = {**data, "results": {k: v for k, v in data["results"].items() if k != "figures"}}
    hasher = hashlib.sha256(_canonical(data))
    for name, content in sorted(prose_sources(report_dir).items()):
        hasher.update(b"\0" + name.encode("utf-8") + b"\0" + hashlib.sha256(content).digest())
    return hasher.hexdigest()


def pdf_digests(pdf: bytes) -> set[str]:
    """The generated-text digests a PDF carries (:data:`DIGEST_PREFIX` + 64 hex digits): in
    its bytes as written, as UTF-16 (how PDF metadata strings may be encoded) and inside its
    Flate-compressed streams (XMP metadata, object streams)."""
    found = set(_DIGEST_RE.findall(pdf))
    for utf16, start in itertools.product(("utf-16-be", "utf-16-le"), (0, 1)):
        text = pdf[start:].decode(utf16, "ignore")  # a string may start at an odd byte
        found |= {m.encode() for m in re.findall(_DIGEST_RE.pattern.decode(), text)}
    for stream in _STREAM_RE.findall(pdf):
        try:
            found |= set(_DIGEST_RE.findall(zlib.decompress(stream)))
        except zlib.error:
            continue
    return {d.decode("ascii") for d in found}


def write_generated(results: Results, drawn: Mapping[str, list[Path]], out: Path) -> list[Path]:
    """Write ``numbers.json`` and the sections that read it into ``out`` (atomically); return
    the paths. ``paper.typ`` includes ``generated/{abstract,setup,results}.typ``."""
    data = numbers(results, drawn, out)
    text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    paths = [write_bytes_atomic(out / NUMBERS, text.encode("utf-8"))]
    sections = resources.files("debiaslab.report") / "sections"
    for name in SECTIONS:
        paths.append(write_bytes_atomic(out / name, (sections / name).read_bytes()))
    stamp = DIGEST_PREFIX + digest_of(data, out.parent)
    paths.append(write_bytes_atomic(out / DIGEST, stamp.encode("ascii")))
    return paths


def compile_pdf(report_dir: str | Path, root: str | Path | None = None) -> Path:
    """Compile ``report_dir/paper.typ`` to ``report_dir/debiaslab-report.pdf`` (atomically)."""

    try:
        import typst
    except ImportError as exc:
        raise ConfigError(
            "building the report needs Typst: pip install 'debiaslab[report]' (the figures "
            "and tables need only the package)"
        ) from exc

    report_dir = Path(report_dir)
    try:
        pdf = typst.compile(str(report_dir / PAPER), root=str(root or report_dir.parent))
    except Exception as exc:  # typst raises its own error types with the source location
        raise ConfigError(
            f"{report_dir / PAPER}: Typst could not compile the report: {exc}"
        ) from exc
    return write_bytes_atomic(report_dir / PDF, pdf)


def build(
    results_dir: str | Path = "results",
    figures_dir: str | Path = "figures",
    report_dir: str | Path = "report",
    *,
    log: Callable[[str], None] = print,
) -> Path:
    """Figures, generated sections and the PDF from the results; return the PDF's path.

    The paper's static source (``report/paper.typ``, ``sections/``, ``references.bib``) is
    the repository's; a ``report_dir`` elsewhere gets a copy of it first.
    """
    results = load(results_dir)
    drawn = figures(results, figures_dir)
    report_dir = Path(report_dir)
    source = repo_root() / "report"
    if report_dir.resolve() != source.resolve():
        for name in (PAPER, "references.bib", "sections"):
            src, dst = source / name, report_dir / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    write_generated(results, drawn, report_dir / GENERATED)
    root = os.path.commonpath([report_dir.resolve(), Path(figures_dir).resolve()])
    pdf = compile_pdf(report_dir, root)
    log(f"[report] {len(drawn)} figures in {figures_dir}; report: {pdf}")
    return pdf


def main(argv: list[str] | None = None) -> int:
    """``python -m debiaslab.report [RESULTS FIGURES REPORT]``: what ``make report`` runs."""
    args = sys.argv[1:] if argv is None else argv
    build(*args[:3])
    return 0
