"""The output folder of a written paper: paper.md, paper.tex (+ references.bib), setup.json, results.json,
metadata.json and paper.json, each with the machine-generated disclosure and the results notice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .formats.paper import render_completion
from .io import write_text_atomic
from .schema import RESULTS_MEASURED, Paper

def save_paper_folder(paper: Paper, out_dir: Path, extra_metadata: Optional[dict] = None) -> dict[str, Path]:
    """Write paper.md, paper.tex (+ references.bib), setup.json, results.json, metadata.json, paper.json."""
    from .latex_template import render_latex_document
    from .formats.bibtex import render_bibtex
    from .schema import DISCLOSURE

    out_dir = Path(out_dir)
    paper.disclosure = paper.disclosure or DISCLOSURE
    notice = results_notice(paper)
    files = {
        "paper.md": f"> **{paper.disclosure}**\n>\n> **{notice}**\n\n{render_completion(paper)}",
        "paper.tex": render_latex_document(paper, bibliography="references" if paper.references else None),
        "setup.json": json.dumps(paper.experimental_setup, indent=2, ensure_ascii=False),
        "results.json": json.dumps({"source": paper.results_source, "notice": notice,
                                    "results": paper.experimental_results}, indent=2, ensure_ascii=False),
        "paper.json": json.dumps(paper.to_dict(), indent=2, ensure_ascii=False),
        "metadata.json": json.dumps({
            "title": paper.title, "topic": paper.topic, "disclosure": paper.disclosure,
            "results_source": paper.results_source, "results_notice": notice,
            "backend": paper.provenance.model, "seed": paper.provenance.seed,
            "prompt_tokens": paper.provenance.prompt_tokens,
            "completion_tokens": paper.provenance.completion_tokens, "seconds": paper.provenance.seconds,
            "created": paper.provenance.created, "problems": paper.problems,
            "references": [r.key for r in paper.references], **(extra_metadata or {})}, indent=2),
    }
    if paper.references:
        files["references.bib"] = render_bibtex(paper.references)
    written = {}
    for name, text in files.items():
        write_text_atomic(out_dir / name, text)
        written[name] = out_dir / name
    return written


def results_notice(paper: Paper) -> str:
    from .schema import RESULTS_NONE, SIMULATED_NOTE

    if paper.results_source == RESULTS_MEASURED:
        return "The experimental results in this paper were measured by the user's experiment runner."
    if paper.results_source == RESULTS_NONE and not paper.experimental_results:
        return "This paper reports no experimental results."
    return SIMULATED_NOTE
