"""What an OpenAI-compatible server says about itself, asked once: served models, context length, a tokenizer.

Servers differ in what they report, so each answer is read where a server puts it:
- served models: `GET /v1/models` (every server); a model name is checked against this list once.
- context length: `max_model_len` in /v1/models (vLLM), `context_length` / `context_window` /
  `max_context_length` (OpenRouter, Together, Groq, LM Studio), `/props` `n_ctx` (llama.cpp server), or
  `meta.n_ctx_train` in /v1/models (llama.cpp, the length the model was trained for). llama-cpp-python and
  Ollama report none: pass `?ctx=N` then, or the length is learned from the first "maximum context length is
  N tokens" error.
- token counts: `POST /tokenize` (llama.cpp `{"content"}`, vLLM `{"model", "prompt"}`) or
  `POST /extras/tokenize` (llama-cpp-python `{"input"}`); without one, a cautious estimate (3 characters a
  token, which overcounts English and so keeps prompts inside the context).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length")
_CTX_ERROR = re.compile(r"maximum context length is (\d+) tokens", re.IGNORECASE)
_CTX_REQUEST = re.compile(r"\((\d+) in the messages, (\d+) in the completion\)", re.IGNORECASE)
_N_CTX_ERROR = re.compile(r"context window of (\d+)", re.IGNORECASE)


@dataclass
class ServerInfo:
    """What one probe of the server found; None where the server does not say."""

    reachable: bool = False
    models: Optional[list[str]] = None  # ids from /v1/models
    context_length: Optional[int] = None
    context_source: str = ""  # where context_length was read, for the log
    needs_v1: bool = False  # the base URL lacks /v1 and BASE/v1/models answers
    extra: dict[str, Any] = field(default_factory=dict)


def server_root(base_url: str) -> str:
    """`http://h:8000/v1` -> `http://h:8000` (llama.cpp's /props and /tokenize live at the root)."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def probe_server(base_url: str, model: str, headers: dict[str, str], timeout_s: float) -> ServerInfo:
    """Ask /models (and /props when needed) once. Connection failures leave `reachable` False, never raise."""
    import httpx

    info = ServerInfo()
    with httpx.Client(headers=headers, timeout=timeout_s, follow_redirects=True) as client:
        status, body = _get_json(client, f"{base_url}/models")
        if status is None:
            return info
        info.reachable = True
        if status == 404 and not base_url.rstrip("/").endswith("/v1"):
            alt_status, _ = _get_json(client, f"{base_url.rstrip('/')}/v1/models")
            info.needs_v1 = alt_status == 200
        if status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
            entries = [e for e in body["data"] if isinstance(e, dict) and e.get("id")]
            info.models = [str(e["id"]) for e in entries]
            mine = next((e for e in entries if model_matches(model, str(e["id"]))), None)
            if mine is None and len(entries) == 1:
                mine = entries[0]  # a one-model server (llama.cpp) answers under any name
            if mine is not None:
                info.context_length, info.context_source = _context_from_model(mine)
        if info.context_length is None:
            status, props = _get_json(client, f"{server_root(base_url)}/props")
            ctx = _props_context(props) if status == 200 else None
            if ctx:
                info.context_length, info.context_source = ctx, "/props n_ctx"
    return info


def _get_json(client, url: str) -> tuple[Optional[int], Any]:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        log.debug("GET %s failed: %s", url, exc)
        return None, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def _context_from_model(entry: dict) -> tuple[Optional[int], str]:
    for key in CONTEXT_KEYS:
        value = entry.get(key)
        if isinstance(value, int) and value > 0:
            return value, f"/models {key}"
    meta = entry.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("n_ctx_train"), int) and meta["n_ctx_train"] > 0:
        return meta["n_ctx_train"], "/models meta.n_ctx_train"
    return None, ""


def _props_context(props: Any) -> Optional[int]:
    if not isinstance(props, dict):
        return None
    for holder in (props.get("default_generation_settings"), props):
        if isinstance(holder, dict) and isinstance(holder.get("n_ctx"), int) and holder["n_ctx"] > 0:
            return holder["n_ctx"]
    return None


