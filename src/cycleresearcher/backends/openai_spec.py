"""The `openai:` spec string: model, base URL, options, and where the key and limits come from.

`openai:MODEL[@BASE_URL][?ctx=N&timeout=S&retries=N&concurrency=N&logprobs=0|1]`; see openai.py.
"""

from __future__ import annotations

import os
from typing import Optional
from urllib.parse import parse_qsl

from .base import BackendError, BackendSpecError

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
KEY_VARIABLES = ("CYCLERESEARCHER_API_KEY", "OPENAI_API_KEY")
DUMMY_KEY = "EMPTY"
DEFAULT_TIMEOUT_S = 300.0  # one response; a frozen server costs at most (retries + 1) x this
DEFAULT_RETRIES = 2


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


_OPTIONS = {"ctx": int, "timeout": float, "retries": int, "concurrency": int, "logprobs": _flag}


def parse_openai_spec(rest: str) -> tuple[str, Optional[str]]:
    """(model, base URL or None) from the part of the spec after `openai:` (options already removed)."""
    rest = rest.strip()
    # a model name may itself hold "@" (rare), so the URL starts at the "@" followed by a scheme
    starts = [i for i in (rest.find("@http://"), rest.find("@https://")) if i >= 0]
    if starts:
        model, url = rest[: min(starts)], rest[min(starts) + 1:].rstrip("/")
    elif "@" in rest:
        raise BackendSpecError(f"openai spec {'openai:' + rest!r}: the base URL after '@' must start with "
                               "http:// or https://, e.g. openai:MODEL@http://localhost:8000/v1")
    else:
        model, url = rest, ""
    if not model:
        raise BackendSpecError("openai spec needs a model name: openai:MODEL[@BASE_URL]")
    return model, url or None


def parse_openai_options(query: str) -> dict:
    """`ctx=4096&timeout=60` -> {"ctx": 4096, "timeout": 60.0}; unknown names and bad values are errors."""
    options: dict = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise BackendSpecError(f"unknown openai option {key!r}; known: {', '.join(_OPTIONS)}")
        try:
            options[key] = _OPTIONS[key](value)
        except ValueError:
            raise BackendSpecError(f"openai option {key}={value!r} is not valid") from None
        if key in ("ctx", "timeout", "concurrency") and options[key] <= 0 or key == "retries" and options[key] < 0:
            raise BackendSpecError(f"openai option {key}={value!r} is out of range")
    return options


def env_number(name: str, kind, default):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise BackendSpecError(f"{name} must be a number, got {value!r}") from None
    if number < 0 or kind is float and number == 0:
        raise BackendSpecError(f"{name} is out of range: {value!r}")
    return number


def api_key_for(base_url: str) -> str:
    for name in KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    if base_url.rstrip("/") != OFFICIAL_BASE_URL:
        return DUMMY_KEY  # local servers (vLLM, llama.cpp, Ollama) accept any key
    raise BackendError(f"no API key for {OFFICIAL_BASE_URL}: set {' or '.join(KEY_VARIABLES)}")
