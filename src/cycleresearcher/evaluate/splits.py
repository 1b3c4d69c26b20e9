"""Reviewer evaluation across years and venues: a reviewer that only works on the year it was trained on is not
a reviewer (DESIGN.md).

    cycleresearcher eval reviewer --reviewer reward:fit --data ../shared/data --split-by-year 2025 --hacking 100
    cycleresearcher eval reviewer --reviewer length --data ../shared/data --train-venue NeurIPS-2023 --test-venue NeurIPS-2025

Rows come from a Review dataset folder (all its splits pooled) or the shared data folder (every full-text source
and the ICLR abstracts, cleaned; see data.fulltext). `--split-by-year Y` tests on year Y and trains on the
other years; `--train-venue` / `--test-venue` match a row's group ("NeurIPS-2023-main") or venue by prefix.
The reviewer spec `reward:fit` trains a fresh reward model on the train side (saved in OUT/reward-model);
any other spec is used as it is, and the baselines (constant, single human, length) are always fitted on the
train side. `--hacking N` adds the hacking suite on N test papers for a reward-model reviewer.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..errors import InputError
from ..io import write_json_atomic, write_jsonl_atomic
from .reviewer import evaluate_reviewer, prediction_of

FIT_SPEC = "reward:fit"


def _matches(row: Mapping[str, Any], prefix: str) -> bool:
    p = prefix.lower()
    return any(str(row.get(k) or "").lower().startswith(p) for k in ("group", "venue", "paper_id"))


def split_rows(rows: Sequence[Mapping[str, Any]], by_year: Optional[int] = None, train_venue: Optional[str] = None,
               test_venue: Optional[str] = None) -> tuple[list, list]:
    """(train, test): test = year `by_year` (train = the other years), and/or venue prefixes."""
    train, test = list(rows), list(rows)
    if by_year is not None:
        test = [r for r in test if int(r.get("year") or 0) == by_year]
        train = [r for r in train if int(r.get("year") or 0) != by_year]
    if test_venue:
        test = [r for r in test if _matches(r, test_venue)]
    if train_venue:
        train = [r for r in train if _matches(r, train_venue)]
    elif test_venue:
        train = [r for r in train if not _matches(r, test_venue)]
    ids = {str(r.get("paper_id")) for r in test}
    train = [r for r in train if str(r.get("paper_id")) not in ids]
    if not train or not test:
        raise InputError(f"the split leaves {len(train)} train and {len(test)} test papers; check --split-by-year, "
                         "--train-venue and --test-venue against the data's years and groups")
    return train, test


def load_rows(data: Path) -> list[dict[str, Any]]:
    """Every row of a Review dataset folder (all splits) or of the shared data folder."""
    data = Path(data)
    if (data / "dataset_dict.json").exists():
        from datasets import load_from_disk

        ds = load_from_disk(str(data))
        return [dict(r) for name in ds for r in ds[name]]
    from ..data.fulltext import load_fulltext_rows

    return load_fulltext_rows(data)


def evaluate_reviewer_split(spec: str, data: Path, by_year: Optional[int] = None, train_venue: Optional[str] = None,
                            test_venue: Optional[str] = None, limit: Optional[int] = None,
                            out_dir: Optional[Path] = None, n_resamples: int = 1000, seed: int = 0,
                            n_reviewers: int = 4, hacking: int = 0) -> dict[str, Any]:
    """`evaluate_reviewer` on a year or venue split (see the module docstring); the report says the split."""
    from ..judges import get_judge

    train, test = split_rows(load_rows(data), by_year, train_venue, test_venue)
    if limit is not None:
        test = test[:limit]
    scratch = None
    if spec.strip() == FIT_SPEC:
        from ..reward import RewardModel

        folder = Path(out_dir) / "reward-model" if out_dir else Path(tempfile.mkdtemp(prefix="reward-fit-"))
        scratch = folder
        RewardModel.train(train).save(folder)
        judge = get_judge(f"reward:{folder}")
    else:
        judge = get_judge(spec, train_rows=train, n_reviewers=n_reviewers)
    verdicts = judge.score(test)
    predictions = [prediction_of(v, r["paper_id"]) for r, v in zip(test, verdicts)]
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "_", spec)
    report = evaluate_reviewer(predictions, test, train, n_resamples=n_resamples, seed=seed, out_dir=out_dir,
                               name=name)
    report.update(reviewer=spec, split=_describe(by_year, train_venue, test_venue), n_train=len(train))
    if hacking and spec.startswith("reward:"):
        from ..reward.probe import hacking_suite

        full = [r for r in test if r.get("text") and not r.get("abstract_only")]
        picked = full[:: max(1, len(full) // hacking)][:hacking]
        report["hacking_suite"] = hacking_suite(lambda texts: [v.score for v in judge.score(texts)],
                                                [str(r["text"]) for r in picked], seed=seed)
    if out_dir is not None:
        write_jsonl_atomic(Path(out_dir) / "predictions.jsonl", predictions)
        write_json_atomic(Path(out_dir) / "report.json", report)
    if scratch is not None and out_dir is None:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _describe(by_year: Optional[int], train_venue: Optional[str], test_venue: Optional[str]) -> str:
    parts = []
    if by_year is not None:
        parts.append(f"test year {by_year}, train the other years")
    if test_venue:
        parts.append(f"test {test_venue}")
    if train_venue:
        parts.append(f"train {train_venue}")
    return "; ".join(parts)
