"""How closely a simulated user's citations follow gold labels: pure metric functions.

Used by :mod:`clarify_bench.studies.user_fidelity`. Each label is answered from a fresh episode (nothing
elicited yet), so the per-question new-info reward is ``|A(q) ∩ H| / |H|`` for the user and
``|gold ∩ H| / |H|`` for the label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Outcome", "fidelity", "spearman"]

#: The env user's answer kinds, as the labels name them (an error counts as wrong).
_KIND = {"answer": "answer", "pointer": "pointer", "nothing": "nothing", "unclear": "unclear"}


@dataclass(frozen=True)
class Outcome:
    """One label answered by one user."""

    type: str
    gold_kind: str
    kind: str
    gold_hidden: frozenset[int]
    hidden: frozenset[int]
    num_hidden: int


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get their average rank); ``None`` when either side is
    constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> round(spearman([0, 0, 1, 2], [0, 1, 1, 2]), 3)
    0.833
    """
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of the same length")
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / (vx * vy) ** 0.5


def fidelity(outcomes: Iterable[Outcome]) -> dict[str, float | int | None]:
    """Micro-averaged precision / recall / F1 of cited hidden ids, answer-kind accuracy, and
    Spearman / MAE of the per-question new-info reward.

    >>> o = [Outcome("t", "answer", "answer", frozenset({1, 2}), frozenset({2, 3}), 4),
    ...      Outcome("t", "unclear", "nothing", frozenset(), frozenset(), 4)]
    >>> m = fidelity(o)
    >>> m["hidden_precision"], m["hidden_recall"], m["kind_accuracy"], m["reward_mae"]
    (0.5, 0.5, 0.5, 0.0)
    """
    rows = list(outcomes)
    tp = sum(len(o.hidden & o.gold_hidden) for o in rows)
    cited = sum(len(o.hidden) for o in rows)
    gold = sum(len(o.gold_hidden) for o in rows)
    precision = tp / cited if cited else (1.0 if not gold else 0.0)
    recall = tp / gold if gold else (1.0 if not cited else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kind_ok = sum(1 for o in rows if _KIND.get(o.kind) == o.gold_kind)
    user_r = [len(o.hidden) / o.num_hidden for o in rows]
    gold_r = [len(o.gold_hidden) / o.num_hidden for o in rows]
    rho = spearman(user_r, gold_r) if rows else None
    return {
        "labels": len(rows),
        "hidden_precision": round(precision, 4),
        "hidden_recall": round(recall, 4),
        "hidden_f1": round(f1, 4),
        "kind_accuracy": round(kind_ok / len(rows), 4) if rows else None,
        "reward_spearman": None if rho is None else round(rho, 4),
        "reward_mae": round(
            sum(abs(a - b) for a, b in zip(user_r, gold_r, strict=True)) / len(rows), 4
        )
        if rows
        else None,
    }
