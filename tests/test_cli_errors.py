"""Bad input on the command line: one clear error line, a non-zero exit, never a traceback."""

import json

import pytest
from typer.testing import CliRunner

from cycleresearcher.cli import app

runner = CliRunner()

BINARY = bytes(range(256)) * 64


@pytest.fixture
def files(tmp_path):
    f = {}
    f["empty_tex"] = tmp_path / "empty.tex"
    f["empty_tex"].write_text("")
    f["binary_pdf"] = tmp_path / "garbage.pdf"
    f["binary_pdf"].write_bytes(BINARY)
    f["binary_txt"] = tmp_path / "garbage.txt"
    f["binary_txt"].write_bytes(BINARY)
    f["bad_json"] = tmp_path / "bad.json"
    f["bad_json"].write_text("{not json")
    f["list_json"] = tmp_path / "list.json"
    f["list_json"].write_text("[1, 2, 3]")
    f["bad_jsonl"] = tmp_path / "bad.jsonl"
    f["bad_jsonl"].write_text('{"topic": "a"}\n{broken\n{"topic": "c"}\n')
    f["empty_txt"] = tmp_path / "empty.txt"
    f["empty_txt"].write_text("")
    f["bad_yaml"] = tmp_path / "bad.yaml"
    f["bad_yaml"].write_text("rounds: [1, 2\n")
    paper_dir = tmp_path / "paper"
    paper_dir.mkdir()
    (paper_dir / "paper.json").write_text("{broken")
    f["broken_paper_dir"] = paper_dir
    good_dir = tmp_path / "good"
    good_dir.mkdir()
    (good_dir / "paper.json").write_text(json.dumps({"title": "T", "raw_text": "x"}))
    f["good_paper_dir"] = good_dir
    f["empty_dir"] = tmp_path / "emptydir"
    f["empty_dir"].mkdir()
    f["missing"] = tmp_path / "does-not-exist.tex"
    f["topics"] = tmp_path / "topics.txt"
    f["topics"].write_text("graph neural networks\n")
    return f


