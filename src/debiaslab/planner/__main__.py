"""``python -m debiaslab.planner [hardware ...]``: the memory plan of every preset per machine."""

import sys

from debiaslab.planner.table import verdict_table

if __name__ == "__main__":
    for name in sys.argv[1:] or ["t4x2"]:
        print(verdict_table(name, include_tiny=name == "cpu-ci"), end="\n\n")
