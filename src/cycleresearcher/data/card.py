"""Statistics of a built dataset, and its dataset card (README.md).

Rating histograms are kept per rating scale: NeurIPS 2025's 1-6 ratings are never pooled with 1-10 ones.
Token lengths are whitespace-separated words unless a tokenizer is given.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

from ..io import write_text_atomic

PERCENTILES = (50, 90, 99)

LICENCE_NOTE = (
    "The reviews, meta-reviews, decisions, titles, abstracts and paper texts are public content from "
    "OpenReview.net, arXiv and the repositories named under Provenance, written by their authors, reviewers and "
    "area chairs; OpenReview's and arXiv's terms and each paper's licence apply. Several source repositories "
    "carry no licence file. Treat this dataset as research-only data: credit OpenReview.net, arXiv and the "
    "source repositories (PeerRead: Kang et al., NAACL 2018), and do not redistribute it as your own data set."
)

COLUMN_DOCS = {
    "review": {
        "paper_id": "venue+year prefix and source id, e.g. iclr2017_HJWHIKqgl",
        "title / abstract": "as the source gives them",
        "text": "the paper as the reviewer sees it: full text when the source has it, else title + abstract",
        "has_full_text": "whether `text` holds more than title and abstract",
        "venue / year": "e.g. ICLR / 2017",
        "decision / decision_raw": "Accept | Reject (None if unknown) / the source's string",
        "ratings / mean_rating": "overall ratings of the official reviews, in source order / their mean",
        "confidences": "reviewer confidence 1-5 (None where missing)",
        "n_reviews / rating_scale": "number of reviews / '1-10' or '1-6' (never pool the two)",
        "meta_review": "area chair or program chair text ('' where the source has none)",
        "reviews": "each review as schema.Review (summary, sub-scores, strengths, weaknesses, questions, rating, "
                   "confidence)",
        "review_extras": "JSON: per-review fields the ICLR form lacks (review title, originality, raw strings)",
        "target": "the review set in the CycleReviewer text format (formats/review.py, form A)",
        "messages": "SFT chat: system review prompt, user paper, assistant target",
        "source": "where the record came from",
    },
    "research": {
        "paper_id / title / venue / year / decision": "as in the source",
        "topic": "the paper's keywords (the prompt's topic line)",
        "n_references": "entries in the reference bundle",
        "prompt": "system research prompt + user topic and reference bundle",
        "target": "the paper in the CycleResearcher format (formats/paper.py render_completion)",
        "messages": "the research conversation (5 messages; 3 when the paper has no experiments or conclusion)",
        "motivation / main_idea / n_experiments": "the extracted stage fields",
        "extractor": "heuristic or the backend spec that wrote the stage fields",
        "problems": "what the extractor could not do",
    },
}


def whitespace_tokens(text: str) -> int:
    return len(text.split())


def percentiles(values: list[int]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {f"p{p}": 0.0 for p in PERCENTILES} | {"max": 0.0}
    array = np.asarray(values)
    return {f"p{p}": float(np.percentile(array, p)) for p in PERCENTILES} | {"max": float(array.max())}


def compute_stats(dd, counter: Optional[Callable[[str], int]] = None) -> dict[str, Any]:
    """Per split: rows, reviews, decisions, rating histograms per scale, token-length percentiles."""
    count = counter or whitespace_tokens
    kind = "review" if "ratings" in dd[next(iter(dd))].column_names else "research"
    splits: dict[str, Any] = {}
    for name, ds in dd.items():
        if ds.num_rows == 0:  # never written by build.py, but a user's DatasetDict may have one
            continue
        entry: dict[str, Any] = {"papers": ds.num_rows,
                                 "decisions": dict(Counter(d or "unknown" for d in ds["decision"]))}
        if kind == "review":
            hist: dict[str, Counter] = {}
            for ratings, scale in zip(ds["ratings"], ds["rating_scale"]):
                hist.setdefault(scale, Counter()).update(r for r in ratings if r is not None)
            entry["reviews"] = int(sum(ds["n_reviews"]))
            entry["rating_histogram"] = {s: {str(k): v for k, v in sorted(h.items())} for s, h in hist.items()}
            entry["tokens"] = {"paper": percentiles([count(t) for t in ds["text"]]),
                               "target": percentiles([count(t) for t in ds["target"]])}
        else:
            entry["tokens"] = {"prompt": percentiles([count(m[1]["content"]) for m in ds["prompt"]]),
                               "target": percentiles([count(t) for t in ds["target"]])}
        splits[name] = entry
    total = {"papers": sum(s["papers"] for s in splits.values())}
    if kind == "review":
        total["reviews"] = sum(s["reviews"] for s in splits.values())
    return {"kind": kind, "splits": splits, "total": total}


def write_card(path: Path, dd, info: dict[str, Any]) -> None:
    """A dataset card: what is in it, how many, where it came from, and on what terms."""
    stats = compute_stats(dd)
    kind = stats["kind"]
    lines = ["---", "license: other", f"pretty_name: cycleresearcher {kind} dataset", "---", "",
             f"# cycleresearcher {kind} dataset", "",
             f"Built by `cycleresearcher dataset {kind} --source {info['source']}` (seed {info['seed']}, split "
             f"{info['split']}{', test = years >= ' + str(info['split_by_year']) if info.get('split_by_year') else ''})"
             f" on {info['created']} in {info['build_seconds']} s. Splits are by paper (hash of seed and paper id): "
             "no paper is in two splits.", "", "## Counts", ""]
    header = "| split | papers | reviews | decisions |" if kind == "review" else "| split | papers | decisions |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for name, s in stats["splits"].items():
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(s["decisions"].items()))
        lines.append(f"| {name} | {s['papers']} | {s['reviews']} | {decisions} |" if kind == "review"
                     else f"| {name} | {s['papers']} | {decisions} |")
    lines += ["", f"Papers read: {info['papers_read']}; left out: {info['papers_skipped']} "
              f"({'no reviews' if kind == 'review' else 'filtered or over the limit'}).", ""]
    if kind == "review":
        lines += ["## Rating histogram (all splits, per rating scale)", ""]
        merged: dict[str, Counter] = {}
        for s in stats["splits"].values():
            for scale, hist in s["rating_histogram"].items():
                merged.setdefault(scale, Counter()).update({int(k): v for k, v in hist.items()})
        for scale, hist in merged.items():
            lines.append(f"- scale {scale}: " + ", ".join(f"{k}: {v}" for k, v in sorted(hist.items())))
        lines += ["", "Human reviews are mapped onto the CycleReviewer form: headers the reviewer wrote (Summary, "
                  "Pros/Strengths, Cons/Weaknesses, Questions) become those fields, free text without headers is "
                  "the Summary; NeurIPS 2025 `clarity` is Presentation and `impact` Contribution, its 1-6 rating "
                  "scale is kept and recorded in `rating_scale`. Lines the review parser would read as headers "
                  "are written as bullets. No review text was invented; missing fields stay empty.", ""]
    lines += ["## Columns", ""] + [f"- `{k}`: {v}" for k, v in COLUMN_DOCS[kind].items()]
    lines += ["", "## Provenance", "", "Where each paper's reviews came from (the `source` column; a local dump's own "
              "README says where its titles, abstracts and decisions came from):", ""]
    lines += [f"- {src}: {n} papers" for src, n in info["provenance"].items()]
    lines += ["", "## Licence", "", LICENCE_NOTE, "", "## Build info", "", "```json",
              json.dumps({k: v for k, v in info.items() if k != "provenance"}, indent=1), "```", ""]
    write_text_atomic(Path(path), "\n".join(lines))
