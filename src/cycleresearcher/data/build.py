"""The Review and Research datasets (the paper's Review-5k / Research-14k), as Hugging Face DatasetDicts on disk.

    cycleresearcher dataset review   --source ../shared/data/reviews_real/reviews.jsonl --out data/review
    cycleresearcher dataset research --source arxiv:2411.00816,1706.03762 --out data/research
    cycleresearcher dataset stats data/review

Review dataset: one row per paper with all its human reviews; `target` is the review set (reviews, meta-review,
decision) in the CycleReviewer text format and `messages` the SFT chat (system review prompt, the paper, the
target). Research dataset: one row per paper; `prompt` is the research system prompt plus the topic and
reference bundle, `target` the paper in the CycleResearcher format, `messages` the research conversation.

Splits are by paper and deterministic: a paper's split is a hash of (seed, paper id), so the same paper lands in
the same split in both datasets and across rebuilds, and no paper is in two splits. `split_by_year=Y` puts every
paper from year Y on into `test` (train on the past, test on the future). Output is built in a temporary folder
and renamed into place, so a crash never leaves a half-written dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import InputError
from ..formats.paper import render_completion, research_conversation
from ..formats.prompts import (RESEARCH_SYSTEM_PROMPT, research_user_prompt, review_system_prompt,
                               review_user_prompt)
from ..formats.review import render_review_set
from ..schema import Paper, ReviewSet
from ..io import write_json_atomic
from .card import compute_stats, write_card
from .normalize import PaperRecord
from .research import Extractor, get_extractor
from .sources import load_records

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class DatasetBuildError(InputError):
    """Bad build arguments, or an output folder we must not overwrite."""


# ---- splitting ---------------------------------------------------------------------------------------------

def split_of(paper_id: str, split: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
             year: Optional[int] = None, split_by_year: Optional[int] = None) -> str:
    """The split of one paper: a function of (seed, paper id) only, so papers never move between splits."""
    fractions = _check_split(split)
    if split_by_year is not None:
        if year is not None and year >= split_by_year:
            return "test"
        kept = fractions[0] + fractions[1]  # train and validation share what the test split no longer takes
        fractions = (fractions[0] / kept, fractions[1] / kept, 0.0) if kept else (1.0, 0.0, 0.0)
    digest = hashlib.sha256(f"{seed}:{paper_id}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2 ** 64  # uniform in [0, 1)
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def _check_split(split: Sequence[float]) -> tuple[float, float, float]:
    if len(split) != 3 or any(f < 0 for f in split) or abs(sum(split) - 1.0) > 1e-6:
        raise DatasetBuildError(f"split must be three non-negative fractions summing to 1, got {tuple(split)}")
    return float(split[0]), float(split[1]), float(split[2])


# ---- rows --------------------------------------------------------------------------------------------------

def paper_markdown(record: PaperRecord) -> str:
    """The paper as the reviewer sees it: the full text when the source has it, else title and abstract."""
    head = f"# {record.title}\n\n## Abstract\n\n{record.abstract}".strip()
    if not record.text:
        return head
    return record.text if record.text.lstrip().startswith("#") else f"{head}\n\n{record.text}"


def review_target(record: PaperRecord) -> str:
    """The human review set in the CycleReviewer format (form A): reviews, meta-review, decision."""
    review_set = ReviewSet(reviews=record.reviews, meta_review=record.meta_review, decision=record.decision,
                           paper_id=record.paper_id)
    return render_review_set(review_set, form="A")


def review_row(record: PaperRecord) -> dict[str, Any]:
    text = paper_markdown(record)
    target = review_target(record)
    ratings = record.ratings
    return {
        "paper_id": record.paper_id, "title": record.title, "abstract": record.abstract, "text": text,
        "has_full_text": bool(record.text), "venue": record.venue, "year": record.year,
        "decision": record.decision, "decision_raw": record.decision_raw, "ratings": ratings,
        "mean_rating": sum(ratings) / len(ratings) if ratings else None,
        "confidences": [r.confidence for r in record.reviews], "n_reviews": len(record.reviews),
        "rating_scale": record.rating_scale, "meta_review": record.meta_review,
        "reviews": [r.to_dict() for r in record.reviews],
        "review_extras": json.dumps(record.review_extras, ensure_ascii=False, default=str),
        "target": target,
        "messages": [{"role": "system", "content": review_system_prompt(max(1, len(record.reviews)))},
                     {"role": "user", "content": review_user_prompt(text)},
                     {"role": "assistant", "content": target}],
        "source": record.source,
    }


def research_row(record: PaperRecord, paper: Paper, extractor_name: str) -> dict[str, Any]:
    user = research_user_prompt(paper.topic or None, paper.references)
    messages = research_conversation(paper, RESEARCH_SYSTEM_PROMPT, user)
    if not paper.experimental_results and not paper.conclusion_latex:
        messages = messages[:3]  # nothing measured and no conclusion: no empty results/conclusion turns
    return {
        "paper_id": record.paper_id, "title": record.title, "venue": record.venue, "year": record.year,
        "decision": record.decision, "topic": paper.topic, "n_references": len(paper.references),
        "prompt": messages[:2], "target": render_completion(paper), "messages": messages,
        "motivation": paper.motivation, "main_idea": paper.main_idea,
        "n_experiments": len(paper.experimental_setup), "extractor": extractor_name,
        "problems": list(paper.problems), "source": record.source,
    }


def _features(kind: str):
    from datasets import Features, List, Value

    message = List({"role": Value("string"), "content": Value("string")})
    common = {"paper_id": Value("string"), "title": Value("string"), "venue": Value("string"),
              "year": Value("int32"), "decision": Value("string")}
    if kind == "research":
        return Features({**common, "topic": Value("string"), "n_references": Value("int32"), "prompt": message,
                         "target": Value("string"), "messages": message, "motivation": Value("string"),
                         "main_idea": Value("string"), "n_experiments": Value("int32"),
                         "extractor": Value("string"), "problems": List(Value("string")), "source": Value("string")})
    review = {name: Value("string") for name in ("summary", "strengths", "weaknesses", "questions", "ethics_flag")}
    review.update({name: Value("int32") for name in ("soundness", "presentation", "contribution", "rating",
                                                     "confidence")})
    return Features({**common, "abstract": Value("string"), "text": Value("string"), "has_full_text": Value("bool"),
                     "decision_raw": Value("string"), "ratings": List(Value("int32")),
                     "mean_rating": Value("float64"), "confidences": List(Value("int32")),
                     "n_reviews": Value("int32"), "rating_scale": Value("string"), "meta_review": Value("string"),
                     "reviews": List(review), "review_extras": Value("string"), "target": Value("string"),
                     "messages": message, "source": Value("string")})


def _dataset_dict(rows_by_split: dict[str, list[dict]], kind: str):
    from datasets import Dataset, DatasetDict

    features = _features(kind)
    # An empty split is left out: datasets (5.2) saves a zero-row split that then fails on load.
    return DatasetDict({name: Dataset.from_list(rows_by_split[name], features=features)
                        for name in SPLITS if rows_by_split.get(name)})


# ---- builders ----------------------------------------------------------------------------------------------

def build_review_dataset(source_spec: str, out_dir: Path, split: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                         split_by_year: Optional[int] = None, offline: bool = False, limit: Optional[int] = None):
    """Build and save the Review dataset; returns the DatasetDict. Papers without reviews are left out (counted)."""
    start = time.monotonic()
    _check_split(split)
    records = load_records(source_spec, offline=offline, limit=limit)
    rows: dict[str, list[dict]] = {name: [] for name in SPLITS}
    skipped = 0
    for record in records:
        if not record.reviews:
            skipped += 1
            continue
        rows[split_of(record.paper_id, split, seed, record.year, split_by_year)].append(review_row(record))
    if not any(rows.values()):
        raise DatasetBuildError(f"{source_spec}: no paper has reviews")
    dd = _dataset_dict(rows, "review")
    info = _info("review", source_spec, seed, split, split_by_year, len(records), skipped,
                 [r for r in records if r.reviews], start)
    info["normalisation_problems"] = sum(len(r.problems) for r in records)
    _save_atomic(dd, Path(out_dir), info)
    return dd


def build_research_dataset(source_spec: str, out_dir: Path, extractor: str | Extractor = "heuristic",
                           limit: Optional[int] = None, split: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                           accepted_only: bool = False, offline: bool = False,
                           progress: Optional[Callable[[int, int], None]] = None):
    """Build and save the Research dataset (one example per paper); returns the DatasetDict.

    `extractor` is "heuristic", a backend spec, or a callable PaperRecord -> Paper. `accepted_only` keeps only
    accepted papers, as the paper's Research-14k did.
    """
    start = time.monotonic()
    _check_split(split)
    name = extractor if isinstance(extractor, str) else getattr(extractor, "__name__", type(extractor).__name__)
    extract = get_extractor(extractor) if isinstance(extractor, str) else extractor
    records = load_records(source_spec, offline=offline)
    kept = [r for r in records if r.title and (r.decision == "Accept" or not accepted_only)]
    kept = kept[:limit] if limit else kept
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for i, record in enumerate(kept):
        paper = extract(record)
        rows[split_of(record.paper_id, split, seed)].append(research_row(record, paper, name))
        if progress:
            progress(i + 1, len(kept))
    if not kept:
        raise DatasetBuildError(f"{source_spec}: no papers to build from")
    dd = _dataset_dict(rows, "research")
    info = _info("research", source_spec, seed, split, None, len(records), len(records) - len(kept), kept, start)
    info.update({"extractor": name, "accepted_only": accepted_only, "limit": limit})
    _save_atomic(dd, Path(out_dir), info)
    return dd


def _info(kind: str, spec: str, seed: int, split: Sequence[float], split_by_year: Optional[int], n_read: int,
          skipped: int, used: list[PaperRecord], start: float) -> dict[str, Any]:
    return {"kind": kind, "source": spec, "seed": seed, "split": list(split), "split_by_year": split_by_year,
            "papers_read": n_read, "papers_skipped": skipped,
            "provenance": dict(Counter(_provenance(r.source) for r in used).most_common(20)),
            "build_seconds": round(time.monotonic() - start, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _provenance(source: str) -> str:
    """The origin of a record without its per-paper part: repo@commit:path, API venue, PeerRead venue, file."""
    if source.startswith("openreview"):
        return source.split(" forum ")[0]
    if source.startswith("PeerRead"):
        return " ".join(source.split()[:2])
    if source.startswith("arXiv"):
        return "arXiv e-prints"
    if "@" in source:
        repo, _, path = source.partition(":")
        return f"{repo}:{path.rsplit('/', 1)[0]}/" if path.count("/") > 2 else source
    return source


def _save_atomic(dd, out_dir: Path, info: dict[str, Any]) -> None:
    """Write the dataset, its card and build_info.json into a temp folder, then rename it over `out_dir`."""
    out = out_dir.expanduser().resolve()
    if out.exists() and not (out / "dataset_dict.json").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetBuildError(f"{out} exists and is not a dataset built here; choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    old = None
    import datasets

    quiet = not datasets.are_progress_bars_disabled()
    if quiet:  # the CLI prints its own summary; per-shard progress bars are noise here
        datasets.disable_progress_bars()
    try:
        dd.save_to_disk(str(tmp))
        write_json_atomic(tmp / "build_info.json", info, indent=1)
        write_card(tmp / "README.md", dd, info)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.rename(old, out)
        raise
    finally:
        if quiet:
            datasets.enable_progress_bars()
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("saved %s dataset to %s", info["kind"], out)


def dataset_stats(path: Path, tokenizer: Optional[str] = None) -> dict[str, Any]:
    """Counts, rating histograms and token-length percentiles (p50/p90/p99) of a saved dataset.

    Tokens are whitespace-separated words, or the tokens of `tokenizer` (a local tokenizer path).
    """
    from datasets import load_from_disk

    path = Path(path).expanduser()
    if not (path / "dataset_dict.json").is_file():
        raise FileNotFoundError(f"{path} is not a saved dataset (no dataset_dict.json)")
    counter = None
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
        counter = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    stats = compute_stats(load_from_disk(str(path)), counter)
    stats["token_unit"] = tokenizer or "whitespace words"
    info_path = path / "build_info.json"
    if info_path.is_file():
        stats["build_info"] = json.loads(info_path.read_text(encoding="utf-8"))
    return stats
