"""The results notebook's tables and figures, and the paper built from them (``make report``).

``tables`` reads every result under ``results/`` into frames, ``figures`` draws them, ``numbers``
formats what the prose cites, ``paper`` writes ``report/generated/`` and compiles the PDF; the
prose lives in ``sections/*.typ`` (Typst). Every result is marked tiny offline or real checkpoint;
``findings`` gives the headline findings (real model first, each with its interval and n) that
lead the paper and end the demo (:func:`headline_rows`, :func:`format_findings`).

Example (the results notebook): ``results = report.load("results")``,
``drawn = report.figures(results, "figures")``, ``report.show(drawn["prepost_forest"])``.
"""

from debiaslab.plots import show
from debiaslab.report.figures import figures
from debiaslab.report.findings import Finding, format_findings, headline_rows
from debiaslab.report.paper import build
from debiaslab.report.tables import load, provenance

__all__ = [
    "Finding",
    "build",
    "figures",
    "format_findings",
    "headline_rows",
    "load",
    "provenance",
    "show",
]
