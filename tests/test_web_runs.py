"""Run browsing in the web UI: the run list, a run page, a paper page, traversal attempts, escaping, a run
that is still going (a round without metrics.json, a JSONL line cut off mid-write)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from cycleresearcher.schema import (DISCLOSURE, SIMULATED_NOTE, Paper, PreferencePair, Review, ReviewSet,  # noqa: E402
                                    RoundMetrics, Verdict)
from cycleresearcher.web import WebConfig, create_app  # noqa: E402
from cycleresearcher.web.jobs import JobQueue  # noqa: E402

EVIL = "<script>alert('x')</script>"


def _paper(r: int, prompt: str, k: int, title: str) -> Paper:
    return Paper(title=title, abstract=f"Abstract of {title}.", topic="sparse routing",
                 latex=f"\\title{{{title}}}\\begin{{abstract}}Abstract.\\end{{abstract}}"
                       f"\\section{{Introduction}}Intro of sample {k}.\\section{{Method}}We route.",
                 experimental_setup=[{"name": "acc", "description": "accuracy on a toy set"}],
                 experimental_results=[{"name": "acc", "result": {"table": [["model", "acc"], ["ours", 0.91],
                                                                            ["base", 0.85]]},
                                        "description": "ours wins"}],
                 results_source="simulated", conclusion_latex="\\section{Conclusion}It works.",
                 paper_id=f"r{r:02d}-{prompt}-s{k}", prompt_id=prompt, sample_index=k,
                 raw_text=f"raw completion {k}")


def _verdict_row(paper: Paper, ratings: list[int], decision: str) -> dict:
    rs = ReviewSet(reviews=[Review(summary="ok", rating=x, soundness=3, presentation=3, contribution=2,
                                   confidence=3) for x in ratings], meta_review="meta", decision=decision,
                   paper_id=paper.paper_id)
    verdict = Verdict(paper_id=paper.paper_id, score=rs.mean_rating, decision=decision, source="local",
                      review_set=rs)
    return {"paper_id": paper.paper_id, "prompt_id": paper.prompt_id, "reward": rs.mean_rating,
            "reward_source": "local", "verdict": verdict.to_dict()}


def write_run(root: Path, name: str = "demo", going: bool = False, rounds: int = 1) -> Path:
    """A finished run of `rounds` rounds (two papers each, rewards rising by round); with `going`, one more
    round has started: its papers.jsonl ends in a line cut off mid-write and it has no metrics.json."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"policy": "local", "reviewer": "local",
                                                     "rounds": rounds + going, "samples": 2, "seed": 0}))
    for r in range(rounds):
        rdir = run / f"round-{r:02d}"
        rdir.mkdir()
        papers = [_paper(r, "p000", 0, "Low Paper" if r == 0 else f"Round {r} Low Paper"),
                  _paper(r, "p000", 1, ("High Paper " + EVIL) if r == 0 else f"Round {r} High Paper")]
        if r == 0:
            papers[1].latex += f"\\section{{Attack}}{EVIL} in the body."
        (rdir / "papers.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in papers))
        low, high = [3 + r, 5 + r], [8, 6 + r]
        rows = [_verdict_row(papers[0], low, "Reject"), _verdict_row(papers[1], high, "Accept")]
        (rdir / "reviews.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        rewards = [sum(low) / 2, sum(high) / 2]
        pair = PreferencePair(prompt_id="p000", prompt=[{"role": "user", "content": "write"}],
                              chosen="CHOSEN TEXT", rejected="REJECTED TEXT", chosen_score=rewards[1],
                              rejected_score=rewards[0], chosen_id=papers[1].paper_id,
                              rejected_id=papers[0].paper_id)
        (rdir / "pairs.jsonl").write_text(json.dumps(pair.to_dict()) + "\n")
        metrics = RoundMetrics(round=r, n_prompts=1, n_papers=2, n_reviewed=2, n_pairs=1,
                               mean_margin=rewards[1] - rewards[0], losses=[0.9 - 0.1 * r, 0.5 - 0.1 * r],
                               tokens={"research": 1200, "review": 800},
                               seconds={"research": 30.0, "review": 12.5},
                               train_metrics={"trainer": "fake"},
                               **RoundMetrics.reward_stats(rewards))
        (rdir / "metrics.json").write_text(json.dumps(metrics.to_dict()))
    # held-out evaluations (train/heldout.py): the initial policy and the one each round samples from
    for label, mean in [("initial", 4.2)] + [(f"r{r:02d}", 4.5 + 0.3 * r) for r in range(rounds)]:
        folder = run / "heldout" / label
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({
            "label": label, "policy": "local", "judge": "reward:models/reward", "training_reward": "local",
            "judge_is_training_reward": False, "n_papers": 4, "n_scored": 4,
            "judge_mean": {"n": 4, "value": mean, "ci_low": mean - 0.4, "ci_high": mean + 0.4},
            "compliance": 0.5, "mean_words": 321.0, "flagged": 0}))
    if going:
        rdir = run / f"round-{rounds:02d}"
        rdir.mkdir()
        extra = _paper(rounds, "p000", 0, "Round One Paper")
        (rdir / "papers.jsonl").write_text(json.dumps(extra.to_dict()) + "\n" + '{"paper_id": "r01-p0')
    return run


@pytest.fixture()
def client(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    queue = JobQueue()
    yield TestClient(create_app(WebConfig(runs=runs, backends=["fake"]), queue=queue)), runs
    queue.close()


def test_run_list(client):
    c, runs = client
    assert 'id="no-runs"' in c.get("/runs").text
    write_run(runs, "demo")
    write_run(runs, "other", going=True)
    (runs / "not-a-run").mkdir()  # no config.yaml, no rounds
    page = c.get("/runs").text
    assert 'href="/runs/demo"' in page and 'href="/runs/other"' in page and "not-a-run" not in page
    assert "5.50" in page  # the last finished round's mean reward
    assert "going" in page


def test_run_page_shows_rounds_papers_by_reward_pairs_best_and_spend(client):
    c, runs = client
    write_run(runs)
    page = c.get("/runs/demo").text
    assert 'id="rounds-table"' in page and 'id="charts"' in page and 'id="spend"' in page
    # papers sorted by reward: High (7.00) before Low (4.00)
    assert page.index("/runs/demo/papers/r00-p000-s1") < page.index("/runs/demo/papers/r00-p000-s0")
    assert "ratings 8, 6" in page and "Accept" in page
    assert "CHOSEN TEXT" in page and "REJECTED TEXT" in page
    assert 'id="best"' in page and 'id="simulated"' in page
    assert 'id="heldout"' in page and "held-out judge mean" in page and "4.20 [3.80, 4.60]" in page
    assert "compliance (training samples)" in page and "<td>100%</td>" in page  # every sample parsed
    assert "1200" in page and "42" in page  # tokens and seconds (30 + 12.5)
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert '<meta http-equiv="refresh"' not in page  # done, so no refresh


def test_paper_page_has_disclosure_simulated_label_tables_and_reviews(client):
    c, runs = client
    write_run(runs)
    page = c.get("/runs/demo/papers/r00-p000-s1").text
    assert DISCLOSURE in page and "SIMULATED RESULTS" in page and SIMULATED_NOTE in page
    # The labels come before the title, at the same size (both in the paper card's header).
    assert page.index('id="disclosure"') < page.index('class="paper-title"')
    assert "<th>model</th>" in page and "<td>0.91</td>" in page  # the results table
    assert "accuracy on a toy set" in page  # the setup table
    assert 'id="reviews-table"' in page and ">Accept<" in page and "7.00" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


def test_a_run_that_is_going_refreshes_and_tolerates_a_cut_line(client):
    c, runs = client
    write_run(runs, going=True)
    page = c.get("/runs/demo").text
    assert 'id="going"' in page and '<meta http-equiv="refresh"' in page
    assert "Round One Paper" in page  # the complete line of the round in progress
    old = time.time() - 3600
    for path in (runs / "demo").rglob("*"):
        os.utime(path, (old, old))
    os.utime(runs / "demo", (old, old))
    assert '<meta http-equiv="refresh"' not in c.get("/runs/demo").text  # stale: stopped, not going


def test_a_damaged_file_is_reported_not_fatal(client):
    c, runs = client
    run = write_run(runs)
    (run / "round-00" / "pairs.jsonl").write_text("not json\n{\"also\": \"fine\"}\n")
    (run / "round-00" / "metrics.json").write_text("{")
    page = c.get("/runs/demo")
    assert page.status_code == 200
    assert "pairs.jsonl" in page.text and "metrics.json" in page.text


@pytest.mark.parametrize("url", [
    "/runs/%2e%2e", "/runs/..%2F..%2Fetc", "/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/runs/.hidden",
    "/runs/demo/papers/..%2F..%2Fetc", "/runs/nope", "/runs/nope/reward.png", "/runs/..%2F/reward.png",
    "/runs/outside", "/runs/outside/reward.png", "/runs/demo/papers/missing",
])
def test_traversal_and_unknown_names_are_404(client, tmp_path, url):
    c, runs = client
    write_run(runs)
    secret = tmp_path / "secret-run"
    write_run(tmp_path, "secret-run")
    (runs / "outside").symlink_to(secret)
    (secret / "reward.png").write_bytes(b"\x89PNG secret")
    response = c.get(url)
    assert response.status_code == 404
    assert "High Paper" not in response.text and "secret" not in response.text.lower().replace("secret-run", "")


def test_reward_png_is_served_from_the_run(client):
    c, runs = client
    run = write_run(runs)
    assert c.get("/runs/demo/reward.png").status_code == 404
    (run / "reward.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    response = c.get("/runs/demo/reward.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert "reward.png" in c.get("/runs/demo").text


def test_old_layout_with_review_set_and_scalar_columns(client):
    """Runs written before the judge seam kept `review_set` or `scalar` beside the reward."""
    c, runs = client
    run = write_run(runs)
    papers = [json.loads(line) for line in (run / "round-00" / "papers.jsonl").read_text().splitlines()]
    rows = [{"paper_id": papers[0]["paper_id"], "reward": 5.1, "reward_source": "reward:models/r",
             "scalar": {"reward": 5.1, "accept_prob": 0.3}},
            {"paper_id": papers[1]["paper_id"], "reward": 6.0, "reward_source": "local",
             "review_set": ReviewSet(reviews=[Review(rating=6)], decision="Accept").to_dict()}]
    (run / "round-00" / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = c.get("/runs/demo").text
    assert "accept 30%" in page and "ratings 6" in page
    assert 'id="scalar"' in c.get(f"/runs/demo/papers/{papers[0]['paper_id']}").text


def test_line_chart_labels_and_escaping():
    from cycleresearcher.web.render import line_chart

    svg = str(line_chart("share <b>", [(-1, 0.25), (0, 0.5), (1, 0.75)], bounds=(0.0, 1.0)))
    assert svg.startswith("<svg") and "share &lt;b&gt;" in svg and "<b>" not in svg
    assert ">init<" in svg and ">0<" in svg and ">1<" in svg  # x ticks; y labels are the bounds
    assert svg.count("<circle") == 3
    assert str(line_chart("empty", [])) == ""
