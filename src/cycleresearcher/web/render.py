"""Turning records into what templates show: papers, markdown, small SVG charts. Everything from a paper or a
review is untrusted text: markdown is rendered with raw HTML off, and everything else goes through Jinja's
autoescape.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Optional

from markupsafe import Markup, escape

from ..formats.latex import parse_latex
from ..schema import DISCLOSURE, RESULTS_MEASURED, RESULTS_SIMULATED, SIMULATED_NOTE


@functools.lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    # "js-default": CommonMark with raw HTML disabled (a <script> in a review shows as text) and unsafe link
    # schemes (javascript:, data:) refused.
    return MarkdownIt("js-default").disable(["image"])


def markdown(text: Any) -> Markup:
    """Markdown to HTML, with any HTML in the source escaped."""
    if not text:
        return Markup("")
    return Markup(_markdown().render(str(text)))


def paper_view(paper: dict) -> dict[str, Any]:
    """A papers.jsonl row (a Paper record) as the paper template shows it. Tolerates missing or odd fields."""
    get = paper.get
    body = parse_latex(str(get("latex") or "")) if get("latex") else None
    conclusion = parse_latex(str(get("conclusion_latex") or "")) if get("conclusion_latex") else None
    results_source = str(get("results_source") or "none")
    setup = [e for e in (get("experimental_setup") or []) if isinstance(e, dict)]
    results = [_result_view(e) for e in (get("experimental_results") or []) if isinstance(e, dict)]
    title = str(get("title") or (body.title if body else "") or "(untitled)")
    return {
        "title": title,
        "paper_id": str(get("paper_id", "")),
        "topic": str(get("topic", "")),
        "disclosure": str(get("disclosure") or DISCLOSURE),
        "simulated": results_source == RESULTS_SIMULATED or (bool(results) and results_source != RESULTS_MEASURED),
        "simulated_note": SIMULATED_NOTE,
        "results_source": results_source,
        "abstract": str(get("abstract") or (body.abstract if body else "")),
        "prose": [(label, str(get(key))) for key, label in (("motivation", "Motivation"), ("main_idea", "Main idea"))
                  if get(key)],
        "self_scores": [(label, get(key)) for key, label in (("interestingness", "Interestingness"),
                                                             ("feasibility", "Feasibility"), ("novelty", "Novelty"))
                        if isinstance(get(key), (int, float))],
        "sections": [(s.heading, s.text) for s in (body.sections if body else [])],
        "conclusion": [(s.heading, s.text) for s in (conclusion.sections if conclusion else [])],
        "setup": [(str(e.get("name", "")), str(e.get("description", ""))) for e in setup],
        "results": results,
        "latex": "\n\n".join(str(x) for x in (get("latex"), get("conclusion_latex")) if x),
        "raw_text": str(get("raw_text") or ""),
        "problems": [str(p) for p in (get("problems") or [])],
        "provenance": get("provenance") if isinstance(get("provenance"), dict) else {},
    }


def _result_view(entry: dict) -> dict[str, Any]:
    result = entry.get("result")
    table: Optional[list[list[str]]] = None
    image = ""
    if isinstance(result, dict) and isinstance(result.get("table"), list):
        rows = [r for r in result["table"] if isinstance(r, list)]
        table = [[_cell(c) for c in row] for row in rows] or None
    elif isinstance(result, dict) and result.get("image"):
        image = str(result["image"])
    return {"name": str(entry.get("name", "")), "description": str(entry.get("description", "")), "table": table,
            "image": image, "raw": "" if table or image else json.dumps(result, ensure_ascii=False, indent=1)}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value, ensure_ascii=False)


def line_chart(label: str, points: list[tuple[int, float]], bounds: Optional[tuple[float, float]] = None,
               width: int = 300, height: int = 150) -> Markup:
    """A small SVG line chart of one metric per round (x: round, -1 for "init"; y: value), labelled with its y
    range: `bounds` when given (a share: 0 to 1), else the data's."""
    if not points:
        return Markup("")
    pad_l, pad_r, pad_t, pad_b = 40, 10, 22, 24
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = bounds if bounds else (min(ys), max(ys))
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * (width - pad_l - pad_r)

    def sy(y: float) -> float:
        return height - pad_b - (y - y0) / (y1 - y0) * (height - pad_t - pad_b)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    dots = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"><title>{"initial" if x < 0 else f"round {x}"}: '
                   f'{y:.3g}</title></circle>'
                   for x, y in points)
    ticks = "".join(f'<text x="{sx(x):.1f}" y="{height - 8}" text-anchor="middle">{"init" if x < 0 else x}</text>'
                    for x in sorted(set(xs)))
    svg = (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(label)} per round">'
           f'<text x="{pad_l}" y="14" class="chart-title">{escape(label)}</text>'
           f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" class="axis"/>'
           f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" class="axis"/>'
           f'<text x="{pad_l - 4}" y="{sy(y1) + 4:.1f}" text-anchor="end">{y1:.3g}</text>'
           f'<text x="{pad_l - 4}" y="{sy(y0) + 4:.1f}" text-anchor="end">{y0:.3g}</text>'
           f'{ticks}<polyline points="{path}" class="line"/>{dots}</svg>')
    return Markup(svg)


def score_class(rating: Any) -> str:
    """A CSS class for a 1-10 rating (colour only; the number is always shown)."""
    if not isinstance(rating, (int, float)):
        return "score-none"
    return "score-high" if rating >= 6 else "score-mid" if rating >= 5 else "score-low"
