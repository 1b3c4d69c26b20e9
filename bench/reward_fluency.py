"""Bench: does the embedded SmolLM2's fluency say anything about a paper's ratings that length does not?

    nice .venv/bin/python bench/reward_fluency.py --n 250            # 250 + 250 papers, ~25 min (2.8 s a paper)
    nice .venv/bin/python bench/reward_fluency.py --n 100 --windows 2

The issue's feature list includes language-model fluency and coherence "from the embedded SmolLM2 on a few
windows". This measures it before anything pays for it at scoring time. Per paper, --windows windows of
--tokens tokens spread over the cleaned main body (the reward model's text), one batched forward pass of
SmolLM2-135M-Instruct (float32, the converted embedded model), and three features: the mean token
log-probability, its standard deviation over the tokens, and the repetition rate (share of tokens that
continue a 4-gram already seen in the same window).

Papers: every rejected paper of NeurIPS 2023 main plus accepted ones up to --n (the development set), and the
same from NeurIPS 2025 (the reward model's held-out year; reported, never used to choose). Rows: each feature
alone, log length alone, and (development set only, 5-fold) a logistic regression on length + the fluency
features against one on length alone, each with bootstrap 95% intervals.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from cycleresearcher.data.fulltext import load_fulltext_rows  # noqa: E402
from cycleresearcher.reward.stats import bootstrap, roc_auc, spearman  # noqa: E402

FEATURES = ("mean_logprob", "std_logprob", "repeat_rate")


def pick(rows: list[dict], group: str, n: int, rng: np.random.Generator) -> list[dict]:
    mine = [r for r in rows if r["group"] == group and r["decision"] and r["text"]]
    rejected = [r for r in mine if r["decision"] == "Reject"]
    accepted = [r for r in mine if r["decision"] == "Accept"]
    take = max(0, n - len(rejected))
    return rejected + [accepted[i] for i in rng.permutation(len(accepted))[:take]]


def windows(ids: list[int], k: int, size: int) -> list[list[int]]:
    """k windows of `size` token ids spread evenly over the text (fewer when it is short)."""
    if len(ids) <= size:
        return [ids]
    starts = np.linspace(0, len(ids) - size, k).astype(int)
    return [ids[s:s + size] for s in sorted(set(starts.tolist()))]


def fluency(texts: list[str], k: int, size: int) -> tuple[np.ndarray, float]:
    """(n, 3) FEATURES per text, and the seconds spent."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cycleresearcher.backends.loader import embedded_model_folder

    folder = embedded_model_folder()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    out = np.zeros((len(texts), len(FEATURES)))
    t0 = time.monotonic()
    for n, text in enumerate(texts):
        wins = windows(tok(text, add_special_tokens=False)["input_ids"], k, size)
        width = max(len(w) for w in wins)
        batch = torch.full((len(wins), width), tok.pad_token_id or 0)
        mask = torch.zeros((len(wins), width), dtype=torch.long)
        for i, w in enumerate(wins):
            batch[i, :len(w)] = torch.tensor(w)
            mask[i, :len(w)] = 1
        with torch.inference_mode():
            logits = model(input_ids=batch, attention_mask=mask).logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, batch[:, 1:, None])[..., 0]
        valid = mask[:, 1:].bool()
        vals = lp[valid].numpy()
        repeats, total = 0, 0
        for w in wins:
            grams = set()
            for j in range(3, len(w)):
                g = tuple(w[j - 3:j + 1])
                repeats += g in grams
                grams.add(g)
                total += 1
        out[n] = [vals.mean(), vals.std(), repeats / max(total, 1)]
        if (n + 1) % 50 == 0:
            print(f"  {n + 1}/{len(texts)} papers, {(time.monotonic() - t0) / (n + 1):.2f} s a paper", flush=True)
    return out, time.monotonic() - t0


def fmt(est) -> str:
    v, lo, hi = est
    return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def cv_auc(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Out-of-fold decision scores of a class-balanced logistic regression (5 folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    fold = np.random.default_rng(seed).integers(0, 5, len(y))
    out = np.zeros(len(y))
    for f in range(5):
        tr, te = fold != f, fold == f
        sc = StandardScaler().fit(x[tr])
        m = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(sc.transform(x[tr]), y[tr])
        out[te] = m.decision_function(sc.transform(x[te]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="papers per set (all rejects, then accepts)")
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = load_fulltext_rows()
    rng = np.random.default_rng(0)
    for name, group in (("development: NeurIPS 2023 main", "NeurIPS-2023-main"),
                        ("held out: NeurIPS 2025", "NeurIPS-2025-main")):
        papers = pick(rows, group, args.n, rng)
        feats, seconds = fluency([r["text"] for r in papers], args.windows, args.tokens)
        mean = np.array([r["mean_rating"] for r in papers])
        acc = np.array([r["decision"] == "Accept" for r in papers])
        length = np.log1p([r["raw_words"] for r in papers])
        n = len(papers)
        print(f"\n{name}: {n} papers ({int((~acc).sum())} rejected), {seconds / n:.2f} s a paper "
              f"({args.windows} x {args.tokens} tokens, {args.threads} threads)")
        print(f"{'feature':<22}{'Spearman with mean rating':>32}{'accept AUC':>32}")
        columns = {**{f: feats[:, i] for i, f in enumerate(FEATURES)}, "log_raw_words": length}
        if name.startswith("development"):
            columns["length (5-fold LR)"] = cv_auc(length[:, None], acc)
            columns["length+fluency (5-fold)"] = cv_auc(np.column_stack([length, feats]), acc)
        for f, v in columns.items():
            sp = bootstrap(lambda i, v=v: spearman(v[i], mean[i]), n, args.resamples)
            au = bootstrap(lambda i, v=v: roc_auc(v[i], acc[i]), n, args.resamples)
            print(f"{f:<22}{fmt(sp):>32}{fmt(au):>32}")
        if name.startswith("development"):
            a, b = columns["length+fluency (5-fold)"], columns["length (5-fold LR)"]
            diff = bootstrap(lambda i: roc_auc(a[i], acc[i]) - roc_auc(b[i], acc[i]), n, args.resamples)
            print(f"{'AUC gain of fluency':<22}{'':>32}{fmt(diff):>32}")


if __name__ == "__main__":
    main()
