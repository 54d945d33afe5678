"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from debiaslab.errors import ConfigError
from debiaslab.synth.backends import OpenAIBackend, run_prompts

CANARY = "sk-" + "canary0123456789abcdefDoNotLeak"  # built at run time: scanners skip it


class Server:
    """A chat-completions server: answers "echo: <prompt>", with scripted failures."""

    def __init__(self):
        self.requests: list[dict] = []
        self.failures: list[int] = []  # status codes to answer, in order, before succeeding
        self.answer = lambda prompt: f"echo: {prompt}"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                )
                if outer.failures:
                    code = outer.failures.pop(0)
                    self.send_response(code)
                    if code == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "slow down"}')
                    return
                prompt = body["messages"][-1]["content"]
                content = outer.answer(prompt)
                answer = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def backend(server, **kwargs):
    waits: list[float] = []
    b = OpenAIBackend(
        "tiny-chat",
        base_url=server.url,
        api_key=CANARY,
        requests_per_minute=6000,
        backoff=0.01,
        sleep=waits.append,
        **kwargs,
    )
    return b, waits


def test_completion_sends_the_key_only_in_the_header_and_retries_429(server, caplog):
    b, waits = backend(server)
    server.failures = [429, 503]
    with caplog.at_level(logging.DEBUG):
        assert b.complete("hello") == "echo: hello"
    assert len(server.requests) == 3  # two refused, then answered
    assert all(r["auth"] == f"Bearer {CANARY}" for r in server.requests)
    assert (
        server.requests[-1]["model"] == "tiny-chat"
        and server.requests[-1]["path"] == "/v1/chat/completions"
    )
    assert "HTTP 429" in caplog.text and CANARY not in caplog.text and CANARY not in repr(b)
    assert 0.02 in waits  # the 503's backoff doubled after the 429's Retry-After: 0


def test_errors_are_clear_and_keyless(server):
    b, _ = backend(server, max_retries=1)
    server.failures = [401]
    with pytest.raises(ConfigError, match="HTTP 401") as info:
        b.complete("x")
    assert CANARY not in str(info.value)
    server.failures = [500, 500]
    with pytest.raises(ConfigError, match="HTTP 500"):
        b.complete("x")
    offline = OpenAIBackend(
        "m", base_url="http://127.0.0.1:9/v1", api_key=CANARY, max_retries=0, sleep=lambda s: None
    )
    with pytest.raises(ConfigError, match="cannot reach") as info:
        offline.complete("x")
    assert CANARY not in str(info.value)


def test_run_resumes_after_an_interruption_without_resending(server, tmp_path, caplog):
    b, _ = backend(server, max_retries=0)
    prompts = [(f"p{i}", f"prompt {i}") for i in range(5)]
    out = tmp_path / "answers.jsonl"
    server.failures = []
    original = b.complete
    calls = []

    def flaky(prompt):
        calls.append(prompt)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the cell
        return original(prompt)

    b.complete = flaky
    with pytest.raises(KeyboardInterrupt):
        run_prompts(b, prompts, out, progress=False)
    assert len(out.read_text().splitlines()) == 2
    b.complete = original
    before = len(server.requests)
    with caplog.at_level(logging.DEBUG):
        answers = run_prompts(b, prompts, out, progress=False)
    assert len(server.requests) - before == 3
    assert answers == {pid: f"echo: {p}" for pid, p in prompts}
    assert CANARY not in out.read_text() and CANARY not in caplog.text


def test_synth_generate_cli_with_the_openai_backend_writes_a_keyless_dataset(
    server, tmp_path, monkeypatch, capsys, caplog
):
    """``debiaslab synth generate --backend openai``: key and URL from the environment, as a
    user on Kaggle would set them; the answers are varied sentences about the asked group."""
    import datasets

    from debiaslab.cli import main

    counter = iter(range(10_000))
    verbs = ["plans the week", "trains a new colleague", "fixes a hard problem", "leads a meeting"]

    def answer(prompt):
        n = next(counter)
        subject = "She" if "a woman" in prompt else "He"
        topic = prompt.rsplit(" in ", 1)[-1].rstrip(".")
        return f"{subject} works in {topic} and {verbs[n % 4]} on day {n}."

    server.answer = answer
    server.failures = [429]
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    out = tmp_path / "ds"
    argv = [
        "synth", "generate", "--spec", "gender-work", "--backend", "openai",
        "--model", "tiny-chat", "--n", "48", "--out", str(out), "--rpm", "60000",
        "--toxicity-model", "tiny-toxicity", "--regard-model", "tiny-regard",
    ]  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "counterfactual pairs" in printed and "README.md" in printed
    assert len(server.requests) == 48 + 1 and all(
        r["auth"] == f"Bearer {CANARY}" for r in server.requests
    )
    ds = datasets.load_dataset(str(out))
    assert sum(len(split) for split in ds.values()) > 0
    for path in out.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    assert CANARY not in printed and CANARY not in caplog.text
    # A second run resumes from the raw answers: nothing is asked again.
    assert main(argv) == 0
    assert len(server.requests) == 49
