"""Any OpenAI-compatible chat server: hosted APIs, vLLM, SGLang, llama.cpp server, Ollama.

    cycleresearcher generate --backend openai:gpt-4o-mini "Say hi"
    cycleresearcher generate --backend "openai:Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1" "Say hi"

Spec: `openai:MODEL[@BASE_URL]`. Without a base URL, `OPENAI_BASE_URL` or the official endpoint is used.
The key comes from `CYCLERESEARCHER_API_KEY` or `OPENAI_API_KEY`; a local server (any base URL that is not
the official one) gets the dummy key "EMPTY" when neither is set.

We do our own retries (the client's are switched off) so their number and back-off are explicit: 429, 5xx,
timeouts and connection errors are retried with exponential back-off and jitter; anything else, or the last
failure, raises `BackendError` with the status and the server's message. An error never becomes text.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Optional

from ..schema import Completion, GenerationRequest
from .base import Backend, BackendError

log = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
KEY_VARIABLES = ("CYCLERESEARCHER_API_KEY", "OPENAI_API_KEY")
DUMMY_KEY = "EMPTY"
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


def parse_openai_spec(rest: str) -> tuple[str, Optional[str]]:
    """(model, base URL or None) from the part of the spec after `openai:`."""
    rest = rest.strip()
    # a model name may itself hold "@" (rare), so the URL starts at the "@" followed by a scheme
    starts = [i for i in (rest.find("@http://"), rest.find("@https://")) if i >= 0]
    if starts:
        model, url = rest[: min(starts)], rest[min(starts) + 1:].rstrip("/")
    elif "@" in rest:
        raise BackendError(f"openai spec {'openai:' + rest!r}: the base URL after '@' must start with "
                           "http:// or https://, e.g. openai:MODEL@http://localhost:8000/v1")
    else:
        model, url = rest, ""
    if not model:
        raise BackendError("openai spec needs a model name: openai:MODEL[@BASE_URL]")
    return model, url or None


def _api_key(base_url: str) -> str:
    for name in KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    if base_url.rstrip("/") != OFFICIAL_BASE_URL:
        return DUMMY_KEY  # local servers (vLLM, llama.cpp, Ollama) accept any key
    raise BackendError(f"no API key for {OFFICIAL_BASE_URL}: set {' or '.join(KEY_VARIABLES)}")


def _debug_serial() -> bool:
    return os.environ.get("CYCLERESEARCHER_DEBUG", "") not in ("", "0", "false")


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible server, `concurrency` requests in flight at once."""

    supports_seed = True  # passed through; servers may ignore it

    def __init__(self, model: str, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 timeout_s: float = 600.0, max_tries: int = 6, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, concurrency: int = 8, context_length: int = 8192) -> None:
        super().__init__()
        import openai

        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OFFICIAL_BASE_URL).rstrip("/")
        self.spec = f"openai:{model}@{self.base_url}"
        self.max_tries = max(1, max_tries)  # total attempts per call, the first one included
        self.backoff_s = backoff_s  # first wait; doubles each retry, with jitter
        self.max_backoff_s = max_backoff_s
        self.concurrency = max(1, concurrency)
        self.context_length = context_length
        self._client = openai.OpenAI(api_key=api_key or _api_key(self.base_url), base_url=self.base_url,
                                     timeout=timeout_s, max_retries=0)
        self._warned_usage = False
        self._warn_lock = threading.Lock()

    # ---- one HTTP call, with retries ------------------------------------------------------------

    def _call(self, request: GenerationRequest, n: int, seed: Optional[int]):
        import openai

        kwargs = dict(model=self.model, messages=request.messages, n=n, temperature=request.temperature,
                      top_p=request.top_p, max_tokens=request.max_new_tokens)
        if seed is not None:
            kwargs["seed"] = seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        for attempt in range(1, self.max_tries + 1):
            try:
                return self._client.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                status, message = exc.status_code, _error_message(exc)
                retry_after = _retry_after(exc)
                if status not in RETRY_STATUSES:
                    raise BackendError(f"{self.spec}: HTTP {status}: {message}") from exc
            except openai.APIConnectionError as exc:  # includes timeouts
                status, message, retry_after = None, f"{type(exc).__name__}: {exc}", None
            if attempt == self.max_tries:
                what = f"HTTP {status}" if status else "connection failed"
                raise BackendError(f"{self.spec}: {what} after {attempt} tries: {message}")
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(self.max_backoff_s, max(delay, retry_after))
            log.warning("%s: %s (try %d of %d); retrying in %.1f s", self.spec,
                        f"HTTP {status}" if status else message, attempt, self.max_tries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _complete(self, request: GenerationRequest) -> list[Completion]:
        """All `n` samples of one request; servers that return fewer choices get follow-up calls."""
        out: list[Completion] = []
        calls = 0
        while len(out) < request.n:
            calls += 1
            if calls > request.n:  # each call must add at least one choice, so this bounds the loop
                raise BackendError(f"{self.spec}: server returned only {len(out)} of {request.n} choices")
            # a follow-up call with the same seed would repeat the first samples, so shift it
            seed = None if request.seed is None else request.seed + len(out)
            start = time.monotonic()
            response = self._call(request, request.n - len(out), seed)
            seconds = time.monotonic() - start
            choices = list(response.choices or [])[: request.n - len(out)]
            if not choices:
                raise BackendError(f"{self.spec}: server returned no choices")
            out.extend(self._to_completions(request, response, choices, seconds))
        return out

    def _to_completions(self, request, response, choices, seconds) -> list[Completion]:
        texts = []
        for choice in choices:
            text = (choice.message.content if choice.message else None) or ""
            reason = choice.finish_reason or "stop"
            cut = _cut_at_stop(text, request.stop)  # servers that ignore `stop` still get it applied
            if cut is not None:
                text, reason = cut, "stop"
            texts.append((text, reason))
        usage = getattr(response, "usage", None)
        if usage is not None and usage.completion_tokens is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens or 0, usage.completion_tokens
        else:
            with self._warn_lock:
                if not self._warned_usage:
                    log.warning("%s: response has no usage field; token counts are estimates", self.spec)
                    self._warned_usage = True
            prompt_tokens = sum(self.count_tokens(m["content"]) for m in request.messages)
            completion_tokens = sum(self.count_tokens(t) for t, _ in texts)
        shares = _split(completion_tokens, [len(t) for t, _ in texts])
        model = f"openai:{getattr(response, 'model', None) or self.model}@{self.base_url}"
        # The server bills the prompt once per response, so only the first choice carries it: the sums
        # recorded per stage then equal the server's usage exactly.
        return [Completion(text=t, finish_reason=reason, prompt_tokens=prompt_tokens if i == 0 else 0,
                           completion_tokens=shares[i], seconds=seconds / len(texts), model=model)
                for i, (t, reason) in enumerate(texts)]

    # ---- the backend interface -----------------------------------------------------------------

    def _execute(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        if _debug_serial() or self.concurrency == 1 or len(requests) == 1:
            return [self._complete(r) for r in _progress(requests, progress, self.spec)]
        results: list[Optional[list[Completion]]] = [None] * len(requests)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai") as pool:
            futures = {pool.submit(self._complete, r): i for i, r in enumerate(requests)}
            bar = _bar(len(requests), progress, self.spec)
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in done:
                        results[futures[f]] = f.result()  # re-raises the first BackendError
                        if bar is not None:
                            bar.update(1)
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
            finally:
                if bar is not None:
                    bar.close()
        return [r for r in results if r is not None]


def _split(total: int, weights: list[int]) -> list[int]:
    """Integer shares of `total` proportional to `weights`, summing exactly to `total`."""
    if len(weights) == 1:
        return [total]
    w = [max(1, x) for x in weights]
    shares = [total * x // sum(w) for x in w]
    shares[-1] += total - sum(shares)
    return shares


def _cut_at_stop(text: str, stops: list[str]) -> Optional[str]:
    hits = [text.find(s) for s in stops if s and s in text]
    return text[: min(hits)] if hits else None


def _error_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", None) or exc)


def _retry_after(exc) -> Optional[float]:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date; the exponential back-off is good enough then
        return None


def _bar(total: int, progress: bool, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="req")


def _progress(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="req")


def make_openai_backend(rest: str) -> OpenAIBackend:
    """Factory for the spec registry: `openai:MODEL[@BASE_URL]`."""
    model, base_url = parse_openai_spec(rest)
    return OpenAIBackend(model, base_url)
