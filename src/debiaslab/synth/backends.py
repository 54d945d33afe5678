"""Text-generation backends of the synthetic-data tool, and a resumable batch runner.

:class:`TransformersBackend` (``--backend hf``, the default) runs a local transformers model
through :mod:`debiaslab.generation`; :class:`OpenAIBackend` speaks the OpenAI-compatible
chat-completions API (rate-limited, retried; its key is never logged or written);
:func:`run_prompts` appends each answer to a JSON-lines file so an interrupted run resumes
with the missing ones only. :func:`make_backend` builds the one a run asks for.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from debiaslab.env import get_secret
from debiaslab.errors import ConfigError
from debiaslab.generation import GenerationSettings, generate
from debiaslab.generation_cache import CacheWriter, read_cache
from debiaslab.synth.examples import tiny_writer
from debiaslab.synth.spec import Request

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = (429, 500, 502, 503, 504)


class Backend(Protocol):
    """Answers requests of a spec; ``answer`` appends to ``raw`` as it goes (resumable)."""

    name: str

    def answer(
        self, requests: Sequence[Request], raw: Path, *, progress: bool = True
    ) -> dict[str, str]: ...

    def settings(self) -> dict[str, Any]: ...


class TransformersBackend:
    """A local transformers model (causal or seq2seq) through the batched generation engine.

    The engine is the batched, seeded one of :mod:`debiaslab.generation`.

    A tokenizer with a chat template gets each prompt as one user message (``chat=None``:
    whenever it has one); a base model continues the instruction as it is. Requests of one
    cell share a prompt and differ by sample index, so one ``generate`` call with
    ``num_return_sequences`` = samples per cell answers them all, seeded per (prompt, sample)
    and cached in ``raw`` (an interrupted run resumes).

    Args:
        lm: a :class:`~debiaslab.models.LoadedModel` (causal or seq2seq).
        generation: decoding settings (``num_return_sequences`` is set per run).
        chat: apply the tokenizer's chat template (None: when it has one).
        batch_size: sequences per generate call (default the engine's).
    """

    def __init__(
        self,
        lm,
        generation: GenerationSettings | None = None,
        *,
        chat: bool | None = None,
        batch_size: int | None = None,
    ) -> None:
        if lm.family not in ("causal", "seq2seq"):
            raise ConfigError(
                f"{lm.name} is a {lm.family} model; synthetic data needs a causal or seq2seq "
                "model (one that generates text)"
            )
        self.lm = lm
        self.name = f"hf:{lm.name}"
        self.generation = generation or GenerationSettings(max_new_tokens=60, top_p=0.95)
        template = getattr(lm.tokenizer, "chat_template", None)
        if chat and not template:
            raise ConfigError(f"{lm.name}'s tokenizer has no chat template")
        self.chat = bool(template) if chat is None else chat
        self.batch_size = batch_size

    def format(self, prompt: str) -> str:
        if not self.chat:
            return prompt
        return self.lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def settings(self) -> dict[str, Any]:
        return {"chat_template": self.chat, **self.generation.as_dict()}

    def complete(self, prompt: str) -> str:
        """One answer to ``prompt`` (seeded: the same prompt gives the same answer)."""

        settings = replace(self.generation, num_return_sequences=1)
        out = generate(
            self.lm, [self.format(prompt)], settings, progress=False, batch_size=self.batch_size
        )
        return out[0][0]

    def answer(
        self, requests: Sequence[Request], raw: Path, *, progress: bool = True
    ) -> dict[str, str]:

        if not requests:
            return {}
        prompts = list(dict.fromkeys(self.format(r.prompt) for r in requests))
        index = {p: i for i, p in enumerate(prompts)}
        settings = replace(
            self.generation, num_return_sequences=max(r.sample for r in requests) + 1
        )
        out = generate(
            self.lm,
            prompts,
            settings,
            cache=raw,
            progress=progress,
            batch_size=self.batch_size,
        )
        return {r.id: out[index[self.format(r.prompt)]][r.sample] for r in requests}


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible HTTP API.

    Speaks to OpenAI, vLLM, TGI, llama.cpp servers … with the standard library's HTTP client:
    base URL from the argument or ``OPENAI_BASE_URL``, key from the argument or the secret
    store (``OPENAI_API_KEY``: env var → Kaggle secrets → Colab userdata). It spaces requests
    to a requests-per-minute budget and retries 429 and 5xx answers with exponential backoff
    (honouring ``Retry-After``). The key is sent only in the ``Authorization`` header: it is
    never logged, never written to an output and scrubbed from error messages.

    Args:
        model: the model name the server expects.
        base_url: API root (default ``$OPENAI_BASE_URL``, else OpenAI's).
        api_key: key (default: the ``OPENAI_API_KEY`` secret; a local server may need none).
        requests_per_minute: spacing between requests.
        max_retries: retries of a 429/5xx answer or a connection error.
        backoff: first retry wait in seconds, doubled each retry.
        temperature, max_tokens: sampling settings sent with each request.
        timeout: seconds per request.
        sleep: the wait function (tests pass a recorder).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        requests_per_minute: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        temperature: float = 1.0,
        max_tokens: int = 256,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import os

        self.name = f"openai:{model}"
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self._key = api_key if api_key is not None else get_secret("OPENAI_API_KEY")
        if requests_per_minute <= 0:
            raise ConfigError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.interval = 60.0 / requests_per_minute
        self.max_retries, self.backoff = max_retries, backoff
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.sleep = sleep
        self._last = 0.0

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "<redacted>") if self._key else text

    def _post(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read().decode("utf-8"))

    def settings(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def answer(
        self, requests: Sequence[Request], raw: Path, *, progress: bool = True
    ) -> dict[str, str]:
        """Answer every request (one chat completion each), resumable from ``raw``."""
        return run_prompts(self, [(r.id, r.prompt) for r in requests], raw, progress=progress)

    def complete(self, prompt: str) -> str:
        """One chat completion of ``prompt`` (a single user message)."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            wait = self.interval - (time.monotonic() - self._last)
            if wait > 0:
                self.sleep(wait)
            self._last = time.monotonic()
            try:
                answer = self._post(body)
                return str(answer["choices"][0]["message"]["content"])
            except urllib.error.HTTPError as exc:
                detail = self._scrub(exc.read().decode("utf-8", "replace")[:300])
                if exc.code not in RETRY_STATUSES or attempt == self.max_retries:
                    raise ConfigError(
                        f"{self.base_url} answered HTTP {exc.code}: {detail}"
                    ) from None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                delay = float(retry_after) if retry_after else self.backoff * 2**attempt
                log.warning("HTTP %d from %s; retrying in %.1f s", exc.code, self.base_url, delay)
            except (urllib.error.URLError, TimeoutError) as exc:
                if attempt == self.max_retries:
                    raise ConfigError(
                        f"cannot reach {self.base_url}: {self._scrub(str(exc))}"
                    ) from None
                delay = self.backoff * 2**attempt
                log.warning("%s unreachable; retrying in %.1f s", self.base_url, delay)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(
                    f"{self.base_url}: not a chat-completions answer ({type(exc).__name__})"
                ) from None
            self.sleep(delay)
        raise AssertionError("unreachable")


def make_backend(
    kind: str,
    model: str,
    *,
    spec=None,
    max_new_tokens: int = 60,
    temperature: float = 1.0,
    top_p: float = 0.95,
    chat: bool | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    base_url: str | None = None,
    requests_per_minute: float = 60.0,
    seed: int = 0,
):
    """The backend ``debiaslab synth generate`` (and the notebook) asks for.

    Args:
        kind: ``hf`` (a local transformers model) or ``openai`` (an OpenAI-compatible API).
        model: hf: a preset, hub id or path, or ``tiny-writer`` (an offline tiny model trained
            for ``spec`` by :func:`debiaslab.synth.examples.tiny_writer`); openai: the model
            name the API expects.
        spec: the spec (needed by ``tiny-writer``).
        max_new_tokens, temperature: decoding (``max_tokens`` for the API).
        top_p, chat, device, batch_size: hf only.
        base_url, requests_per_minute: openai only (key: the ``OPENAI_API_KEY`` secret).
        seed: generation seed (hf) and the tiny writer's.
    """
    if kind == "openai":
        return OpenAIBackend(
            model,
            base_url=base_url,
            requests_per_minute=requests_per_minute,
            temperature=temperature,
            max_tokens=max_new_tokens,
        )
    if kind != "hf":
        raise ConfigError(f"unknown synth backend {kind!r}; expected hf or openai")
    settings = GenerationSettings(  # bad settings fail before the model loads
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
    )
    if model == "tiny-writer":
        if spec is None:
            raise ConfigError("the tiny-writer model is trained for a spec: pass spec=")
        lm = tiny_writer(spec, seed=seed)
    else:
        from debiaslab.models import load_model

        lm = load_model(model, device=device)
    return TransformersBackend(lm, settings, chat=chat, batch_size=batch_size)


def run_prompts(
    backend: OpenAIBackend,
    prompts: Sequence[tuple[str, str]],
    output: str | Path,
    *,
    progress: bool = True,
) -> dict[str, str]:
    """Answer ``(id, prompt)`` pairs, appending each answer to ``output`` (JSON lines).

    Ids already in the file are not sent again, so a killed run resumes where it stopped.
    The file is in the generation engine's cache format.
    Returns id → answer for every pair.
    """

    path = Path(output)
    done = read_cache(path)
    todo = [(pid, prompt) for pid, prompt in prompts if pid not in done]
    if len(todo) < len(prompts):
        log.info(
            "%s: %d of %d answers already there", path, len(prompts) - len(todo), len(prompts)
        )
    writer = CacheWriter(path, backend.name, {"backend": backend.name})
    try:
        for pid, prompt in tqdm(todo, desc="synth", disable=not progress):
            text = backend.complete(prompt)
            writer.write([(pid, prompt, 0)], [text])
            done[pid] = text
    finally:
        writer.close()
    return {pid: done[pid] for pid, _ in prompts}
