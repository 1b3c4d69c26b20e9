"""Any OpenAI-compatible chat server: hosted APIs, vLLM, SGLang, llama.cpp server, Ollama.

    cycleresearcher generate --backend openai:gpt-4o-mini "Say hi"
    cycleresearcher generate --backend "openai:Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1" "Say hi"
    cycleresearcher review paper.pdf --backend "openai:smollm2@http://127.0.0.1:8080/v1?ctx=4096&timeout=60"

Spec: `openai:MODEL[@BASE_URL][?OPTIONS]`. Without a base URL, `OPENAI_BASE_URL` or the official endpoint is
used. Options (query string):
  ctx=N          the model's context in tokens (default: what the server reports, see openai_server.py)
  timeout=S      seconds to wait for one response (default 300, or CYCLERESEARCHER_TIMEOUT)
  retries=N      retries after a failed try (default 2, or CYCLERESEARCHER_RETRIES)
  concurrency=N  requests in flight at once (default 8)
  logprobs=0|1   whether the server returns top_logprobs for choice scoring (default: ask the server once)
The key comes from `CYCLERESEARCHER_API_KEY` or `OPENAI_API_KEY`; a local server (any base URL that is not
the official one) gets the dummy key "EMPTY" when neither is set.

We do our own retries (the client's are switched off) so their number and back-off are explicit: 429, 5xx,
timeouts and connection errors are retried with exponential back-off and jitter; anything else, or the last
failure, raises `BackendError` with the status, the server's message and a hint. An error never becomes text.
While a request waits, a line says so every 10 s. On first use the server is asked once which models it serves
(a wrong name fails with the list) and how long its context is.
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
from .logprob_choice import score_choices
from .openai_server import (ServerInfo, Tokenizer, WaitLog, context_from_error, estimate_tokens, model_matches,
                            probe_server)
from .openai_spec import (DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, OFFICIAL_BASE_URL, api_key_for, env_number,
                          parse_openai_options, parse_openai_spec)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
UNKNOWN_CONTEXT = 8192  # assumed when neither the spec nor the server says
OFFICIAL_CONTEXT = 128000  # current OpenAI chat models
TOP_LOGPROBS = 20  # the most the OpenAI API returns per position
CHOICE_TOKENS = 10  # greedy reply read when scoring choices: room for a lead-in ("My rating is") and "10"


def _debug_serial() -> bool:
    return os.environ.get("CYCLERESEARCHER_DEBUG", "") not in ("", "0", "false")


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible server, `concurrency` requests in flight at once."""

    supports_seed = True  # passed through; servers may ignore it

    def __init__(self, model: str, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 timeout_s: Optional[float] = None, max_tries: Optional[int] = None, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, concurrency: int = 8, context_length: Optional[int] = None,
                 logprobs: Optional[bool] = None) -> None:
        super().__init__()
        import openai

        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OFFICIAL_BASE_URL).rstrip("/")
        self.spec = f"openai:{model}@{self.base_url}"
        self.timeout_s = timeout_s or env_number("CYCLERESEARCHER_TIMEOUT", float, DEFAULT_TIMEOUT_S)
        retries = env_number("CYCLERESEARCHER_RETRIES", int, DEFAULT_RETRIES)
        self.max_tries = max(1, max_tries if max_tries is not None else retries + 1)  # the first try included
        self.backoff_s = backoff_s  # first wait; doubles each retry, with jitter
        self.max_backoff_s = max_backoff_s
        self.concurrency = max(1, concurrency)
        self.wait_log_every_s = 10.0
        key = api_key or api_key_for(self.base_url)
        self._headers = {"Authorization": f"Bearer {key}"}
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0)
        self._context_override = context_length  # from ?ctx=
        self._learned_context: Optional[int] = None  # from a "maximum context length" error
        self._logprobs = logprobs  # None: probe the server on first use
        self._server: Optional[ServerInfo] = None
        self._server_lock = threading.Lock()
        self._tokenizer = Tokenizer(self.base_url, model, self._headers, self.timeout_s)
        self._waits: Optional[WaitLog] = None
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()

    # ---- what the server says about itself (asked once) ---------------------------------------------

    def server_info(self) -> ServerInfo:
        """Probe /models (and /props) once; check the model name. An unreachable server is probed again later."""
        with self._server_lock:
            if self._server is not None and self._server.reachable:
                return self._server
            info = probe_server(self.base_url, self.model, self._headers, min(self.timeout_s, 15.0))
            self._server = info
        if info.needs_v1:
            raise BackendError(f"{self.spec}: {self.base_url}/models is not found (HTTP 404); did you mean "
                               f"{self.base_url}/v1?", hint=f"use openai:{self.model}@{self.base_url}/v1")
        if info.models and not any(model_matches(self.model, m) for m in info.models):
            served = ", ".join(info.models[:20]) + (" ..." if len(info.models) > 20 else "")
            if len(info.models) > 1:
                raise BackendError(f"{self.spec}: the server does not serve model {self.model!r}; it serves: {served}")
            self._warn_once("model", "%s: the server lists only %s; asking for %r anyway (llama.cpp-style servers "
                            "answer any name with their one model)", self.spec, served, self.model)
        if info.context_length:
            log.info("%s: context %d tokens (%s)", self.spec, info.context_length, info.context_source)
        return info

    @property
    def context_length(self) -> int:
        """Tokens the served model attends to: ?ctx=, else what the server reports or an error revealed."""
        if self._context_override:
            return self._context_override
        if self._learned_context:
            return self._learned_context
        info = self.server_info()
        if info.context_length:
            return info.context_length
        if self.base_url == OFFICIAL_BASE_URL:
            return OFFICIAL_CONTEXT
        self._warn_once("ctx", "%s: the server does not report its context length; assuming %d tokens (pass "
                        "?ctx=N in the spec to set it)", self.spec, UNKNOWN_CONTEXT)
        return UNKNOWN_CONTEXT

    @property
    def supports_choice_scoring(self) -> bool:
        """Whether the server returns top_logprobs (asked once with a one-token request, unless ?logprobs= says)."""
        if self._logprobs is None:
            self._logprobs = self._probe_logprobs()
            log.info("%s: %s", self.spec, "top_logprobs available: choices are scored by likelihood"
                     if self._logprobs else "no top_logprobs: choices cannot be scored by likelihood")
        return self._logprobs

    def _probe_logprobs(self) -> bool:
        messages = [{"role": "user", "content": "Answer with one digit: 2 + 2 ="}]
        try:
            response = self._call(messages, dict(n=1, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=5))
        except BackendError as exc:
            if "HTTP 4" in str(exc):  # the server refuses the logprobs fields
                return False
            raise
        usage = getattr(response, "usage", None)
        self.usage.add("choice", getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0,
                       0.0)
        return bool(_positions(response.choices[0]) and _positions(response.choices[0])[0][2])

    def count_tokens(self, text: str) -> int:
        """The server's own token count when it has a tokenize endpoint, else a cautious estimate."""
        return self._tokenizer.count(text) if text else 0

    # ---- one HTTP call, with retries ------------------------------------------------------------

    def _call(self, messages: list, params: dict):
        import openai

        if self._server is None or not self._server.reachable:
            self.server_info()
        kwargs = dict(model=self.model, messages=messages, **params)
        if self._waits is None:
            self._waits = WaitLog(self.spec, self.timeout_s, every_s=self.wait_log_every_s)
        for attempt in range(1, self.max_tries + 1):
            try:
                with self._waits.track():
                    return self._client.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                status, message = exc.status_code, _error_message(exc)
                retry_after = _retry_after(exc)
                if status not in RETRY_STATUSES:
                    raise self._status_error(status, message, kwargs) from exc
            except openai.APITimeoutError:
                status, message, retry_after = None, f"no answer within {self.timeout_s:.0f} s", None
            except openai.APIConnectionError as exc:
                status, message, retry_after = None, f"{type(exc).__name__}: {exc}", None
            if attempt == self.max_tries:
                raise self._final_error(status, message, attempt)
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(self.max_backoff_s, max(delay, retry_after))
            log.warning("%s: %s (try %d of %d); retrying in %.1f s", self.spec,
                        f"HTTP {status}" if status else message, attempt, self.max_tries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _status_error(self, status: int, message: str, kwargs: dict) -> BackendError:
        """A clear error for a non-retryable status: wrong URL, wrong model, context exceeded."""
        text = f"{self.spec}: HTTP {status}: {message}"
        if status == 404 and not self.base_url.endswith("/v1"):
            return BackendError(f"{text}; did you mean {self.base_url}/v1?",
                                hint=f"use openai:{self.model}@{self.base_url}/v1")
        models = self._server.models if self._server is not None else None
        if status == 404 and models:
            return BackendError(f"{text}; the server serves: {', '.join(models[:20])}")
        ctx, prompt_tokens = context_from_error(message)
        if ctx:
            self._learned_context = ctx
            return ContextLengthExceeded(f"{text} (the context is now known: {ctx} tokens; shorten the prompt or "
                                         "lower max_new_tokens)", context_length=ctx, prompt_tokens=prompt_tokens)
        return BackendError(text)

    def _final_error(self, status: Optional[int], message: str, attempt: int) -> BackendError:
        if status:
            return BackendError(f"{self.spec}: HTTP {status} after {attempt} tries: {message}")
        if message.startswith("no answer"):
            return BackendError(f"{self.spec}: {message}, {attempt} tries; the server is frozen or overloaded",
                                hint="raise the limit with ?timeout=SECONDS in the spec or CYCLERESEARCHER_TIMEOUT")
        return BackendError(f"{self.spec}: connection failed after {attempt} tries: {message}",
                            hint=f"is the server running at {self.base_url}?")

    # ---- generation -------------------------------------------------------------------------------

    def _request_params(self, request: GenerationRequest, n: int, seed: Optional[int], max_tokens: int) -> dict:
        params = dict(n=n, temperature=request.temperature, top_p=request.top_p, max_tokens=max_tokens)
        if seed is not None:
            params["seed"] = seed
        if request.stop:
            params["stop"] = list(request.stop)
        return params

    def _complete(self, request: GenerationRequest) -> list[Completion]:
        """All `n` samples of one request; servers that return fewer choices get follow-up calls."""
        out: list[Completion] = []
        calls = 0
        max_tokens = request.max_new_tokens
        while len(out) < request.n:
            calls += 1
            if calls > request.n + 1:  # each call adds a choice (one call may be spent refitting max_tokens)
                raise BackendError(f"{self.spec}: server returned only {len(out)} of {request.n} choices")
            # a follow-up call with the same seed would repeat the first samples, so shift it
            seed = None if request.seed is None else request.seed + len(out)
            start = time.monotonic()
            try:
                response = self._call(request.messages, self._request_params(request, request.n - len(out), seed,
                                                                             max_tokens))
            except ContextLengthExceeded as exc:
                room = (exc.context_length - exc.prompt_tokens - 1) if exc.prompt_tokens else 0
                if room < 1 or room >= max_tokens:
                    raise
                log.warning("%s: max_new_tokens cut from %d to %d to fit the %d-token context", self.spec,
                            max_tokens, room, exc.context_length)
                max_tokens = room
                continue
            seconds = time.monotonic() - start
            choices = list(response.choices or [])[: request.n - len(out)]
            if not choices:
                raise BackendError(f"{self.spec}: server returned no choices")
            out.extend(self._to_completions(request, response, choices, seconds))
        if calls > 1:  # the base class counts one call per request; the server was called more often
            self.usage.add(request.stage, 0, 0, 0.0, calls=calls - 1)
        return out

    def _to_completions(self, request, response, choices, seconds) -> list[Completion]:
        texts = []
        for choice in choices:
            text = (choice.message.content if choice.message else None) or ""
            reason = choice.finish_reason or "stop"
            cut = _cut_at_stop(text, request.stop)  # servers that ignore `stop` still get it applied
            if cut is not None:
                text, reason = cut, "stop"
            texts.append((text, "length" if reason == "length" else "stop"))
        usage = getattr(response, "usage", None)
        if usage is not None and usage.completion_tokens is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens or 0, usage.completion_tokens
        else:
            self._warn_once("usage", "%s: response has no usage field; token counts are estimates", self.spec)
            prompt_tokens = sum(estimate_tokens(m["content"]) for m in request.messages)
            completion_tokens = sum(estimate_tokens(t) for t, _ in texts)
        shares = _split(completion_tokens, [len(t) for t, _ in texts])
        model = f"openai:{getattr(response, 'model', None) or self.model}@{self.base_url}"
        # The server bills the prompt once per response, so only the first choice carries it: the sums
        # recorded per stage then equal the server's usage exactly.
        return [Completion(text=t, finish_reason=reason, prompt_tokens=prompt_tokens if i == 0 else 0,
                           completion_tokens=shares[i], seconds=seconds / len(texts), model=model)
                for i, (t, reason) in enumerate(texts)]

    def _execute(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        return self._map(self._complete, requests, progress)

    def _map(self, fn, items: list, progress: bool) -> list:
        """fn over items, `concurrency` at a time, results in order; the first error cancels the rest."""
        if _debug_serial() or self.concurrency == 1 or len(items) == 1:
            return [fn(x) for x in _progress(items, progress, self.spec)]
        results: list = [None] * len(items)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai") as pool:
            futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
            bar = _bar(len(items), progress, self.spec)
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
        return results

    # ---- choice scoring from top_logprobs ---------------------------------------------------------------

    def _choice_logprobs(self, conversations: list[list[dict]], choices: list[str]) -> list[list[float]]:
        """Each conversation's greedy reply with its top tokens, read by logprob_choice.score_choices."""
        params = dict(n=1, temperature=0.0, max_tokens=CHOICE_TOKENS, logprobs=True, top_logprobs=TOP_LOGPROBS)

        def one(messages):
            start = time.monotonic()
            response = self._call(messages, params)
            usage = getattr(response, "usage", None)
            self.usage.add("choice", getattr(usage, "prompt_tokens", 0) or 0,
                           getattr(usage, "completion_tokens", 0) or 0, time.monotonic() - start)
            positions = _positions(response.choices[0]) if response.choices else []
            if not positions:
                raise BackendError(f"{self.spec}: the server returned no logprobs although it did before")
            return score_choices(positions, choices)

        return self._map(one, conversations, progress=False)

    def _warn_once(self, key: str, message: str, *args) -> None:
        with self._warn_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message, *args)


class ContextLengthExceeded(BackendError):
    """The server refused a request that does not fit its context; `context_length` is now known."""

    def __init__(self, message: str, context_length: int, prompt_tokens: Optional[int] = None) -> None:
        super().__init__(message)
        self.context_length = context_length
        self.prompt_tokens = prompt_tokens


def _positions(choice) -> list:
    """[(token, logprob, [(top token, logprob), ...]), ...] of one choice's reply; [] without logprobs."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    return [(p.token, p.logprob, [(t.token, t.logprob) for t in (p.top_logprobs or [])]) for p in content]


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
    """Factory for the spec registry: `openai:MODEL[@BASE_URL][?ctx=N&timeout=S&retries=N&concurrency=N]`."""
    head, _, query = rest.partition("?")
    model, base_url = parse_openai_spec(head)
    options = parse_openai_options(query)
    return OpenAIBackend(model, base_url, timeout_s=options.get("timeout"),
                         max_tries=options["retries"] + 1 if "retries" in options else None,
                         concurrency=options.get("concurrency", 8), context_length=options.get("ctx"),
                         logprobs=options.get("logprobs"))
