"""What a judge reads: one text for any paper (a generated Paper, a dataset row, a file, or raw text).

Every judge (the LLM reviewer, the scalar reward model, the baselines), the evaluation and the detector read
papers through here, so they all see the same text of the same paper. A generated paper whose stages did not
parse is judged on what the model wrote (its raw text), never on a near-empty string: otherwise every
unparsable sample gets the same score and the preference pairs lose the difference between them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

from .errors import InputError
from .schema import Paper

PaperSource = Union[Path, str, Paper, Mapping[str, Any]]


@dataclass
class PaperText:
    """A paper as a judge reads it, plus the raw LaTeX the injection check needs."""

    text: str
    latex_source: str = ""
    title: str = ""
    paper_id: str = ""
    problems: list[str] = field(default_factory=list)
    hidden: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) drawn invisibly (PDF white/tiny)


def compose_text(title: str = "", abstract: str = "", body: str = "") -> str:
    """Title, abstract and body joined by blank lines, leaving out a part the body already contains."""
    title, abstract, body = (title or "").strip(), (abstract or "").strip(), (body or "").strip()
    parts = []
    if title and title not in body[:4000]:
        parts.append(title)
    if abstract and abstract not in body:
        parts.append(abstract)
    if body:
        parts.append(body)
    return "\n\n".join(parts)


def _paper_body(paper: Paper) -> str:
    parts = [paper.latex]
    if paper.experimental_results:
        parts.append("## Experimental results\n\n" + json.dumps(paper.experimental_results, ensure_ascii=False))
    parts.append(paper.conclusion_latex)
    return "\n\n".join(p for p in parts if p and p.strip())


def judge_text(item: PaperSource) -> str:
    """The text every judge sees: a Paper's title, abstract, LaTeX body, results and conclusion (its raw text
    when none of those parsed); a dataset row's title, abstract and text; a string as it is; a path read."""
    if isinstance(item, str):
        return item
    if isinstance(item, Paper):
        text = compose_text(paper_title_line(item), item.abstract, _paper_body(item))
        return text if text.strip() else item.raw_text
    if isinstance(item, Mapping):
        return compose_text(str(item.get("title") or ""), str(item.get("abstract") or ""),
                            str(item.get("text") or ""))
    if isinstance(item, Path):
        return read_paper(item).text
    raise InputError(f"cannot judge a {type(item).__name__}; give text, a schema.Paper, a dataset row or a path")


def paper_title_line(paper: Paper) -> str:
    return f"# {paper.title}" if paper.title else ""


def read_paper(source: PaperSource) -> PaperText:
    """Read a paper from a Paper, a path (.tex, LaTeX folder, archive, .pdf, .md, .txt, paper.json), a dataset
    row or raw text."""
    if isinstance(source, Paper):
        return PaperText(text=judge_text(source), latex_source=source.full_latex, title=source.title,
                         paper_id=source.paper_id)
    if isinstance(source, Path):
        return _from_path(source)
    if isinstance(source, str):
        return PaperText(text=source, latex_source=source if "\\section" in source or "\\begin" in source else "")
    if isinstance(source, Mapping):
        return PaperText(text=judge_text(source), title=str(source.get("title") or ""),
                         paper_id=str(source.get("paper_id") or ""))
    raise InputError(f"cannot read a paper from a {type(source).__name__}; give a Path, a Paper or text")


def _from_path(path: Path) -> PaperText:
    if path.is_dir() and (path / "paper.json").exists():  # a folder written by `research`
        from . import limits

        try:
            data = limits.read_json_file(path / "paper.json", "paper.json")
            paper = Paper.from_dict(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise InputError(f"{path / 'paper.json'} is not a paper written by `research`: {exc}") from exc
        return read_paper(paper)
    from .formats.document import load_document

    doc = load_document(path)
    # the LaTeX files the loader read (inside the folder, comments included): what the injection check reads
    latex_source = doc.raw_latex
    text = doc.text
    if doc.title and doc.title not in text[:500]:
        text = f"# {doc.title}\n\n" + (f"## Abstract\n\n{doc.abstract}\n\n" if doc.abstract else "") + text
    return PaperText(text=text, latex_source=latex_source, title=doc.title, paper_id=path.stem,
                     problems=list(doc.problems), hidden=list(doc.hidden))
