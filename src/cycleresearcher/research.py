"""The Researcher: a topic and references in, a paper in the CycleResearcher stages out.

    cycleresearcher research --topic "robust graph neural networks" --bib ../shared/data/sample.bib --out out/p1

    researcher = Researcher(get_backend("local"))
    paper = researcher.write("robust graph neural networks", load_references(Path("refs.bib")))
    save_paper_folder(paper, Path("out/p1"))      # paper_folder.py

Two modes: `single` asks for the whole paper in one completion, as the released model is used; `staged` asks
for motivation and idea, the LaTeX paper, the setup, the results and the conclusion in turn, each stage fed
the conversation so far. Results a model writes are labelled simulated; `experiments.run_experiments` replaces
them with measured ones from a user's command.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from typing import Optional

from .backends.base import Backend
from .config import ConfigError, StrictConfig
from .formats.paper import parse_paper, render_completion
from .formats.prompts import (RESEARCH_IDEA_SYSTEM_PROMPT, RESEARCH_SYSTEM_PROMPT, REVISE_SYSTEM_PROMPT,
                              research_user_prompt,
                              revise_user_prompt)
from .formats.review import render_review_set
from .repair import Attempt, generate_with_repairs
from .retrieve import literature_review, rank_references
from .schema import Message, Paper, Provenance, Reference, ReviewSet

log = logging.getLogger(__name__)

# What a paper must have to be worth reviewing; the repair prompt names what is missing.
REQUIRED_PROBLEMS = {
    "missing LaTeX paper": "the LaTeX paper in a ```latex block (with \\title and an abstract)",
    "missing \\title": "a \\title{...} in the LaTeX paper",
    "missing experimental setup": "the `## Experimental Setup` section with a ```json list",
    "missing motivation": "the `## Motivation` section",
    "missing main idea": "the `## Main Idea` section",
}

# Tokens a chat template adds around each message (role header, end marker): 5 for SmolLM2's ChatML; 8 leaves
# room for templates a little longer.
CHAT_TOKENS_PER_MESSAGE = 8

STAGES = [
    ("idea", "Write the `## Motivation` and `## Main Idea` sections, then `## Interestingness`, "
             "`## Feasibility` and `## Novelty`, each a score from 1 to 10."),
    ("paper", "Now write the paper in one ```latex block: \\title{...}, the abstract environment, and the "
              "Introduction, Related Work and Method sections."),
    ("setup", "Now write `## Experimental Setup` followed by a ```json list of {\"name\", \"description\"}, one "
              "entry per experiment."),
    ("results", "Now write `## Experimental_results` followed by a ```json list with one entry per experiment "
                "of the setup (same names): {\"name\", \"result\": {\"table\": [[header...], [row...]]}, "
                "\"description\"}."),
    ("conclusion", "Now write one ```latex block with the Experiments section(s) and the Conclusion."),
]


@dataclass
class ResearchConfig(StrictConfig):
    """How the researcher samples. Defaults follow the paper (temperature 0.4, top-p 0.95)."""

    mode: str = field(default="single", metadata={"help": "single (one completion) | staged (five turns)"})
    task: str = field(default="paper", metadata={
        "help": "paper: every stage (motivation, idea, LaTeX paper, setup, results, conclusion); idea: motivation, "
                "main idea, title and abstract only (what a small model can write)"})
    top_k_references: int = field(default=8, metadata={"help": "references kept after ranking by similarity"})
    temperature: float = field(default=0.4, metadata={"help": "sampling temperature; 0 is greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int = field(default=2048, metadata={"help": "tokens per completion (staged: per stage)"})
    max_repairs: int = field(default=1, metadata={"help": "re-asks when required parts are missing"})
    seed: Optional[int] = field(default=0, metadata={"help": "sampling seed; None for random"})

    def __post_init__(self) -> None:
        if self.mode not in ("single", "staged"):
            raise ConfigError(f"research mode must be 'single' or 'staged', got {self.mode!r}")
        if self.task not in TASK_REQUIRED:
            raise ConfigError(f"research task must be one of {sorted(TASK_REQUIRED)}, got {self.task!r}")
        if self.task != "paper" and self.mode == "staged":
            raise ConfigError("the staged mode writes every stage; use task 'paper' with it")


# The problems that make a paper non-compliant, per task (the idea task asks for no setup).
TASK_REQUIRED = {"paper": tuple(REQUIRED_PROBLEMS),
                 "idea": ("missing LaTeX paper", "missing \\title", "missing motivation", "missing main idea")}


def required_missing(paper: Paper, task: str = "paper") -> list[str]:
    return [REQUIRED_PROBLEMS[p] for p in paper.problems if p in TASK_REQUIRED[task]]


def compliance_problems(paper: Paper, task: str = "paper") -> list[str]:
    """What the paper lacks of what its task asks for: the required stages, and a non-empty abstract."""
    return required_missing(paper, task) + ([] if paper.abstract.strip() else ["the abstract"])


def is_compliant(paper: Paper, task: str = "paper") -> bool:
    """Every stage the task asks for parsed (and the abstract is not empty)."""
    return not compliance_problems(paper, task)


def repair_message(missing: list[str]) -> str:
    return ("Your answer is missing " + "; ".join(missing) + ". Write the complete answer again in the required "
            "structure.")


class Researcher:
    """Writes papers with a policy backend."""

    def __init__(self, backend: Backend, config: Optional[ResearchConfig] = None) -> None:
        self.backend = backend
        self.config = config or ResearchConfig()

    # -- prompts ----------------------------------------------------------------------------------------

    def prompt(self, topic: str, references: list[Reference], max_tokens: Optional[int] = None) -> list[Message]:
        """Messages 1-2 of the research conversation, with the top-k references and their review.

        With `max_tokens` (the trainer's max_prompt_length), the lowest-ranked references are dropped until the
        conversation fits; the system prompt and the instruction are never cut. ConfigError when even no
        reference does not fit."""
        ranked = rank_references(topic, references, self.config.top_k_references)
        while True:
            review = literature_review(topic, ranked) if ranked else ""
            system = RESEARCH_IDEA_SYSTEM_PROMPT if self.config.task == "idea" else RESEARCH_SYSTEM_PROMPT
            messages = [{"role": "system", "content": system},
                        {"role": "user", "content": research_user_prompt(topic, ranked, review)}]
            if max_tokens is None:
                return messages
            used = self.prompt_tokens(messages)
            if used <= max_tokens:
                if len(ranked) < min(self.config.top_k_references, len(references)):
                    log.info("prompt for %r: kept %d references to fit %d tokens", topic[:60], len(ranked), max_tokens)
                return messages
            if not ranked:
                raise ConfigError(f"the research prompt for {topic[:60]!r} takes {used} tokens without any reference, "
                                  f"more than the {max_tokens} the trainer keeps (simpo.max_prompt_length)",
                                  hint="raise simpo.max_prompt_length")
            ranked = ranked[:-1]

    def prompt_tokens(self, messages: list[Message]) -> int:
        """Tokens of a conversation as the policy sees it (contents plus the chat template's few per message)."""
        return sum(self.backend.count_tokens(m["content"]) + CHAT_TOKENS_PER_MESSAGE for m in messages) \
            + CHAT_TOKENS_PER_MESSAGE

    def _options(self, seed_offset: int = 0) -> dict:
        c = self.config
        return {"temperature": c.temperature, "top_p": c.top_p, "max_new_tokens": c.max_new_tokens,
                "seed": None if c.seed is None else c.seed + seed_offset, "stage": "research"}

    # -- writing ----------------------------------------------------------------------------------------

    def write(self, topic: str, references: list[Reference], progress: bool = False) -> Paper:
        messages = self.prompt(topic, references)
        if self.config.mode == "staged":
            paper = self._write_staged(messages, progress)
        else:
            attempt = generate_with_repairs(self.backend, [messages], parse_paper,
                                            lambda p: required_missing(p, self.config.task),
                                            repair_message, self.config.max_repairs, progress, **self._options())[0]
            paper = _paper_from_attempt(attempt, self.backend.spec, self.config.seed)
        paper.topic = topic
        paper.references = rank_references(topic, references, self.config.top_k_references)
        return paper

    def sample(self, prompts: list[list[Message]], k: int, seed: Optional[int] = None,
               progress: bool = False) -> list[list[Paper]]:
        """k papers per prompt in one batched call, without repairs: the cycle rewards what the policy writes."""
        from .schema import GenerationRequest

        options = self._options()
        options["seed"] = seed if seed is not None else options["seed"]
        requests = [GenerationRequest(messages=m, n=k, **options) for m in prompts]
        results = self.backend.generate(requests, progress=progress)
        papers = []
        for messages, completions in zip(prompts, results):
            row = []
            for index, completion in enumerate(completions):
                attempt = Attempt(parse_paper(completion.text), messages, completion.text, [], [completion])
                paper = _paper_from_attempt(attempt, self.backend.spec, options["seed"])
                paper.sample_index = index
                row.append(paper)
            papers.append(row)
        return papers

    def _write_staged(self, messages: list[Message], progress: bool) -> Paper:
        conversation = list(messages)
        conversation[1] = {"role": "user", "content": conversation[1]["content"] + "\n\n" + STAGES[0][1]}
        turns, completions = [], []
        for n, (name, instruction) in enumerate(STAGES):
            if n:
                conversation.append({"role": "user", "content": instruction})
            completion = self.backend.chat(list(conversation), **self._options(seed_offset=n))
            completions.append(completion)
            conversation.append({"role": "assistant", "content": completion.text})
            turns.append(completion.text)
            log.info("stage %s: %d tokens", name, completion.completion_tokens)
        attempt = Attempt(parse_paper("\n\n".join(turns)), conversation, "\n\n".join(turns), [], completions)
        return _paper_from_attempt(attempt, self.backend.spec, self.config.seed)

    def revise(self, paper: Paper, review_set: ReviewSet, progress: bool = False) -> Paper:
        """A new version of the paper that answers the reviews' weaknesses and questions."""
        messages = [{"role": "system", "content": REVISE_SYSTEM_PROMPT},
                    {"role": "user", "content": revise_user_prompt(render_completion(paper),
                                                                   _review_points(review_set))}]
        options = self._options()
        options["stage"] = "revise"
        attempt = generate_with_repairs(self.backend, [messages], parse_paper, required_missing, repair_message,
                                        self.config.max_repairs, progress, **options)[0]
        revised = _paper_from_attempt(attempt, self.backend.spec, self.config.seed)
        revised.topic, revised.references, revised.prompt_id = paper.topic, paper.references, paper.prompt_id
        revised.provenance.stage = "revise"
        return revised


def _review_points(review_set: ReviewSet) -> str:
    """The reviews as the author needs them: every review's weaknesses and questions, and the meta-review."""
    return render_review_set(ReviewSet(reviews=review_set.reviews, meta_review=review_set.meta_review,
                                       decision=review_set.decision))


def _paper_from_attempt(attempt: Attempt[Paper], spec: str, seed: Optional[int]) -> Paper:
    paper = attempt.result
    paper.messages = attempt.messages
    paper.raw_text = attempt.text
    paper.provenance = Provenance(model=spec, seed=seed, prompt_tokens=attempt.prompt_tokens,
                                  completion_tokens=attempt.completion_tokens, seconds=round(attempt.seconds, 3),
                                  stage="research", created=_now())
    return paper


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
