"""Time per notebook of the whole-collection demo (`make demo`), and what running them side by
side gains.

A script, not a test. It runs the collection offline on the tiny presets (or reads a finished
run's ``timings.json`` with ``--from RUN_DIR``) and prints each notebook's seconds, the wall
time against the sum of the notebooks' times (the one-at-a-time baseline, measured in the same
run: the ratio is what the parallel schedule gains), and the wall time against the 10-minute
budget of the issue that made `make demo` the whole collection.

Usage: ``python benchmarks/demo_time.py [--from RUN_DIR] [--workers 2] [--output-root DIR]``
(``DEBIASLAB_DATA_DIR`` locates the benchmark files, as for `make demo`).
"""

from __future__ import annotations

import argparse
import tempfile

from debiaslab import collection

BUDGET_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="run_dir", default=None, help="a finished run folder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output-root", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    if args.run_dir is None:
        root = args.output_root or tempfile.mkdtemp(prefix="debiaslab-demo-")
        summary = collection.run_collection(output_root=root, workers=args.workers)
        args.run_dir = summary.run_dir
    timings = collection.read_timings(args.run_dir)
    steps = sorted(timings["steps"], key=lambda s: -s["seconds"])
    width = max(len(s["name"]) for s in steps)
    for step in steps:
        print(f"{step['name']:<{width}}  {step['seconds']:7.1f} s  {step['status']}")
    total = sum(s["seconds"] for s in steps)
    wall = timings["seconds"]
    print(f"{'sum of notebooks':<{width}}  {total:7.1f} s  (one at a time)")
    print(f"{'wall time':<{width}}  {wall:7.1f} s  (tiny models, notebooks, results, report)")
    print(f"parallel gain: {total / wall:.2f}x; budget use: {wall / BUDGET_SECONDS:.2f} of 600 s")


if __name__ == "__main__":
    main()
