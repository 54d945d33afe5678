"""The download registry as data (data/registry.yaml) and ``debiaslab data pull`` (all offline)."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from debiaslab.cli import main
from debiaslab.data import fetch
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.data.crows_pairs_revised import REGISTRY_NAMES, load_crows_pairs_revised
from debiaslab.data.prompts import (
    BOLD_DOMAINS,
    HONEST_SETS,
    load_bold,
    load_honest_templates,
    load_hurtlex,
    load_partiprompts,
)
from debiaslab.data.pull import pull
from debiaslab.data.stereoset import load_stereoset
from debiaslab.data.swaps import SWAP_FILES, load_swaps
from debiaslab.errors import DataFormatError
from debiaslab.mitigation.decoding import GENDER_FILES, load_group_words
from debiaslab.t2i.occupations import YEARS, load_occupations

ROOT = Path(__file__).resolve().parents[1]
REGISTRY_YAML = ROOT / "data" / "registry.yaml"
CROWS = fetch.REGISTRY["crows_pairs"]
BOLD_GENDER = fetch.REGISTRY["bold_gender"]
# Files no loader in src reads, and why they are registered anyway.
NOT_LOADED = {"stereoset_gpt2_predictions": "the StereoSet parity test's reference predictions"}


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def copy_from_shared(shared_data: Path, dest: Path, *remotes: fetch.RemoteFile) -> Path:
    for remote in remotes:
        (dest / remote.relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / remote.relpath, dest / remote.relpath)
    return dest


# --- the registry file ---------------------------------------------------------------------


def test_the_checkout_reads_the_top_level_registry() -> None:
    assert fetch.registry_path() == REGISTRY_YAML
    raw = yaml.safe_load(REGISTRY_YAML.read_text("utf-8"))
    assert list(raw) == list(fetch.REGISTRY)
    for name, entry in raw.items():
        remote = fetch.REGISTRY[name]
        assert remote.relpath == entry["file"] and remote.url == entry["url"], name
        assert remote.sha256 == entry.get("sha256") and remote.licence == entry["licence"], name


def test_every_entry_is_complete() -> None:
    raw = yaml.safe_load(REGISTRY_YAML.read_text("utf-8"))
    for name, entry in raw.items():
        for key in ("benchmark", "file", "licence", "citation"):
            assert isinstance(entry.get(key), str) and entry[key].strip(), (name, key)
        url = entry["url"]
        assert url.startswith("https://") or (url == "" and entry.get("note")), name
        if "sha256" in entry:
            assert re.fullmatch("[0-9a-f]{64}", entry["sha256"]), name
        else:
            assert re.fullmatch("[0-9a-f]{40}", entry["git_blob_sha1"]), name
    # only StereoSet's dev.json (not obtainable offline) is known by its git blob id alone
    assert {n for n, e in raw.items() if "sha256" not in e} == {"stereoset_dev"}
    assert len({e["file"] for e in raw.values()}) == len(raw)  # no two entries share a file


def test_registered_sizes_match_the_shared_copies(shared_data: Path) -> None:
    checked = 0
    for remote in fetch.REGISTRY.values():
        local = shared_data / remote.relpath
        if remote.size is not None and local.is_file():
            assert local.stat().st_size == remote.size, remote.relpath
            checked += 1
    assert checked == 20


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda e: e.pop("licence"), "licence"),
        (lambda e: e.update(citation=""), "citation"),
        (lambda e: e.update(sha256="DFB3"), "sha256"),
        (lambda e: e.update(sha256=None), "sha256"),
        (lambda e: e.update(url="http://example.org/x.csv"), "url"),
        (lambda e: e.update(file="../../etc/passwd"), "file"),
        (lambda e: e.update(size="large"), "size"),
        (lambda e: e.update(licence_url="https://x"), "licence_url"),
    ],
)
def test_a_broken_entry_names_the_file_entry_and_field(tmp_path: Path, edit, field) -> None:
    raw = yaml.safe_load(REGISTRY_YAML.read_text("utf-8"))
    edit(raw["crows_pairs"])
    raw["crows_pairs"] = {k: v for k, v in raw["crows_pairs"].items() if v is not None}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw), "utf-8")
    with pytest.raises(DataFormatError) as info:
        fetch.load_registry(path)
    message = str(info.value)
    assert message.startswith(f"{path}: record crows_pairs, field '{field}'")
    assert "\n" not in message


def test_every_loaders_file_is_registered() -> None:
    """Every name a module passes to ``resolve`` is a registry entry, and every entry is read."""
    literal, prefixes = set(), set()
    for path in (ROOT / "src" / "debiaslab").rglob("*.py"):
        text = path.read_text("utf-8")
        if "resolve(" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            func = getattr(node, "func", None)
            name = getattr(func, "attr", None) or getattr(func, "id", None)
            if not isinstance(node, ast.Call) or name != "resolve" or not node.args:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                literal.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                prefixes.add(arg.values[0].value)
    dynamic = {
        *(f"bold_{d}" for d in BOLD_DOMAINS),
        *(f"honest_{k}" for k in HONEST_SETS),
        *(f"bls_cpsaat11_{y}" for y in YEARS),
        *REGISTRY_NAMES.values(),
        *SWAP_FILES,
        *GENDER_FILES.values(),
    }
    assert {"crows_pairs", "hurtlex_en", "partiprompts", "stereoset_dev_flat"} <= literal
    assert prefixes == {"bold_", "honest_", "bls_cpsaat11_"}
    assert all(any(n.startswith(p) for n in dynamic) for p in prefixes)
    loaded = literal | dynamic
    assert loaded <= set(fetch.REGISTRY), loaded - set(fetch.REGISTRY)
    assert set(fetch.REGISTRY) - loaded == set(NOT_LOADED)


# --- the wheel ships it ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_ships_the_registry_and_nothing_else_from_data(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for name in ("pyproject.toml", "setup.py", "README.md", "data/registry.yaml"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "data" / "crows_pairs").mkdir()
    (tree / "data" / "crows_pairs" / "pulled.csv").write_text("a pulled file")
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-q", "-w", str(wheels), str(tree)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("debiaslab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = archive.read("debiaslab/data_registry/registry.yaml")
        archive.extractall(tmp_path / "site")
    assert shipped == REGISTRY_YAML.read_bytes()
    assert [n for n in names if "data_registry" in n or "pulled" in n] == [
        "debiaslab/data_registry/registry.yaml"
    ]
    code = "from debiaslab.data import fetch; print(fetch.registry_path(), len(fetch.REGISTRY))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    path, count = out.stdout.split()
    assert Path(path) == tmp_path / "site" / "debiaslab" / "data_registry" / "registry.yaml"
    assert int(count) == len(fetch.REGISTRY)


# --- debiaslab data pull --------------------------------------------------------------------


def test_pull_copies_verifies_and_resumes(
    offline_data_env: Path, tmp_path: Path, shared_data: Path
) -> None:
    source = copy_from_shared(shared_data, tmp_path / "src", CROWS, BOLD_GENDER)
    out = tmp_path / "out"
    lines: list[str] = []
    report = pull(out, source=source, only=["crows_pairs", "bold_gender"], echo=lines.append)
    assert report.copied == [CROWS.relpath, BOLD_GENDER.relpath] and not report.failed
    for remote in (CROWS, BOLD_GENDER):
        assert hashlib.sha256((out / remote.relpath).read_bytes()).hexdigest() == remote.sha256
    assert files_under(out) == sorted([out / CROWS.relpath, out / BOLD_GENDER.relpath])
    assert lines[0] == f"copied {CROWS.relpath} from {source / CROWS.relpath}"

    before = (out / CROWS.relpath).stat()
    shutil.rmtree(source)  # a second pull needs no source: the files are there and verify
    again = pull(out, source=source, only=["crows_pairs", "bold_gender"])
    assert again.present == [CROWS.relpath, BOLD_GENDER.relpath]
    assert not (again.copied or again.downloaded or again.failed)
    assert (out / CROWS.relpath).stat().st_ino == before.st_ino  # not rewritten


def test_pull_replaces_a_damaged_file(
    offline_data_env: Path, tmp_path: Path, shared_data: Path
) -> None:
    source = copy_from_shared(shared_data, tmp_path / "src", CROWS)
    out = tmp_path / "out"
    (out / CROWS.relpath).parent.mkdir(parents=True)
    (out / CROWS.relpath).write_bytes(b"half a file")
    report = pull(out, source=source, only=["crows_pairs"])
    assert report.copied == [CROWS.relpath]
    assert (out / CROWS.relpath).read_bytes() == (source / CROWS.relpath).read_bytes()


def test_pull_refuses_a_corrupted_source_in_one_line(
    offline_data_env: Path,
    tmp_path: Path,
    shared_data: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = copy_from_shared(shared_data, tmp_path / "src", CROWS, BOLD_GENDER)
    bad = source / CROWS.relpath
    bad.write_bytes(bad.read_bytes().replace(b"stereo", b"Stereo", 1))
    out = tmp_path / "out"
    argv = ["data", "pull", "--from", str(source), "--out", str(out), "--only", "crows_pairs"]
    assert main([*argv, "bold_gender"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 1
    got = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert errors[0].startswith(f"debiaslab data pull: error: {bad}: sha256 {got} ")
    assert f"does not match the published {CROWS.sha256} for {CROWS.relpath}" in errors[0]
    assert "1 copied, 0 downloaded, 0 already present, 1 failed" in captured.out
    assert files_under(out) == [out / BOLD_GENDER.relpath]  # no crows file, no .part file


def test_pull_downloads_atomically(
    offline_data_env: Path, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = (shared_data / CROWS.relpath).read_bytes()
    out = tmp_path / "out"
    dest = out / CROWS.relpath
    requested, seen = [], []

    class Response(io.BytesIO):
        def read(self, size=-1):  # what a reader of `out` could see mid-download
            seen.append((dest.exists(), [p.name for p in files_under(out)]))
            return super().read(size if size is None or size < 0 else min(size, 100_000))

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return Response(payload)

    monkeypatch.setattr(fetch.urllib.request, "urlopen", fake_urlopen)
    report = pull(out, only=["crows_pairs"])
    assert report.downloaded == [CROWS.relpath] and requested == [CROWS.url]
    assert len(seen) > 2 and not any(exists for exists, _ in seen)  # never under its name
    assert all(len(names) == 1 and names[0].endswith(".part") for _, names in seen)
    assert files_under(out) == [dest] and fetch.sha256_of(dest) == CROWS.sha256
    assert files_under(offline_data_env) == []  # pulled into out, not the cache

    dest.unlink()
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout=None: Response(b"x"))
    report = pull(out, only=["crows_pairs"])
    (reason,) = report.failed.values()
    assert reason.startswith(f"{CROWS.url}: sha256 {hashlib.sha256(b'x').hexdigest()} ")
    assert CROWS.sha256 in reason and "\n" not in reason
    assert files_under(out) == []


def test_network_errors_are_reported_per_file(offline_data_env: Path, tmp_path: Path) -> None:
    report = pull(tmp_path / "out", only=["honest"])
    assert sorted(report.failed) == [
        "honest/binary/en_template.tsv",
        "honest/queer_nonqueer/en_template.tsv",
        "hurtlex/hurtlex_EN.tsv",
    ]
    assert all("tests are offline" in reason for reason in report.failed.values())
    assert files_under(tmp_path / "out") == []


def test_pull_takes_data_dir_and_cache_like_the_loaders(
    offline_data_env: Path, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_from_shared(shared_data, offline_data_env, BOLD_GENDER)  # in the cache
    data_dir = copy_from_shared(shared_data, tmp_path / "mine", CROWS)
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(data_dir))
    report = pull(tmp_path / "out", only=["crows_pairs", "bold_gender"])
    assert report.copied == [CROWS.relpath, BOLD_GENDER.relpath] and not report.failed


def test_after_a_pull_every_loader_works_offline(
    offline_data_env: Path, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "data"
    assert main(["data", "pull", "--from", str(shared_data), "--out", str(out)]) == 1
    assert not (out / "stereoset" / "dev.json").exists()  # not in shared/data, no network
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(out))

    def no_network(url, timeout=None):
        raise AssertionError(f"a loader tried to download {url}")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    assert len(load_crows_pairs()) == 1508
    assert all(load_crows_pairs_revised(language=lang) for lang in ("english", "french"))
    stereoset = load_stereoset()  # dev.json absent: the flattened complete dev split
    assert len(stereoset.intrasentence) == 2106 and len(stereoset.intersentence) == 2123
    assert len(load_bold()) == 23679 - 5  # the README's count, less 5 empty prompts
    assert all(load_honest_templates(kind) for kind in HONEST_SETS)
    assert load_hurtlex() and load_partiprompts() and load_swaps() and load_group_words()
    assert all(load_occupations(year=year).occupations for year in YEARS)
    assert files_under(offline_data_env) == []  # nothing was cached or downloaded


def test_cli_data_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offline_data_env: Path
) -> None:
    out = str(tmp_path / "out")
    assert main(["data", "pull", "--out", out, "--only", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("debiaslab data: error: --only bogus: not in the data registry")
    assert "\n" not in err
    assert main(["data", "pull", "--out", out, "--from", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["data", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in listed] == list(fetch.REGISTRY)
    assert "CC-BY-NC-SA-4.0" in next(line for line in listed if line.startswith("hurtlex_en"))


def test_cached_copy_failure_does_not_touch_out(
    offline_data_env: Path, tmp_path: Path, shared_data: Path
) -> None:
    cached = copy_from_shared(shared_data, offline_data_env, CROWS) / CROWS.relpath
    cached.write_bytes(b"damaged")
    report = pull(tmp_path / "out", only=["crows_pairs"])
    assert str(cached) in report.failed[CROWS.relpath]
    assert files_under(tmp_path / "out") == []
