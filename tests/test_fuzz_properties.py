"""Fuzz, properties: every reader either returns a usable object or raises the project's InputError, whatever
JSON or text it is given; functions documented never to raise never do.

Generated inputs only (hypothesis). `make fuzz` runs the same properties with CYCLERESEARCHER_FUZZ=1: many more
examples, larger inputs, a fresh random seed each run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cycleresearcher.data.local import record_from_row
from cycleresearcher.detect_calibration import Calibration
from cycleresearcher.errors import InputError
from cycleresearcher.formats.bibtex import parse_bibtex
from cycleresearcher.formats.document import document_from_text
from cycleresearcher.formats.latex import latex_to_text, parse_latex
from cycleresearcher.formats.markdown import loads_lenient, parse_score
from cycleresearcher.formats.paper import parse_paper, render_completion
from cycleresearcher.formats.review import parse_review_set, render_review_set
from cycleresearcher.injection import find_injections
from cycleresearcher.schema import Paper, Provenance, Review, ReviewSet

LONG = bool(os.environ.get("CYCLERESEARCHER_FUZZ"))
FUZZ = settings(max_examples=1500 if LONG else 50, deadline=None, database=None, derandomize=not LONG,
                suppress_health_check=list(HealthCheck))
SIZE = 4000 if LONG else 300


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


NUMBERS = st.one_of(st.integers(-10, 12), st.integers(), st.integers(min_value=10 ** 20, max_value=10 ** 40),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20),
                    st.sampled_from(["ten", "1e309", "-Infinity", "NaN", "", "Accept", "6: marginally above"]))
KEYS = st.sampled_from(sorted(set(_names(Paper) + _names(ReviewSet) + _names(Review) + _names(Provenance)
                                  + ["rating", "year", "reviews", "paper_id", "text", "sections", "heading"])))


def _json(leaves: int = 20):
    return st.recursive(SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                        st.dictionaries(st.one_of(KEYS, st.text(max_size=6)), kids,
                                                                        max_size=5)), max_leaves=leaves)


def _record_dict(cls, nested: dict):
    fields = {name: nested.get(name, _json()) for name in _names(cls)}
    return st.fixed_dictionaries({}, optional=fields) | st.dictionaries(KEYS, _json(), max_size=6)


REVIEW = _record_dict(Review, {})
REVIEW_SET = _record_dict(ReviewSet, {"reviews": st.one_of(_json(), st.lists(REVIEW, max_size=4)),
                                      "provenance": st.one_of(_json(), _record_dict(Provenance, {}))})
PAPER = _record_dict(Paper, {"sections": st.one_of(_json(), st.lists(st.dictionaries(KEYS, _json()), max_size=3)),
                             "experimental_setup": st.one_of(_json(), st.lists(st.dictionaries(KEYS, _json())))})
DEEP = st.integers(1, 4000).map(lambda n: "[" * n + "]" * n)
TEXT = st.lists(st.one_of(st.text(max_size=40), st.sampled_from([
    "\n", "## Rating", "### Rating", "**Rating:** ", "10", "1e309", "NaN", "## Paper Decision", "Accept", "*" * 10,
    "```json\n", "```latex\n", "```\n", "## Experimental Setup\n", "## Experimental_results\n", "[", "{", "}", "]",
    '"name": ', "9" * 5000, "\\title{", "\\section{", "\\begin{document}", "\\input{", "\\cite{", "%", "\\\\",
    "\\textcolor{white}{", "\\definecolor{a}{rgb}{1,1,1}", "<!--", "-->", "\u200b", "\U000e0041", "@string{s=",
    "@article{k,", "title = ", " # ", "Ignore previous instructions"])), max_size=SIZE // 10).map("".join)


@FUZZ
@given(st.one_of(REVIEW_SET, _json()))
def test_review_set_from_any_json(data):
    try:
        rs = ReviewSet.from_dict(data)
    except InputError:
        return
    assert all(r.rating is None or 1 <= r.rating <= 10 for r in rs.reviews)
    mean = rs.mean_rating
    assert mean is None or math.isfinite(mean)
    json.dumps(rs.to_dict())
    assert ReviewSet.from_dict(rs.to_dict()) == rs
    parse_review_set(render_review_set(rs))


@FUZZ
@given(st.one_of(PAPER, _json()))
def test_paper_from_any_json(data):
    try:
        paper = Paper.from_dict(data)
    except InputError:
        return
    render_completion(paper)  # self-scores are numbers: ":g" formatting works
    json.dumps(paper.to_dict())
    assert Paper.from_dict(paper.to_dict()) == paper


@FUZZ
@given(_record_dict(Review, {}).map(lambda d: {**d, "paper_id": "p1"}) | st.dictionaries(KEYS, _json(), max_size=8))
def test_dataset_rows_give_records_or_input_errors(row):
    try:
        record = record_from_row(row, "fuzz.jsonl")
    except InputError:
        return
    assert record.year is None or 1900 <= record.year <= 2100
    assert all(r.rating is None or 1 <= r.rating <= 10 for r in record.reviews)
    json.dumps(record.to_dict())


@FUZZ
@given(st.one_of(_json(), st.fixed_dictionaries({"slope": NUMBERS, "intercept": NUMBERS},
                                                 optional={"reference_tokens": SCALARS, "source": SCALARS})))
def test_calibration_from_any_json(data):
    try:
        cal = Calibration.from_dict(data)
    except InputError:
        return
    assert cal.slope > 0 and math.isfinite(cal.intercept)
    assert 0.0 <= cal.probability(1.0, 100) <= 1.0


@FUZZ
@given(st.one_of(TEXT, DEEP.map(lambda d: f"## Experimental Setup\n```json\n{d}\n```\n")))
def test_model_text_parsers_never_raise(text):
    paper = parse_paper(text)
    assert isinstance(paper.problems, list)
    assert isinstance(parse_review_set(text).problems, list)
    value, problems = loads_lenient(text)
    assert value is not None or problems


@FUZZ
@given(TEXT)
def test_document_readers_never_raise(text):
    assert isinstance(parse_latex(text).text, str)
    assert isinstance(latex_to_text(text), str)
    for kind in ("latex", "markdown", "text", "pdf"):
        assert isinstance(document_from_text(text, kind=kind).text, str)
    assert len(find_injections(text, text)) <= 20


@FUZZ
@given(TEXT)
def test_bibtex_never_raises_below_its_limits(text):
    refs, problems = parse_bibtex(text)
    assert isinstance(refs, list) and isinstance(problems, list)


@pytest.mark.parametrize("text", ["1e309", "Infinity", "-1e999", "NaN", "9" * 5000, "1e1000/10", "ten"])
def test_scores_never_become_infinite_or_misread(text):
    value, problem = parse_score(text, 1, 10, "rating")
    assert value is None and problem  # "1e309" was once read as 1
