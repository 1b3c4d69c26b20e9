"""In-process vLLM on GPUs: the fast path for 7B-123B policy and reviewer models (optional extra).

On a GPU machine:

    pip install 'cycleresearcher[vllm]'
    cycleresearcher generate --backend "vllm:/models/CycleResearcher-12B" "Write an abstract about GNNs"
    cycleresearcher generate --backend "vllm:/models/CycleReviewer-70B?tp=4&gpu_memory_utilization=0.92" "..."

Spec: `vllm:PATH[?OPTIONS]`, options as a query string:
  tp (or tensor_parallel_size)   GPUs to shard the model over (default 1; must divide the attention heads)
  gpu_memory_utilization         fraction of each GPU's memory vLLM may take (default 0.9)
  max_model_len                  context length in tokens (default: the model's)
  dtype                          auto | bfloat16 | float16 (default auto)
  seed                           engine seed (default 0)

All requests of a call go to vLLM in one `LLM.chat` call, so its continuous batching sees them all at once;
each request's `n`, seed and stop strings travel in its own `SamplingParams`. To serve many processes from one
copy of the weights, run `vllm serve PATH` instead and use the `openai:MODEL@http://HOST:8000/v1` backend.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional
from urllib.parse import parse_qsl

from ..schema import Completion, GenerationRequest
from .base import Backend, BackendError

log = logging.getLogger(__name__)

INSTALL_HINT = "install the vllm extra on a GPU machine: pip install 'cycleresearcher[vllm]'"

_OPTION_TYPES = {"tensor_parallel_size": int, "gpu_memory_utilization": float, "max_model_len": int,
                 "dtype": str, "seed": int}
_ALIASES = {"tp": "tensor_parallel_size"}


def parse_vllm_spec(rest: str) -> tuple[str, dict[str, Any]]:
    """(model path, LLM options) from the part of the spec after `vllm:`."""
    path, _, query = rest.partition("?")
    if not path.strip():
        raise BackendError("vllm spec needs a model path: vllm:PATH[?tp=N]")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        key = _ALIASES.get(key, key)
        if key not in _OPTION_TYPES:
            raise BackendError(f"unknown vllm option {key!r}; known: tp, {', '.join(_OPTION_TYPES)}")
        try:
            options[key] = _OPTION_TYPES[key](value)
        except ValueError as exc:
            raise BackendError(f"vllm option {key}={value!r} is not a {_OPTION_TYPES[key].__name__}") from exc
    return path.strip(), options


class VLLMBackend(Backend):
    """Generation with `vllm.LLM` in this process (needs CUDA GPUs and the `vllm` package)."""

    def __init__(self, model_path: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: Optional[int] = None, dtype: str = "auto", seed: int = 0) -> None:
        super().__init__()
        try:
            import vllm
        except ImportError as exc:
            raise BackendError(f"the vllm backend needs the vllm package; {INSTALL_HINT}") from exc
        self.spec = f"vllm:{model_path}"
        kwargs: dict[str, Any] = dict(model=model_path, tensor_parallel_size=tensor_parallel_size,
                                      gpu_memory_utilization=gpu_memory_utilization, dtype=dtype, seed=seed)
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        log.info("starting vLLM: %s", kwargs)
        self._vllm = vllm
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.context_length = int(self.llm.llm_engine.model_config.max_model_len)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def _params(self, r: GenerationRequest):
        return self._vllm.SamplingParams(n=r.n, temperature=r.temperature, top_p=r.top_p if r.temperature > 0 else 1.0,
                                         max_tokens=r.max_new_tokens, seed=r.seed, stop=list(r.stop) or None)

    def _execute(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        start = time.monotonic()
        outputs = self.llm.chat([r.messages for r in requests], sampling_params=[self._params(r) for r in requests],
                                use_tqdm=progress, add_generation_prompt=True)
        per_row = (time.monotonic() - start) / max(1, sum(r.n for r in requests))
        results = []
        for request, output in zip(requests, outputs):
            prompt_tokens = len(output.prompt_token_ids or [])
            results.append([
                Completion(text=o.text, finish_reason="length" if o.finish_reason == "length" else "stop",
                           prompt_tokens=prompt_tokens, completion_tokens=len(o.token_ids), seconds=per_row,
                           model=self.spec)
                for o in output.outputs])
        return results


def make_vllm_backend(rest: str) -> VLLMBackend:
    """Factory for the spec registry: `vllm:PATH[?tp=N&gpu_memory_utilization=F]`."""
    path, options = parse_vllm_spec(rest)
    return VLLMBackend(path, **options)
