"""The memory plan: which training methods of a preset fit a machine, and docs/planner.md's table.

:func:`plan` estimates full fine-tuning, LoRA and QLoRA at a preset's ``models.yaml`` settings
for a machine of :data:`~debiaslab.config.HARDWARE` and finds the largest batch that fits, with
and without gradient checkpointing; :func:`format_plan` and :func:`verdict_table` print them
(``python -m debiaslab.planner t4x2``).
"""

from __future__ import annotations

from dataclasses import dataclass

from debiaslab.config import (
    HARDWARE,
    METHOD_QUANTIZATIONS,
    METHODS,
    Hardware,
    HardwareSettings,
    ModelPreset,
    presets,
)
from debiaslab.errors import ConfigError
from debiaslab.planner.architecture import as_preset
from debiaslab.planner.memory import GIB, MemoryEstimate, estimate_memory

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class PlanRow:
    """One method of one preset on one machine.

    Attributes:
        preset: preset name.
        hardware: key of :data:`HARDWARE`.
        method: ``full``, ``lora`` or ``qlora``.
        quantization: bitsandbytes quantization of the base (``None``, ``8bit``, ``4bit``).
        precision: ``fp16`` (mixed) or ``fp32``.
        settings: the settings estimated (the preset's, with this row's method).
        estimate: the memory estimate at ``settings``.
        fits: whether ``estimate`` fits one device (always true where memory is unchecked).
        max_batch: the largest batch in :data:`BATCH_SIZES` that fits without gradient
            checkpointing (0: none).
        max_batch_checkpointing: the same with gradient checkpointing.
        chosen: whether this is the method ``models.yaml`` sets for this machine.
        note: caveats (precision, device).
    """

    preset: str
    hardware: str
    method: str
    quantization: str | None
    precision: str
    settings: HardwareSettings
    estimate: MemoryEstimate
    fits: bool
    max_batch: int
    max_batch_checkpointing: int
    chosen: bool
    note: str = ""


def _default_settings(preset: ModelPreset, hardware: str) -> HardwareSettings:
    gpu = HARDWARE[hardware].n_gpus > 0
    return HardwareSettings(
        "full", batch_size=8, seq_len=128, fp16=gpu and preset.fp16_ok, grad_accum=1
    )


def _fits(est: MemoryEstimate, memory_gib: float | None) -> bool:
    return memory_gib is None or est.total <= memory_gib * GIB


def _estimate_at(
    preset: ModelPreset, s: HardwareSettings, hw: Hardware, batch: int, checkpointing: bool
) -> MemoryEstimate:
    return estimate_memory(
        preset,
        method=s.method,
        batch_size=batch,
        seq_len=s.seq_len,
        dtype="float16" if s.fp16 else "float32",
        quantization=s.quantization,
        gradient_checkpointing=checkpointing,
        data_parallel=hw.n_gpus > 1,
    )


