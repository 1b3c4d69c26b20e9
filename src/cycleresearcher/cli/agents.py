"""`research`, `review`, `revise`: the two agents of the paper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rich.markup import escape

from ..errors import InputError, StepError
from .app import app
from .common import clean_errors, console, err_console
from .output import write_plain

BACKEND_HELP = "Backend spec: local, hf:PATH, openai:MODEL@URL, vllm:PATH."

# The embedded 135M model writes 250-400 useful tokens, then repeats a paragraph until the token limit, and a
# re-ask does not mend it (measured on research and review prompts): on it, samples stop at the first verbatim
# repeat of 48 tokens, limits are lower and `research` does not re-ask. Other backends keep the full defaults.
EMBEDDED_LOOP_TOKENS = 48


def is_embedded(spec: str) -> bool:
    return spec.strip().split(":", 1)[0].split("?", 1)[0] == "local"


def embedded_spec(spec: str, bf16: Optional[bool] = None) -> str:
    """`local[...]` with the loop stop and, on CPUs that compute bfloat16 natively, dtype=bfloat16 (each unless
    the spec sets it); other specs unchanged."""
    spec = spec.strip()
    if not is_embedded(spec):
        return spec
    if bf16 is None:
        from ..backends.local import cpu_bf16_is_fast

        bf16 = cpu_bf16_is_fast()
    extra = [] if "loops=" in spec else [f"loops={EMBEDDED_LOOP_TOKENS}"]
    extra += ["dtype=bfloat16"] if bf16 and "dtype=" not in spec and "device=" not in spec else []
    if not extra:
        return spec
    if spec in ("local", "local:", "local?"):
        return "local:" + "&".join(extra)
    return spec + "&" + "&".join(extra)


def research_defaults(spec: str) -> tuple[int, int]:
    """(max_new_tokens, max_repairs) for `research` when the options are not given."""
    return (1024, 0) if is_embedded(spec) else (1536, 1)


def review_tokens(spec: str) -> int:
    """max_new_tokens for `review` (all reviews and the meta-review) when not given."""
    return 1024 if is_embedded(spec) else 2048


@app.command()
def research(
    topic: str = typer.Option(..., help="Research topic."),
    out: Path = typer.Option(..., help="Output folder (paper.md, paper.tex, setup.json, results.json, ...)."),
    bib: Optional[Path] = typer.Option(None, help="BibTeX file of references."),
    corpus: Optional[Path] = typer.Option(None, help="Folder of papers, or a JSONL of titles and abstracts."),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    mode: str = typer.Option("single", help="single (one completion, as the released model) or staged."),
    top_k: int = typer.Option(8, help="References kept after ranking by similarity to the topic."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Tokens per completion [default: 1536; 1024 on the "
                                                           "embedded model]."),
    max_repairs: Optional[int] = typer.Option(None, help="Re-asks when the LaTeX paper, title or setup is missing "
                                                         "[default: 1; 0 on the embedded model]."),
    temperature: float = typer.Option(0.4, help="Sampling temperature."),
    seed: int = typer.Option(0, help="Sampling seed."),
    runner: Optional[str] = typer.Option(None, help="Experiment command run on setup.json; its JSON results "
                                                    "replace the simulated ones ({setup}, {results} placeholders)."),
    runner_timeout: float = typer.Option(3600, help="Seconds before the experiment command is stopped."),
):
    """Write a paper on a topic from references, in the CycleResearcher stages."""
    from ..backends import get_backend
    from ..experiments import conclude_with_results, run_experiments
    from ..paper_folder import save_paper_folder
    from ..research import ResearchConfig, Researcher
    from ..retrieve import load_references

    with clean_errors():
        references = []
        for source in (bib, corpus):
            if source is not None:
                references.extend(load_references(source))
        tokens, repairs = research_defaults(backend)
        config = ResearchConfig(mode=mode, top_k_references=top_k, temperature=temperature, seed=seed,
                                max_new_tokens=tokens if max_new_tokens is None else max_new_tokens,
                                max_repairs=repairs if max_repairs is None else max_repairs)
        researcher = Researcher(get_backend(embedded_spec(backend)), config)
        paper = researcher.write(topic, references, progress=True)
        if runner:
            results = run_experiments(runner, paper, out, timeout=runner_timeout)
            paper = conclude_with_results(researcher, paper, results)
        files = save_paper_folder(paper, out)
    console.print(f"[bold]{paper.title or '(untitled)'}[/bold]  results: {paper.results_source}")
    for p in paper.problems:
        err_console.print(f"[yellow]problem:[/yellow] {escape(p)}", soft_wrap=True)
    console.print(f"wrote {', '.join(sorted(files))} to {out}  "
                  f"({paper.provenance.completion_tokens} tokens, {paper.provenance.seconds:.0f} s)", soft_wrap=True)


@app.command()
def review(
    paper: Path = typer.Argument(..., help="Paper: .tex, LaTeX folder, arXiv archive, .pdf, .md/.txt, or a "
                                           "folder written by `research`."),
    reviewers: int = typer.Option(4, help="Number of reviewer reviews."),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    max_new_tokens: Optional[int] = typer.Option(None, help="Tokens for all reviews and the meta-review "
                                                           "[default: 2048; 1024 on the embedded model]."),
    seed: int = typer.Option(0, help="Sampling seed."),
    mode: str = typer.Option("auto", help="set (all reviews in one completion, the CycleReviewer format), "
                                          "per-review (one completion per reviewer; small models), or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print the ReviewSet as JSON."),
    out: Optional[Path] = typer.Option(None, help="Also write the ReviewSet JSON here."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Exit 0 even when no review with a rating could "
                                                                  "be read from the model's output."),
):
    """Review a paper like a program committee: N reviews, a meta-review and a decision.

    Exits 1 when the model's output holds no rated review (the ReviewSet is still printed and written)."""
    from ..backends import get_backend
    from ..io import write_json_atomic
    from ..outcome import empty_review
    from ..paper_text import read_paper
    from ..review import ReviewConfig, Reviewer

    with clean_errors():
        if not paper.exists():
            raise FileNotFoundError(f"paper not found: {paper}")
        text = read_paper(paper)  # before the model loads: an empty paper is refused at once
        if not text.text.strip():
            raise InputError(f"{paper}: the paper has no text to review")
        config = ReviewConfig(n_reviewers=reviewers, seed=seed, mode=mode,
                              max_new_tokens=review_tokens(backend) if max_new_tokens is None else max_new_tokens)
        review_set = Reviewer(get_backend(embedded_spec(backend)), config=config).review(text, progress=True)
    data = review_set.to_dict()
    if out is not None:
        write_json_atomic(out, data)
    if as_json:
        write_plain(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        print_review_set(review_set)
    reason = empty_review(review_set)
    if reason and not allow_empty:
        with clean_errors():
            raise StepError(f"no usable review: {reason} ({backend}, mode {mode})",
                            hint="see the problems above; try --mode per-review, a larger model, or --allow-empty")


# Table marks for scores the review did not write itself (ReviewSet.score_sources).
MARKS = {"chosen": "*", "asked": "?"}
SCORE_COLUMNS = ("rating", "confidence", "soundness", "presentation", "contribution")


def print_review_set(review_set) -> None:
    from rich.table import Table

    from ..review import DECISION_CHOSEN, SOURCE_WORDS, score_source_counts

    table = Table(title="Reviews")
    for column in ("#",) + SCORE_COLUMNS:
        table.add_column(column, justify="right")
    for i, r in enumerate(review_set.reviews, 1):
        sources = review_set.score_sources[i - 1] if i <= len(review_set.score_sources) else {}
        table.add_row(str(i), *("-" if getattr(r, name) is None else f"{getattr(r, name)}{MARKS.get(sources.get(name), '')}"
                                for name in SCORE_COLUMNS))
    console.print(table)
    marked = {s for sources in review_set.score_sources for s in sources.values()} & set(MARKS)
    if marked:
        console.print("[dim]" + "; ".join(f"{MARKS[s]} {SOURCE_WORDS[s]}" for s in MARKS if s in marked)
                      + " (the review did not write it)[/dim]")
    mean = review_set.mean_rating
    counts = score_source_counts(review_set, "rating")
    origin = f" (ratings: {', '.join(f'{n} {SOURCE_WORDS[s]}' for s, n in counts.items())})" if counts else ""
    decided = " (chosen by likelihood)" if DECISION_CHOSEN in review_set.problems else ""
    console.print(f"mean rating: [bold]{'-' if mean is None else f'{mean:.2f}'}[/bold]{origin}   "
                  f"decision: [bold]{review_set.decision or '-'}[/bold]{decided}", soft_wrap=True)
    for flag in review_set.flags:
        err_console.print(f"[red]flag:[/red] {flag}", soft_wrap=True)
    for problem in review_set.problems:
        err_console.print(f"[yellow]problem:[/yellow] {escape(problem)}", soft_wrap=True)


@app.command()
def revise(
    paper_dir: Path = typer.Argument(..., help="A folder written by `research` (holds paper.json)."),
    reviews: Path = typer.Option(..., help="ReviewSet JSON (from `review --out` or `review --json`)."),
    out: Optional[Path] = typer.Option(None, help="Folder for the revised paper (default: PAPER_DIR/revised)."),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    max_new_tokens: Optional[int] = typer.Option(None, help="Tokens for the revised paper [default: 2048; 1024 on "
                                                           "the embedded model]."),
    seed: int = typer.Option(0, help="Sampling seed."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Exit 0 even when the revision lost "
                                                                            "stages the input paper had."),
):
    """Revise a paper to answer its reviews' weaknesses and questions.

    Exits 1 when the revised paper lost a stage the input had (Motivation, Main Idea, the LaTeX paper, ...)."""
    from ..backends import get_backend
    from ..outcome import lost_stages
    from ..paper_folder import save_paper_folder
    from ..research import ResearchConfig, Researcher
    from ..schema import Paper, ReviewSet

    with clean_errors():
        paper_json = paper_dir / "paper.json"
        if not paper_json.exists():
            raise FileNotFoundError(f"{paper_json} not found; give a folder written by `research`")
        paper = Paper.from_dict(json.loads(paper_json.read_text(encoding="utf-8")))
        review_set = _read_review_set(reviews)
        tokens = review_tokens(backend) if max_new_tokens is None else max_new_tokens  # 2048; 1024 embedded
        researcher = Researcher(get_backend(embedded_spec(backend)), ResearchConfig(max_new_tokens=tokens, seed=seed))
        revised = researcher.revise(paper, review_set, progress=True)
        target = out or paper_dir / "revised"
        save_paper_folder(revised, target, {"revision_of": str(paper_dir)})
    for p in revised.problems:
        err_console.print(f"[yellow]problem:[/yellow] {escape(p)}", soft_wrap=True)
    console.print(f"wrote the revised paper to {target}")
    lost = lost_stages(paper, revised)
    if lost and not allow_incomplete:
        with clean_errors():
            raise StepError(f"the revision lost {', '.join(lost)} (the input paper had them); it was written to "
                            f"{target} all the same", hint="run revise again (another --seed), or pass "
                                                           "--allow-incomplete to accept it")


def _read_review_set(path: Path):
    """The reviews `revise` answers: the JSON `review --json` writes, or a review set as text (the format
    `review` prints, parsed like model output). A clear InputError naming the file otherwise."""
    from ..formats.review import parse_review_set
    from ..schema import ReviewSet

    text = path.read_text(encoding="utf-8")
    hint = "give the JSON that `review --json` writes, or the reviews as text in the review format"
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); {hint}")
        if not isinstance(data, dict):
            raise InputError(f"{path}: a JSON {type(data).__name__}, not a review set object; {hint}")
        return ReviewSet.from_dict(data)
    review_set = parse_review_set(text)
    if not review_set.reviews:
        raise InputError(f"{path}: no review found in it; {hint}")
    return review_set
