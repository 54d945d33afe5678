"""``python -m debiaslab.report [RESULTS FIGURES REPORT]``: figures and the PDF report."""

from debiaslab.report.paper import main

if __name__ == "__main__":
    raise SystemExit(main())
