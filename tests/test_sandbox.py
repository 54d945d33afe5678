"""The emulated Kaggle session's limits (debiaslab.sandbox), each in a fresh interpreter."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

from debiaslab import sandbox


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_the_network_is_off_but_loopback_answers():
    done = _run(
        """
        import socket, threading
        from debiaslab import sandbox
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        threading.Thread(target=lambda: server.accept()[0].sendall(b"ok"), daemon=True).start()
        sandbox.install()
        sandbox.install()  # twice: no double wrapping
        print(socket.create_connection(("127.0.0.1", port), timeout=5).recv(2).decode())
        attempts = [
            lambda: socket.socket().connect(("203.0.113.7", 443)),  # an address: connect
            lambda: socket.create_connection(("huggingface.co", 443), timeout=5),  # a name
        ]
        for attempt in attempts:
            try:
                attempt()
            except OSError as exc:
                print("refused:", exc)
        print(socket.socket().connect_ex(("203.0.113.7", 443)))
        """
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0] == "ok"
    assert lines[1].startswith("refused:") and "cannot reach 203.0.113.7" in lines[1]
    assert "cannot look up huggingface.co" in lines[2] and sandbox.MESSAGE in lines[2]
    assert lines[3] == str(errno.ENETUNREACH)


def test_inputs_and_the_folders_mounted_in_them_are_read_only(tmp_path):
    upstream, inputs, working = tmp_path / "up", tmp_path / "input", tmp_path / "working"
    (upstream / "results").mkdir(parents=True)
    (upstream / "results" / "a.json").write_text("{}")
    inputs.mkdir()
    working.mkdir()
    (inputs / "debiaslab-up").symlink_to(upstream, True)
    done = _run(
        f"""
        import os, pathlib, shutil
        from debiaslab import sandbox
        sandbox.install([{str(inputs)!r}])
        mounted = pathlib.Path({str(inputs)!r}) / "debiaslab-up"
        print((mounted / "results" / "a.json").read_text())
        attempts = [
            lambda: (mounted / "results" / "a.json").write_text("x"),
            lambda: open(mounted / "new.txt", "a"),
            lambda: (mounted / "folder").mkdir(),
            lambda: (mounted / "results" / "a.json").unlink(),
            lambda: os.replace({str(working)!r} + "/x", mounted / "x"),
            lambda: os.open(mounted / "y", os.O_CREAT | os.O_WRONLY),
            lambda: shutil.copy(mounted / "results" / "a.json", mounted / "b.json"),
        ]
        for attempt in attempts:
            try:
                attempt()
                print("written")
            except OSError as exc:
                print(exc.errno, exc.strerror)
        (pathlib.Path({str(working)!r}) / "out.txt").write_text("mine")
        os.symlink(mounted / "results", pathlib.Path({str(working)!r}) / "link")
        print(shutil.copy(mounted / "results" / "a.json", {str(working)!r}))
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "{}"
    assert lines[1:8] == ["30 Read-only file system"] * 7
    assert (working / "out.txt").read_text() == "mine" and (working / "a.json").is_file()
    assert (upstream / "results" / "a.json").read_text() == "{}"
    assert sorted(p.name for p in upstream.iterdir()) == ["results"]
