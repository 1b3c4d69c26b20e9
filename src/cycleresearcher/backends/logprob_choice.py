"""Choosing among allowed answers from a server's top log-probabilities (chat completions `top_logprobs`).

A local model scores each allowed answer exactly with one forward pass (local.py). A server only shows, at
each position of its own greedy reply, the few most likely next tokens. That is enough to rank the answers:

- find where the reply gives its answer: the first position from which the greedy tokens spell an allowed
  answer ("Your rating is 6": the "6"); when the reply never spells one, the position where the answers'
  first tokens carry the most probability;
- from there, walk the greedy reply; while it spells the start of an answer, add that token's log-probability;
- where an answer leaves the greedy path, add the log-probability of the token that would continue it, shown
  among the top tokens (an upper bound: later tokens are assumed certain);
- an answer that ends where the greedy reply goes on ("1" when the reply is "10") gets the probability of
  stopping there: 1 minus the mass of the tokens that would extend it into a longer answer;
- an answer whose token is not among the top ones gets at most the smallest shown log-probability.

Scores are conditional on the reply's lead-in ("Your rating is"); the greedy answer's score is exact when its
tokens are shown and the others are upper bounds, which is what the argmax needs. Leading whitespace is
skipped; matching ignores case when the answers do. This approximates, and can disagree with, the local
backend's exact score of "answer then end of turn": a server cannot be made to continue a given reply.
"""

from __future__ import annotations

import math
from typing import Sequence

Position = tuple[str, float, Sequence[tuple[str, float]]]  # (greedy token, its logprob, [(token, logprob)])

UNSEEN_MARGIN = 1e-3  # an unseen token scores just below the smallest shown one


def score_choices(positions: Sequence[Position], choices: Sequence[str]) -> list[float]:
    """One score (a log-probability, <= 0) per choice from the greedy reply's positions."""
    fold = len({c.casefold() for c in choices}) == len(choices)
    norm = (lambda s: s.casefold()) if fold else (lambda s: s)
    targets = [norm(c.strip()) for c in choices]
    path = list(positions[_answer_start(positions, targets, norm):])
    return [_score(path, target, targets, norm) for target in targets]


def _answer_start(positions: Sequence[Position], targets: list[str], norm) -> int:
    """Where the reply gives its answer: the first position from which the greedy tokens spell an answer,
    else the position where the answers' first tokens are most probable."""
    for k in range(len(positions)):
        spelled = ""
        for greedy, _, _ in positions[k:]:
            spelled = norm((spelled + greedy).lstrip())
            if not spelled or spelled in targets:
                break
            if not any(t.startswith(spelled) for t in targets):
                break
        if spelled and spelled in targets and positions[k][0].strip():
            return k
    if not positions:
        return 0

    def mass(k: int) -> float:
        greedy, greedy_lp, tops = positions[k]
        shown = {norm(t.strip()): lp for t, lp in list(tops) + [(greedy, greedy_lp)]}
        return sum(math.exp(lp) for t, lp in shown.items() if t and any(x.startswith(t) for x in targets))

    return max(range(len(positions)), key=lambda k: (mass(k), -k))


def _score(path: list[Position], target: str, targets: list[str], norm) -> float:
    total, consumed = 0.0, ""
    if not path:
        return -math.inf
    for k, (greedy, greedy_lp, tops) in enumerate(path):
        remaining = target[len(consumed):]
        shown = list(tops) + [(greedy, greedy_lp)]
        pieces: dict[str, float] = {}
        for token, lp in shown:
            piece = norm(token.lstrip() if not consumed else token)
            if piece and remaining.startswith(piece):
                pieces[piece] = max(pieces.get(piece, -math.inf), lp)  # the same token listed twice
        g = norm(greedy.lstrip() if not consumed else greedy)
        if g and g in pieces:  # the answer follows the greedy reply here
            total += pieces[g]
            consumed += g
            if consumed == target:
                return total + _stop_logprob(path[k + 1] if k + 1 < len(path) else None, target, targets, norm)
            continue
        if pieces:  # the answer leaves the greedy path with a shown token
            piece, lp = max(pieces.items(), key=lambda kv: (len(kv[0]), kv[1]))
            if any(t != target and t.startswith(consumed + piece) for t in targets):
                lp += math.log(0.5)  # another answer goes on with this token too ("1", "10"): split the mass
            return total + lp
        return total + min(lp for _, lp in shown) - UNSEEN_MARGIN
    return total  # the reply ended while spelling the answer: assume it continues


def _stop_logprob(next_position, target: str, targets: list[str], norm) -> float:
    """log P(the reply stops after `target`) = log(1 - mass of tokens extending it into a longer answer)."""
    if next_position is None:
        return 0.0
    greedy, greedy_lp, tops = next_position
    shown = {norm(t): lp for t, lp in list(tops) + [(greedy, greedy_lp)]}
    longer = sum(math.exp(lp) for t, lp in shown.items()
                 if t and any(o != target and o.startswith(target + t) for o in targets))
    return math.log(max(1e-12, 1.0 - min(longer, 1.0)))