def plan(preset: str | ModelPreset, hardware: str) -> list[PlanRow]:
    """Whether full fine-tuning, LoRA and QLoRA of a preset fit a machine.

    Each method is estimated at the preset's settings for ``hardware`` (batch size, sequence
    length, checkpointing, precision; ``models.yaml``), and the largest batch of
    :data:`BATCH_SIZES` that fits is searched with checkpointing off and on.

    Args:
        preset: a preset name or :class:`ModelPreset`.
        hardware: a key of :data:`HARDWARE` (``t4x2``, ``p100``, ``cpu-ci``).

    Returns:
        One :class:`PlanRow` per method, in the order full, lora, qlora.

    Raises:
        ConfigError: unknown preset or hardware (the message lists the known ones).

    Example:
        >>> [(r.method, r.fits) for r in plan("bloomz-3b", "t4x2")]
        [('full', False), ('lora', True), ('qlora', True)]
    """
    if hardware not in HARDWARE:
        raise ConfigError(f"unknown hardware {hardware!r}; expected one of {', '.join(HARDWARE)}")
    found = as_preset(preset)
    if found is None:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(presets())}")
    hw = HARDWARE[hardware]
    configured = found.hardware.get(hardware)
    base = configured or _default_settings(found, hardware)
    notes = []
    if configured is None:
        notes.append(f"no {hardware} settings in models.yaml: defaults")
    if not base.fp16 and hw.n_gpus and not found.fp16_ok:
        notes.append("fp32: fp16 overflows")
    if found.dtype == "bfloat16" and not hw.bf16 and hw.n_gpus:
        notes.append("bf16 checkpoint run in fp16" if base.fp16 else "bf16 checkpoint in fp32")
    rows = []
    for method in METHODS:
        if configured is not None and method == configured.method:
            quantization = configured.quantization
        else:
            quantization = METHOD_QUANTIZATIONS[method][-1] if method == "qlora" else None
        settings = HardwareSettings(
            **{**base.__dict__, "method": method, "quantization": quantization}
        )
        row_notes = list(notes)
        usable = hw.n_gpus > 0 or quantization is None
        if not usable:
            row_notes.append("bitsandbytes training needs a GPU")
        ok = {
            ckpt: [
                b
                for b in BATCH_SIZES
                if usable and _fits(_estimate_at(found, settings, hw, b, ckpt), hw.memory_gib)
            ]
            for ckpt in (False, True)
        }
        est = _estimate_at(
            found, settings, hw, settings.batch_size, settings.gradient_checkpointing
        )
        rows.append(
            PlanRow(
                preset=found.name,
                hardware=hardware,
                method=method,
                quantization=quantization,
                precision="fp16" if settings.fp16 else "fp32",
                settings=settings,
                estimate=est,
                fits=usable and _fits(est, hw.memory_gib),
                max_batch=max(ok[False], default=0),
                max_batch_checkpointing=max(ok[True], default=0),
                chosen=configured is not None and method == configured.method,
                note="; ".join(row_notes),
            )
        )
    return rows


def plan_all(hardware: str, *, include_tiny: bool = False) -> list[PlanRow]:
    """:func:`plan` rows of the shipped presets on ``hardware``.

    Tiny presets come only with ``include_tiny``; on a machine without GPU only the presets
    that have settings for it.
    """
    gpu = hardware in HARDWARE and HARDWARE[hardware].n_gpus > 0
    return [
        row
        for name, preset in presets().items()
        if (include_tiny or not preset.tiny) and (gpu or hardware in preset.hardware)
        for row in plan(name, hardware)
    ]


def format_plan(rows: list[PlanRow]) -> str:
    """A Markdown table of plan rows; ``*`` marks the method ``models.yaml`` chooses.

    Columns: preset, hardware, method (+ quantization), precision, seq_len, batch ×
    gradient accumulation, checkpointing, estimated GiB, whether it fits, the largest batch
    without and with gradient checkpointing (``-``: not even 1), notes.
    """
    head = [
        "preset",
        "hw",
        "method",
        "prec",
        "seq",
        "batch×acc",
        "ckpt",
        "est. GiB",
        "fits",
        "max batch",
        "max batch (ckpt)",
        "note",
    ]
    lines = [head]
    for r in rows:
        s = r.settings
        method = r.method + (f" ({r.quantization})" if r.quantization else "")
        lines.append(
            [
                r.preset,
                r.hardware,
                method + (" *" if r.chosen else ""),
                r.precision,
                str(s.seq_len),
                f"{s.batch_size}×{s.grad_accum}",
                "yes" if s.gradient_checkpointing else "no",
                f"{r.estimate.total_gib:.1f}",
                "yes" if r.fits else "no",
                str(r.max_batch or "-"),
                str(r.max_batch_checkpointing or "-"),
                r.note,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(lines[0]), rule, *(fmt(line) for line in lines[1:])])


def verdict_table(hardware: str = "t4x2", *, include_tiny: bool = False) -> str:
    """:func:`format_plan` of :func:`plan_all`: docs/planner.md's verdict table for a machine."""
    hw = HARDWARE.get(hardware)
    if hw is None:
        raise ConfigError(f"unknown hardware {hardware!r}; expected one of {', '.join(HARDWARE)}")
    memory = "unchecked" if hw.memory_gib is None else f"{hw.memory_gib:g} GiB per device"
    title = f"Training memory plan for {hardware} ({memory}); * = the models.yaml setting."
    return title + "\n\n" + format_plan(plan_all(hardware, include_tiny=include_tiny))