CASES = [
    # review
    ("review-missing", lambda f: ["review", str(f["missing"]), "--backend", "fake"]),
    ("review-empty", lambda f: ["review", str(f["empty_tex"]), "--backend", "fake"]),
    ("review-binary-pdf", lambda f: ["review", str(f["binary_pdf"]), "--backend", "fake"]),
    ("review-broken-paper-json", lambda f: ["review", str(f["broken_paper_dir"]), "--backend", "fake"]),
    ("review-bad-spec", lambda f: ["review", str(f["good_paper_dir"]), "--backend", "nosuch:thing"]),
    ("review-empty-dir", lambda f: ["review", str(f["empty_dir"]), "--backend", "fake"]),
    # detect
    ("detect-missing", lambda f: ["detect", "score", str(f["missing"])]),
    ("detect-empty", lambda f: ["detect", "score", str(f["empty_txt"])]),
    ("detect-binary", lambda f: ["detect", "score", str(f["binary_pdf"])]),
    ("detect-bad-calibration", lambda f: ["detect", "score", str(f["topics"]), "--calibration", str(f["bad_json"])]),
    ("detect-bad-spec", lambda f: ["detect", "score", str(f["topics"]), "--scoring-model", "nosuch:x"]),
    # reward score
    ("reward-missing-model", lambda f: ["reward", "score", str(f["missing"]), str(f["topics"])]),
    ("reward-empty-model-dir", lambda f: ["reward", "score", str(f["empty_dir"]), str(f["topics"])]),
    ("reward-model-is-a-file", lambda f: ["reward", "score", str(f["bad_json"]), str(f["topics"])]),
    ("reward-missing-paper", lambda f: ["reward", "score", str(f["empty_dir"]), str(f["missing"])]),
    ("reward-binary-paper", lambda f: ["reward", "score", str(f["empty_dir"]), str(f["binary_pdf"])]),
    # dataset review
    ("dataset-missing", lambda f: ["dataset", "review", "--source", str(f["missing"]), "--out", str(f["empty_dir"] / "o")]),
    ("dataset-empty", lambda f: ["dataset", "review", "--source", str(f["empty_txt"]), "--out", str(f["empty_dir"] / "o")]),
    ("dataset-binary", lambda f: ["dataset", "review", "--source", str(f["binary_txt"]), "--out", str(f["empty_dir"] / "o")]),
    ("dataset-malformed-jsonl", lambda f: ["dataset", "review", "--source", str(f["bad_jsonl"]), "--out", str(f["empty_dir"] / "o")]),
    ("dataset-bad-spec", lambda f: ["dataset", "review", "--source", "nosuch:abc", "--out", str(f["empty_dir"] / "o")]),
    # revise
    ("revise-missing-dir", lambda f: ["revise", str(f["missing"]), "--reviews", str(f["bad_json"]), "--backend", "fake"]),
    ("revise-broken-paper", lambda f: ["revise", str(f["broken_paper_dir"]), "--reviews", str(f["bad_json"]), "--backend", "fake"]),
    ("revise-malformed-reviews", lambda f: ["revise", str(f["good_paper_dir"]), "--reviews", str(f["bad_json"]), "--backend", "fake"]),
    ("revise-wrong-shape-reviews", lambda f: ["revise", str(f["good_paper_dir"]), "--reviews", str(f["list_json"]), "--backend", "fake"]),
    ("revise-binary-reviews", lambda f: ["revise", str(f["good_paper_dir"]), "--reviews", str(f["binary_pdf"]), "--backend", "fake"]),
    # cycle
    ("cycle-missing-prompts", lambda f: ["cycle", "--prompts", str(f["missing"]), "--out", str(f["empty_dir"] / "r1"), "--policy", "fake", "--reviewer", "fake"]),
    ("cycle-empty-prompts", lambda f: ["cycle", "--prompts", str(f["empty_txt"]), "--out", str(f["empty_dir"] / "r2"), "--policy", "fake", "--reviewer", "fake"]),
    ("cycle-binary-prompts", lambda f: ["cycle", "--prompts", str(f["binary_txt"]), "--out", str(f["empty_dir"] / "r3"), "--policy", "fake", "--reviewer", "fake"]),
    ("cycle-malformed-jsonl", lambda f: ["cycle", "--prompts", str(f["bad_jsonl"]), "--out", str(f["empty_dir"] / "r4"), "--policy", "fake", "--reviewer", "fake"]),
    ("cycle-bad-policy-spec", lambda f: ["cycle", "--prompts", str(f["topics"]), "--out", str(f["empty_dir"] / "r5"), "--policy", "nosuch:x", "--reviewer", "fake"]),
    ("cycle-unknown-preset", lambda f: ["cycle", "--preset", "huge", "--prompts", str(f["topics"]), "--out", str(f["empty_dir"] / "r6")]),
    ("cycle-bad-config-yaml", lambda f: ["cycle", "--config", str(f["bad_yaml"]), "--prompts", str(f["topics"]), "--out", str(f["empty_dir"] / "r7")]),
    ("cycle-resume-nothing", lambda f: ["cycle", "--resume", "--out", str(f["empty_dir"] / "r8")]),
]


@pytest.mark.parametrize("name,argv", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(name, argv, files):
    result = runner.invoke(app, argv(files))
    output = result.output
    assert result.exit_code != 0, f"{name}: exit 0\n{output}"
    # typer.Exit / SystemExit means the CLI handled it; any other exception would be a traceback
    assert result.exc_info is None or result.exc_info[0] is SystemExit, f"{name}: uncaught {result.exc_info}"
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith(("error:", "internal error:"))]
    assert len(errors) == 1, f"{name}: expected one error line, got:\n{output}"
    assert not errors[0].startswith("internal error"), f"{name}: {errors[0]}"
