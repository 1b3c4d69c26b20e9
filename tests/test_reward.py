"""Embeddings (shape, normalisation, cache) and the reward model (train, score, guard, files, CLI) on real papers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cycleresearcher import embed
from cycleresearcher.errors import InputError
from cycleresearcher.reward import RewardConfig, RewardModel, RewardModelError, reward_of, stage_problems
from cycleresearcher.reward.probe import make_variants
from cycleresearcher.schema import Paper

# Small chunks and few pairs keep the test inside its budget on 2 shared cores; the code path is the default's.
# Every feature group on (the defaults use fewer), so the tests exercise all of them.
FAST = RewardConfig(chunk_tokens=64, max_chunks=2, c_grid=(0.01, 0.1), pairs_per_paper=5, bigram_table=5000,
                    embed_pool="mean", use_embed_stats=True, use_structure=True, use_integrity=True, use_length=True,
                    objective="pairwise")


@pytest.fixture(scope="module")
def rows(shared_data):
    """70 NeurIPS 2023 and 30 NeurIPS 2025 papers (cleaned rows as data.fulltext gives them), bodies cut to
    1,500 words so the features stay cheap."""
    from cycleresearcher.data.fulltext import load_fulltext_rows
    from cycleresearcher.reward import clean_paper_text

    picked = []
    for source, n in (("neurips2023_2024", 70), ("neurips2025", 30)):
        got = [r for r in load_fulltext_rows(shared_data, sources=[source], clean=False)
               if r["year"] != 2024 and r["track"] == "main"]
        picked += [r for r in got if r["decision"] == "Accept"][:n - 10] + [r for r in got if r["decision"] == "Reject"][:10]
    for r in picked:
        r["text"] = clean_paper_text(" ".join(r["text"].split(" ")[:1500])).text
    return picked


@pytest.fixture(scope="module")
def trained(rows, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # a module fixture runs before the per-test home isolation
        mp.setenv("CYCLERESEARCHER_HOME", str(tmp_path_factory.mktemp("home")))
        return RewardModel.train(rows[:80], FAST, cache_dir=tmp_path_factory.mktemp("cache"))


def test_embed_texts_shape_norm_and_meaning(tmp_path):
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome.",
             "A man is eating food."]
    v = embed.embed_texts(texts, cache_dir=tmp_path)
    assert v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(v[0], v[3])
    sims = v @ v.T
    assert sims[0, 1] > 0.6 > 0.1 > sims[0, 2]  # sentence-transformers reports 0.755 and about -0.05
    with pytest.raises(TypeError):
        embed.embed_texts("not a list")


def test_cache_hit_needs_no_model(monkeypatch, tmp_path):
    texts = ["cached text one", "cached text two"]
    first = embed.embed_texts(texts, cache_dir=tmp_path)
    chunks = embed.embed_chunks(["a longer document " * 50], chunk_tokens=32, max_chunks=3, cache_dir=tmp_path)
    assert chunks[0].shape == (3, 384)
    assert len(list(tmp_path.rglob("*.npy"))) == 3 and not list(tmp_path.rglob("*.tmp"))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was called although every vector is cached")

    monkeypatch.setattr(embed, "_encode_ids", no_model)
    monkeypatch.setattr(embed, "_token_ids", no_model)
    np.testing.assert_array_equal(embed.embed_texts(texts, cache_dir=tmp_path), first)
    again = embed.embed_chunks(["a longer document " * 50], chunk_tokens=32, max_chunks=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(again[0], chunks[0])
    with pytest.raises(AssertionError, match="cached"):
        embed.embed_texts(["a new text"], cache_dir=tmp_path)


def test_embed_document_chunks_spread_over_the_text(tmp_path):
    text = " ".join(f"token{i % 50}" for i in range(3000))
    chunks = embed._document_chunks(text, chunk_tokens=64, max_chunks=4)
    assert len(chunks) == 4 and all(0 < len(c) <= 62 for c in chunks)
    assert embed._encoder().tokenizer.decode(chunks[0]).replace(" ", "").startswith("token0token1token2")
    doc = embed.embed_document(text, chunk_tokens=64, max_chunks=4, cache_dir=tmp_path)
    assert doc.shape == (384,) and abs(np.linalg.norm(doc) - 1) < 1e-5
    with pytest.raises(ValueError):
        embed.embed_document(text, chunk_tokens=1000)
    assert issubclass(embed.EmbeddingError, embed.StepError)


def test_train_score_and_round_trip(trained, rows, tmp_path):
    held = rows[80:]
    scores = trained.score(held)
    assert len(scores) == len(held)
    for s in scores:
        assert 1 <= s["reward"] <= 10 and 0 <= s["accept_prob"] <= 1 and 0 <= s["percentile"] <= 1
        assert set(s) >= {"guard_penalty", "guard_reasons", "flags", "penalized", "missing_stages"}
    meta = trained.meta
    assert meta["n_train"] == 80 and set(meta["groups"]) == {"NeurIPS-2023-main", "NeurIPS-2025-main"}
    assert meta["n_features"] == len(FAST.feature_names()) == 384 + 3 + 16 + 6
    # the prior fixes the mean accept probability on the training papers, whatever the data's own rate
    train_probs = [s["accept_prob"] for s in trained.score(rows[:80])]
    assert np.mean(train_probs) == pytest.approx(FAST.accept_rate_prior, abs=0.05)
    trained.save(tmp_path / "rm")
    loaded = RewardModel.load(tmp_path / "rm")
    assert loaded.score(held) == scores
    paper = Paper(title=held[0]["title"], abstract=held[0]["abstract"], latex=held[0]["text"])
    assert reward_of(paper, tmp_path / "rm") == pytest.approx(trained.score([paper])[0]["reward"])


def test_ranker_learned_the_direction_of_the_ratings(trained, rows):
    # In-sample (80 papers, 2 groups): the predicted order agrees with the human order within each group.
    from cycleresearcher.reward.fit import group_percentiles, within_group_spearman

    train = rows[:80]
    groups = [r["group"] for r in train]
    pct = group_percentiles(np.array([r["mean_rating"] for r in train]), groups)
    pred = np.array([s["reward"] for s in trained.score(train)])
    assert within_group_spearman(pred, pct, groups, min_n=10) > 0.3


def test_accept_head_separates_the_decisions_it_was_fitted_on_and_caps_length(trained, rows):
    from cycleresearcher.reward.features import hand_features
    from cycleresearcher.reward.features import accept_features, length_columns

    assert trained.meta["accept_head"] and "acc_weights" in trained.arrays
    train = rows[:80]  # 2023 holds both decisions, so the head is fitted there (in-sample here)
    hand = hand_features([r["text"] for r in train], trained.bigrams, trained.table_id)
    xa = accept_features(hand, [r["raw_words"] for r in train])
    head = trained.accept_scores(xa)
    acc = np.array([r["decision"] == "Accept" for r in train])
    from cycleresearcher.reward.stats import roc_auc

    assert roc_auc(head, acc) > 0.7
    # Length past the cap gains nothing, and far below the floor costs no more than the floor.
    cols, a = length_columns(), trained.arrays
    at_cap, beyond = xa[:1].copy(), xa[:1].copy()
    at_cap[0, cols], beyond[0, cols] = a["acc_cap"], a["acc_cap"] + 3.0
    assert trained.accept_scores(beyond)[0] == pytest.approx(trained.accept_scores(at_cap)[0])
    at_floor, below = xa[:1].copy(), xa[:1].copy()
    at_floor[0, cols], below[0, cols] = a["acc_floor"], 0.0
    assert trained.accept_scores(below)[0] == pytest.approx(trained.accept_scores(at_floor)[0])


def test_accept_head_reads_only_groups_holding_both_decisions():
    from cycleresearcher.reward.fit import fit_accept_head

    rng = np.random.default_rng(0)
    n, k = 120, 24  # accept_features width: 22 hand features + 2 lengths
    xa = rng.normal(size=(n, k))
    groups = ["A"] * 60 + ["B"] * 60
    accepted = [True] * 60 + [bool(v > 0) for v in xa[60:, 3]]  # in B, column 3 decides
    full = np.ones(n, dtype=bool)
    cfg = RewardConfig()
    arrays, scores = fit_accept_head(xa, accepted, groups, full, cfg)
    assert int(np.argmax(np.abs(arrays["acc_weights"]))) == 3 and arrays["acc_weights"][3] > 0
    assert scores.shape == (n,) and abs(scores.mean()) < 1e-9 and scores.std() == pytest.approx(1.0)
    moved = xa.copy()
    moved[:60, 7] += 5.0  # group A (accepts only) is not read: moving its features changes no weight
    again, _ = fit_accept_head(moved, accepted, groups, full, cfg)
    np.testing.assert_allclose(again["acc_weights"], arrays["acc_weights"])
    assert fit_accept_head(xa, [True] * n, groups, full, cfg) == ({}, None)


def test_guard_and_injection_push_hacks_down(trained, rows):
    text = rows[85]["text"]
    v = make_variants(text, seed=0)
    scores = trained.score([text, v["word_salad"], v["repeated_paragraph"], v["injected_instruction"]])
    orig, salad, repeated, injected = scores
    assert salad["guard_penalty"] > 0 and salad["reward"] < orig["reward"]
    assert repeated["guard_penalty"] > 0 and repeated["reward"] < orig["reward"]
    assert any("repeated" in r for r in repeated["guard_reasons"])
    assert injected["penalized"] and injected["reward"] == 1.0 and injected["accept_prob"] == 0.0
    assert injected["flags"] and injected["unpenalized_reward"] > 1.0


def test_generated_paper_stages_are_checked(trained):
    paper = Paper(title="T", abstract="A", latex="\\section{Intro} text",
                  experimental_setup=[{"name": "e1", "description": "d"}],
                  experimental_results=[{"name": "e2", "result": {}, "description": "d"}])
    assert stage_problems(paper) == ["results do not match the setup", "no conclusion"]
    complete = Paper(title="T", abstract="A", latex="\\section{Intro} text", conclusion_latex="\\section{C} x",
                     experimental_setup=[{"name": "e1", "description": "d"}],
                     experimental_results=[{"name": "e1", "result": {}, "description": "d"}])
    a, b = trained.score([paper, complete])
    assert len(a["missing_stages"]) == 2 and not b["missing_stages"]
    assert a["guard_penalty"] >= 2 * trained.config.stage_penalty


def test_load_refuses_other_versions_and_tampered_files(trained, tmp_path):
    folder = trained.save(tmp_path / "rm")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["embedding_model"] = "intfloat/e5-large"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RewardModelError, match="e5-large"):
        RewardModel.load(folder)
    cfg["embedding_model"], cfg["format_version"] = embed.EMBEDDING_MODEL, 1
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RewardModelError, match="retrain"):
        RewardModel.load(folder)
    folder = trained.save(tmp_path / "rm2")
    with open(folder / "model.npz", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(RewardModelError, match="sha256"):
        RewardModel.load(folder)
    with pytest.raises(RewardModelError, match="not a reward model folder"):
        RewardModel.load(tmp_path / "missing")


def test_train_rejects_unusable_rows():
    with pytest.raises(InputError, match="at least 10"):
        RewardModel.train([{"title": "x", "ratings": [5], "decision": "Accept"}], FAST)


def test_card_and_cli(rows, tmp_path):
    from datasets import Dataset, DatasetDict
    from typer.testing import CliRunner

    from cycleresearcher.cli import app
    from cycleresearcher.data.reward_training import train_with_card

    card = train_with_card(tmp_path / "carded", rows=rows, config=FAST, heldout="NeurIPS-2025", probe_papers=4,
                           n_resamples=50)
    h = card["heldout"]
    assert h["n_papers"] == 30 and set(h["systems"]) == {"model", "length_clean", "length_raw", "constant",
                                                         "single_human"}
    assert h["systems"]["constant"]["roc_auc"]["value"] == 0.5
    assert set(card["hacking_suite"]["variants"]) >= {"word_salad", "padded_boilerplate", "sections_deleted"}
    assert "Hacking suite" in (tmp_path / "carded" / "MODEL_CARD.md").read_text()
    assert RewardModel.load(tmp_path / "carded").meta["n_train"] == 100

    data = tmp_path / "review"
    small = [{k: r[k] for k in ("paper_id", "title", "abstract", "text", "ratings", "decision", "group")}
             for r in rows[:30]]
    DatasetDict({"train": Dataset.from_list(small)}).save_to_disk(str(data))
    runner = CliRunner()
    out = tmp_path / "rm"
    result = runner.invoke(app, ["reward", "train", "--data", str(data), "--out", str(out), "--probe-papers", "0",
                                 "--max-chunks", "2", "--chunk-tokens", "64"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["meta"]["n_train"] == 30
    paper = tmp_path / "paper.md"
    paper.write_text(rows[40]["text"])
    result = runner.invoke(app, ["reward", "score", str(out), str(paper), "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = json.loads(result.output)
    assert line["file"] == str(paper) and 0 <= line["accept_prob"] <= 1 and 1 <= line["reward"] <= 10
    result = runner.invoke(app, ["reward", "score", str(tmp_path / "nowhere"), str(paper)])
    assert result.exit_code == 1 and "not a reward model folder" in " ".join(result.output.split())


def test_ensure_default_model_copies_the_shipped_one_once(trained, tmp_path, monkeypatch):
    from cycleresearcher.data import reward_training
    from cycleresearcher.reward import default_reward_dir, model as model_module

    shipped = trained.save(tmp_path / "default")
    monkeypatch.setattr(model_module, "PACKAGED_DIR", tmp_path)
    calls = []
    monkeypatch.setattr(reward_training, "train_with_card", lambda *a, **k: calls.append(a))
    path = reward_training.ensure_default_reward_model()
    assert path == default_reward_dir() and RewardModel.load(path).meta == trained.meta and not calls
    (shipped / "config.json").unlink()  # a second call keeps the copy: nothing is read or trained again
    assert reward_training.ensure_default_reward_model() == path and not calls


def test_a_copy_of_an_older_shipped_model_is_updated_but_a_trained_one_is_kept(trained, tmp_path, monkeypatch):
    import shutil

    from cycleresearcher.data import reward_training
    from cycleresearcher.reward import model as model_module

    shipped = trained.save(tmp_path / "pkg" / "default")
    monkeypatch.setattr(model_module, "PACKAGED_DIR", tmp_path / "pkg")
    out = tmp_path / "home-default"
    assert reward_training.install_reward_model(out, "default")
    assert (out / reward_training.SHIPPED_MARK).read_text().strip() == reward_training._weights_sha(shipped)
    # The package now ships another model (here: the same one with its scores shifted).
    newer = RewardModel(trained.config, {**trained.arrays, "z_shift": trained.arrays["z_shift"] + 1.0},
                        trained.bigrams, trained.meta)
    shutil.rmtree(shipped)
    newer.save(shipped)
    assert reward_training.install_reward_model(out, "default")
    assert RewardModel.load(out).arrays["z_shift"][0] == pytest.approx(trained.arrays["z_shift"][0] + 1.0)
    # A model the user trained into the same folder (no mark, weights no version shipped) stays.
    shutil.rmtree(out)
    trained.save(out)
    assert reward_training.install_reward_model(out, "default")
    assert RewardModel.load(out).arrays["z_shift"][0] == pytest.approx(trained.arrays["z_shift"][0])

