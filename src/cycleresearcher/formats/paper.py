"""The CycleResearcher paper text <-> Paper, both ways (DESIGN.md, "Research conversation").

Message 3 (assistant): `## Motivation`, `## Main Idea`, `## Interestingness`, `## Feasibility`, `## Novelty`, a
fenced `latex` block, `## Experimental Setup` with a fenced `json` list. Message 4 (user): `## Experimental_results`
with a fenced `json` list. Message 5 (assistant): a fenced `latex` block with experiments and conclusion. At
inference the released model writes all of it in one completion; `parse_paper` reads either.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from ..schema import RESULTS_NONE, RESULTS_SIMULATED, Message, Paper, Section
from .markdown import Block, as_text, fenced_blocks, loads_lenient, parse_score, read_header

FIELD_ALIASES = {
    "motivation": "motivation", "researchmotivation": "motivation",
    "mainidea": "main_idea", "idea": "main_idea", "coreidea": "main_idea", "keyidea": "main_idea",
    "interestingness": "interestingness", "feasibility": "feasibility", "novelty": "novelty",
    "paper": "paper", "latex": "paper", "fullpaper": "paper",
    "experimentalsetup": "setup", "experimentsetup": "setup", "experimentssetup": "setup", "setup": "setup",
    "experimentalresults": "results", "experimentresults": "results", "results": "results",
    "conclusion": "conclusion",
}
SELF_SCORES = ("interestingness", "feasibility", "novelty")
_KNOWN = set(FIELD_ALIASES)
_LATEX_HINT = re.compile(r"\\(title|section|begin\{abstract\}|documentclass|subsection)\b")


def _braced(text: str, command: str) -> Optional[str]:
    """Argument of the first `\\command{...}`, with nested braces."""
    m = re.search(rf"\\{command}\*?\s*(?:\[[^\]]*\])?\s*{{", text)
    if not m:
        return None
    depth, i = 1, m.end()
    while i < len(text) and depth:
        if text[i] == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end(): i - 1].strip() if depth == 0 else text[m.end():].strip()


def latex_outline(latex: str) -> tuple[str, str, list[Section]]:
    """(title, abstract, sections) of a LaTeX fragment, read with light regexes (the paper is model text)."""
    title = _braced(latex, "title") or ""
    m = re.search(r"\\begin\{abstract\}(.*?)(\\end\{abstract\}|$)", latex, re.S)
    abstract = m.group(1).strip() if m else ""
    sections = []
    heads = list(re.finditer(r"\\section\*?\s*\{([^{}]*)\}", latex))
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(latex)
        body = latex[h.end(): end]
        body = re.sub(r"\\end\{document\}.*", "", body, flags=re.S).strip()
        sections.append(Section(heading=h.group(1).strip(), text=body))
    return title, abstract, sections


def _json_list(text: str, name: str, problems: list[str]) -> list[dict[str, Any]]:
    value, issues = loads_lenient(text)
    problems.extend(f"{name}: {p}" for p in issues)
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("experiments", [value]) if isinstance(value.get("experiments"), list) else [value]
    if not isinstance(value, list):
        problems.append(f"{name}: expected a JSON list")
        return []
    items = [v for v in value if isinstance(v, dict)]
    if len(items) != len(value):
        problems.append(f"{name}: dropped {len(value) - len(items)} entries that are not objects")
    return items


def parse_paper(text: str | bytes) -> Paper:
    """Parse a paper as the policy writes it (one completion, or the message-3 text alone)."""
    text = as_text(text)
    paper = Paper(raw_text=text)
    problems = paper.problems
    lines = text.split("\n")
    blocks = fenced_blocks(lines)
    in_block = {i for b in blocks for i in range(b.start, b.end)}

    # Sections by header; fenced blocks are attached to the section they sit in.
    marks: list[tuple[int, str, str]] = []  # (line, field, same-line rest)
    for i, line in enumerate(lines):
        if i in in_block:
            continue
        header = read_header(line, _KNOWN)
        if header is not None and header.markup in ("markdown", "bold") or (
                header is not None and header.key in ("motivation", "mainidea", "interestingness",
                                                       "feasibility", "novelty")):
            marks.append((i, FIELD_ALIASES[header.key], header.rest))
    spans: dict[str, tuple[int, int, str]] = {}
    for n, (start, name, rest) in enumerate(marks):
        end = marks[n + 1][0] if n + 1 < len(marks) else len(lines)
        spans.setdefault(name, (start, end, rest))

    def prose(name: str) -> str:
        if name not in spans:
            return ""
        start, end, rest = spans[name]
        body = [lines[i] for i in range(start + 1, end) if i not in in_block]
        return "\n".join([rest] + body if rest else body).strip()

    def blocks_in(name: str) -> list[Block]:
        if name not in spans:
            return []
        start, end, _ = spans[name]
        return [b for b in blocks if start < b.start < end]

    paper.motivation = prose("motivation")
    paper.main_idea = prose("main_idea")
    for name in SELF_SCORES:
        if name in spans:
            value, problem = parse_score(prose(name), 1, 10, name)
            setattr(paper, name, None if value is None else float(value))
            if problem:
                problems.append(problem)

    latex_blocks = [b for b in blocks if b.lang in ("latex", "tex") or (b.lang == "" and _LATEX_HINT.search(b.body))]
    results_line = spans["results"][0] if "results" in spans else None
    setup_line = spans["setup"][0] if "setup" in spans else None
    before = [b for b in latex_blocks if results_line is None or b.start < results_line]
    after = [b for b in latex_blocks if results_line is not None and b.start > results_line]
    if before:
        paper.latex = before[0].body.strip()
        if not before[0].closed:
            problems.append("latex block is not closed (output cut off?)")
    else:
        paper.latex = _unfenced_latex(lines, in_block, setup_line)
        if not paper.latex:
            problems.append("missing LaTeX paper")
    if after:
        paper.conclusion_latex = after[-1].body.strip()
    elif len(before) > 1:
        paper.conclusion_latex = before[-1].body.strip()

    setup_blocks = [b for b in blocks_in("setup") if b.lang in ("json", "")] or blocks_in("setup")
    if setup_blocks:
        paper.experimental_setup = _json_list(setup_blocks[0].body, "experimental setup", problems)
    elif "setup" in spans:
        paper.experimental_setup = _json_list(prose("setup"), "experimental setup", problems)
    else:
        problems.append("missing experimental setup")
    result_blocks = [b for b in blocks_in("results") if b.lang in ("json", "")] or blocks_in("results")
    if result_blocks:
        paper.experimental_results = _json_list(result_blocks[0].body, "experimental results", problems)
    elif "results" in spans:
        paper.experimental_results = _json_list(prose("results"), "experimental results", problems)
    paper.results_source = RESULTS_SIMULATED if paper.experimental_results else RESULTS_NONE
    _check_result_names(paper, problems)

    paper.title, paper.abstract, sections = latex_outline(paper.full_latex)
    paper.sections = sections
    for name, label in (("motivation", "motivation"), ("main_idea", "main idea")):
        if not getattr(paper, name):
            problems.append(f"missing {label}")
    if not paper.title:
        problems.append("missing \\title")
    return paper


def _unfenced_latex(lines: list[str], in_block: set[int], setup_line: Optional[int]) -> str:
    """LaTeX written without a fence: from the first \\title or \\section line up to the setup header."""
    start = next((i for i, line in enumerate(lines) if i not in in_block and _LATEX_HINT.search(line)), None)
    if start is None:
        return ""
    end = setup_line if setup_line is not None and setup_line > start else len(lines)
    return "\n".join(lines[start:end]).strip()


def _check_result_names(paper: Paper, problems: list[str]) -> None:
    if not paper.experimental_setup or not paper.experimental_results:
        return
    setup = [str(e.get("name", "")) for e in paper.experimental_setup]
    results = [str(e.get("name", "")) for e in paper.experimental_results]
    if sorted(setup) != sorted(results):
        problems.append(f"experiment names differ between setup {setup} and results {results}")


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```"


def render_paper(paper: Paper) -> str:
    """Assistant message 3: the idea, the LaTeX paper and the experimental setup."""
    parts = []
    for title, value in (("Motivation", paper.motivation), ("Main Idea", paper.main_idea)):
        if value:
            parts.append(f"## {title}\n\n{value}")
    for name in SELF_SCORES:
        value = getattr(paper, name)
        if value is not None:
            parts.append(f"## {name.capitalize()}\n\n{value:g}")
    if paper.latex:
        parts.append(f"```latex\n{paper.latex}\n```")
    parts.append(f"## Experimental Setup\n\n{_json_block(paper.experimental_setup)}")
    return "\n\n".join(parts)


def render_results(paper: Paper) -> str:
    """User message 4: the experimental results (simulated unless an experiment runner produced them)."""
    return f"## Experimental_results\n\n{_json_block(paper.experimental_results)}"


def render_conclusion(paper: Paper) -> str:
    """Assistant message 5: the experiments and conclusion LaTeX."""
    return f"```latex\n{paper.conclusion_latex}\n```" if paper.conclusion_latex else ""


def render_completion(paper: Paper) -> str:
    """Everything the policy writes in one completion at inference (messages 3-5 joined)."""
    parts = [render_paper(paper)]
    if paper.experimental_results or paper.conclusion_latex:
        parts.append(render_results(paper))
    if paper.conclusion_latex:
        parts.append(render_conclusion(paper))
    return "\n\n".join(parts) + "\n"


def research_conversation(paper: Paper, system_prompt: str, user_prompt: str) -> list[Message]:
    """The five-message training sample of the research stage."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": user_prompt},
        {"role": "assistant", "content": render_paper(paper)},
        {"role": "user", "content": render_results(paper)},
        {"role": "assistant", "content": render_conclusion(paper)},
    ]


def paper_from_conversation(messages: list[Message]) -> Paper:
    """Inverse of research_conversation: a Paper from the assistant and results turns."""
    turns = [m["content"] for m in messages if m.get("role") != "system"][1:]
    return parse_paper("\n\n".join(turns))
