"""The demo's pieces that decide whether it can show learning: the warm-start answer fits the sampling budget and
parses as compliant, and the independent judge is not fitted on the papers the policy is taught to copy."""

from __future__ import annotations

from cycleresearcher.data.research import heuristic_extract
from cycleresearcher.demo import demo_judge_rows
from cycleresearcher.formats.paper import parse_paper
from cycleresearcher.research import is_compliant
from cycleresearcher.train.cycle_config import CycleConfig
from cycleresearcher.train.warmstart import best_records, idea_completion


def test_warm_start_answers_parse_as_compliant_and_fit_the_demo_budget(shared_data):
    preset = CycleConfig.preset("demo")
    records = best_records(str(shared_data / "reviews_real" / "reviews.jsonl"), 12)
    for record in records:
        answer = idea_completion(heuristic_extract(record))
        paper = parse_paper(answer)
        assert is_compliant(paper, "idea"), paper.problems
        assert paper.title and paper.abstract
        # the LaTeX block comes first, so a sample cut at the token budget still holds the title and abstract
        assert answer.startswith("```latex")
        # ~1.4 SmolLM2 tokens a word for this text: the whole answer fits the sampling budget
        assert len(answer.split()) * 1.4 < preset.research.max_new_tokens


def test_demo_judge_is_not_fitted_on_the_warm_start_papers(shared_data):
    source = str(shared_data / "reviews_real" / "reviews.jsonl")
    warm = {" ".join(r.title.split()).lower() for r in best_records(source, 32)}
    all_rows = demo_judge_rows(shared_data, set())
    rows = demo_judge_rows(shared_data, warm)
    assert len(all_rows) - len(rows) >= 32
    assert not warm & {r["title"].lower() for r in rows}
    assert {r["group"] for r in rows} == {"ICLR-2017", "ICLR-2018"}
    assert all(r["ratings"] and r["decision"] for r in rows)
