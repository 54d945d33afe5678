"""The notebooks' bootstrap cell (install without a published repository) and the GPU check
it runs before torch loads (a P100 on Kaggle's CUDA 12.8 torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from debiaslab import __version__, gpucheck
from debiaslab import notebooks as nb
from debiaslab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _fresh_python(tmp_path: Path) -> Path:
    """A new virtual environment without debiaslab (or torch): a session's bare image."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    return tmp_path / "venv" / "bin" / "python"


def _run_cell(python: Path, tmp_path: Path, input_root: Path, target: Path):
    """The bootstrap cell as a notebook runs it, with the network off (pip may not reach an
    index: PIP_NO_INDEX), pip installing into ``target`` (PIP_TARGET), no git on PATH, and the
    image's libraries taken as present (PIP_NO_DEPS: the bare venv has no torch)."""
    env = {
        "PATH": str(python.parent),
        "HOME": str(tmp_path),
        "DEBIASLAB_INPUT_ROOT": str(input_root),
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_TARGET": str(target),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONPATH": str(target),
    }
    return subprocess.run(
        [str(python), "-c", nb.BOOTSTRAP], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_bootstrap_installs_the_wheel_from_an_emulated_kaggle_input(tmp_path):
    """`pip wheel --no-deps .` → /kaggle/input/<dataset>/ (emulated) → the cell installs it
    into a throwaway target, offline, and the package imports from there at this version."""
    input_root = tmp_path / "input"
    wheels = input_root / "debiaslab-wheel" / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(ROOT), "-w", str(wheels)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("debiaslab-*.whl")
    assert wheel.name.startswith(f"debiaslab-{__version__}-")
    python, target = _fresh_python(tmp_path), tmp_path / "target"
    target.mkdir()

    done = _run_cell(python, tmp_path, input_root, target)

    assert done.returncode == 0, done.stderr[-2000:]
    assert f"installing debiaslab {__version__} from the attached wheel: {wheel}" in done.stdout
    assert "did not work" not in done.stdout  # offline, from the wheel, at the first try
    assert "GPU check: no NVIDIA GPU" in done.stdout  # the check ran, from the new install
    imported = subprocess.run(
        [str(python), "-c", "import debiaslab, debiaslab.gpucheck as g; print(debiaslab.__file__,"
         " debiaslab.__version__)"],
        env={"PYTHONPATH": str(target), "PATH": str(python.parent)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    where, version = imported.stdout.split()
    assert Path(where).is_relative_to(target) and version == __version__


@pytest.mark.slow
def test_with_no_wheel_and_no_network_each_source_fails_in_order_then_says_what_to_do(tmp_path):
    input_root = tmp_path / "input"
    input_root.mkdir()
    python, target = _fresh_python(tmp_path), tmp_path / "target"

    done = _run_cell(python, tmp_path, input_root, target)

    assert done.returncode != 0
    tried = [line for line in done.stdout.splitlines() if line.startswith("installing")]
    sources = [line.split(" from the ")[1].split(":")[0] for line in tried]
    assert sources == ["package index", "git"]  # no wheel attached: nothing to try there
    assert f"debiaslab=={__version__}" in tried[0] and f"@{nb.RELEASE}" in tried[1]
    assert "Attach its wheel" in done.stderr and "Settings → Internet on" in done.stderr


def test_an_importable_debiaslab_is_used_as_it_is(tmp_path):
    """CI and `make demo` run the notebooks where debiaslab is installed: nothing is pip-ed."""
    env = {**os.environ, "DEBIASLAB_INPUT_ROOT": str(tmp_path), "PATH": os.environ["PATH"]}
    done = subprocess.run(
        [sys.executable, "-c", nb.BOOTSTRAP], env=env, capture_output=True, text=True, check=True
    )
    assert "installing" not in done.stdout and "GPU check:" in done.stdout


def test_the_release_constant_pins_the_cell_the_git_tag_and_the_badges():
    assert f"v{__version__}" == nb.RELEASE and f'VERSION = "{__version__}"' in nb.BOOTSTRAP
    table = nb.readme_table()
    assert "/blob/main/" not in table and table.count(f"/blob/{nb.RELEASE}/") >= 2 * len(
        nb.targets()
    )


# --------------------------------------------------------------------------- the GPU check


def _smi(text: str, code: int = 0):
    def run(command, **kwargs):
        if command[0] == "nvidia-smi":
            return subprocess.CompletedProcess(command, code, text, "")
        raise AssertionError(f"unexpected command {command}")

    return run


KAGGLE_CU128 = {
    "version": "2.13.0+cu128",
    "cuda": "12.8",
    "archs": ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
}


def test_a_p100_under_kaggles_cu128_torch_gets_the_cuda_12_6_build():
    gpus = gpucheck.query_gpus(_smi("Tesla P100-PCIE-16GB, 6.0\n"))
    assert gpus == [gpucheck.Gpu("Tesla P100-PCIE-16GB", (6, 0))]
    decision = gpucheck.plan(gpus, KAGGLE_CU128, python="py")
    assert decision.action == "install"
    assert "no kernels for Tesla P100-PCIE-16GB (sm_60)" in decision.message
    assert decision.command == (
        "py", "-m", "pip", "install", "-q", "torch==2.14.0", "torchvision==0.29.0",
        "--index-url", "https://download.pytorch.org/whl/cu126",
    )  # fmt: skip


def test_t4_x2_and_newer_gpus_keep_the_installed_torch():
    t4 = gpucheck.query_gpus(_smi("Tesla T4, 7.5\nTesla T4, 7.5\n"))
    assert len(t4) == 2 and gpucheck.plan(t4, KAGGLE_CU128).action == "ok"
    a10 = gpucheck.parse_nvidia_smi("NVIDIA A10G, 8.6")  # sm_80 cubins run on 8.6
    assert gpucheck.plan(a10, {**KAGGLE_CU128, "archs": ["sm_80"]}).action == "ok"
    ptx = {**KAGGLE_CU128, "archs": ["sm_80", "compute_80"]}  # PTX is compiled for newer GPUs
    assert gpucheck.plan(gpucheck.parse_nvidia_smi("H100, 9.0"), ptx).action == "ok"
    assert gpucheck.plan([], KAGGLE_CU128).action == "none"
    assert gpucheck.query_gpus(_smi("", code=9)) == []


def _run_p100(installed: list):
    def run(command, **kwargs):
        if command[0] == "nvidia-smi":
            return subprocess.CompletedProcess(command, 0, "Tesla P100-PCIE-16GB, 6.0\n", "")
        if command[1:3] == ["-m", "pip"]:
            installed.append(command)
            return subprocess.CompletedProcess(command, 0, "", "")
        import json

        return subprocess.CompletedProcess(command, 0, json.dumps(KAGGLE_CU128) + "\n", "")

    return run


def test_internet_off_stops_with_the_exact_command(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    installed: list = []
    with pytest.raises(ConfigError) as caught:
        gpucheck.ensure_torch(run=_run_p100(installed), python="py", is_online=lambda: False)
    message = str(caught.value)
    assert "internet is off" in message and installed == []
    assert (
        "`pip install -q torch==2.14.0 torchvision==0.29.0 --index-url "
        "https://download.pytorch.org/whl/cu126`"
    ) in message


def test_internet_on_installs_it_and_says_so(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    installed: list = []
    said: list[str] = []
    decision = gpucheck.ensure_torch(
        run=_run_p100(installed), python="py", is_online=lambda: True, say=said.append
    )
    assert decision.action == "install" and installed == [list(decision.command)]
    assert "installed torch==2.14.0 and torchvision==0.29.0" in said[-1]


def test_torch_already_loaded_asks_for_a_restart():
    assert "torch" in sys.modules  # this test process has it
    with pytest.raises(ConfigError, match="already imported in this session: restart"):
        gpucheck.ensure_torch(run=_run_p100([]), python="py", is_online=lambda: True)
