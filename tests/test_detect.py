"""Fast-DetectGPT: the analytic criterion against hand numbers and sampling; batching, windows, calibration."""

from __future__ import annotations

import json
import math
import os

import pytest

torch = pytest.importorskip("torch")

from cycleresearcher.errors import InputError  # noqa: E402
from cycleresearcher.detect import (  # noqa: E402
    DEFAULT_CALIBRATION,
    Calibration,
    CriterionParts,
    Detector,
    analytic_criterion,
    criterion_terms,
    monte_carlo_criterion,
    verdict,
    window_spans,
)

TEXTS = [
    "We propose a new method for graph neural networks.",
    "The results show that our approach improves accuracy by 3 points over the baseline on CIFAR-10.",
    "Strengths: clear writing.",
    "## Summary\nThe paper studies reinforcement learning and evaluates it on standard benchmarks.",
]


# ---------------------------------------------------------------------------------------------------- the math

def test_hand_computed_three_token_vocab():
    # One text, two scored positions, vocab {a, b, c}; p = q (white-box). Logits are log-probabilities.
    probs = torch.tensor([[[0.5, 0.25, 0.25], [0.8, 0.1, 0.1]]])
    logits = probs.log()
    labels = torch.tensor([[0, 1]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    ln2, ln4, ln08, ln01 = math.log(2), math.log(4), math.log(0.8), math.log(0.1)
    # Position 1: log q = (-ln2, -ln4, -ln4); mu = -(0.5 ln2 + 0.5 ln4) = -1.5 ln2
    mu1 = -1.5 * ln2
    var1 = 0.5 * ln2 ** 2 + 0.5 * ln4 ** 2 - mu1 ** 2          # = 0.25 (ln2)^2
    mu2 = 0.8 * ln08 + 0.2 * ln01
    var2 = 0.8 * ln08 ** 2 + 0.2 * ln01 ** 2 - mu2 ** 2
    ll = -ln2 + ln01
    expected = (ll - (mu1 + mu2)) / math.sqrt(var1 + var2)
    assert var1 == pytest.approx(0.25 * ln2 ** 2)
    got = analytic_criterion(logits, logits, labels, mask)
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(-1.4615, abs=1e-3)  # the picked "b" at position 2 is unlikely: negative D


def test_hand_computed_scoring_differs_from_sampling():
    # q uniform over 3 tokens: log q is constant, so mu = -ln3 and var = 0 at that position; position 2 carries
    # all the variance. p is peaked at position 2.
    log_q = torch.log(torch.tensor([[[1 / 3, 1 / 3, 1 / 3], [0.5, 0.25, 0.25]]]))
    log_p = torch.log(torch.tensor([[[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]]]).clamp_min(1e-30))
    labels = torch.tensor([[2, 0]])
    ll, mu, var = criterion_terms(log_q, log_p, labels, torch.ones(1, 2))
    ln2, ln3, ln4 = math.log(2), math.log(3), math.log(4)
    assert float(ll[0]) == pytest.approx(-ln3 - ln2, rel=1e-5)
    assert float(mu[0]) == pytest.approx(-ln3 - ln4, rel=1e-5)   # p puts all its mass on the two -ln4 tokens
    assert float(var[0]) == pytest.approx(0.0, abs=1e-6)         # ... so log q is constant under p
    # Masked positions count for nothing.
    ll_m, mu_m, var_m = criterion_terms(log_q, log_p, labels, torch.tensor([[1, 0]]))
    assert float(ll_m[0]) == pytest.approx(-ln3, rel=1e-5) and float(mu_m[0]) == pytest.approx(-ln3, rel=1e-5)


def test_analytic_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    b, t, v = 2, 12, 7
    logits_q = torch.randn(b, t, v, generator=gen) * 2
    logits_p = logits_q + torch.randn(b, t, v, generator=gen) * 0.5   # a nearby sampling model
    labels = torch.randint(0, v, (b, t), generator=gen)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 9:] = False                                                 # a shorter second text
    analytic = analytic_criterion(logits_q, logits_p, labels, mask)
    sampled = monte_carlo_criterion(logits_q, logits_p, labels, mask, n_samples=40_000, generator=gen)
    assert analytic.shape == sampled.shape == (b,)
    # Sampling error of the mean is ~ sd / sqrt(n), i.e. ~0.005 in units of D.
    assert torch.allclose(analytic, sampled, atol=0.03), (analytic, sampled)
    # And the criterion separates: the argmax text of q scores far above a random one.
    greedy = logits_q.argmax(-1)
    assert (analytic_criterion(logits_q, logits_q, greedy, mask) > analytic_criterion(logits_q, logits_q, labels,
                                                                                      mask) + 2).all()


def test_criterion_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        analytic_criterion(torch.zeros(1, 3, 5), torch.zeros(1, 3, 6), torch.zeros(1, 3, dtype=torch.long),
                           torch.ones(1, 3))


def test_window_spans_score_every_token_once():
    for n, window, stride in [(10, 4, 3), (10, 4, 1), (5, 8, 7), (2, 2, 1), (1000, 100, 60)]:
        spans = window_spans(n, window, stride)
        scored = [j for start, end, first in spans for j in range(first, end)]
        assert scored == list(range(1, n)), (n, window, stride)
        assert all(end - start <= window and first > start for start, end, first in spans)
    assert window_spans(10, 4, 3) == [(0, 4, 1), (3, 7, 4), (6, 10, 7)]
    with pytest.raises(ValueError, match="stride"):
        window_spans(10, 4, 4)   # would leave each window's first token unscored


# ---------------------------------------------------------------------------------------------------- the model

@pytest.fixture(scope="module")
def detector(tiny_model_dir):
    return Detector(str(tiny_model_dir), max_tokens=512, batch_size=3)


def test_batched_equals_one_by_one(detector):
    batched = detector.score_parts(TEXTS)   # padded to the longest, 3 per batch
    singles = [detector.score_parts([text])[0] for text in TEXTS]
    lengths = {p.n_tokens for p in singles}
    assert len(lengths) > 1, "texts must differ in length for padding to matter"
    for b, s, text in zip(batched, singles, TEXTS):
        assert b.n_tokens == s.n_tokens == len(detector.tokenize([text])[0]) - 1
        assert b.criterion == pytest.approx(s.criterion, abs=1e-4)
        assert b.log_likelihood == pytest.approx(s.log_likelihood, rel=1e-5)
    assert all(math.isfinite(x) for x in detector.score(TEXTS))


def test_detector_matches_the_pure_function(detector, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    ids = torch.tensor([detector.tokenize([TEXTS[1]])[0]])
    with torch.no_grad():
        logits = model(ids).logits[:, :-1]
    expected = analytic_criterion(logits, logits, ids[:, 1:], torch.ones_like(ids[:, 1:]))
    assert detector.score([TEXTS[1]])[0] == pytest.approx(float(expected[0]), abs=1e-4)


def test_windowing(tiny_model_dir, detector):
    text = " ".join(TEXTS)
    n = len(detector.tokenize([text])[0])
    # A window that covers the text gives the unwindowed value, whatever the stride.
    covering = Detector(str(tiny_model_dir), max_tokens=n, stride=3)
    assert covering.score([text])[0] == pytest.approx(detector.score([text])[0], abs=1e-5)
    # Small windows: every token still scored once; the value is finite and close (less context only).
    small = Detector(str(tiny_model_dir), max_tokens=16, stride=8).score_parts([text])[0]
    assert small.n_tokens == n - 1 and math.isfinite(small.criterion)


def test_text_longer_than_the_context(tiny_model_dir, detector):
    long_text = " ".join(TEXTS * 60)
    ids = detector.tokenize([long_text])[0]
    huge = Detector(str(tiny_model_dir), max_tokens=100_000)
    assert len(ids) > huge.window == 2048   # capped at the tiny model's max_position_embeddings
    parts = huge.score_parts([long_text])[0]
    assert parts.n_tokens == len(ids) - 1 and math.isfinite(parts.criterion)


def test_too_short_text_is_an_error(detector):
    with pytest.raises(ValueError, match="at least 2"):
        detector.score(["", "We propose a method."])


def test_different_tokenizers_rejected(tiny_model_dir, tmp_path):
    from tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "other", vocab_size=300)
    with pytest.raises(ValueError, match="different tokenizers"):
        Detector(str(tiny_model_dir), sampling_spec=str(other)).score(TEXTS[:1])


def test_distinct_sampling_model_with_same_tokenizer(tiny_model_dir, tmp_path, detector):
    from tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "same-vocab", seed=1)   # same tokenizer, other weights
    two = Detector(str(tiny_model_dir), sampling_spec=str(other))
    white = detector.score(TEXTS[:2])
    black = two.score(TEXTS[:2])
    assert all(math.isfinite(x) for x in black) and black != pytest.approx(white)


