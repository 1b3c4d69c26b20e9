"""Training the reward model from the shared data, with a held-out evaluation, the hacking suite and a model card.

    cycleresearcher reward train --out models/reward         # every shared source; card in models/reward
    path = ensure_default_reward_model()                    # the same, once, cached in io.home()/reward/default

The card's numbers come from a model that never saw the held-out group (default: NeurIPS 2025, the latest year
and the only full-text one with rejects besides 2023): Spearman with the mean human rating and accept/reject
AUC, beside a constant, one human reviewer and length-only rows (length of the cleaned text the model reads,
and of the raw text), each with a bootstrap 95% interval, and the paired interval of the AUC difference to
length. The hacking suite and the leak probe run on the held-out papers too. The shipped model is then refit
on every row, held-out ones included.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..embed import default_cache_dir
from ..errors import InputError
from ..io import read_json, write_json_atomic, write_text_atomic
from ..reward import RewardConfig, RewardModel, default_reward_dir
from ..reward.fit import row_accept, row_group, row_ratings
from ..reward.leak import leak_probe
from ..reward.probe import hacking_suite
from ..reward.stats import bootstrap, roc_auc, spearman
from .fulltext import load_fulltext_rows

log = logging.getLogger(__name__)

DEFAULT_HELDOUT = "NeurIPS-2025"
CARD_JSON, CARD_MD = "card.json", "MODEL_CARD.md"


def split_heldout(rows: Sequence[Mapping[str, Any]], heldout: str) -> tuple[list, list]:
    """(train rows, test rows): test = rows whose group starts with `heldout` ("NeurIPS-2025")."""
    test = [r for r in rows if row_group(r).startswith(heldout)]
    train = [r for r in rows if not row_group(r).startswith(heldout)]
    if not test:
        raise InputError(f"no rows in the held-out group {heldout!r}; groups: {sorted({row_group(r) for r in rows})}")
    return train, test


def _est(metric, n: int, n_resamples: int, seed: int) -> dict[str, Optional[float]]:
    value, lo, hi = bootstrap(metric, n, n_resamples, seed)
    return {k: (None if v is None or math.isnan(v) else round(v, 4)) for k, v in
            (("value", value), ("ci_low", lo), ("ci_high", hi))}


def heldout_report(model: RewardModel, test: Sequence[Mapping[str, Any]], n_resamples: int = 1000, seed: int = 0,
                   cache_dir: Optional[Path] = None) -> dict[str, Any]:
    """Spearman with the mean rating and accept AUC of the model and of the baselines on test rows (all with
    bootstrap CIs over the same resamples), and paired CIs of the model's differences to length-only."""
    test = [r for r in test if len(row_ratings(r)) >= 2 and row_accept(r) is not None]
    scores = model.score(test, cache_dir=cache_dir or default_cache_dir())
    reward = np.array([s["reward"] for s in scores])
    mean = np.array([np.mean(row_ratings(r)) for r in test])
    acc = np.array([bool(row_accept(r)) for r in test])
    rng = np.random.default_rng(seed)
    held, others = [], []
    for r in test:  # one reviewer drawn per paper, against the mean of the others
        rs = row_ratings(r)
        j = int(rng.integers(len(rs)))
        held.append(rs[j])
        others.append((sum(rs) - rs[j]) / (len(rs) - 1))
    held_a, others_a = np.array(held), np.array(others)
    systems = {"model": reward,
               "length_clean": np.log1p([len(str(r.get("text") or "").split()) for r in test]),
               "constant": np.zeros(len(test))}
    if all(r.get("raw_words") for r in test):
        systems["length_raw"] = np.log1p([float(r["raw_words"]) for r in test])
    out: dict[str, Any] = {"n_papers": len(test), "n_rejected": int((~acc).sum()), "n_resamples": n_resamples,
                           "n_flagged": sum(bool(s["flags"]) for s in scores),
                           "n_guarded": sum(s["guard_penalty"] > 0 for s in scores), "systems": {}}
    for name, v in systems.items():
        out["systems"][name] = {
            "spearman": _est(lambda i, v=v: spearman(v[i], mean[i]), len(test), n_resamples, seed),
            "roc_auc": _est(lambda i, v=v: roc_auc(v[i], acc[i]), len(test), n_resamples, seed)}
    out["systems"]["single_human"] = {
        "spearman": _est(lambda i: spearman(held_a[i], others_a[i]), len(test), n_resamples, seed),
        "roc_auc": _est(lambda i: roc_auc(held_a[i], acc[i]), len(test), n_resamples, seed)}
    for base in [b for b in ("length_raw", "length_clean") if b in systems]:
        v = systems[base]
        out[f"model_minus_{base}"] = {
            "roc_auc": _est(lambda i, v=v: roc_auc(reward[i], acc[i]) - roc_auc(v[i], acc[i]), len(test),
                            n_resamples, seed),
            "spearman": _est(lambda i, v=v: spearman(reward[i], mean[i]) - spearman(v[i], mean[i]), len(test),
                             n_resamples, seed)}
    return out


