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


def test_the_shipped_judge_matches_the_preset_and_installs_without_training(shared_data, monkeypatch):
    from cycleresearcher.demo import ensure_demo_judge
    from cycleresearcher.reward import RewardModel

    def no_training(*args, **kwargs):
        raise AssertionError("the demo retrained its judge although the package ships it")

    monkeypatch.setattr(RewardModel, "train", no_training)
    preset = CycleConfig.preset("demo")
    judge = ensure_demo_judge(shared_data, str(shared_data / "reviews_real" / "reviews.jsonl"),
                              preset.warm_start_examples)
    model = RewardModel.load(judge)
    assert set(model.meta["groups"]) == {"ICLR-2017", "ICLR-2018"}  # another venue than the training reward
    # it ranks a real abstract above the same words shuffled
    real = demo_judge_rows(shared_data, set())[0]
    words = real["abstract"].split()
    salad = " ".join(words[::-1])
    scores = model.score([f"# {real['title']}\n\n{real['abstract']}", f"# {real['title']}\n\n{salad}"])
    assert scores[0]["reward"] > scores[1]["reward"]