# ---------------------------------------------------------------------------------------------------- calibration

def test_calibration_fit_is_monotone_and_round_trips(tmp_path):
    human = [-0.5, 0.1, 0.4, 0.9, 1.2, 0.0]
    machine = [1.0, 2.1, 2.5, 3.0, 3.8, 2.7]
    cal = Calibration.fit(human, machine)
    assert cal.slope > 0 and 0.9 < cal.threshold < 1.3
    grid = [x / 4 for x in range(-8, 24)]
    probs = [cal.probability(x) for x in grid]
    assert probs == sorted(probs) and probs[0] < 0.05 and probs[-1] > 0.95
    assert cal.probability(cal.threshold) == pytest.approx(0.5)
    assert verdict(cal.probability(3.0)) == "machine" and verdict(cal.probability(-0.5)) == "human"
    path = cal.save(tmp_path / "cal" / "cal.json")
    assert json.loads(path.read_text())["slope"] == pytest.approx(cal.slope)
    assert Calibration.load(path) == cal


def test_calibration_rescales_long_texts():
    cal = Calibration(slope=2.0, intercept=-4.0, reference_tokens=100)
    assert cal.adjusted(6.0, 400) == pytest.approx(3.0)       # sqrt(100/400) = 1/2
    assert cal.adjusted(6.0, 50) == 6.0                       # short texts are not amplified
    assert cal.probability(6.0, 400) == pytest.approx(1 / (1 + math.exp(-2.0)))
    fitted = Calibration.fit([0.0, 0.5, 1.0], [2.0, 4.0, 8.0], [100, 100, 100], [100, 400, 1600])
    assert fitted.reference_tokens == 100 and fitted.slope > 0