def train_with_card(out: Path, rows: Optional[Sequence[Mapping[str, Any]]] = None, data: Optional[Path] = None,
                    config: Optional[RewardConfig] = None, heldout: Optional[str] = DEFAULT_HELDOUT,
                    probe_papers: int = 100, n_resamples: int = 1000, seed: int = 0,
                    generate_spec: Optional[str] = None, n_generated: int = 10) -> dict[str, Any]:
    """Evaluate on the held-out group (a model trained without it), then train on every row and save the model
    with card.json and MODEL_CARD.md in `out`. Returns the card."""
    start = time.monotonic()
    cfg = config or RewardConfig()
    rows = list(rows) if rows is not None else load_fulltext_rows(data)
    card: dict[str, Any] = {"data": _describe(rows), "config": asdict(cfg), "heldout_group": heldout}
    if heldout:
        train, test = split_heldout(rows, heldout)
        t0 = time.monotonic()
        split_model = RewardModel.train(train, cfg)
        card["heldout_train_seconds"] = round(time.monotonic() - t0, 1)
        card["heldout"] = heldout_report(split_model, test, n_resamples, seed)
        full_test = [r for r in test if not r.get("abstract_only") and row_accept(r) is not None]
        card["leak_probe"] = {"heldout_clean": _leak(full_test, seed, n_resamples)}
        if probe_papers:
            picked = full_test[:: max(1, len(full_test) // probe_papers)][:probe_papers]
            generate = None
            if generate_spec:
                from ..reward.probe import title_writer

                generate = title_writer(generate_spec, seed=seed)
            card["hacking_suite"] = hacking_suite(
                lambda texts: [s["reward"] for s in split_model.score(texts, cache_dir=default_cache_dir())],
                [str(r["text"]) for r in picked], seed=seed, titles=[str(r.get("title") or "") for r in picked],
                generate=generate, n_generated=n_generated)
    t0 = time.monotonic()
    model = RewardModel.train(rows, cfg)
    card["train_seconds"] = round(time.monotonic() - t0, 1)
    card["total_seconds"] = round(time.monotonic() - start, 1)
    card["model_meta"] = model.meta
    model.meta["card"] = CARD_JSON
    model.save(out)
    write_json_atomic(Path(out) / CARD_JSON, card)
    write_text_atomic(Path(out) / CARD_MD, render_card(card))
    return card


def _leak(rows: Sequence[Mapping[str, Any]], seed: int, n_resamples: int) -> Optional[dict[str, Any]]:
    y = [bool(row_accept(r)) for r in rows]
    if sum(y) < 2 or len(y) - sum(y) < 2:
        return None
    rep = leak_probe([str(r.get("text") or "") for r in rows], y, seed=seed, n_resamples=n_resamples)
    return {k: rep[k] for k in ("auc", "ci", "n", "n_rejected")}


def _describe(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    groups: dict[str, dict[str, int]] = {}
    for r in rows:
        g = groups.setdefault(row_group(r), {"papers": 0, "accepted": 0, "rejected": 0, "abstract_only": 0})
        g["papers"] += 1
        a = row_accept(r)
        g["accepted" if a else "rejected"] += a is not None
        g["abstract_only"] += bool(r.get("abstract_only"))
    return {"n_rows": len(rows), "groups": groups, "sources": sorted({str(r.get("source", "")) for r in rows})}


def _fmt(e: Optional[Mapping[str, Any]]) -> str:
    if not e or e.get("value") is None:
        return "n/a"
    if e.get("ci_low") is None:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"


def render_card(card: Mapping[str, Any]) -> str:
    """MODEL_CARD.md: data, split, held-out metrics with baselines, leak probe, hacking suite."""
    lines = ["# Reward model card", "", "## Data", "", "| group | papers | accepted | rejected | abstract only |",
             "|---|---|---|---|---|"]
    for g, d in sorted(card["data"]["groups"].items()):
        lines.append(f"| {g} | {d['papers']} | {d['accepted']} | {d['rejected']} | {d['abstract_only']} |")
    lines += ["", f"Sources: {', '.join(card['data']['sources'])}. Texts cleaned by `reward.text.clean_paper_text` "
              "(camera-ready cues, appendix and references removed; the accept head also reads the word count of the text "
              "as given and of what the cleaning cut). Ratings compared within a group only.", ""]
    h = card.get("heldout")
    if h:
        lines += [f"## Held-out evaluation: {card['heldout_group']} (model trained without it)", "",
                  f"{h['n_papers']} papers ({h['n_rejected']} rejected); 95% bootstrap intervals, "
                  f"{h['n_resamples']} resamples; {h['n_flagged']} flagged by the injection finder, "
                  f"{h['n_guarded']} touched by the guard.", "", "| system | Spearman with mean rating | accept AUC |",
                  "|---|---|---|"]
        for name, m in h["systems"].items():
            lines.append(f"| {name} | {_fmt(m['spearman'])} | {_fmt(m['roc_auc'])} |")
        for key in ("model_minus_length_raw", "model_minus_length_clean"):
            if key in h:
                lines.append(f"\n{key.replace('_', ' ')}: AUC {_fmt(h[key]['roc_auc'])}, "
                             f"Spearman {_fmt(h[key]['spearman'])}")
        lines.append("")
    leak = (card.get("leak_probe") or {}).get("heldout_clean")
    if leak:
        lines += ["## Leak probe", "", f"Logistic regression on camera-ready cue counts alone (reward/leak.py), "
                  f"cross-validated on the held-out cleaned texts: AUC {leak['auc']:.3f} "
                  f"[{leak['ci'][0]:.3f}, {leak['ci'][1]:.3f}] ({leak['n']} papers, {leak['n_rejected']} rejected).", ""]
    suite = card.get("hacking_suite")
    if suite:
        lines += ["## Hacking suite", "", f"{suite['n_papers']} held-out papers; share of variants scoring below "
                  f"the original (required {suite['required_share']:.0%}, abstract alone exempt).", "",
                  "| variant | papers | share below | mean reward | mean drop |", "|---|---|---|---|---|"]
        for name, v in suite["variants"].items():
            lines.append(f"| {name} | {v['n']} | {v['share_below']:.3f} | {v['mean_score']:.2f} | {v['mean_drop']:.2f} |")
        lines += ["", f"Passed: {suite['passed']}.", ""]
    meta = card.get("model_meta", {})
    lines += ["## Shipped model", "", f"Trained on {meta.get('n_train')} papers in {card.get('train_seconds')} s "
              f"(whole run {card.get('total_seconds')} s); L2 C = {meta.get('c')}; {meta.get('n_features')} features.",
              f"Largest hand-feature weights of the ranker: {meta.get('top_weights') or 'none (it reads embeddings only)'}."]
    if meta.get("accept_head"):
        lines.append(f"Accept head, added with weight {card['config'].get('accept_weight')}: largest weights "
                     f"{meta.get('accept_head_weights')}.")
    lines.append("")
    return "\n".join(lines)


SHIPPED_MARK = ".shipped"  # in a copy of a shipped model: the sha256 of the shipped model.npz it was copied from
# model.npz of defaults shipped before the mark existed: such a copy is replaced by a newer shipped model.
_SHIPPED_BEFORE = frozenset({"35561a852be49e505fc205eac5cd6187dd445e4bd3cc78236dbb0dc905f7b52d"})


def _weights_sha(folder: Path) -> str:
    try:
        return str(read_json(folder / "config.json").get("sha256", {}).get("model.npz", ""))
    except (OSError, ValueError):
        return ""


def install_reward_model(out: Path, packaged: str) -> bool:
    """True when `out` holds a loadable reward model: kept from before, else copied from the model the package
    ships as reward/<packaged> (whole folder or nothing). A copy of an older shipped model is replaced by the
    one this version ships; a model trained into `out` is never touched. False when there is neither (the
    caller trains)."""
    import shutil

    from ..io import replace_dir_atomic
    from ..reward import packaged_reward_dir

    source = packaged_reward_dir(packaged)
    shipped_sha = _weights_sha(source) if source is not None else ""
    try:
        RewardModel.load(out)
        mark = (out / SHIPPED_MARK).read_text(encoding="utf-8").strip() if (out / SHIPPED_MARK).exists() else ""
        old_sha = _weights_sha(out)
        copied_from = mark or (old_sha if old_sha in _SHIPPED_BEFORE else "")
        if not (copied_from and shipped_sha and copied_from != shipped_sha):
            return True
        log.warning("updating the reward model at %s to the one this version ships", out)
    except InputError as exc:
        if (out / "config.json").exists():
            log.warning("replacing the reward model at %s: %s", out, exc)
    if source is None:
        return False
    RewardModel.load(source)  # refuses a shipped model that does not match this installation

    def fill(tmp: Path) -> None:
        shutil.copytree(source, tmp)
        (tmp / SHIPPED_MARK).write_text(shipped_sha + "\n", encoding="utf-8")

    replace_dir_atomic(out, fill)  # never a half-copied model
    return True


def ensure_default_reward_model(data: Optional[Path] = None, out: Optional[Path] = None, **kwargs: Any) -> Path:
    """The default reward model folder (io.home()/reward/default), ready to load: kept from an earlier call,
    else copied from the model shipped in the package, else trained from the shared data (once; `kwargs` go
    to `train_with_card`). Never retrained when a loadable model is there."""
    out = Path(out) if out is not None else default_reward_dir()
    if install_reward_model(out, "default"):
        return out
    log.info("training the default reward model into %s (once)", out)
    train_with_card(out, data=data, **kwargs)
    return out


def load_training_rows(data: Optional[Path] = None, split: str = "train") -> list[dict[str, Any]]:
    """Rows from the shared data folder (every full-text source; None: found as the demo finds it) or from a
    Review dataset folder (datasets.save_to_disk) split."""
    from .fulltext import shared_data_dir

    if data is not None and (Path(data) / "dataset_dict.json").exists():
        from datasets import load_from_disk

        ds = load_from_disk(str(data))
        if split not in ds:
            raise InputError(f"{data} has no split {split!r}; it has {sorted(ds.keys())}")
        return [dict(r) for r in ds[split]]
    folder = Path(data) if data is not None else shared_data_dir()
    if folder is None:
        raise InputError("no --data given and the shared data folder was not found (set CYCLERESEARCHER_DATA)")
    return load_fulltext_rows(folder)


def run_probe(model_dir: Path, data: Optional[Path] = None, group: str = DEFAULT_HELDOUT, limit: int = 100,
              n_generated: int = 0, generator: str = "local", seed: int = 0,
              n_resamples: int = 1000) -> dict[str, Any]:
    """The hacking suite (and the leak probe) for a saved model on up to `limit` papers of `group`. Use a group
    the model was not trained on (the default model saw every group; its card holds the held-out run)."""
    from ..reward.probe import title_writer

    model = RewardModel.load(model_dir)
    rows = [r for r in load_training_rows(data) if row_group(r).startswith(group) and not r.get("abstract_only")]
    if not rows:
        raise InputError(f"no full-text papers of group {group!r} in the data")
    picked = rows[:: max(1, len(rows) // limit)][:limit]
    generate = title_writer(generator, seed=seed) if n_generated else None
    report = hacking_suite(lambda t: [s["reward"] for s in model.score(t, cache_dir=default_cache_dir())],
                           [str(r["text"]) for r in picked], seed=seed,
                           titles=[str(r.get("title") or "") for r in picked], generate=generate,
                           n_generated=n_generated)
    labelled = [r for r in rows if row_accept(r) is not None]
    report["leak_probe"] = _leak(labelled, seed, n_resamples)
    report["group"] = group
    report["trained_on_group"] = any(g.startswith(group) for g in model.meta.get("groups", {}))
    return report
