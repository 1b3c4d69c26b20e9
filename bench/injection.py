"""Bench: the prompt-injection finder on both sides, payloads caught and real papers left alone.

    .venv/bin/python bench/injection.py              # payloads + every ICLR abstract + NeurIPS full texts (~3 min)
    .venv/bin/python bench/injection.py --n 300       # a quick look: 300 full texts per NeurIPS source
    .venv/bin/python bench/injection.py --show 20     # print the flagged real papers

Payloads: tests/injection_payloads.py, each built as the file a reviewer receives and read through
paper_text.read_paper, as a judge reads it. False positives: the share of real papers with at least one flag,
from ../shared/data: ICLR 2017-18 abstracts (reviews_real/reviews.jsonl), NeurIPS 2025 full texts
(neurips2025_fulltext), the 321 NeurIPS 2025 papers parsed from PDF (reviews_real/papers.jsonl) and NeurIPS
2023-24 full texts (a seeded sample of --n). Target: <= 1% on each. Prints the seconds per paper as well.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from cycleresearcher.injection import find_injections  # noqa: E402
from injection_payloads import CLEAN, PAYLOADS, flags_for  # noqa: E402


def payloads() -> None:
    by_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    missed = []
    for payload in PAYLOADS + CLEAN:
        with tempfile.TemporaryDirectory() as tmp:
            flagged = bool(flags_for(payload.build(Path(tmp))))
        counts = by_kind[payload.kind]
        counts[0] += flagged
        counts[1] += 1
        if flagged == (payload.kind == "clean"):
            missed.append(f"{payload.kind}: {payload.name}")
    caught = sum(c[0] for k, c in by_kind.items() if k != "clean")
    total = sum(c[1] for k, c in by_kind.items() if k != "clean")
    print(f"payloads flagged: {caught}/{total} ({100 * caught / total:.0f}%)")
    for kind, (hit, n) in sorted(by_kind.items()):
        print(f"  {kind:16s} {hit}/{n}" + ("   (clean look-alikes: should be 0)" if kind == "clean" else ""))
    for name in missed:
        print(f"  WRONG: {name}")


def _rows(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def false_positives(name: str, texts: list[tuple[str, str]], show: int) -> None:
    start = time.perf_counter()
    flagged = []
    kinds: collections.Counter = collections.Counter()
    for paper_id, text in texts:
        flags = find_injections(text)
        if flags:
            flagged.append((paper_id, str(flags[0])[:150]))
            kinds.update(f.kind for f in flags)
    seconds = time.perf_counter() - start
    n = len(texts)
    print(f"{name:34s} {len(flagged):4d}/{n:<5d} flagged = {100 * len(flagged) / max(n, 1):.2f}%   "
          f"{1000 * seconds / max(n, 1):.1f} ms/paper   {dict(kinds)}")
    for paper_id, flag in flagged[:show]:
        print(f"    {paper_id}: {flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1500, help="full texts per NeurIPS source (sampled, seed 0)")
    parser.add_argument("--show", type=int, default=5, help="flagged real papers printed per source")
    args = parser.parse_args()
    payloads()
    if not DATA.exists():
        print(f"no shared data at {DATA}: false-positive rate not measured")
        return
    rng = random.Random(0)
    print("false positives (real papers with at least one flag):")
    iclr = [(r["paper_id"], r.get("abstract") or "") for r in _rows(DATA / "reviews_real" / "reviews.jsonl")]
    false_positives("ICLR 2017-18 abstracts", iclr, args.show)
    for name, path in (("NeurIPS 2025 full texts", DATA / "neurips2025_fulltext" / "papers.jsonl.gz"),
                       ("NeurIPS 2025 parsed PDFs", DATA / "reviews_real" / "papers.jsonl"),
                       ("NeurIPS 2023-24 full texts", DATA / "neurips2023_2024_fulltext" / "papers.jsonl.gz")):
        if not path.exists():
            continue
        rows = [(str(r.get("paper_id")), r.get("text") or "") for r in _rows(path)]
        rows = [r for r in rows if r[1]]
        if len(rows) > args.n:
            rows = rng.sample(rows, args.n)
        false_positives(name, rows, args.show)


if __name__ == "__main__":
    main()
