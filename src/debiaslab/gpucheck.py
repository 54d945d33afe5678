"""Does the installed torch have kernels for this GPU? Decided before torch is imported.

Kaggle's image ships a torch built for CUDA 12.8, which carries no Pascal (``sm_60``) kernels:
a P100 is allocated, ``torch.cuda.is_available()`` is True, and the first CUDA operation fails
with "no kernel image is available" (Kaggle/kaggle-cli#1151). PyTorch's CUDA 12.6 builds still
carry ``sm_60``; 2.14 is the last release that publishes them. The notebooks' bootstrap cell
calls :func:`ensure_torch` before anything imports torch: it reads the GPUs from
``nvidia-smi`` and torch's architecture list from a child process (so this kernel never loads
the wrong torch), and on a GPU the build cannot run installs :data:`PASCAL_TORCH` from
PyTorch's own wheel index, or stops with the exact command when the internet is off.

Standard library only: this module runs before the package's dependencies are known to work.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from debiaslab.errors import ConfigError

# The newest torch that PyTorch still builds for CUDA 12.6 (sm_50 … sm_90, Pascal included),
# with the torchvision built against it (its wheel requires torch==2.14.0).
PASCAL_TORCH = ("torch==2.14.0", "torchvision==0.29.0")
PASCAL_INDEX = "https://download.pytorch.org/whl/cu126"
_PROBE = (
    "import json, torch; print(json.dumps({'version': torch.__version__, "
    "'cuda': torch.version.cuda, 'archs': torch.cuda.get_arch_list() "
    "if torch.cuda.is_available() else []}))"
)

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]

    @property
    def arch(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"


@dataclass(frozen=True)
class Plan:
    """What :func:`plan` decided: ``ok`` (the build runs on every GPU), ``none`` (no GPU),
    ``install`` (install :attr:`command` first); :attr:`message` says why, in words."""

    action: str
    message: str
    command: tuple[str, ...] = ()


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader``.

    Example:
        >>> parse_nvidia_smi("Tesla P100-PCIE-16GB, 6.0\\n")
        [Gpu(name='Tesla P100-PCIE-16GB', capability=(6, 0))]
    """
    gpus = []
    for line in text.strip().splitlines():
        name, _, cap = line.rpartition(",")
        major, _, minor = cap.strip().partition(".")
        if not name.strip() or not major.isdigit() or not minor.isdigit():
            raise ValueError(f"nvidia-smi printed a line this cannot read: {line!r}")
        gpus.append(Gpu(name.strip(), (int(major), int(minor))))
    return gpus


def query_gpus(run: Runner = subprocess.run) -> list[Gpu]:
    """The visible GPUs, or ``[]`` when there is no ``nvidia-smi`` (no NVIDIA GPU)."""
    command = ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    try:
        done = run(command, capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


def torch_build(python: str = sys.executable, run: Runner = subprocess.run) -> dict | None:
    """The installed torch's ``version``, ``cuda`` and CUDA ``archs``, read in a child process;
    ``None`` when torch is not installed."""
    done = run([python, "-c", _PROBE], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def runs_on(capability: tuple[int, int], archs: Sequence[str]) -> bool:
    """Whether a build with CUDA architectures ``archs`` runs on a GPU of ``capability``.

    A cubin runs on its own major version at an equal or higher minor (``sm_80`` on an 8.6
    GPU); PTX (``compute_XY``) is compiled on the fly for any GPU at or above it.

    Example:
        >>> runs_on((6, 0), ["sm_70", "sm_75", "sm_80", "sm_90", "sm_120"])
        False
        >>> runs_on((8, 6), ["sm_80"]), runs_on((9, 0), ["sm_80", "compute_80"])
        (True, True)
    """
    major, minor = capability
    for arch in archs:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit():
            continue
        number = int(digits)
        if kind == "sm" and number // 10 == major and number % 10 <= minor:
            return True
        if kind == "compute" and number <= major * 10 + minor:
            return True
    return False


def install_command(python: str = sys.executable) -> tuple[str, ...]:
    """The pip command that installs a torch with Pascal kernels (PyTorch's CUDA 12.6 index)."""
    return (python, "-m", "pip", "install", "-q", *PASCAL_TORCH, "--index-url", PASCAL_INDEX)


def plan(gpus: Sequence[Gpu], build: dict | None, python: str = sys.executable) -> Plan:
    """Decide from the GPUs and the installed torch build (see :func:`torch_build`)."""
    if not gpus:
        return Plan("none", "no NVIDIA GPU is visible (nvidia-smi found none)")
    names = ", ".join(f"{g.name} ({g.arch})" for g in gpus)
    if build is None:
        return Plan("ok", f"{names}; torch is not installed yet")
    archs = build.get("archs") or []
    missing = [g for g in gpus if not runs_on(g.capability, archs)]
    if not missing:
        return Plan("ok", f"{names}; torch {build['version']} has kernels for it")
    gpu = missing[0]
    return Plan(
        "install",
        f"torch {build['version']} (CUDA {build.get('cuda')}) has no kernels for {gpu.name} "
        f"({gpu.arch}): it carries {' '.join(archs) or 'no CUDA architectures'}. PyTorch's "
        f"CUDA 12.6 build {PASCAL_TORCH[0].split('==')[1]} still does",
        install_command(python),
    )


def online(host: str = "download.pytorch.org", timeout: float = 5.0) -> bool:
    """Whether ``host`` answers on port 443 (Kaggle: Settings → Internet)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def ensure_torch(
    *,
    run: Runner = subprocess.run,
    python: str = sys.executable,
    is_online: Callable[[], bool] = online,
    say: Callable[[str], None] = print,
) -> Plan:
    """Make the installed torch usable on this GPU, before anything imports torch.

    Raises:
        ConfigError: the build lacks kernels for the GPU and the internet is off (the message
            holds the exact command to run once it is on), torch was already imported in this
            process (restart, then run again), or the install failed.
    """
    gpus = query_gpus(run)  # torch is probed (a child process) only where there is a GPU
    decision = plan(gpus, torch_build(python, run) if gpus else None, python)
    if decision.action != "install":
        say(f"GPU check: {decision.message}.")
        return decision
    command = " ".join(decision.command[1:]).replace("-m pip", "pip", 1)
    if "torch" in sys.modules:
        raise ConfigError(
            f"{decision.message}. torch is already imported in this session: restart it "
            f"(Run → Restart), then run the notebook from the top, or run `{command}` first."
        )
    if not is_online():
        raise ConfigError(
            f"{decision.message}, but the internet is off. Turn it on (Kaggle: Settings → "
            f"Internet on) and run this cell again, or run `{command}`; or pick the 'GPU T4 x2' "
            "accelerator, which the installed torch supports."
        )
    say(f"GPU check: {decision.message}; installing it: {command}")
    done = run(list(decision.command), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise ConfigError(f"installing {' '.join(PASCAL_TORCH)} failed: {' | '.join(tail)}")
    say(f"GPU check: installed {' and '.join(PASCAL_TORCH)} (CUDA 12.6, with sm_60 kernels).")
    return decision
