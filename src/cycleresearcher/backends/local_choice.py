"""Constrained choice on a local model, each prompt read once.

Scoring k allowed answers used to run k whole rows (prompt + answer) through the model; a reviewer asking five
scores of two 1,000-token reviews read 50,000 tokens for 50 short answers. Here each prompt is run once, its
KV cache is repeated for the k answers (a few tokens each), and a small cache of recent prompts lets the next
prompt that starts the same way (the same review, another question) skip the shared part.

    rows = choice_logprobs(model, prompts, answers, prefixes)   # prompts and answers as token ids
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

# Shorter shared prefixes are not worth a cache copy.
MIN_SHARED_TOKENS = 32


@dataclass
class _Entry:
    ids: list[int]
    cache: object  # a transformers Cache holding exactly `ids`
    nbytes: int


class PrefixCache:
    """The KV caches of the last few prompts (most recent first), bounded in entries and bytes."""

    def __init__(self, max_entries: int = 4, max_bytes: int = 256 * 2**20) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: list[_Entry] = []

    def longest(self, ids: list[int]) -> tuple[Optional[_Entry], int]:
        """The entry sharing the longest prefix with `ids`, and that prefix's length."""
        best, common = None, 0
        for entry in self.entries:
            n = _common_prefix(entry.ids, ids)
            if n > common:
                best, common = entry, n
        return best, common

    def put(self, ids: list[int], cache) -> None:
        nbytes = _cache_bytes(cache)
        if nbytes is None or nbytes > self.max_bytes or not _croppable(cache):
            return
        self.entries = [_Entry(list(ids), cache, nbytes)] + [e for e in self.entries if e.ids != ids]
        while self.entries and (len(self.entries) > self.max_entries
                                or sum(e.nbytes for e in self.entries) > self.max_bytes):
            self.entries.pop()

    def clear(self) -> None:
        self.entries = []


def choice_logprobs(model, prompts: list[list[int]], answers: list[list[int]], prefixes: PrefixCache,
                    device: str = "cpu") -> list[list[float]]:
    """For each prompt, the summed log-probability of each answer's tokens following it."""
    import torch

    out = []
    with torch.inference_mode():
        for prompt in prompts:
            cache, first = _prompt_state(model, prompt, prefixes, device)
            out.append(_answers_logprobs(model, cache, first, answers, device))
    return out


def _prompt_state(model, prompt: list[int], prefixes: PrefixCache, device: str):
    """(KV cache of the whole prompt, log-probabilities of the token after it), reusing a cached prefix."""
    import torch

    found, common = prefixes.longest(prompt)
    common = min(common, len(prompt) - 1)  # at least one token goes through, for the next-token logits
    cache, rest = None, prompt
    if found is not None and common >= MIN_SHARED_TOKENS:
        cache = copy.deepcopy(found.cache)
        extra = len(found.ids) - common
        if extra:
            cache.crop(-extra)  # transformers 5: a negative count removes that many trailing positions
        rest = prompt[common:]
    ids = torch.tensor([rest], dtype=torch.long, device=device)
    result = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(result.logits[0, -1].float(), dim=-1)
    prefixes.put(prompt, result.cache)
    return result.cache, first


def _answers_logprobs(model, cache, first, answers: list[list[int]], device: str) -> list[float]:
    """Each answer's summed log-probability after the cached prompt: one batched forward over the answers'
    tokens but the last (right-padded: padding after a token cannot change it under causal attention)."""
    import torch

    totals = [float(first[a[0]]) for a in answers]
    longest = max(len(a) for a in answers)
    if longest == 1:
        return totals
    feed = torch.zeros((len(answers), longest - 1), dtype=torch.long)
    for i, a in enumerate(answers):
        feed[i, : len(a) - 1] = torch.tensor(a[:-1], dtype=torch.long)
    rows = copy.deepcopy(cache)
    rows.batch_repeat_interleave(len(answers))
    logits = model(input_ids=feed.to(device), cache=rows, use_cache=True).logits
    logps = torch.log_softmax(logits.float(), dim=-1)
    for i, a in enumerate(answers):
        totals[i] += sum(float(logps[i, k, a[k + 1]]) for k in range(len(a) - 1))
    return totals


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _croppable(cache) -> bool:
    """Only full-attention layers can be cut back to a shared prefix (sliding-window layers drop states)."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)


def _cache_bytes(cache) -> Optional[int]:
    try:
        return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values)
                   if t is not None)
    except (AttributeError, TypeError):
        return None
