"""A supervised warm start before the loop: the paper SFTs the policy on research conversations before its
preference rounds; a small model needs it to learn the answer's structure at all.

    warm_start: ../shared/data/reviews_real/reviews.jsonl   # in a CycleConfig (a dataset source spec)

Real papers (the best-rated ones of the source) become research conversations: the run's own prompt for the
paper's title (same system prompt, same references), answered by the paper itself in the stages the run's task
asks for: for the `idea` task its motivation, main idea, title and abstract, taken from the paper's text by the
heuristic extractor (data/research.py). The result is a checkpoint under warm-start/ that round 0 samples from.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from ..errors import InputError
from ..io import read_json, write_json_atomic
from ..research import Researcher
from ..schema import Paper, Reference

log = logging.getLogger(__name__)

WARM_START_DIR = "warm-start"


def idea_completion(paper: Paper) -> str:
    """A paper as an answer to the `idea` task (formats/prompts.RESEARCH_IDEA_SYSTEM_PROMPT): title and a
    three-sentence abstract first, then one sentence each of motivation and main idea. Short on purpose: the
    demo samples 200 tokens, and a small model that cannot close its LaTeX block in that budget never complies."""
    from ..data.research import escape_latex

    return (f"```latex\n\\title{{{escape_latex(' '.join(paper.title.split()))}}}\n\\begin{{abstract}}\n"
            f"{escape_latex(_first_sentences(paper.abstract, 3))}\n\\end{{abstract}}\n```\n\n"
            f"## Motivation\n{_first_sentences(paper.motivation, 1)}\n\n## Main Idea\n"
            f"{_first_sentences(paper.main_idea, 1)}")


def _first_sentences(text: str, n: int) -> str:
    from ..data.research import sentences

    first_paragraph = (text or "").strip().split("\n\n")[0]
    return " ".join(sentences(first_paragraph)[:n]).strip() or first_paragraph


def best_records(source: str, n: int) -> list:
    """The n best-rated accepted papers of a source with a title and an abstract (ties: the source's order)."""
    from ..data.sources import load_records

    records = [r for r in load_records(source) if r.title.strip() and len(r.abstract.split()) >= 40]
    if not records:
        raise InputError(f"warm start: {source} holds no paper with a title and an abstract")
    def quality(r) -> tuple[int, float]:
        ratings = [v.rating for v in r.reviews if v.rating is not None]
        accepted = bool(r.decision) and str(r.decision).lower().startswith("accept")
        return (int(accepted), sum(ratings) / len(ratings) if ratings else 0.0)
    return sorted(records, key=quality, reverse=True)[:n]


def warm_start_conversations(researcher: Researcher, records: list, references: list[Reference],
                             task: str, max_prompt_tokens: Optional[int]) -> list[list[dict[str, str]]]:
    from ..data.research import heuristic_extract
    from ..formats.paper import render_completion

    out = []
    for record in records:
        paper = heuristic_extract(record)
        answer = idea_completion(paper) if task == "idea" else render_completion(paper)
        prompt = researcher.prompt(" ".join(record.title.split()), references, max_prompt_tokens)
        out.append(prompt + [{"role": "assistant", "content": answer}])
    return out


def run_warm_start(root: Path, policy: str, source: str, n_examples: int, researcher: Researcher,
                   references: list[Reference], task: str, sft_config: Any,
                   max_prompt_tokens: Optional[int] = None) -> Path:
    """Train (once) and return the warm-start checkpoint of the run at `root`."""
    from datasets import Dataset

    from .sft import train_sft

    folder = Path(root) / WARM_START_DIR
    checkpoint, marker = folder / "checkpoint", folder / "train.json"
    if checkpoint.exists() and marker.exists():
        return checkpoint
    records = best_records(source, n_examples)
    conversations = warm_start_conversations(researcher, records, references, task, max_prompt_tokens)
    log.info("warm start: SFT on %d real papers from %s", len(conversations), source)
    metrics = train_sft(policy.removeprefix("hf:"), Dataset.from_dict({"messages": conversations}), checkpoint,
                        sft_config)
    write_json_atomic(marker, {**metrics, "source": source, "papers": [r.paper_id for r in records]})
    return checkpoint


def warm_start_metrics(root: Path) -> Optional[dict[str, Any]]:
    marker = Path(root) / WARM_START_DIR / "train.json"
    return read_json(marker) if marker.exists() else None
