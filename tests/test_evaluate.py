"""Reviewer metrics against hand-computed values, the bootstrap, the report and the `eval` CLI."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from cycleresearcher import evaluate as E

# Three papers with several ratings and one with a single rating (which proxy metrics must skip).
RATINGS = [[6, 8, 4], [3, 5], [7, 7, 7, 3], [5]]
PRED = [5.0, 6.0, 6.0, 9.0]


def test_proxy_errors_hand_computed():
    # Paper 1, ratings 6 8 4: leave-one-out means m = (8+4)/2=6, (6+4)/2=5, (6+8)/2=7.
    #   model 5:  5-6=-1, 5-5=0, 5-7=-2  -> sq (1+0+4)/3 = 5/3, abs (1+0+2)/3 = 1
    #   human:    6-6=0,  8-5=3, 4-7=-3  -> sq (0+9+9)/3 = 6,   abs (0+3+3)/3 = 2
    # Paper 2, ratings 3 5: m = 5, 3.
    #   model 6:  1, 3                   -> sq (1+9)/2 = 5,     abs (1+3)/2 = 2
    #   human:    3-5=-2, 5-3=2          -> sq 4,               abs 2
    # Paper 3, ratings 7 7 7 3: m = 17/3 (three times), 7.
    #   model 6:  1/3 (x3), -1           -> sq (3/9+1)/4 = 1/3, abs (1+1)/4 = 1/2
    #   human:    4/3 (x3), 3-7=-4       -> sq (3*16/9+16)/4 = 16/3, abs (4+4)/4 = 2
    # Paper 4 has one rating: no proxy target, NaN.
    sq, ab = E.proxy_errors(PRED, RATINGS)
    np.testing.assert_allclose(sq[:3], [5 / 3, 5, 1 / 3])
    np.testing.assert_allclose(ab[:3], [1, 2, 0.5])
    assert math.isnan(sq[3]) and math.isnan(ab[3])
    hsq, hab = E.proxy_errors(None, RATINGS)
    np.testing.assert_allclose(hsq[:3], [6, 4, 16 / 3])
    np.testing.assert_allclose(hab[:3], [2, 2, 2])


def test_proxy_mse_mae_and_single_human_hand_computed():
    # model: MSE = (5/3 + 5 + 1/3)/3 = 7/3, MAE = (1 + 2 + 1/2)/3 = 7/6
    assert E.proxy_mse(PRED, RATINGS) == pytest.approx(7 / 3)
    assert E.proxy_mae(PRED, RATINGS) == pytest.approx(7 / 6)
    # single human: MSE = (6 + 4 + 16/3)/3 = 46/9, MAE = (2 + 2 + 2)/3 = 2
    assert E.human_proxy_mse(RATINGS) == pytest.approx(46 / 9)
    assert E.human_proxy_mae(RATINGS) == pytest.approx(2)
    # the human's squared error is (k/(k-1))^2 times the population variance: paper 1 var 8/3 * 9/4 = 6
    assert E.proxy_errors(None, [[6, 8, 4]])[0][0] == pytest.approx(8 / 3 * 9 / 4)


def test_proxy_random_mode_draws_one_reviewer_and_is_seeded():
    a = E.proxy_mae(PRED, RATINGS, mode="random", seed=3)
    assert a == E.proxy_mae(PRED, RATINGS, mode="random", seed=3)
    # Each paper's random draw gives one of its leave-one-out errors: paper 1's are |5-6|,|5-5|,|5-7|.
    _, ab = E.proxy_errors(PRED, [[6, 8, 4]], mode="random", seed=1)
    assert ab[0] in (1.0, 0.0, 2.0)
    with pytest.raises(ValueError):
        E.proxy_mse(PRED, RATINGS, mode="bogus")


Y = [True, True, False, False, False, True]
D = [True, False, False, False, False, True]


def test_decision_metrics_hand_computed():
    # matches: T=T, F!=T, F=F, F=F, F=F, T=T -> 5/6
    assert E.decision_accuracy(D, Y) == pytest.approx(5 / 6)
    # Accept: TP 2, FP 0, FN 1 -> F1 = 4/5.  Reject: TP 3, FP 1, FN 0 -> F1 = 6/7.  Macro = (4/5 + 6/7)/2 = 29/35
    assert E.macro_f1(D, Y) == pytest.approx(29 / 35)
    # recall Accept 2/3, recall Reject 3/3 -> 5/6
    assert E.balanced_accuracy(D, Y) == pytest.approx(5 / 6)
    # all-Reject predictor: Accept F1 0 (present in truth), Reject F1 = 2*3/(6+3) = 2/3 -> macro 1/3
    assert E.macro_f1([False] * 6, Y) == pytest.approx(1 / 3)


def test_roc_auc_hand_computed_with_ties():
    # positives 7, 5, 8; negatives 5, 3, 6. Wins: 7 beats all 3; 5 ties 5 (1/2), beats 3, loses to 6 -> 1.5;
    # 8 beats all 3. AUC = 7.5 / 9 = 5/6
    assert E.roc_auc([7, 5, 5, 3, 6, 8], Y) == pytest.approx(5 / 6)
    assert E.roc_auc([5] * 6, Y) == pytest.approx(0.5)  # a constant ranks nothing
    assert math.isnan(E.roc_auc([1, 2], [True, True]))


def test_spearman_bias_hand_computed():
    # ranks equal to values; d = 0,1,1,0 -> rho = 1 - 6*2/(4*15) = 0.8
    assert E.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): cov 4.5, var 4.5 and 5 -> 4.5/sqrt(22.5)
    assert E.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert math.isnan(E.spearman([5, 5, 5], [1, 2, 3]))  # a constant has no ranking
    # (6-5 + 5-5 + 7-5)/3 = 1
    assert E.mean_bias([6, 5, 7], [5, 5, 5]) == pytest.approx(1.0)


def test_expected_calibration_error_hand_computed():
    # bins of width 0.1: 0.05->0, 0.15->1, 0.12->1, 0.95->9, 1.0->9 (last bin), 0.55->5
    # |sum(y - p)| per bin: bin0 |0-0.05| = 0.05; bin1 |(1-0.15)+(0-0.12)| = 0.73; bin9 |(1-0.95)+(1-1)| = 0.05;
    # bin5 |0-0.55| = 0.55. ECE = (0.05 + 0.73 + 0.05 + 0.55)/6 = 1.38/6 = 0.23
    p = [0.05, 0.15, 0.12, 0.95, 1.0, 0.55]
    y = [False, True, False, True, True, False]
    assert E.expected_calibration_error(p, y) == pytest.approx(0.23)
    assert E.expected_calibration_error([0.3, 0.3], [True, False]) == pytest.approx(0.2)  # |1 - 0.6|/2
    with pytest.raises(ValueError):
        E.expected_calibration_error([1.2], [True])


def test_fit_threshold():
    # midpoint candidates 2, 4, 5.5, 7, 9: only 5.5 separates perfectly
    assert E.fit_threshold([3, 5, 6, 8], [False, False, True, True]) == 5.5


def test_weighted_metrics_equal_explicit_resamples():
    from scipy.stats import spearmanr
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    n = 40
    s = rng.integers(1, 8, n).astype(float)
    t = rng.integers(1, 6, n).astype(float)
    y = rng.random(n) < 0.4
    d = rng.random(n) < 0.5
    w = E.bootstrap_weights(n, 15, seed=1)
    auc, rho, f1 = E.roc_auc(s, y, w), E.spearman(s, t, w), E.macro_f1(d, y, w)
    for b in range(15):
        idx = np.repeat(np.arange(n), w[b].astype(int))
        assert auc[b] == pytest.approx(roc_auc_score(y[idx], s[idx]))
        assert rho[b] == pytest.approx(spearmanr(s[idx], t[idx]).statistic)
        assert f1[b] == pytest.approx(f1_score(y[idx], d[idx], average="macro"))


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(0)
    v = rng.normal(5, 1, 200)
    fn = lambda w: E.weighted_mean(v, w)  # noqa: E731
    a = E.bootstrap_ci(fn, len(v), n_resamples=500, seed=7)
    b = E.bootstrap_ci(fn, len(v), n_resamples=500, seed=7)
    c = E.bootstrap_ci(fn, len(v), n_resamples=500, seed=8)
    assert a == b
    assert a != c
    assert a.ci_low < a.value < a.ci_high
    assert a.value == pytest.approx(v.mean())
    assert 0.1 < a.ci_high - a.ci_low < 0.4  # about 2 * 1.96 / sqrt(200) = 0.28
    w = E.bootstrap_weights(10, 3, seed=0)
    assert w.shape == (3, 10) and (w.sum(1) == 10).all()


def _rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        quality = rng.normal(5.5, 1.2)
        ratings = [int(np.clip(round(quality + rng.normal(0, 1.2)), 1, 10)) for _ in range(3)]
        words = " ".join(["word"] * int(100 + 40 * quality))
        rows.append({"paper_id": f"p{seed}-{i}", "title": f"T{i}", "abstract": words, "text": "",
                     "ratings": ratings, "decision": "Accept" if np.mean(ratings) > 5.8 else "Reject"})
    return rows


def test_evaluate_reviewer_report(tmp_path):
    train, test = _rows(60, 1), _rows(50, 2)
    test.append({"paper_id": "single", "title": "x", "abstract": "y", "text": "", "ratings": [5],
                 "decision": "Reject"})
    # An oracle that knows the human mean, and one failed prediction.
    preds = [{"paper_id": r["paper_id"], "mean_rating": float(np.mean(r["ratings"])),
              "accept_prob": 0.9 if r["decision"] == "Accept" else 0.1} for r in test]
    preds[0]["mean_rating"] = None
    report = E.evaluate_reviewer(preds, test, train, n_resamples=200, seed=0, out_dir=tmp_path)
    assert report["n_papers"] == 49
    assert report["excluded"]["fewer_than_2_ratings"] == 1 and report["excluded"]["failed_prediction"] == 1
    assert list(report["systems"]) == ["model", "constant", "single_human", "length"]
    model, const, human = (report["systems"][k] for k in ("model", "constant", "single_human"))
    for m in E.METRICS:
        assert m in model
    # the oracle's decisions are perfect, its rating is the very mean the decisions were made from
    assert model["accuracy"]["value"] == 1.0 and model["roc_auc"]["value"] == 1.0
    assert model["proxy_mae"]["value"] < human["proxy_mae"]["value"]
    assert const["spearman"]["value"] is None  # a constant has no ranking
    assert const["roc_auc"]["value"] == 0.5
    assert human["ece"] is None  # no probabilities from a single human
    e = model["proxy_mae"]
    assert e["ci_low"] <= e["value"] <= e["ci_high"]
    assert report["comparisons"]["model_vs_single_human"]["proxy_mae_reduction"]["value"] > 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["systems"]["model"]["proxy_mse"] == model["proxy_mse"]
    assert (tmp_path / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # same inputs, same seed: the same report
    again = E.evaluate_reviewer(preds, test, train, n_resamples=200, seed=0)
    assert again["systems"] == report["systems"]


def test_evaluate_reviewer_rejects_unusable_input():
    with pytest.raises(ValueError, match="only 0 papers"):
        E.evaluate_reviewer([], _rows(5, 1), _rows(20, 2))


def test_evaluate_papers_per_round(tmp_path, monkeypatch):
    from cycleresearcher.schema import Paper

    for k, lengths in enumerate([[10, 20, 30], [40, 50]]):
        d = tmp_path / f"round-{k:02d}"
        d.mkdir()
        lines = [json.dumps(Paper(title=f"p{n}", latex="x " * n).to_dict()) for n in lengths]
        (d / "papers.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "config.yaml").write_text("reward: reward:/models/r\n")
    import cycleresearcher.judges as J
    from cycleresearcher.paper_text import judge_text

    class WordCount(J.Judge):  # a judge that rates a paper by its word count
        def _score(self, papers, texts):
            return [J.Verdict(score=float(len(judge_text(p).split()))) for p in papers]

    monkeypatch.setattr(J, "get_judge", lambda spec, **kw: WordCount())
    report = E.evaluate_papers(tmp_path, "local", n_resamples=100)
    assert report["judge_is_training_reward"] is False
    r0, r1 = report["rounds"]
    # round 0 texts: "# title" + "x"*n -> n + 2 words: 12, 22, 32
    assert r0["mean"]["value"] == pytest.approx(22) and r0["max"]["value"] == 32
    assert r1["n_papers"] == 2 and r1["mean"]["value"] == pytest.approx(47)
    assert E.evaluate_papers(tmp_path, "reward:/models/r", n_resamples=10)["judge_is_training_reward"] is True


@pytest.fixture(scope="module")
def review_dataset(tmp_path_factory):
    """A small Review dataset (DatasetDict on disk) built from the ICLR shared data: 2017 train, 2018 test."""
    from conftest import SHARED_DATA

    path = SHARED_DATA / "reviews_real" / "reviews.jsonl"
    if not path.exists():
        pytest.skip("shared data not found")
    from datasets import Dataset, DatasetDict

    rows = {2017: [], 2018: []}
    for line in path.open(encoding="utf-8"):
        r = json.loads(line)
        ratings = [int(v["rating"]) for v in r["reviews"]]
        rows[r["year"]].append({
            "paper_id": r["paper_id"], "title": r["title"], "abstract": r["abstract"], "text": "",
            "venue": r["venue"], "year": r["year"], "decision": r["decision"], "ratings": ratings,
            "mean_rating": float(np.mean(ratings)), "n_reviews": len(ratings)})
    # The file is ordered with accepted papers first: shuffle (seeded) before taking a small sample.
    for year in rows:
        random.Random(year).shuffle(rows[year])
    out = tmp_path_factory.mktemp("review-ds") / "review"
    DatasetDict({"train": Dataset.from_list(rows[2017][:200]),
                 "test": Dataset.from_list(rows[2018][:120])}).save_to_disk(str(out))
    return out


def test_cli_eval_reviewer_constant_prints_every_metric(review_dataset, tmp_path):
    from typer.testing import CliRunner

    from cycleresearcher.cli import app

    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "reviewer", "--reviewer", "length", "--data", str(review_dataset),
                                      "--out", str(out), "--resamples", "200"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for m in E.METRICS:
        assert m in result.output
    for name in ("constant", "single_human", "length"):
        assert name in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["n_papers"] == 120 and report["split"] == "test"
    # the single-human row is the leave-one-out error of the real 2018 ratings, computed from the rows
    from datasets import load_from_disk

    ratings = [r["ratings"] for r in load_from_disk(str(review_dataset))["test"]]
    human = report["systems"]["single_human"]
    assert human["proxy_mae"]["value"] == pytest.approx(E.human_proxy_mae(ratings), abs=1e-6)
    assert human["proxy_mse"]["value"] == pytest.approx(E.human_proxy_mse(ratings), abs=1e-6)
    assert report["systems"]["length"]["proxy_mae"]["value"] != report["systems"]["constant"]["proxy_mae"]["value"]
    assert (out / "calibration.png").exists() and (out / "predictions.jsonl").exists()


def test_cli_eval_reviewer_bad_split_is_a_clean_error(review_dataset):
    from typer.testing import CliRunner

    from cycleresearcher.cli import app

    result = CliRunner().invoke(app, ["eval", "reviewer", "--reviewer", "constant", "--data", str(review_dataset),
                                      "--split", "validation"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "no split 'validation'" in " ".join(result.output.split())
