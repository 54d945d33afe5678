"""Platform, device/dtype choice and secrets."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from debiaslab import env
from debiaslab.errors import ConfigError


def test_platform_paths(monkeypatch, tmp_path):
    monkeypatch.delenv(env.OUTPUT_ENV, raising=False)
    assert str(env.output_root("kaggle")) == "/kaggle/working"
    assert str(env.output_root("colab")) == "/content"
    assert env.output_root("local") == tmp_path.cwd()
    monkeypatch.setenv(env.OUTPUT_ENV, str(tmp_path))
    assert env.output_root("kaggle") == tmp_path


def test_cpu_gets_float32_and_rejects_unknown_dtype():
    cpu = torch.device("cpu")
    assert env.select_dtype(cpu) is torch.float32
    assert env.select_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ConfigError, match="unknown dtype"):
        env.select_dtype(cpu, "float8")


class _FakeCuda:
    def __init__(self, capability, archs, name):
        self.capability, self.archs, self.name = capability, archs, name

    def get_device_capability(self, device=0):
        return self.capability

    def get_arch_list(self):
        return self.archs

    def get_device_name(self, device=0):
        return self.name


def _patch_cuda(monkeypatch, fake):
    monkeypatch.setattr(torch.cuda, "get_device_capability", fake.get_device_capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", fake.get_arch_list)
    monkeypatch.setattr(torch.cuda, "get_device_name", fake.get_device_name)


def test_t4_gets_float16_and_bf16_request_fails_with_advice(monkeypatch):
    _patch_cuda(monkeypatch, _FakeCuda((7, 5), ["sm_75", "sm_80"], "Tesla T4"))
    cuda = torch.device("cuda")
    assert env.select_dtype(cuda) is torch.float16
    with pytest.raises(ConfigError, match=r"Tesla T4 has no bfloat16.*float16"):
        env.select_dtype(cuda, "bfloat16")
    assert env._cuda_kernel_problem(torch) is None


def test_p100_without_kernels_fails_fast_with_advice(monkeypatch):
    _patch_cuda(monkeypatch, _FakeCuda((6, 0), ["sm_75", "sm_80", "sm_90"], "Tesla P100"))
    message = env._cuda_kernel_problem(torch)
    assert "no CUDA kernels for Tesla P100 (sm_60)" in message and "T4" in message
    _patch_cuda(monkeypatch, _FakeCuda((9, 0), ["sm_80", "compute_80"], "H100"))
    assert env._cuda_kernel_problem(torch) is None  # PTX JIT covers newer GPUs


def test_secret_order_env_then_kaggle_then_colab_and_never_logged(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    kaggle = types.ModuleType("kaggle_secrets")

    class UserSecretsClient:
        def get_secret(self, name):
            return "kaggle-value" if name == "HF_TOKEN" else None

    kaggle.UserSecretsClient = UserSecretsClient
    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=lambda name: "colab-value")
    monkeypatch.setitem(sys.modules, "kaggle_secrets", kaggle)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setenv("HF_TOKEN", "env-value")
    assert env.get_secret("HF_TOKEN") == "env-value"
    monkeypatch.delenv("HF_TOKEN")
    assert env.get_secret("HF_TOKEN") == "kaggle-value"
    assert env.get_secret("OPENAI_API_KEY") == "colab-value"
    assert "value" not in caplog.text


def test_missing_secret_is_none(monkeypatch):
    monkeypatch.delenv("DEBIASLAB_NO_SUCH_SECRET", raising=False)
    assert env.get_secret("DEBIASLAB_NO_SUCH_SECRET") is None


def test_setup_on_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv(env.OUTPUT_ENV, str(tmp_path))
    described = env.setup(seed=3, device="cpu")
    assert (described.device, described.dtype, described.seed) == ("cpu", "float32", 3)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        if not torch.cuda.is_available():
            env.select_device("cuda")
        else:
            raise ConfigError("no CUDA GPU")  # keeps the assertion meaningful on GPU hosts


def test_setup_prints_what_it_found_not_logs_it(monkeypatch, tmp_path):
    monkeypatch.setenv(env.OUTPUT_ENV, str(tmp_path))
    said: list[str] = []
    env.setup(seed=0, device="cpu", say=said.append)
    assert said[0].startswith("debiaslab ") and str(tmp_path) in said[0]
    assert said[1] == f"torch {torch.__version__}; device cpu, dtype float32"
    assert said[2] == "GPU: none visible to torch"


@pytest.mark.parametrize("platform", ["kaggle", "colab"])
def test_a_real_checkpoint_without_a_gpu_on_kaggle_or_colab_stops_with_advice(
    monkeypatch, tmp_path, platform
):
    monkeypatch.setenv(env.OUTPUT_ENV, str(tmp_path))
    variable = "KAGGLE_KERNEL_RUN_TYPE" if platform == "kaggle" else "COLAB_RELEASE_TAG"
    monkeypatch.setenv(variable, "x")
    where = "GPU T4 x2" if platform == "kaggle" else "Change runtime type"
    with pytest.raises(ConfigError, match=f"'gpt2', which needs a GPU.*{where}"):
        env.setup(device="cpu", model="gpt2", say=lambda line: None)
    for model in ("tiny-gpt2", "smollm2-135m-instruct", None):  # these run on a CPU
        assert env.setup(device="cpu", model=model, say=lambda line: None).platform == platform
    monkeypatch.delenv(variable)
    assert env.setup(device="cpu", model="gpt2", say=lambda line: None).device == "cpu"
