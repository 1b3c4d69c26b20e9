"""Run directories as the pages show them, read defensively: a run may be going (a round without metrics.json,
a JSONL cut mid-line) or damaged (a bad line, unknown keys), and the page still shows what it can.

    run_dir(root, "demo")               # the folder, or RunNotFound (a name that leaves `root` is not found)
    list_runs(root)                     # [RunSummary]
    load_run(root, "demo")              # RunView: rounds with papers by reward, reviews, pairs, spend, series
    find_paper(root, "demo", "r00-p000-s1")

Layout (train/cycle.py): config.yaml, prompts.jsonl, round-XX/{papers,reviews,pairs}.jsonl, round-XX/metrics.json
(written last: the round is done), report.md and reward.png (train/report.py).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import CycleResearcherError
from ..io import read_json, read_jsonl
from ..train.rundir import RunDir, label_order

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
GOING_SECONDS = 15 * 60  # a run whose files changed this recently, with rounds left, is shown as going
# metrics worth a chart: (label, key pattern), matched against the flattened metrics.json keys
SERIES = [("mean reward", r"^mean_reward$"), ("max reward", r"^max_reward$"), ("mean margin", r"^mean_margin$")]


class RunNotFound(CycleResearcherError, LookupError):
    """No such run (or paper) under the runs folder; the page answers 404."""


@dataclass
class RunSummary:
    name: str
    rounds_done: int
    rounds_planned: Optional[int]
    last_reward: Optional[float]
    modified: float
    going: bool


@dataclass
class PaperRow:
    paper_id: str
    title: str
    topic: str
    reward: Optional[float]
    reward_source: str
    results_source: str
    review_set: Optional[dict] = None
    scalar: Optional[dict] = None
    extra: dict = field(default_factory=dict)  # other columns of the reviews row (held-out judge, ...)


@dataclass
class RoundView:
    index: int
    done: bool
    metrics: dict
    papers: list[PaperRow]
    pairs: list[dict]
    compliance: Optional[float] = None  # share of the round's samples whose stages all parsed


@dataclass
class HeldOutView:
    """One held-out evaluation (train/heldout.py): a policy's papers on prompts it never trained on, judged by
    a judge that is not the training reward."""

    label: str  # initial, r00, r01, ...
    x: int  # position on the round axis: -1 for initial
    summary: dict


@dataclass
class RunView:
    name: str
    config: dict
    rounds: list[RoundView]
    going: bool
    problems: list[str]
    series: list[tuple[str, list[tuple[int, float]], Optional[tuple[float, float]]]]  # label, points, y range
    heldout: list[HeldOutView]
    spend: list[tuple[str, int, float]]  # (stage, tokens, seconds)
    best: Optional[dict]  # the best paper's record (papers.jsonl row) with "reward"
    has_plot: bool
    has_report: bool


def run_dir(root: Path, name: str) -> Path:
    """The run folder `root/name`; RunNotFound unless it is a plain name of a folder inside `root`."""
    root = Path(root).resolve()
    if not _NAME.match(name or ""):
        raise RunNotFound(f"no run named {name!r}")
    path = (root / name).resolve()
    if path.parent != root or not path.is_dir():
        raise RunNotFound(f"no run named {name!r}")
    return path


def _rounds(path: Path) -> list[tuple[int, Path]]:
    layout = RunDir(path)
    return [(r, layout.round_dir(r)) for r in layout.rounds() if not layout.round_dir(r).is_symlink()]


def _config(path: Path, problems: list[str]) -> dict:
    try:
        return RunDir(path).read_config() or {}
    except (OSError, ValueError) as exc:
        problems.append(f"config.yaml: {exc}")
        return {}


def _read_rows(path: Path, problems: list[str]) -> list[dict]:
    try:
        return [row for row in read_jsonl(path) if isinstance(row, dict)]
    except (OSError, ValueError, CycleResearcherError) as exc:
        problems.append(f"{path.parent.name}/{path.name}: {exc}")
        return []


def _metrics(path: Path, problems: list[str]) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError) as exc:
        problems.append(f"{path.parent.name}/{path.name}: {exc}")
        return None


def _modified(path: Path) -> float:
    times = [path.stat().st_mtime]
    for child in path.iterdir():
        times.append(child.stat().st_mtime)
        if child.is_dir() and child.name.startswith("round-"):
            times.extend(f.stat().st_mtime for f in child.iterdir() if f.is_file())
    return max(times)


def _is_going(path: Path, rounds: list[tuple[int, Path]], planned: Optional[int]) -> bool:
    unfinished = any(not (p / "metrics.json").is_file() for _, p in rounds)
    more = planned is not None and sum(1 for _, p in rounds if (p / "metrics.json").is_file()) < planned
    return (unfinished or more) and time.time() - _modified(path) < GOING_SECONDS


def list_runs(root: Path) -> list[RunSummary]:
    """Run folders (those holding config.yaml or a round-XX folder) under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        if not path.is_dir() or path.is_symlink() or not _NAME.match(path.name):
            continue
        rounds = _rounds(path)
        if not rounds and not (path / "config.yaml").is_file():
            continue
        problems: list[str] = []
        planned = _config(path, problems).get("rounds")
        planned = planned if isinstance(planned, int) else None
        done = [m for m in (_metrics(p / "metrics.json", problems) for _, p in rounds) if m is not None]
        last = done[-1].get("mean_reward") if done else None
        out.append(RunSummary(path.name, len(done), planned, last if isinstance(last, (int, float)) else None,
                              _modified(path), _is_going(path, rounds, planned)))
    return sorted(out, key=lambda r: r.modified, reverse=True)


