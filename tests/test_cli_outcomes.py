"""No silent success on nothing: an empty review, a revision that lost stages and a cycle round without pairs
exit non-zero with one loud line (each can be allowed with a flag), and the set review falls back to
per-review mode when the model could not write the committee."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cycleresearcher.backends import registry
from cycleresearcher.backends.fake import FakeBackend
from cycleresearcher.cli import app
from cycleresearcher.paper_folder import save_paper_folder
from cycleresearcher.research import Researcher

FIXTURES = Path(__file__).parent / "fixtures"
PAPER_TEXT = (FIXTURES / "paper_one_completion.txt").read_text()
REVIEWS_TEXT = (FIXTURES / "review_form_a_messy.txt").read_text()
PAPER_TEX = r"""\title{Sparse Routing}
\begin{abstract}We route tokens sparsely to two experts.\end{abstract}
\section{Method} Each token picks two experts by a learned gate.
"""

runner = CliRunner()


@pytest.fixture
def scripted(monkeypatch):
    """`scripted:NAME` specs served by FakeBackends whose responders the test sets in the returned dict."""
    responders = {}

    def factory(rest):
        return FakeBackend(responder=responders[rest])

    monkeypatch.setitem(registry._REGISTERED, "scripted", factory)
    yield responders
    registry.release_backends("scripted")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_review_that_reads_no_review_exits_1_with_one_line_unless_allowed(tmp_path, scripted):
    scripted["prose"] = lambda request, i: "I think this paper is about routing. Not sure."
    paper = tmp_path / "p.tex"
    paper.write_text(PAPER_TEX)
    out = tmp_path / "rs.json"
    result = runner.invoke(app, ["review", str(paper), "--backend", "scripted:prose", "--reviewers", "2",
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    errors = [line for line in _lines(result.output) if line.startswith("error:")]
    assert len(errors) == 1 and "no usable review" in errors[0] and "Traceback" not in result.output
    data = json.loads(out.read_text())  # written all the same, for inspection
    assert data["mean_rating"] is None
    # it fell back to one reviewer at a time before giving up
    assert any("fell back to per-review mode" in p for p in data["problems"])

    allowed = runner.invoke(app, ["review", str(paper), "--backend", "scripted:prose", "--reviewers", "2",
                                  "--allow-empty"])
    assert allowed.exit_code == 0, allowed.output


def test_review_with_a_rating_exits_0(tmp_path, scripted):
    scripted["good"] = lambda request, i: REVIEWS_TEXT
    paper = tmp_path / "p.tex"
    paper.write_text(PAPER_TEX)
    result = runner.invoke(app, ["review", str(paper), "--backend", "scripted:good"])
    assert result.exit_code == 0, result.output
    assert "7.25" in result.output  # the mean of 6, 5, 8, 10


def _paper_dir(tmp_path: Path) -> Path:
    researcher = Researcher(FakeBackend().enqueue(PAPER_TEXT))
    paper = researcher.write("sparse routing", [])
    assert paper.motivation and paper.main_idea
    save_paper_folder(paper, tmp_path / "paper")
    (tmp_path / "reviews.json").write_text(json.dumps({"reviews": [{"summary": "ok", "weaknesses": "small",
                                                                    "rating": 5}], "decision": "Reject"}))
    return tmp_path / "paper"


def test_revise_that_loses_stages_exits_1_naming_them(tmp_path, scripted):
    # The revision keeps the LaTeX paper and the setup but drops Motivation and Main Idea (twice: the repair too).
    start = PAPER_TEXT.index("```latex")
    scripted["lossy"] = lambda request, i: PAPER_TEXT[start:]
    paper_dir = _paper_dir(tmp_path)
    result = runner.invoke(app, ["revise", str(paper_dir), "--reviews", str(tmp_path / "reviews.json"),
                                 "--backend", "scripted:lossy"])
    assert result.exit_code == 1, result.output
    errors = [line for line in _lines(result.output) if line.startswith("error:")]
    assert len(errors) == 1 and "lost Motivation, Main Idea" in errors[0]
    assert (paper_dir / "revised" / "paper.json").exists()
    allowed = runner.invoke(app, ["revise", str(paper_dir), "--reviews", str(tmp_path / "reviews.json"),
                                  "--backend", "scripted:lossy", "--out", str(tmp_path / "r2"),
                                  "--allow-incomplete"])
    assert allowed.exit_code == 0, allowed.output


def test_revise_that_keeps_every_stage_exits_0(tmp_path, scripted):
    scripted["whole"] = lambda request, i: PAPER_TEXT
    paper_dir = _paper_dir(tmp_path)
    result = runner.invoke(app, ["revise", str(paper_dir), "--reviews", str(tmp_path / "reviews.json"),
                                 "--backend", "scripted:whole"])
    assert result.exit_code == 0, result.output


def test_cycle_round_without_pairs_exits_1_after_the_report(tmp_path, scripted):
    scripted["policy"] = lambda request, i: PAPER_TEXT
    scripted["same"] = lambda request, i: REVIEWS_TEXT  # every paper gets the same reward: ties, no pairs
    topics = tmp_path / "topics.txt"
    topics.write_text("graph neural networks\nsparse attention\n")
    args = ["cycle", "--prompts", str(topics), "--policy", "scripted:policy", "--reviewer", "scripted:same",
            "--rounds", "1", "--samples", "2"]
    result = runner.invoke(app, args + ["--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    errors = [line for line in _lines(result.output) if line.startswith("error:")]
    assert len(errors) == 1 and "round(s) 0 made no preference pairs" in errors[0]
    assert (tmp_path / "run" / "report.md").exists()
    allowed = runner.invoke(app, args + ["--out", str(tmp_path / "run2"), "--allow-no-pairs"])
    assert allowed.exit_code == 0, allowed.output


def test_revise_reads_reviews_as_json_or_text_and_names_a_bad_file(tmp_path, scripted):
    from cycleresearcher.formats.review import render_review_set
    from cycleresearcher.schema import ReviewSet

    scripted["keep"] = lambda request, i: PAPER_TEXT
    paper_dir = _paper_dir(tmp_path)
    review_set = ReviewSet.from_dict(json.loads((tmp_path / "reviews.json").read_text()))
    as_text = tmp_path / "reviews.md"
    as_text.write_text(render_review_set(review_set))
    result = runner.invoke(app, ["revise", str(paper_dir), "--reviews", str(as_text), "--backend", "scripted:keep",
                                 "--out", str(tmp_path / "from-text")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-text" / "paper.json").exists()
    for name, content, says in (("bad.json", "{not json", "not valid JSON"), ("list.json", "[1, 2]", "a JSON list"),
                                ("notes.md", "nothing here", "no review found")):
        (tmp_path / name).write_text(content)
        bad = runner.invoke(app, ["revise", str(paper_dir), "--reviews", str(tmp_path / name),
                                  "--backend", "scripted:keep"])
        errors = [line for line in _lines(bad.output) if line.startswith("error:")]
        assert bad.exit_code != 0 and len(errors) == 1 and name in errors[0] and says in errors[0], bad.output