def model_matches(wanted: str, served: str) -> bool:
    """Same model: equal ids, Ollama's implicit `:latest` tag, or a served file path ending in the name."""
    if wanted == served or f"{wanted}:latest" == served:
        return True
    return served.endswith(("/" + wanted, "/" + wanted + ".gguf"))


def context_from_error(message: str) -> tuple[Optional[int], Optional[int]]:
    """(context length, prompt tokens) from an "exceeds the context" error message; None where not said."""
    m = _CTX_ERROR.search(message) or _N_CTX_ERROR.search(message)
    if not m:
        return None, None
    request = _CTX_REQUEST.search(message)
    return int(m.group(1)), (int(request.group(1)) if request else None)


# ---- token counting --------------------------------------------------------------------------------------

class Tokenizer:
    """Counts tokens with the server's own tokenizer when it has an endpoint, else estimates cautiously."""

    def __init__(self, base_url: str, model: str, headers: dict[str, str], timeout_s: float) -> None:
        self.base_url, self.model, self.headers, self.timeout_s = base_url, model, headers, timeout_s
        self._count: Optional[Callable[[str], Optional[int]]] = None
        self._found = False
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            if not self._found:
                self._count = self._discover()
                self._found = True
        counted = self._count(text) if self._count is not None else None
        return counted if counted is not None else estimate_tokens(text)

    def _discover(self) -> Optional[Callable[[str], Optional[int]]]:
        root = server_root(self.base_url)
        shapes = [(f"{root}/tokenize", lambda t: {"content": t}), (f"{root}/tokenize",
                  lambda t: {"model": self.model, "prompt": t}), (f"{root}/extras/tokenize", lambda t: {"input": t})]
        for url, body in shapes:
            if _post_tokens(url, body("hello world"), self.headers, self.timeout_s) is not None:
                log.debug("counting tokens with %s", url)
                return lambda text, url=url, body=body: _post_tokens(url, body(text), self.headers, self.timeout_s)
        log.debug("no tokenize endpoint at %s; estimating token counts", root)
        return None


def _post_tokens(url: str, body: dict, headers: dict[str, str], timeout_s: float) -> Optional[int]:
    import httpx

    try:
        response = httpx.post(url, json=body, headers=headers, timeout=min(timeout_s, 30.0))
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if isinstance(data, dict):
        if isinstance(data.get("count"), int):
            return data["count"]
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
    return None


def estimate_tokens(text: str) -> int:
    """A cautious token count without a tokenizer: 3 characters a token (English BPE averages about 4)."""
    return max(1, math.ceil(len(text) / 3)) if text else 0


# ---- "still waiting" log lines ---------------------------------------------------------------------------

class WaitLog:
    """Logs how long the oldest request in flight has waited, every `every_s` seconds while any is in flight.

    Short waits log at INFO (seen with --verbose); from `loud_after_s` on they log as warnings, so a stalled
    server is visible without flags: "waiting for openai:M@URL: 40 s (timeout 300 s)".
    """

    def __init__(self, label: str, timeout_s: float, every_s: float = 10.0, loud_after_s: float = 30.0) -> None:
        self.label, self.timeout_s, self.every_s, self.loud_after_s = label, timeout_s, every_s, loud_after_s
        self._started: dict[int, float] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    @contextmanager
    def track(self):
        with self._lock:
            key = self._next
            self._next += 1
            self._started[key] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="openai-wait-log", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                del self._started[key]

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                if not self._started:
                    self._thread = None  # a later track() starts a new one
                    return
                waited = time.monotonic() - min(self._started.values())
                count = len(self._started)
            if waited < self.every_s:
                continue
            more = f", {count} requests in flight" if count > 1 else ""
            log.log(logging.WARNING if waited >= self.loud_after_s else logging.INFO,
                    "waiting for %s: %.0f s (timeout %.0f s%s)", self.label, waited, self.timeout_s, more)
