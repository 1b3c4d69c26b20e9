"""What the reward model reads: cue stripping, LaTeX conversion, features, hacking variants, leak probe."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest

from cycleresearcher.injection import find_injections
from cycleresearcher.reward.features import INTEGRITY, STRUCTURE, common_bigrams, paper_features
from cycleresearcher.reward.fit import group_percentiles, sample_pairs, within_group_spearman
from cycleresearcher.reward.leak import leak_probe
from cycleresearcher.reward.probe import VARIANTS, make_variants
from cycleresearcher.reward.text import clean_paper_text, latex_to_markdown

CAMERA_READY = """# Sparse Widgets for Fast Learning

Alice Smith\\({}^{1}\\), Bob Jones\\({}^{2}\\) alice@uni.edu
39th Conference on Neural Information Processing Systems (NeurIPS 2025).

## Abstract

We study sparse widgets. Code is available at https://github.com/alice/widgets.

## 1 Introduction

Widgets are everywhere [1; 2]. We propose a sparse widget that learns fast. Our code will be released upon acceptance.
Work done while at Big Lab. Equal contribution.

## 2 Experiments

Table 1: Accuracy 93.1 and 94.2 on the widget benchmark (see Appendix B).

**Acknowledgments.** We thank the NSF for grant no. 123.

## 3 Conclusion

Sparse widgets work well.

## References

[1] A. Author. A paper. 2020.

## Appendix A Proofs

Proof of everything.
"""


def test_clean_removes_camera_ready_cues_and_keeps_the_body():
    clean = clean_paper_text(CAMERA_READY)
    t = clean.text
    for cue in ("github", "alice@", "Alice Smith", "Conference on Neural", "upon acceptance", "Equal contribution",
                "Work done", "NSF", "thank", "Appendix", "Proof of everything", "A. Author", "http"):
        assert cue.lower() not in t.lower(), cue
    for kept in ("# Sparse Widgets for Fast Learning", "## Abstract", "We study sparse widgets.",
                 "Widgets are everywhere [1; 2]", "Table 1: Accuracy 93.1", "## 3 Conclusion", "work well"):
        assert kept in t, kept
    assert clean.removed["appendix_or_references"] == 1 and clean.removed["author_block"] == 1
    assert clean_paper_text(t).text == t  # cleaning is idempotent: training rows are cleaned once


def test_appendix_letter_heading_cut_only_after_the_conclusion():
    early = "# T\n\n## Abstract\n\nx.\n\n## A New Method\n\nbody " + "word " * 200 + "\n\n## 5 Conclusion\n\nend."
    assert "A New Method" in clean_paper_text(early).text
    late = early + "\n\n## A Proofs\n\nlemma stuff"
    assert "lemma stuff" not in clean_paper_text(late).text


def test_latex_is_read_in_the_data_shape():
    latex = ("\\title{Deep Widgets}\\begin{abstract}We do widgets.\\end{abstract}\\section{Introduction}"
             "Prior work \\cite{a,b} and \\citep{a}. % a hidden comment\n\\subsection{Setup}Text.\\appendix"
             "\\section{Extra}Gone.")
    md = latex_to_markdown(latex)
    assert "# Deep Widgets" in md and "## Abstract" in md and "## Introduction" in md and "### Setup" in md
    assert "[1; 2]" in md and "[1]" in md and "hidden comment" not in md
    clean = clean_paper_text(latex).text
    assert "Gone." not in clean and "We do widgets." in clean


def test_clean_is_idempotent_on_real_papers(shared_data):
    path = shared_data / "neurips2023_2024_fulltext" / "papers.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(next(fh)) for _ in range(15)]
    for r in rows:
        once = clean_paper_text(r["text"]).text
        assert clean_paper_text(once).text == once
        assert len(once.split()) > 0.5 * len(r["text"].split())  # the main body survives


@pytest.fixture(scope="module")
def real_paper(shared_data):
    with gzip.open(shared_data / "neurips2025_fulltext" / "papers.jsonl.gz", "rt", encoding="utf-8") as fh:
        return json.loads(next(fh))["text"]


def test_integrity_features_move_the_right_way(real_paper):
    names = list(STRUCTURE) + list(INTEGRITY)
    table = common_bigrams([real_paper], size=2000)
    base = paper_features(clean_paper_text(real_paper).text, table)
    v = make_variants(real_paper, seed=1)
    salad = paper_features(v["word_salad"], table)
    repeated = paper_features(v["repeated_paragraph"], table)
    shuffled = paper_features(v["shuffled_sentences"], table)
    i = names.index
    assert salad[i("bigram_hit_rate")] < base[i("bigram_hit_rate")] - 0.2
    assert repeated[i("repeated_8grams")] > base[i("repeated_8grams")] + 0.3
    assert shuffled[i("cohesion_ratio")] < base[i("cohesion_ratio")] - 0.3
    assert base[i("log_sections")] > np.log1p(3) and base[i("has_experiments")] == 1.0


def test_variants_are_what_they_claim(real_paper):
    PAPER = real_paper
    v = make_variants(PAPER, seed=0)
    assert set(v) == set(VARIANTS)
    words = len(clean_paper_text(PAPER).text.split())
    assert sorted(v["word_salad"].split()) == sorted(clean_paper_text(PAPER).text.split())
    assert len(v["padded_boilerplate"].split()) >= 1.9 * words * 0.95
    assert len(v["abstract_alone"].split()) < 400
    assert v["sections_deleted"].count("## ") < clean_paper_text(PAPER).text.count("## ")
    assert find_injections(v["injected_instruction"]) and not find_injections(PAPER)


def test_leak_probe_finds_a_planted_cue_and_not_a_missing_one():
    rng = random.Random(0)
    y = [i % 3 != 0 for i in range(120)]
    leaky = [("See github.com/x. " if a and rng.random() < 0.8 else "") + "Some text." for a in y]
    clean = ["Some text." for _ in y]
    assert leak_probe(leaky, y, n_resamples=100)["auc"] > 0.8
    assert abs(leak_probe(clean, y, n_resamples=100)["auc"] - 0.5) < 0.1


def test_group_percentiles_and_pairs_stay_within_groups():
    values = np.array([1.0, 2.0, 3.0, 10.0, 20.0])
    groups = ["a", "a", "a", "b", "b"]
    np.testing.assert_allclose(group_percentiles(values, groups), [1 / 6, 3 / 6, 5 / 6, 0.25, 0.75])
    pct = group_percentiles(values, groups)
    i, j = sample_pairs(pct, groups, per_paper=10, min_gap=0.3, rng=np.random.default_rng(0))
    assert len(i) > 0 and all(groups[a] == groups[b] for a, b in zip(i, j)) and np.all(pct[i] > pct[j])
    assert within_group_spearman(values, values, groups, min_n=2) == pytest.approx(1.0)
