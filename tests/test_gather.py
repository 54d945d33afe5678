"""Bringing results home: gather from Kaggle/Colab outputs (folders, zips), and the Hub results
datasets (push_results / pull_results) against ``FakeHub`` (tests/conftest.py), a local stand-in
for ``huggingface_hub.HfApi``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from debiaslab import gather as gather_mod
from debiaslab.benchmarks import crows_pairs
from debiaslab.cli import main
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.gather import GatherReport, collect, gather
from debiaslab.hub import scrub
from debiaslab.results import BenchmarkOutput, make_record, read_result, write_result
from debiaslab.results_share import pull_results, push_results

TOKEN = "hf_" + "GatherTokenDoNotLeak0123456789abcdefXYZ"  # a canary, built so scanners skip it
REPO = "someone/debiaslab-results"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


# --------------------------------------------------------------------------- fixtures


def write_run(
    folder: Path,
    model: str,
    stage: str,
    *,
    benchmark: str = "crows_pairs",
    score: float = 60.0,
    config: dict[str, Any] | None = None,
    predictions: bool = False,
) -> Path:
    """A result file (with ``.items.csv``) as a notebook writes it."""
    output = BenchmarkOutput(
        benchmark=benchmark,
        metrics={"metric_score": score, "n_pairs": 3.0},
        ci={"metric_score": (score - 5, score + 5)},
        declared=crows_pairs.METRICS,
        n_items=3,
        items=pd.DataFrame({"pair": [0, 1, 2], "stereo": [1, 0, 1]}),
        config=dict(config or {}),
    )
    record = make_record(
        output,
        model={"name": model, "family": "causal"},
        config={"benchmark": benchmark, "seed": 0},
        timing={"score_seconds": 1.0},
        stage=stage,
    )
    artifacts = {"predictions": {"intrasentence": [{"id": "a", "score": 0.5}]}}
    return write_result(record, folder, output.items, artifacts if predictions else None)


def kaggle_output(root: Path) -> Path:
    """A folder laid out like ``kaggle kernels output USER/KERNEL -p root``."""
    working = root / "kaggle" / "working"
    results = working / "results" / "gpt2"
    write_run(results, "gpt2", "pre", predictions=True)
    write_run(results, "gpt2", "post", score=52.0)
    bold = write_run(
        results,
        "gpt2",
        "pre",
        benchmark="bold",
        config={"generations_file": "generations/gpt2__0badc0de.jsonl"},
    )
    (results / "generations").mkdir()
    (results / "generations" / "gpt2__0badc0de.jsonl").write_text('{"text": "hi"}\n')
    rid = bold.name[: -len(".json")]
    (results / f"{rid}.png").write_bytes(PNG)  # a figure named like a side file: never copied
    (results / "decoding_tradeoff.csv").write_text("alpha,toxicity\n0,0.1\n1,0.05\n")
    (results / "decoding_tradeoff.png").write_bytes(PNG)
    (results / "decoding_tradeoff.pdf").write_bytes(b"%PDF-1.4")
    (results / "align_curve.json").write_text(json.dumps({"curve": [1, 2]}))
    (results / "head_gates.safetensors").write_bytes(b"\x00" * 64)
    (results / ".ipynb_checkpoints").mkdir()
    (results / ".ipynb_checkpoints" / "decoding_tradeoff-checkpoint.csv").write_text("x\n")
    (results / f".{rid}.json.abc.part").write_text("{")  # a write cut short
    adapter = working / "runs" / "gpt2-lora" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00weights" * 10)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (working / "figures").mkdir()
    (working / "figures" / "crows.png").write_bytes(PNG)
    (working / "notebook.log").write_text("done\n")
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def zip_folder(folder: Path, archive: Path) -> Path:
    return Path(shutil.make_archive(str(archive.with_suffix("")), "zip", folder))


@pytest.fixture
def kaggle(tmp_path) -> Path:
    return kaggle_output(tmp_path / "kernel-output")


def expected_files(kaggle: Path) -> dict[str, bytes]:
    """What a gather of ``kaggle`` must produce, relative to the results folder."""
    source = kaggle / "kaggle" / "working" / "results"
    got = {}
    for rel, data in snapshot(source).items():
        name = rel.split("/")[-1]
        if (
            name.endswith((".png", ".pdf", ".safetensors"))
            or ".ipynb_checkpoints" in rel
            or name.startswith(".")
        ):
            continue
        got[rel] = data
    return got


# --------------------------------------------------------------------------- gather


def test_gather_a_kaggle_output_folder(kaggle, tmp_path, caplog):
    dest = tmp_path / "results"
    with caplog.at_level(logging.INFO, logger="debiaslab.gather"):
        report = gather(kaggle, dest)
    got = snapshot(dest)
    assert got == expected_files(kaggle)
    # Everything lands below the last "results" folder: results/gpt2/...
    assert {name.split("/")[0] for name in got} == {"gpt2"}
    assert "gpt2/decoding_tradeoff.csv" in got and "gpt2/align_curve.json" in got
    assert "gpt2/generations/gpt2__0badc0de.jsonl" in got  # named by the BOLD record
    assert not any(n.endswith((".png", ".pdf", ".safetensors")) for n in got)
    assert sum(n.endswith(".items.csv") for n in got) == 3
    assert sum(n.endswith(".predictions.json") for n in got) == 1
    assert len(report.results) == 3 and report.skipped == [] and report.conflicts == []
    assert sorted(report.copied) == sorted(dest / name for name in got)
    for path in report.results:
        assert read_result(path)["model"]["name"] == "gpt2"
    # The adapter's JSON and other non-results were looked at and ignored, with a log line.
    assert "adapter_config.json" in caplog.text and "ignored as a result" in caplog.text
    assert report.summary() == (
        f"3 results: {len(got)} files copied, 0 already present, 0 conflicts"
    )


def test_gather_a_zip_of_it_gives_the_same_files(kaggle, tmp_path):
    archive = zip_folder(kaggle, tmp_path / "output.zip")
    from_zip = gather(archive, tmp_path / "from-zip")
    gather(kaggle, tmp_path / "from-folder")
    assert snapshot(tmp_path / "from-zip") == snapshot(tmp_path / "from-folder")
    assert len(from_zip.results) == 3
    assert [p for p, _ in collect(archive)] == [p for p, _ in collect(kaggle)]


def test_gather_a_colab_results_folder_keeps_its_layout(tmp_path):
    drive = tmp_path / "MyDrive" / "debiaslab" / "results"
    write_run(drive / "bert", "bert", "pre")
    write_run(drive / "gpt2", "gpt2", "pre")
    report = gather(drive, tmp_path / "results")
    assert sorted({p.parent.name for p in report.results}) == ["bert", "gpt2"]
    # Without a "results" folder in the path, the layout below the source root is kept.
    flat = tmp_path / "flat"
    write_run(flat / "gpt2", "gpt2", "pre")
    (path,) = gather(flat, tmp_path / "r2").results
    assert path.parent == tmp_path / "r2" / "gpt2"


def test_a_second_gather_copies_nothing(kaggle, tmp_path):
    dest = tmp_path / "results"
    first = gather(kaggle, dest)
    before = snapshot(dest)
    second = gather(kaggle, dest)
    assert second.copied == [] and second.conflicts == []
    assert sorted(second.skipped) == sorted(first.copied)
    assert second.results == first.results
    assert snapshot(dest) == before
    assert "0 files copied" in second.summary() and "already present" in second.summary()


def test_conflicts_stop_everything_unless_overwrite(kaggle, tmp_path):
    dest = tmp_path / "results"
    gather(kaggle, dest)
    (items,) = [p for p in (dest / "gpt2").glob("*post*.items.csv")]
    items.write_text("edited locally\n")
    # A new run in the source must not be copied either: all or nothing.
    new = write_run(kaggle / "kaggle" / "working" / "results" / "gpt2", "gpt2", "eval")
    before = snapshot(dest)
    with pytest.raises(ConfigError) as info:
        gather(kaggle, dest)
    message = str(info.value)
    assert items.name in message and "--overwrite" in message and "Nothing was copied" in message
    assert snapshot(dest) == before and not (dest / "gpt2" / new.name).exists()

    report = gather(kaggle, dest, overwrite=True)
    assert report.conflicts == [items]
    assert items in report.copied and dest / "gpt2" / new.name in report.copied
    assert snapshot(dest) == expected_files(kaggle)
    assert "1 conflicts (replaced)" in report.summary()


@pytest.mark.parametrize("member", ["../evil.json", "/abs/evil.json", "a/../../evil.csv"])
def test_zip_slip_is_refused(kaggle, tmp_path, member):
    archive = zip_folder(kaggle, tmp_path / "output.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(member, "{}")
    dest = tmp_path / "work" / "results"
    with pytest.raises(ConfigError, match="zip slip") as info:
        gather(archive, dest)
    assert member in str(info.value) and str(archive) in str(info.value)
    assert not dest.exists() and not (tmp_path / "work" / "evil.json").exists()


def test_a_broken_result_is_an_error_naming_it(kaggle, tmp_path):
    folder = kaggle / "kaggle" / "working" / "results" / "gpt2"
    broken = folder / "gpt2__crows_pairs__eval__0123abcd.json"
    broken.write_text('{"schema": "debiaslab.result/1", "run_id": ')
    dest = tmp_path / "results"
    with pytest.raises(DataFormatError, match="not valid JSON") as info:
        gather(kaggle, dest)
    assert str(broken) in str(info.value)
    assert not dest.exists()
    # Inside a zip the member is named.
    archive = zip_folder(kaggle, tmp_path / "output.zip")
    with pytest.raises(DataFormatError) as info:
        gather(archive, dest)
    assert "kaggle/working/results/gpt2/gpt2__crows_pairs__eval__0123abcd.json" in str(info.value)
    # A file claiming the result schema without its fields is an error too.
    broken.unlink()
    claims = folder / "summary.json"
    claims.write_text(json.dumps({"schema": "debiaslab.result/1", "run_id": "x"}))
    with pytest.raises(DataFormatError, match="missing required field") as info:
        gather(kaggle, dest)
    assert str(claims) in str(info.value) and "benchmark" in str(info.value)


def test_nothing_to_gather_and_bad_sources(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.json").write_text("{}")
    with pytest.raises(ConfigError, match="no debiaslab result files"):
        gather(empty, tmp_path / "results")
    with pytest.raises(ConfigError, match="no such folder"):
        gather(tmp_path / "missing", tmp_path / "results")
    single = write_run(tmp_path / "one", "gpt2", "pre")
    with pytest.raises(ConfigError, match="not a single file"):
        gather(single, tmp_path / "results")
    fake_zip = tmp_path / "output.zip"
    fake_zip.write_text("not a zip")
    with pytest.raises(ConfigError, match="zip"):
        gather(fake_zip, tmp_path / "results")


def test_two_runs_for_one_destination_are_refused(tmp_path):
    source = tmp_path / "both"
    write_run(source / "a" / "results" / "gpt2", "gpt2", "pre")
    write_run(source / "b" / "results" / "gpt2", "gpt2", "pre")
    (source / "a" / "results" / "gpt2" / "table.csv").write_text("x\n1\n")
    (source / "b" / "results" / "gpt2" / "table.csv").write_text("x\n2\n")
    with pytest.raises(ConfigError, match="different files would be copied") as info:
        gather(source, tmp_path / "results")
    assert "table.csv" in str(info.value)
    assert not (tmp_path / "results").exists()


def test_large_and_secret_looking_files_are_left_behind(kaggle, tmp_path, monkeypatch, caplog):
    folder = kaggle / "kaggle" / "working" / "results" / "gpt2"
    (folder / "big.csv").write_text("x\n" * 6000)
    (folder / "api_key.json").write_text('{"key": "x"}')
    monkeypatch.setattr(gather_mod, "MAX_BYTES", 10_000)  # above a result file, below big.csv
    with caplog.at_level(logging.WARNING, logger="debiaslab.gather"):
        gather(kaggle, tmp_path / "results")
    got = snapshot(tmp_path / "results")
    assert "gpt2/big.csv" not in got and "gpt2/api_key.json" not in got
    assert "over 0 MB" in caplog.text or "big.csv" in caplog.text
    assert "looks like a secret" in caplog.text


def plant_links(folder: Path, elsewhere: Path) -> None:
    """Symbolic links in a results folder: four leave it (a file by an absolute, a relative and
    a chained link; a folder holding a run), one stays inside it."""
    elsewhere.mkdir()
    (elsewhere / "private.csv").write_text("user,password\nana,hunter2\n")
    write_run(elsewhere / "other", "llama", "pre")
    (folder / "leak.csv").symlink_to(elsewhere / "private.csv")
    (folder / "escape.csv").symlink_to(os.path.relpath(elsewhere / "private.csv", folder))
    (folder / "hop.csv").symlink_to("leak.csv")  # inside, to a link that leaves
    (folder / "more_runs").symlink_to(elsewhere / "other", target_is_directory=True)
    (folder / "tradeoff_copy.csv").symlink_to("decoding_tradeoff.csv")


LEAVING = ("leak.csv", "escape.csv", "hop.csv", "more_runs")


def test_gather_never_follows_a_link_out_of_the_source_folder(kaggle, tmp_path, caplog):
    plant_links(kaggle / "kaggle" / "working" / "results" / "gpt2", tmp_path / "elsewhere")
    via_link = tmp_path / "via-link"  # the source itself given through a link still works
    via_link.symlink_to(kaggle, target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        report = gather(via_link, tmp_path / "results")
    got = snapshot(tmp_path / "results")
    assert not any(b"hunter2" in data for data in got.values())
    assert not any(name.split("/")[-1] in LEAVING for name in got)
    assert not any("llama" in name for name in got) and len(report.results) == 3
    # A link inside the folder is an ordinary file.
    assert got["gpt2/tradeoff_copy.csv"] == got["gpt2/decoding_tradeoff.csv"]
    target = (tmp_path / "elsewhere" / "private.csv").resolve()
    for name in LEAVING:
        assert f"gpt2/{name}: a symbolic link to " in caplog.text
    assert f"a symbolic link to {target}, outside" in caplog.text


def test_gather_never_materialises_a_link_stored_in_a_zip(kaggle, tmp_path, caplog):
    archive = zip_folder(kaggle, tmp_path / "output.zip")
    with zipfile.ZipFile(archive, "a") as zf:  # what `zip -y` stores for a symbolic link
        info = zipfile.ZipInfo("kaggle/working/results/gpt2/passwd.csv")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with caplog.at_level(logging.WARNING):
        gather(archive, tmp_path / "results")
    assert "gpt2/passwd.csv" not in snapshot(tmp_path / "results")
    assert "passwd.csv is a symbolic link (to '/etc/passwd')" in caplog.text
    assert snapshot(tmp_path / "results") == expected_files(kaggle)


# --------------------------------------------------------------------------- Hub datasets


@pytest.fixture
def local_results(kaggle, tmp_path) -> Path:
    dest = tmp_path / "results"
    gather(kaggle, dest)
    write_run(dest / "demo", "tiny-gpt2", "eval")
    (dest / "demo" / "calibration.png").write_bytes(PNG)
    return dest


def test_push_results_uploads_results_and_side_files_only(local_results, tmp_path, fake_hub):
    (local_results / "gpt2" / "curve.png").write_bytes(PNG)
    (local_results / "gpt2" / "head_gates.safetensors").write_bytes(b"\x00" * 8)
    before = snapshot(local_results)
    url = push_results(local_results, REPO, token=TOKEN, api=fake_hub)
    assert url == f"https://huggingface.co/datasets/{REPO}"
    assert snapshot(local_results) == before  # the caller's folder is untouched
    assert [c[0] for c in fake_hub.calls] == ["create_repo", "upload_folder"]
    assert fake_hub.calls[0][2] == {
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
        "token": TOKEN,
    }
    assert fake_hub.calls[1][2]["repo_type"] == "dataset"
    uploaded = snapshot(fake_hub.folder(REPO, "dataset"))
    assert not any(n.endswith((".png", ".pdf", ".safetensors")) for n in uploaded)
    expected = {n for n in before if not n.endswith((".png", ".safetensors"))}
    assert set(uploaded) == expected | {"README.md"}
    card = uploaded["README.md"].decode()
    assert card.startswith("---\n") and "debiaslab" in card
    assert "| Model | Benchmark | Stage | Date | Platform | Run |" in card
    assert "| gpt2 | crows_pairs | post |" in card and "| gpt2 | bold | pre |" in card
    assert "| tiny-gpt2 (tiny offline model) | crows_pairs | eval |" in card
    assert f"debiaslab results pull {REPO}" in card
    assert str(tmp_path) not in card


def test_push_results_never_uploads_through_a_link_out_of_the_folder(
    local_results, tmp_path, fake_hub, caplog
):
    plant_links(local_results / "gpt2", tmp_path / "elsewhere")
    with caplog.at_level(logging.WARNING):
        push_results(local_results, REPO, token=TOKEN, api=fake_hub)
    uploaded = snapshot(fake_hub.folder(REPO, "dataset"))
    assert not any(b"hunter2" in data for data in uploaded.values())
    assert not any(name.split("/")[1] in LEAVING for name in uploaded if "/" in name)
    assert uploaded["gpt2/tradeoff_copy.csv"] == uploaded["gpt2/decoding_tradeoff.csv"]
    for name in LEAVING:  # warned once each
        assert caplog.text.count(f"gpt2/{name}: a symbolic link to ") == 1
    # The model and dataset pushes walk folders the same way.
    files = scrub.folder_files(local_results)
    assert not any(f.name in LEAVING for f in files) and Path("gpt2/tradeoff_copy.csv") in files


def test_push_results_without_token_uploads_nothing(local_results, tmp_path, fake_hub, caplog):
    with caplog.at_level(logging.INFO, logger="debiaslab.hub"):
        assert push_results(local_results, REPO, api=fake_hub) is None
    assert fake_hub.calls == []
    assert "no token" in caplog.text and "HF_TOKEN" in caplog.text


def test_push_results_refuses_bad_input_before_sending(local_results, tmp_path, fake_hub):
    with pytest.raises(ConfigError, match="not a Hugging Face repo id"):
        push_results(local_results, "../../etc", token=TOKEN, api=fake_hub)
    with pytest.raises(ConfigError, match="not a directory"):
        push_results(tmp_path / "missing", REPO, token=TOKEN, api=fake_hub)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no debiaslab result files"):
        push_results(empty, REPO, token=TOKEN, api=fake_hub)
    (local_results / "gpt2" / "notes.csv").write_text(f"token,{TOKEN}\n")
    with pytest.raises(ConfigError, match=r"notes\.csv") as info:
        push_results(local_results, REPO, token=TOKEN, api=fake_hub)
    assert TOKEN not in str(info.value)
    assert fake_hub.calls == []


@pytest.mark.parametrize(
    "error",
    [OSError(f"Connection refused, Authorization: Bearer {TOKEN}"), OSError("no route")],
)
def test_results_hub_errors_hide_the_token(local_results, tmp_path, fake_hub, caplog, error):
    fake_hub.fail = error
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as info:
        push_results(local_results, REPO, token=TOKEN, api=fake_hub)
    message = str(info.value)
    assert REPO in message and "online" in message and TOKEN not in message
    with pytest.raises(ConfigError) as info:
        pull_results(REPO, tmp_path / "pulled", token=TOKEN, api=fake_hub)
    message = str(info.value)
    assert REPO in message and "dataset" in message and TOKEN not in message
    assert TOKEN not in caplog.text
    if TOKEN in str(error):
        assert info.value.__cause__ is None and info.value.__suppress_context__
    else:
        assert info.value.__cause__ is error
    assert not (tmp_path / "pulled").exists()


def test_push_then_pull_results_round_trips(local_results, tmp_path, fake_hub):
    push_results(local_results, REPO, token=TOKEN, api=fake_hub)
    pulled = tmp_path / "elsewhere" / "results"
    # The dataset is private (the default): without the token the Hub does not find it.
    with pytest.raises(ConfigError, match=REPO):
        pull_results(REPO, pulled, api=fake_hub)
    assert not pulled.exists()
    report = pull_results(REPO, pulled, revision="main", token=TOKEN, api=fake_hub)
    assert isinstance(report, GatherReport)
    call = fake_hub.calls[-1]
    assert call[0] == "snapshot_download" and call[2]["repo_type"] == "dataset"
    assert call[2]["revision"] == "main" and call[2]["token"] == TOKEN
    assert {"*.json", "*.csv"} <= set(call[2]["allow_patterns"])
    got = snapshot(pulled)
    expected = {n: d for n, d in snapshot(local_results).items() if not n.endswith(".png")}
    assert got == expected and "README.md" not in got
    assert len(report.results) == 4
    # Pulling into the folder that was pushed finds everything already there.
    again = pull_results(REPO, local_results, token=TOKEN, api=fake_hub)
    assert again.copied == [] and len(again.skipped) == len(got)
    # A local file that differs is a conflict, as in gather.
    (local_results / "gpt2" / "decoding_tradeoff.csv").write_text("changed\n")
    with pytest.raises(ConfigError, match="--overwrite"):
        pull_results(REPO, local_results, token=TOKEN, api=fake_hub)
    fixed = pull_results(REPO, local_results, token=TOKEN, api=fake_hub, overwrite=True)
    assert fixed.conflicts == [local_results / "gpt2" / "decoding_tradeoff.csv"]


def test_pull_results_takes_a_local_folder_or_zip(kaggle, tmp_path, fake_hub):
    report = pull_results(str(kaggle), tmp_path / "results", api=fake_hub)
    assert len(report.results) == 3 and fake_hub.calls == []
    with pytest.raises(ConfigError, match="neither a local folder"):
        pull_results("not a repo id!", tmp_path / "results", api=fake_hub)


# --------------------------------------------------------------------------- command line


def test_cli_results_gather(kaggle, tmp_path, capsys):
    dest = tmp_path / "results"
    assert main(["results", "gather", str(kaggle), "--results", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "3 results:" in out and "files copied" in out and "0 conflicts" in out
    assert out.strip().endswith("now run `make report`")
    assert snapshot(dest) == expected_files(kaggle)
    assert main(["results", "gather", str(kaggle), "--results", str(dest)]) == 0
    assert "0 files copied" in capsys.readouterr().out

    csv = dest / "gpt2" / "decoding_tradeoff.csv"
    csv.write_text("mine\n")
    assert main(["results", "gather", str(kaggle), "--results", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "debiaslab results: error:" in err and "decoding_tradeoff.csv" in err
    assert "--overwrite" in err and csv.read_text() == "mine\n"
    argv = ["results", "gather", str(kaggle), "--results", str(dest), "--overwrite"]
    assert main(argv) == 0
    assert "1 conflicts (replaced)" in capsys.readouterr().out
    assert csv.read_text() != "mine\n"


def test_cli_results_push_and_pull(local_results, tmp_path, monkeypatch, capsys, fake_hub):
    assert main(["results", "push", str(local_results), "--repo", REPO]) == 0
    assert "not pushed" in capsys.readouterr().out and fake_hub.calls == []

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["results", "push", str(local_results), "--repo", REPO, "--public"]) == 0
    out = capsys.readouterr().out
    assert f"https://huggingface.co/datasets/{REPO}" in out and TOKEN not in out
    assert fake_hub.calls[0][2]["private"] is False

    pulled = tmp_path / "pulled"
    commit = fake_hub.commit(REPO, "dataset")
    argv = ["results", "pull", REPO, "--results", str(pulled), "--revision", commit]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 results:" in out and out.strip().endswith("now run `make report`")
    assert fake_hub.calls[-1][2]["revision"] == commit and fake_hub.calls[-1][2]["token"] == TOKEN


def test_cli_results_verbs_have_help(capsys):
    for verb in ("gather", "push", "pull"):
        with pytest.raises(SystemExit) as exit_info:
            main(["results", verb, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: debiaslab results {verb}" in capsys.readouterr().out
