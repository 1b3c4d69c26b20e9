"""Bench: seconds of `research` and `review --reviewers 2` with the CLI defaults on the embedded model, against
a decoding baseline measured in the same run.

    .venv/bin/python bench/cli_speed.py                      # both commands, defaults, the shared NeurIPS paper
    .venv/bin/python bench/cli_speed.py --compare-old        # also the old defaults (minutes more)
    .venv/bin/python bench/cli_speed.py --paper my.tex --skip research

Targets (issue 16), on an idle 2-core machine: research <= 90 s, review --reviewers 2 <= 120 s, whole
commands (model load included). On a shared machine wall seconds say little, so each command is also given
as a ratio to the baseline: the seconds raw `model.generate` takes for BASELINE_TOKENS tokens at batch 1 on
the embedded model (float32, the threads the backend picks), measured before and after the commands. The
projected idle seconds scale a command by IDLE_TOKENS_PER_S / measured baseline tokens/s (15 tok/s
single-stream was measured on the quiet machine of the issue). The load average (`uptime`) is printed
beside every number.

The review paper is a LaTeX file built from the first paper of the shared NeurIPS 2025 full texts (19k words:
the reviewer cuts it to its budget), unless --paper is given.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CLI = [sys.executable, "-c", "from cycleresearcher.cli import main; main()"]
BASELINE_TOKENS = 48
IDLE_TOKENS_PER_S = 15.0
TARGETS = {"research": 90.0, "review": 120.0}
# What the commands did before issue 16 (1536 tokens and a repair per paper, 2048 per review set, float32,
# no loop stop), for --compare-old.
OLD = {"research": ["--backend", "local:loops=0&dtype=float32", "--max-new-tokens", "1536", "--max-repairs", "1"],
       "review": ["--backend", "local:loops=0&dtype=float32", "--max-new-tokens", "2048"]}


def load() -> float:
    return os.getloadavg()[0]


def baseline() -> float:
    """Seconds for BASELINE_TOKENS greedy tokens at batch 1, raw transformers (the model loaded once)."""
    import torch

    from cycleresearcher.backends.loader import load_causal_lm
    from cycleresearcher.backends.threads import default_threads

    torch.set_num_threads(default_threads())
    model, tok = load_causal_lm("local", "float32")
    text = tok.apply_chat_template([{"role": "user", "content": "Write an abstract about graph neural networks."}],
                                   add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)  # warm-up
        start = time.perf_counter()
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=BASELINE_TOKENS,
                       min_new_tokens=BASELINE_TOKENS, do_sample=False, pad_token_id=tok.eos_token_id)
    return time.perf_counter() - start


def latex_paper(out: Path) -> Path:
    """A .tex file from the first shared NeurIPS 2025 paper (markdown headings become sections)."""
    with gzip.open(SHARED / "neurips2025_fulltext" / "papers.jsonl.gz", "rt", encoding="utf-8") as fh:
        row = json.loads(fh.readline())
    lines = ["\\documentclass{article}", "\\begin{document}", f"\\title{{{row['title']}}}", "\\maketitle",
             "\\begin{abstract}", row["abstract"], "\\end{abstract}"]
    for line in row["text"].splitlines():
        heading = re.match(r"^(#+)\s*(.*)", line)
        if heading:
            if len(heading.group(1)) > 1 and heading.group(2).lower() != "abstract":
                kind = "section" if len(heading.group(1)) == 2 else "subsection"
                lines.append(f"\\{kind}{{{heading.group(2)}}}")
        else:
            lines.append(re.sub(r"([%&#_])", r"\\\1", line))
    lines.append("\\end{document}")
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def run(name: str, argv: list[str]) -> dict:
    before = load()
    start = time.perf_counter()
    proc = subprocess.run(CLI + argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    tail = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "tok/s" not in line][-3:]
    return {"name": name, "seconds": seconds, "rc": proc.returncode, "load": (before + load()) / 2, "tail": tail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", type=Path, default=None, help="paper for review (default: built from shared)")
    parser.add_argument("--skip", choices=["research", "review"], action="append", default=[])
    parser.add_argument("--compare-old", action="store_true", help="also time the old defaults")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cli-speed-"))
    paper = args.paper or latex_paper(work / "paper.tex")
    commands = {
        "research": ["research", "--topic", "robust graph neural networks", "--bib", str(SHARED / "sample.bib")],
        "review": ["review", str(paper), "--reviewers", "2", "--allow-empty"],
    }
    print(f"cores {len(os.sched_getaffinity(0))}, load at start {load():.2f}, "
          f"CYCLERESEARCHER_THREADS={os.environ.get('CYCLERESEARCHER_THREADS', '(auto)')}")
    base = [baseline()]
    print(f"baseline: {BASELINE_TOKENS} tokens in {base[0]:.2f} s ({BASELINE_TOKENS / base[0]:.1f} tok/s), "
          f"load {load():.2f}")
    results = []
    for name, argv in commands.items():
        if name in args.skip:
            continue
        variants = [("new", [])] + ([("old", OLD[name])] if args.compare_old else [])
        for label, extra in variants:
            out = ["--out", str(work / f"{name}-{label}" / ("paper" if name == "research" else "rs.json"))]
            results.append((name, label, run(f"{name} ({label} defaults)", argv + extra + out)))
    base.append(baseline())
    mean_base = sum(base) / len(base)
    rate = BASELINE_TOKENS / mean_base
    print(f"baseline again: {base[1]:.2f} s; mean {rate:.1f} tok/s (idle reference {IDLE_TOKENS_PER_S} tok/s), "
          f"load at end {load():.2f}\n")
    for name, label, r in results:
        projected = r["seconds"] * rate / IDLE_TOKENS_PER_S
        verdict = "ok" if projected <= TARGETS[name] else "MISSED"
        print(f"{r['name']:<28} {r['seconds']:7.1f} s  rc {r['rc']}  load {r['load']:.2f}  "
              f"= {r['seconds'] / mean_base:6.1f} x baseline  projected idle {projected:6.1f} s "
              f"(target <= {TARGETS[name]:.0f} s: {verdict if label == 'new' else '-'})")
        for line in r["tail"]:
            print(f"    {line[:160]}")
    for name in TARGETS:
        pair = {label: r for n, label, r in results if n == name}
        if len(pair) == 2:
            print(f"{name}: new/old = {pair['new']['seconds'] / pair['old']['seconds']:.3f} "
                  f"({pair['old']['seconds']:.0f} s -> {pair['new']['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
