"""What the console shows: generate's text exactly, no library warnings without --verbose, where each score came
from, and empty papers refused before any model runs."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cycleresearcher.backends import registry
from cycleresearcher.backends.fake import FakeBackend
from cycleresearcher.cli import app
from cycleresearcher.review import EMPTY_PAPER, Reviewer

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

LONG_TEXT = ("Graph neural networks pass messages along edges; " * 8).strip() + "  [bold]not markup[/bold]\n" \
            "second line with trailing spaces   \n\n  indented third line"


@pytest.fixture
def scripted(monkeypatch):
    """`scripted:NAME` specs served by FakeBackends built from the factories the test puts in the dict."""
    factories = {}
    monkeypatch.setitem(registry._REGISTERED, "scripted", lambda rest: factories[rest]())
    yield factories
    registry.release_backends("scripted")


def test_generate_prints_the_model_text_exactly(scripted):
    scripted["long"] = lambda: FakeBackend(responder=lambda request, i: LONG_TEXT)
    result = runner.invoke(app, ["generate", "--backend", "scripted:long", "-m", "1000", "hi"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert result.stdout == LONG_TEXT + "\n"  # not wrapped at 80 columns, no padding, no markup eaten
    two = runner.invoke(app, ["generate", "--backend", "scripted:long", "-m", "1000", "--n", "2", "hi"])
    assert two.stdout == f"--- sample 1 (stop) ---\n{LONG_TEXT}\n--- sample 2 (stop) ---\n{LONG_TEXT}\n"
    as_json = runner.invoke(app, ["generate", "--backend", "scripted:long", "-m", "1000", "--json", "hi"])
    assert json.loads(as_json.stdout)["completions"][0]["text"] == LONG_TEXT


NOISY = textwrap.dedent("""
    import logging, sys, warnings
    from cycleresearcher.backends import register_backend
    from cycleresearcher.backends.fake import FakeBackend

    def responder(request, i):
        warnings.warn("torch.foo is deprecated", FutureWarning)
        warnings.warn("No artists with labels found to put in legend.", UserWarning)
        logging.getLogger("transformers.generation").warning("Setting pad_token_id to eos_token_id")
        return "the answer"

    register_backend("noisy", lambda rest: FakeBackend(responder=responder))
    from cycleresearcher.cli import app
    app(sys.argv[1:])
""")


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_stay_off_the_console_unless_verbose(verbose):
    argv = (["--verbose"] if verbose else []) + ["generate", "--backend", "noisy", "hi"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-c", NOISY, *argv], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the answer\n"
    noise = ("FutureWarning", "No artists with labels", "pad_token_id")
    if verbose:
        assert all(n in proc.stderr for n in noise), proc.stderr
    else:
        assert not any(n in proc.stderr for n in noise), proc.stderr
        assert "tokens/s" in proc.stderr  # our own usage line still shows


def _choosing_backend():
    def responder(request, i):
        if request.messages[0]["content"].startswith("You are an expert reviewer"):
            return ("## Summary\nFine.\n## Soundness\n3\n## Presentation\n3\n## Contribution\n2\n## Rating\n6\n"
                    "## Confidence\n3\n") if i == 0 else "A fine paper about routing."
        return "The reviews agree it is fine."  # a meta-review without a decision

    favourite = {"8": 0.0, "4": 0.0, "Reject": 0.0}
    return FakeBackend(responder=responder,
                       choice_scores=lambda messages, choices: [favourite.get(c, -5.0) for c in choices])


def test_review_says_which_scores_were_chosen_by_likelihood(tmp_path, scripted):
    scripted["choosing"] = _choosing_backend
    paper = tmp_path / "p.md"
    paper.write_text("# Sparse Routing\n\n## Abstract\n\nWe route tokens.\n\n## Method\n\nTwo experts.\n")
    result = runner.invoke(app, ["review", str(paper), "--backend", "scripted:choosing", "--reviewers", "2",
                                 "--mode", "per-review"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    mean_line = next(line for line in result.stdout.splitlines() if line.startswith("mean rating"))
    assert "7.00" in mean_line and "(ratings: 1 written, 1 chosen by likelihood)" in mean_line
    assert "decision: Reject (chosen by likelihood)" in mean_line
    assert "8*" in result.stdout and "* chosen by likelihood" in result.stdout  # the table marks the chosen cell


def _refusing_backend():
    def responder(request, i):
        raise AssertionError("an empty paper must not reach the model")
    return FakeBackend(responder=responder)


@pytest.mark.parametrize("name,content", [("empty.tex", ""), ("blank.md", "  \n\n\t\n"), ("blank.txt", "\n"),
                                          ("folder", {"title": "", "raw_text": ""})])
def test_empty_paper_is_refused_before_the_model_runs(tmp_path, scripted, name, content):
    scripted["refusing"] = _refusing_backend
    path = tmp_path / name
    if isinstance(content, dict):  # a folder written by `research` whose paper is empty
        path.mkdir()
        (path / "paper.json").write_text(json.dumps(content))
    else:
        path.write_text(content)
    result = runner.invoke(app, ["review", str(path), "--backend", "scripted:refusing"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output
    assert "no text" in lines[0] or "no readable text" in lines[0] or "empty" in lines[0]


def test_library_does_not_send_an_empty_paper_to_the_model():
    backend = FakeBackend(responder=lambda request, i: "## Rating\n1")
    empty, full = Reviewer(backend, n_reviewers=1).review_many(["   \n", "A paper about routing."])
    assert empty.reviews == [] and empty.mean_rating is None and empty.problems == [EMPTY_PAPER]
    assert full.ratings == [1] and all("routing" in r.messages[1]["content"] for r in backend.history)