def review_parts(review: dict) -> tuple[Optional[dict], Optional[dict]]:
    """(ReviewSet dict, {reward, accept_prob, ...}) of a reviews.jsonl row, in either layout: the judge's
    `verdict` (train/rundir.py) or the older `review_set` / `scalar` columns."""
    verdict = review.get("verdict") if isinstance(review.get("verdict"), dict) else {}
    review_set = review.get("review_set") or verdict.get("review_set")
    scalar = review.get("scalar")
    if not isinstance(scalar, dict) and verdict and verdict.get("accept_prob") is not None:
        scalar = {"reward": verdict.get("score"), "accept_prob": verdict.get("accept_prob"),
                  "penalized": verdict.get("penalized", False)}
    return (review_set if isinstance(review_set, dict) else None), (scalar if isinstance(scalar, dict) else None)


def _paper_row(paper: dict, review: dict) -> PaperRow:
    known = {"paper_id", "prompt_id", "reward", "reward_source", "review_set", "scalar", "verdict"}
    reward = review.get("reward")
    review_set, scalar = review_parts(review)
    return PaperRow(paper_id=str(paper.get("paper_id", "")), title=str(paper.get("title") or "(untitled)"),
                    topic=str(paper.get("topic", "")),
                    reward=float(reward) if isinstance(reward, (int, float)) else None,
                    reward_source=str(review.get("reward_source", "")),
                    results_source=str(paper.get("results_source", "")),
                    review_set=review_set, scalar=scalar,
                    extra={k: v for k, v in review.items() if k not in known})


def _flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if key in ("tokens", "seconds", "losses"):
            continue
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = float(value)
    return out


def _compliance(papers: list[dict], task: str) -> Optional[float]:
    """research.is_compliant over the round's papers (rows that are not Paper records are left out)."""
    from ..research import is_compliant
    from ..schema import Paper

    flags = []
    for row in papers:
        try:
            flags.append(is_compliant(Paper.from_dict(row), task))
        except (TypeError, ValueError, AttributeError):
            continue
    return sum(flags) / len(flags) if flags else None


