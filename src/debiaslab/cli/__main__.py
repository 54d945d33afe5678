"""``python -m debiaslab.cli VERB ...`` (what ``accelerate launch`` runs for fine-tuning)."""

import sys

from debiaslab.cli import main

sys.exit(main())
