"""Bench: tokens/s of raw `model.generate` against our LocalBackend, at batch 1 and batch 8, same run.

    .venv/bin/python bench/generation.py                    # 8 prompts x 64 tokens, greedy, embedded SmolLM2
    .venv/bin/python bench/generation.py --max-new-tokens 32 --threads 1
    .venv/bin/python bench/generation.py --dtype bfloat16    # AMX/avx512-bf16 CPUs: batches scale better

Both sides use the same loaded model, the same 8 chat-templated prompts and greedy decoding, so they produce
the same tokens. Batch 1 sends the prompts one by one; batch 8 sends them as one left-padded batch (raw: the
tokenizer pads; ours: one `generate` call with 8 requests). Tokens counted are the real generated ones, up to
and including EOS (padding excluded). Raw and ours run interleaved (A B, B A, ...) so that load from other
processes falls on both alike. Targets: ours >= 0.95x raw at equal batch; ours batch 8 >= 4x ours batch 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from cycleresearcher.backends.local import LocalBackend  # noqa: E402
from cycleresearcher.backends.threads import thread_reason  # noqa: E402
from cycleresearcher.schema import GenerationRequest  # noqa: E402

PROMPTS = [
    "Write an abstract about graph neural networks.",
    "Explain what a transformer language model is in one paragraph.",
    "Describe the main idea of reinforcement learning from human feedback.",
    "What are the strengths and weaknesses of convolutional neural networks?",
    "Summarise how peer review works at machine learning conferences.",
    "Propose an experiment to test whether a new optimiser converges faster than Adam.",
    "Write the introduction of a paper on contrastive learning for images.",
    "List three open problems in automated scientific discovery and explain each briefly.",
]


def chat(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


class Raw:
    """Plain transformers: tokenizer padding, one model.generate, token count up to EOS."""

    def __init__(self, model, tokenizer, max_new_tokens: int):
        self.model, self.tok, self.max_new = model, tokenizer, max_new_tokens
        self.eos = tokenizer.eos_token_id
        self.texts = [tokenizer.apply_chat_template(chat(p), add_generation_prompt=True, tokenize=False)
                      for p in PROMPTS]

    def run(self, texts: list[str]) -> tuple[int, float, float, list[list[int]]]:
        import torch

        start, cpu = time.perf_counter(), time.process_time()
        self.tok.padding_side = "left"
        enc = self.tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows = []
        for ids in out[:, enc["input_ids"].shape[1]:].tolist():
            rows.append(ids[: ids.index(self.eos) + 1] if self.eos in ids else ids)
        return sum(len(r) for r in rows), seconds, cpu, rows


class Ours:
    """Our backend; also times what it spends outside `model.generate` (templating, batching, decoding)."""

    def __init__(self, backend: LocalBackend, max_new_tokens: int):
        self.backend = backend
        self.inside = 0.0  # seconds spent inside model.generate during our calls
        self.outside = 0.0
        self.calls = 0
        generate = backend.model.generate

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return generate(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - start

        backend.model.generate = timed  # an instance attribute: raw calls go through it too, alike
        self.requests = [GenerationRequest(messages=chat(p), temperature=0, max_new_tokens=max_new_tokens,
                                           stage="bench") for p in PROMPTS]

    def run(self, requests: list[GenerationRequest]) -> tuple[int, float, float, list[str]]:
        start, cpu, inside = time.perf_counter(), time.process_time(), self.inside
        results = self.backend.generate(requests)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.outside += seconds - (self.inside - inside)
        self.calls += 1
        return sum(c[0].completion_tokens for c in results), seconds, cpu, [c[0].text for c in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2, help="batch-8 repetitions per side")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: CYCLERESEARCHER_THREADS, else 1 when the load average is "
                             "above the core count, else every core)")
    parser.add_argument("--dtype", default="float32", help="float32 (the backend's default) or bfloat16")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    t0 = time.perf_counter()
    backend = LocalBackend("local", num_threads=args.threads, dtype=args.dtype)
    print(f"model loaded in {time.perf_counter() - t0:.1f} s; {torch.get_num_threads()} torch threads "
          f"({thread_reason(args.threads)})", flush=True)
    raw = Raw(backend.model, backend.tokenizer, args.max_new_tokens)
    ours = Ours(backend, args.max_new_tokens)

    # warm-up: first calls allocate and pick kernels
    Raw(backend.model, backend.tokenizer, 4).run(raw.texts[:2])
    backend.generate([GenerationRequest(messages=chat(PROMPTS[0]), temperature=0, max_new_tokens=4)] * 2)

    totals = {k: [0, 0.0, 0.0] for k in ("raw1", "ours1", "raw8", "ours8")}  # tokens, wall s, CPU s
    same = 0
    for i in range(len(PROMPTS)):  # batch 1, interleaved, order alternating
        order = ("raw", "ours") if i % 2 == 0 else ("ours", "raw")
        for side in order:
            if side == "raw":
                tokens, seconds, cpu, rows = raw.run(raw.texts[i:i + 1])
                raw_text = backend.tokenizer.decode(rows[0], skip_special_tokens=True)
            else:
                tokens, seconds, cpu, texts = ours.run(ours.requests[i:i + 1])
                our_text = texts[0]
            for j, v in enumerate((tokens, seconds, cpu)):
                totals[f"{side}1"][j] += v
        same += raw_text == our_text
    for rep in range(args.reps):  # batch 8
        for side in (("raw", "ours") if rep % 2 == 0 else ("ours", "raw")):
            tokens, seconds, cpu, _ = raw.run(raw.texts) if side == "raw" else ours.run(ours.requests)
            for j, v in enumerate((tokens, seconds, cpu)):
                totals[f"{side}8"][j] += v

    rate = {k: t / s for k, (t, s, _) in totals.items()}
    cpu_rate = {k: t / c for k, (t, _, c) in totals.items()}
    print(f"\n{len(PROMPTS)} prompts, greedy, max_new_tokens={args.max_new_tokens}, "
          f"{torch.get_num_threads()} threads, {args.dtype}; batch-1 texts identical raw vs ours: {same}/{len(PROMPTS)}")
    for k in ("raw1", "ours1", "raw8", "ours8"):
        t, s, c = totals[k]
        print(f"  {k:6s} {rate[k]:8.2f} tokens/s   ({t} tokens in {s:.1f} s; {cpu_rate[k]:.2f} tokens per CPU s)")
    ours_seconds = totals["ours1"][1] + totals["ours8"][1]
    print(f"  our own work outside model.generate: {1000 * ours.outside / ours.calls:.1f} ms per call, "
          f"{100 * ours.outside / ours_seconds:.2f}% of our time (the rest is the model, as in raw)")
    for label, r in (("wall clock", rate), ("CPU time, robust to other load", cpu_rate)):
        r1, r8, scale = r["ours1"] / r["raw1"], r["ours8"] / r["raw8"], r["ours8"] / r["ours1"]
        print(f"  ratios by {label}:")
        print(f"    ours/raw at batch 1: {r1:.3f}   (target >= 0.95: {'ok' if r1 >= 0.95 else 'MISSED'})")
        print(f"    ours/raw at batch 8: {r8:.3f}   (target >= 0.95: {'ok' if r8 >= 0.95 else 'MISSED'})")
        print(f"    ours batch 8 / batch 1: {scale:.2f}x   (target >= 4: {'ok' if scale >= 4 else 'MISSED'})")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
