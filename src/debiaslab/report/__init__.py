"""The results notebook's tables and figures, and the paper built from them (``make report``).

``tables`` reads every result under ``results/`` into frames, ``figures`` draws them, ``numbers``
formats what the prose cites, ``paper`` writes ``report/generated/`` and compiles the PDF; the
prose lives in ``sections/*.typ`` (Typst). Every result is marked tiny offline or real checkpoint.

Example (the results notebook): ``results = report.load("results")``,
``drawn = report.figures(results, "figures")``, ``report.show(drawn["prepost_forest"])``.
"""

from debiaslab.report.figures import figures, show
from debiaslab.report.paper import build
from debiaslab.report.tables import load, provenance

__all__ = ["build", "figures", "load", "provenance", "show"]
