"""Will it fit? Parameter counts and a training-memory estimate per preset and machine, offline.

``architecture`` builds a config offline and counts parameters on the meta device, ``memory``
estimates one training step's peak, ``table`` plans every method of a preset on a machine
(``plan``) and prints the verdict table of docs/planner.md (``python -m debiaslab.planner t4x2``).

Example:
    >>> count_parameters(config_for("gpt2")).total
    124439808
    >>> [(r.method, r.fits) for r in plan("bloomz-3b", "t4x2")]
    [('full', False), ('lora', True), ('qlora', True)]
"""

from debiaslab.config import HARDWARE
from debiaslab.planner.architecture import (
    DEFAULT_LORA_TARGETS,
    ParameterCount,
    config_for,
    count_parameters,
)
from debiaslab.planner.memory import GIB, MemoryEstimate, estimate_memory
from debiaslab.planner.table import (
    BATCH_SIZES,
    PlanRow,
    format_plan,
    plan,
    plan_all,
    verdict_table,
)

__all__ = [
    "BATCH_SIZES",
    "DEFAULT_LORA_TARGETS",
    "GIB",
    "HARDWARE",
    "MemoryEstimate",
    "ParameterCount",
    "PlanRow",
    "config_for",
    "count_parameters",
    "estimate_memory",
    "format_plan",
    "plan",
    "plan_all",
    "verdict_table",
]