def _heldout(path: Path, problems: list[str]) -> list[HeldOutView]:
    layout = RunDir(path)
    out = []
    for label in layout.heldout_labels():
        summary = _metrics(layout.heldout_dir(label) / "summary.json", problems)
        if summary is not None:
            group, index = label_order(label)
            out.append(HeldOutView(label, -1 if group == 0 else index, summary))
    return sorted(out, key=lambda h: h.x)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _series(rounds: list[RoundView], heldout: list[HeldOutView]) -> list[tuple[str, list, Optional[tuple]]]:
    out = []
    flat = [(r.index, _flat(r.metrics)) for r in rounds if r.metrics]
    taken: set[str] = set()
    for label, pattern in SERIES:
        keys = sorted({k for _, f in flat for k in f if re.search(pattern, k) and k not in taken})
        for key in keys:
            taken.add(key)
            points = [(i, f[key]) for i, f in flat if key in f]
            if points:
                out.append((label if len(keys) == 1 else f"{label} ({key})", points, None))
    share = (0.0, 1.0)
    extra = [("compliance (training samples)", [(r.index, r.compliance) for r in rounds if r.compliance is not None],
              share),
             ("held-out judge mean", [(h.x, v) for h in heldout if (v := _number(h.summary.get("judge_mean")))
                                      is not None], None),
             ("held-out compliance", [(h.x, v) for h in heldout if (v := _number(h.summary.get("compliance")))
                                      is not None], share)]
    return out + [row for row in extra if row[1]]


def _spend(rounds: list[RoundView]) -> list[tuple[str, int, float]]:
    tokens: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for r in rounds:
        for stage, n in (r.metrics.get("tokens") or {}).items():
            if isinstance(n, (int, float)):
                tokens[stage] = tokens.get(stage, 0) + int(n)
        for stage, s in (r.metrics.get("seconds") or {}).items():
            if isinstance(s, (int, float)):
                seconds[stage] = seconds.get(stage, 0.0) + float(s)
    return [(stage, tokens.get(stage, 0), seconds.get(stage, 0.0)) for stage in sorted(set(tokens) | set(seconds))]


def load_run(root: Path, name: str) -> RunView:
    """Everything the run page shows, read from the run folder."""
    path = run_dir(root, name)
    problems: list[str] = []
    config = _config(path, problems)
    research = config.get("research") if isinstance(config.get("research"), dict) else {}
    task = research.get("task") if research.get("task") in ("paper", "idea") else "paper"
    rounds, best, best_reward = [], None, None
    for index, rpath in _rounds(path):
        papers = _read_rows(rpath / "papers.jsonl", problems)
        reviews = {str(r.get("paper_id")): r for r in _read_rows(rpath / "reviews.jsonl", problems)}
        rows = [_paper_row(p, reviews.get(str(p.get("paper_id")), {})) for p in papers]
        for paper, row in zip(papers, rows):
            if row.reward is not None and (best_reward is None or row.reward > best_reward):
                best, best_reward = dict(paper, reward=row.reward), row.reward
        rows.sort(key=lambda row: (row.reward is None, -(row.reward or 0.0), row.paper_id))
        metrics = _metrics(rpath / "metrics.json", problems)
        rounds.append(RoundView(index, metrics is not None, metrics or {}, rows,
                                _read_rows(rpath / "pairs.jsonl", problems), _compliance(papers, task)))
    planned = config.get("rounds") if isinstance(config.get("rounds"), int) else None
    heldout = _heldout(path, problems)
    return RunView(name=path.name, config=config, rounds=rounds, going=_is_going(path, _rounds(path), planned),
                   problems=problems, series=_series(rounds, heldout), heldout=heldout, spend=_spend(rounds),
                   best=best,
                   has_plot=(path / "reward.png").is_file(), has_report=(path / "report.md").is_file())


def find_paper(root: Path, name: str, paper_id: str) -> tuple[dict, dict, int]:
    """(papers.jsonl row, reviews.jsonl row or {}, round) of one paper in a run; RunNotFound when absent."""
    path = run_dir(root, name)
    problems: list[str] = []
    for index, rpath in _rounds(path):
        for paper in _read_rows(rpath / "papers.jsonl", problems):
            if str(paper.get("paper_id")) == paper_id:
                review = next((r for r in _read_rows(rpath / "reviews.jsonl", problems)
                               if str(r.get("paper_id")) == paper_id), {})
                return paper, review, index
    raise RunNotFound(f"no paper {paper_id!r} in run {name!r}")


def pair_text(pair: dict, side: str) -> str:
    """The assistant text of one side of a preference pair ("chosen" or "rejected")."""
    value = pair.get(side, "")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