def test_calibration_bad_input(tmp_path):
    with pytest.raises(ValueError, match="invert"):
        Calibration.fit([2.0, 3.0, 4.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        Calibration.fit([1.0], [2.0, 3.0])
    bad = tmp_path / "bad.json"
    bad.write_text('{"slope": 1.0}')
    with pytest.raises(ValueError, match="slope and intercept"):
        Calibration.load(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Calibration.load(bad)
    # a NaN or negative slope, or a wrong type, is refused when read, naming the file
    for text, why in (('{"slope": NaN, "intercept": 0}', "finite"), ('{"slope": -1, "intercept": 0}', "positive"),
                      ('{"slope": "2", "intercept": 0}', "finite"),
                      ('{"slope": 1, "intercept": 0, "reference_tokens": 0}', "positive whole"),
                      ('[1, 2]', "JSON object"), ('{"slope": 1, "intercept": 0, "extra": 1}', "unknown keys")):
        bad.write_text(text)
        with pytest.raises(InputError, match=f"bad.json.*{why}"):
            Calibration.load(bad)


def test_calibration_records_its_models_and_warns_on_others():
    assert DEFAULT_CALIBRATION.model == "local" and DEFAULT_CALIBRATION.mismatch("local") == ""
    assert "fitted on 'local'" in DEFAULT_CALIBRATION.mismatch("hf:/models/llama")
    assert "does not record" in Calibration(1.0, 0.0).mismatch("local")
    assert verdict(math.nan) == "undetermined"


def test_parts_add_like_windows():
    a, b = CriterionParts(-10.0, -12.0, 4.0, 5), CriterionParts(-6.0, -7.0, 5.0, 3)
    total = a + b
    assert total == CriterionParts(-16.0, -19.0, 9.0, 8)
    assert total.criterion == pytest.approx(1.0)
    assert math.isnan(CriterionParts(0.0, 0.0, 0.0, 0).criterion)


# ---------------------------------------------------------------------------------------------------- the CLI

def test_cli_calibrate_then_detect(tiny_model_dir, tmp_path, detector, monkeypatch):
    from typer.testing import CliRunner

    from cycleresearcher.cli import app

    model = detector._load()[0]
    human_dir, machine_dir = tmp_path / "human", tmp_path / "machine"
    human_dir.mkdir(), machine_dir.mkdir()
    for i, text in enumerate(TEXTS):
        (human_dir / f"h{i}.txt").write_text(text)
        # Greedy continuations of the tiny model are as machine-like as text gets: each token is its argmax.
        ids = torch.tensor([detector.tokenize([text])[0][:3]])
        with torch.no_grad():
            out = model.generate(ids, do_sample=False, max_new_tokens=24, min_new_tokens=24)
        # the random model also emits control characters and broken UTF-8; a document mostly made of those
        # is refused as binary
        decoded = detector._load()[2].decode(out[0])
        text = "".join(c for c in decoded if (c.isprintable() or c in "\n\t") and c != "\ufffd")
        (machine_dir / f"m{i}.md").write_text(text)
    spec = str(tiny_model_dir)
    cal_path = tmp_path / "cal.json"
    runner = CliRunner()
    result = runner.invoke(app, ["detect", "calibrate", "--human", *map(str, sorted(human_dir.iterdir())),
                                 "--machine", str(machine_dir), "--out", str(cal_path), "--scoring-model", spec])
    assert result.exit_code == 0, result.output
    cal = Calibration.load(cal_path)
    assert cal.slope > 0
    monkeypatch.chdir(tmp_path)   # short relative paths, so the table shows them whole
    files = ["human/h1.txt", "machine/m1.md"]
    result = runner.invoke(app, ["detect", *files, "--scoring-model", spec, "--calibration", str(cal_path),
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["path"] for r in rows] == files
    assert [r["verdict"] for r in rows] == ["human", "machine"]
    assert rows[0]["calibration_model"] == spec and rows[0]["warnings"] == []  # fitted on this very model
    assert rows[1]["criterion"] > rows[0]["criterion"]
    result = runner.invoke(app, ["detect", files[0], "--scoring-model", spec])   # table, built-in calibration
    assert result.exit_code == 0 and "P(machine)" in result.output
    assert f"{rows[0]['criterion']:.3f}" in result.output and "human/h1.txt" in result.output
    result = runner.invoke(app, ["detect", "missing.txt", "--scoring-model", spec])
    assert result.exit_code == 1 and "no such file" in result.output


def test_documents_read_through_the_formats(tmp_path):
    from cycleresearcher.detect import expand_paths, read_document_text

    tex = tmp_path / "docs" / "paper.tex"
    tex.parent.mkdir()
    tex.write_text("\\documentclass{article}\\begin{document}\\section{Introduction}"
                   "We propose \\textbf{a method}.\\end{document}\n")
    (tmp_path / "docs" / "notes.txt").write_text("plain words")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")
    assert expand_paths([tmp_path / "docs"]) == [tmp_path / "docs" / "notes.txt", tex]
    text = read_document_text(tex)
    assert "We propose a method" in text and "\\textbf" not in text and "documentclass" not in text
    with pytest.raises(FileNotFoundError):
        expand_paths([tmp_path / "nope.txt"])
    # a link out of the folder is not followed (no /etc/passwd scored as a document); a link inside is kept
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (tmp_path / "docs" / "leak.txt").symlink_to(secret)
    (tmp_path / "docs" / "alias.txt").symlink_to(tmp_path / "docs" / "notes.txt")
    assert expand_paths([tmp_path / "docs"]) == [tmp_path / "docs" / n for n in ("alias.txt", "notes.txt",
                                                                                 "paper.tex")]
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(InputError, match="FIFO"):
        expand_paths([tmp_path / "pipe.txt"])
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(InputError, match="no readable text"):
        read_document_text(tmp_path / "empty.txt")
