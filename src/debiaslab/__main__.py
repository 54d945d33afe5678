"""``python -m debiaslab VERB ...``: the same as the ``debiaslab`` command (where the console
script is not on PATH, as in a notebook kernel's environment)."""

import sys

from debiaslab.cli import main

sys.exit(main())
