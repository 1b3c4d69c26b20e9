"""DeepReviewer output -> ReviewSet: simulated reviewers are the reviews, the final box is the meta-review."""

from __future__ import annotations

from pathlib import Path

import pytest

from cycleresearcher.formats.deepreviewer import boxes, looks_like_deepreviewer, parse_deepreviewer_output
from cycleresearcher.formats.review import parse_review_set

FIXTURES = Path(__file__).parent / "fixtures" / "deepreviewer"


def test_standard_mode():
    text = (FIXTURES / "standard.txt").read_text()
    deep = parse_deepreviewer_output(text)
    rs = deep.review_set
    assert deep.mode == "standard" and deep.boxes == ["simreviewers", "verification", "review"]
    assert len(rs.reviews) == 3  # the final review is not a fourth reviewer
    assert [r.rating for r in rs.reviews] == [6, 3, 8]
    assert [r.confidence for r in rs.reviews] == [4, 3, 2]
    assert [(r.soundness, r.presentation, r.contribution) for r in rs.reviews] == [(3, 2, 3), (2, 3, 2), (3, 3, 3)]
    assert rs.mean_rating == pytest.approx(17 / 3)
    first = rs.reviews[0]
    assert first.summary.startswith("The paper proposes a sparse attention scheme")
    assert "linear-attention models" in first.weaknesses
    assert "Some Related Works" not in first.weaknesses and "#### comment" not in first.weaknesses
    assert "Compare against linear attention" in first.weaknesses  # suggestions kept with the weaknesses
    assert first.questions == "- How is the block size chosen?"
    assert rs.decision == "Reject"
    assert rs.meta_review.startswith("## Summary:\n\nThe paper introduces a block-sparse attention pattern")
    assert "## Rating:\n\n5.67" in rs.meta_review and "Decision" not in rs.meta_review
    assert deep.final_scores == {"soundness": 2.67, "presentation": 2.67, "contribution": 2.67, "rating": 5.67,
                                 "confidence": 3.0}
    assert deep.verification.startswith("**Review 1**") and "$\\{x_i\\}$" in deep.verification
    assert rs.problems == []
    assert rs.raw_text == text


def test_review_parser_delegates():
    text = (FIXTURES / "standard.txt").read_text()
    rs = parse_review_set(text)
    assert [r.rating for r in rs.reviews] == [6, 3, 8] and rs.decision == "Reject"
    assert parse_review_set(text.encode()).to_dict() == rs.to_dict()


def test_fast_mode_has_no_reviewers_and_says_so():
    deep = parse_deepreviewer_output((FIXTURES / "fast.txt").read_text())
    rs = deep.review_set
    assert deep.mode == "fast" and deep.boxes == ["review"]
    assert rs.reviews == [] and rs.mean_rating is None
    assert rs.decision == "Accept"
    assert deep.final_scores["rating"] == 6.0 and deep.final_scores["contribution"] == 2.5
    assert rs.problems == ["no simulated reviewers (\\boxed_simreviewers) in fast mode: no reviewer ratings; the "
                           "final review's scores stay with the meta-review"]


def test_cut_off_output_lists_problems():
    text = (FIXTURES / "truncated.txt").read_text()
    deep = parse_deepreviewer_output(text)
    rs = deep.review_set
    assert "\\boxed_simreviewers is not closed (output cut off?)" in rs.problems
    assert "missing final review (\\boxed_review)" in rs.problems
    assert "missing paper decision" in rs.problems
    # reviewer 1 whole, reviewer 2 cut off in its questions: kept, with what it lacks listed
    assert [r.rating for r in rs.reviews] == [6, None]
    assert "review 2: missing rating" in rs.problems


@pytest.mark.parametrize("text", ["", "\\boxed_review{", "\\boxed_review{\n}", "\\boxed_simreviewers{}\n}",
                                  "\\boxed_review{\n## Decision:\n\n\n}", "\\boxed_review{" + "{" * 5000,
                                  "\\boxed_simreviewers{\n## Reviewer 1\n### Rating\n\nten out of ten\n}\n"
                                  "\\boxed_review{\n## Rating: 9000\n## Decision: accept (oral)\n}"])
def test_tolerant_of_anything(text):
    rs = parse_deepreviewer_output(text).review_set  # never raises
    assert isinstance(rs.problems, list)
    assert rs.problems or rs.decision is not None


def test_box_bodies_may_hold_braces():
    found = boxes("x \\boxed_verification{\nset $\\{a\\}$ and {b}\n}\n\\boxed_review{\n## Decision:\nAccept\n}")
    assert found == [("verification", "set $\\{a\\}$ and {b}", True), ("review", "## Decision:\nAccept", True)]
    assert looks_like_deepreviewer("\\boxed_review{") and not looks_like_deepreviewer("## Rating\n6")


def test_scores_written_oddly_are_problems_not_guesses():
    rs = parse_deepreviewer_output("\\boxed_simreviewers{\n## Reviewer 1\n### Rating\n\n7.5\n}\n").review_set
    assert rs.reviews[0].rating is None
    assert any("7.5 is not a whole number" in p for p in rs.problems)
