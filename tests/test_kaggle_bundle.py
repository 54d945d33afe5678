"""`debiaslab kaggle build`: a bundle the `kaggle` package itself accepts, whose notebooks
attach exactly the outputs the collection hands on."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from debiaslab import __version__, collection, kaggle_bundle
from debiaslab import notebooks as nb
from debiaslab.handoff import kernel_slug

kaggle_api = pytest.importorskip("kaggle.api.kaggle_api_extended")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("bundle") / "kaggle"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
        kaggle_bundle.build("ada", out, only=["crows_pairs"], log=lambda line: None)
    return out


class _Client:
    """What `build_kaggle_client()` returns, at the network's edge: every request is kept,
    and answered as Kaggle answers a success."""

    def __init__(self, requests: list):
        from kagglesdk.datasets.types.dataset_api_service import ApiCreateDatasetResponse
        from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelResponse

        def keep(response):
            def call(request):
                requests.append(request)
                return response()

            return call

        self.kernels = SimpleNamespace(
            kernels_api_client=SimpleNamespace(save_kernel=keep(ApiSaveKernelResponse))
        )
        self.datasets = SimpleNamespace(
            dataset_api_client=SimpleNamespace(create_dataset=keep(ApiCreateDatasetResponse))
        )


def _api(monkeypatch, requests: list, uploaded: list):
    from kaggle.models.upload_file import UploadFile
    from requests.exceptions import HTTPError

    api = kaggle_api.KaggleApi()
    api.config_values = {api.CONFIG_NAME_USER: "ada"}

    @contextmanager
    def client():
        yield _Client(requests)

    def upload(name, path, *args, **kwargs):
        uploaded.append((name, Path(path).stat().st_size))
        return UploadFile(token=f"token-{name}")

    def no_such_dataset(ref):
        raise HTTPError("404 Not Found")

    monkeypatch.setattr(api, "build_kaggle_client", client)
    monkeypatch.setattr(api, "_upload_file", upload)
    monkeypatch.setattr(api, "dataset_status", no_such_dataset)
    return api


def test_every_kernel_folder_passes_kaggles_own_push_checks(bundle, monkeypatch, capsys):
    requests: list = []
    api = _api(monkeypatch, requests, [])
    folders = kaggle_bundle.push_order(bundle)
    assert len(folders) == len(nb.targets())
    for folder in folders:
        api.kernels_push(str(folder))
    assert "does not resolve to the specified id" not in capsys.readouterr().out
    by_slug = {r.slug: r for r in requests}
    post = by_slug["ada/debiaslab-gpt2-03-post-eval"]
    assert post.kernel_data_sources == [
        "ada/debiaslab-gpt2-01-pre-eval", "ada/debiaslab-gpt2-02-finetune"
    ]  # fmt: skip
    assert post.dataset_data_sources == ["ada/debiaslab"]
    assert (post.machine_shape, post.enable_gpu, post.enable_internet) == ("NvidiaTeslaT4", 1, 1)
    assert post.language == "python" and post.kernel_type == "notebook" and post.is_private
    sent = json.loads(post.text)
    assert (
        sent["cells"]
        == json.loads(nb.notebook_path(nb.COLLECTION[0], "03_post_eval").read_text())["cells"]
    )
    results = by_slug["ada/debiaslab-results"]
    assert not results.enable_gpu and not results.machine_shape and not results.enable_internet


def test_the_kernel_sources_graph_is_the_collections(bundle):
    graph = {}
    for folder in (bundle / "kernels").iterdir():
        metadata = json.loads((folder / "kernel-metadata.json").read_text())
        graph[metadata["id"]] = set(metadata["kernel_sources"])
    steps = {s.name: s for s in collection.collection_steps() if s.notebook is not None}
    expected = {
        f"ada/{kernel_slug(name)}": {f"ada/{kernel_slug(a)}" for a in step.after if a in steps}
        for name, step in steps.items()
    }
    assert graph == expected
    order = [f.name for f in kaggle_bundle.push_order(bundle)]
    for kid, sources in graph.items():
        assert all(order.index(s.split("/")[1]) < order.index(kid.split("/")[1]) for s in sources)


def test_the_dataset_passes_kaggles_create_checks_with_the_wheel_and_data(bundle, monkeypatch):
    requests: list = []
    uploaded: list = []
    api = _api(monkeypatch, requests, uploaded)
    response = api.dataset_create_new(str(bundle / "dataset"), dir_mode="zip", quiet=True)
    assert not response.error  # what a created dataset answers
    (request,) = requests
    assert request.title == f"debiaslab {__version__} wheel and benchmark data"
    assert request.is_private and request.license_name == "other"
    assert sorted(name.split(".")[0] for name, _ in uploaded) == ["debiaslab-data", "wheels"]
    dataset = bundle / "dataset"
    (wheel,) = (dataset / "wheels").glob("debiaslab-*.whl")
    assert wheel.name.startswith(f"debiaslab-{__version__}-")
    # What Kaggle's image lacks comes beside it, so the bootstrap cell installs offline.
    assert [p.name.split("-")[0] for p in (dataset / "wheels").glob("gguf-*.whl")] == ["gguf"]
    data = sorted(p.relative_to(dataset / "debiaslab-data").as_posix()
                  for p in (dataset / "debiaslab-data").rglob("*") if p.is_file())  # fmt: skip
    assert data and all(name.startswith("crows_pairs/") for name in data)


def test_an_attached_bundle_dataset_is_where_the_data_is_read(bundle, monkeypatch):
    from debiaslab.data import fetch

    monkeypatch.delenv("DEBIASLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("DEBIASLAB_INPUT_ROOT", str(bundle))  # /kaggle/input/<dataset>/...
    assert fetch.data_dir() == bundle / "dataset" / "debiaslab-data"
    monkeypatch.setenv("DEBIASLAB_INPUT_ROOT", str(bundle / "kernels"))
    assert fetch.data_dir() is None


@pytest.mark.slow
def test_push_creates_the_dataset_then_each_notebook_after_what_it_reads(bundle, tmp_path):
    """The `kaggle` command as a stand-in that answers as kaggle 2.x prints."""
    log = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "kaggle"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1:3] == ['datasets', 'status']:\n"
        "    sys.exit('404 - Not Found')\n"
        "if sys.argv[1:3] == ['kernels', 'status']:\n"
        "    print(sys.argv[3] + ' has status \"KernelWorkerStatus.COMPLETE\"')\n"
    )
    fake.chmod(0o755)
    env_path = f"{fake.parent}:{Path(sys.executable).parent}:/usr/bin:/bin"
    code = (
        "import sys; from debiaslab import kaggle_bundle;"
        f"print(len(kaggle_bundle.push({str(bundle)!r}, poll=0, log=lambda line: None)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": env_path, "HOME": str(tmp_path)}, check=True)  # fmt: skip
    assert done.stdout.strip() == str(len(nb.targets()))
    calls = log.read_text().splitlines()
    assert calls[0] == "datasets status ada/debiaslab"
    assert calls[1].startswith("datasets create -p ") and calls[1].endswith("--dir-mode zip")
    pushed = [c.split("/")[-1] for c in calls if c.startswith("kernels push")]
    assert len(pushed) == len(nb.targets())
    results_at = calls.index(next(c for c in calls if c.endswith("debiaslab-results")))
    waited = {c.split()[-1] for c in calls[:results_at] if c.startswith("kernels status")}
    assert len(waited) == len(nb.targets()) - 1  # the results notebook waited for every other
