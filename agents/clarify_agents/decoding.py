"""Decoding rules applied on top of a policy's next-token distribution at evaluation time."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NoRepeatNgram"]


class NoRepeatNgram:
    """A decoding rule for test episodes: the agent never writes an n-gram it already wrote in
    the episode (in an earlier reply, counted with the ``n - 1`` prompt tokens before it, so with
    a reply prefill a reply cannot open as an earlier one did; or earlier in the current reply).
    Like ``generate(no_repeat_ngram_size=n)`` in transformers, but over the agent's own replies
    only: the task text and the user's answers may be quoted freely. Stop tokens are never
    banned. It changes the distribution sampled from, so it is for evaluation (``learn_ppo
    --eval-no-repeat-ngram``, ``HFAgent(no_repeat_ngram=n)``), not for PPO rollouts, whose
    log-probabilities must be the policy's own.

    >>> rule = NoRepeatNgram(2, [[5, 1, 2]])  # an earlier reply 1 2 after the prompt token 5
    >>> rule.banned([5]), rule.banned([1]), rule.banned([7])
    ({1}, {2}, set())
    >>> rule.add([5, 3])  # the current reply writes 3 after the prompt's 5
    >>> sorted(rule.banned([5]))
    [1, 3]
    """

    def __init__(self, n: int, segments: Sequence[Sequence[int]] = ()) -> None:
        if n < 1:
            raise ValueError(f"no-repeat n-gram size must be >= 1, got {n}")
        self.n = n
        self._next: dict[tuple[int, ...], set[int]] = {}
        for segment in segments:
            self.add(segment)

    def add(self, tokens: Sequence[int]) -> None:
        """Record every n-gram of ``tokens``."""
        n = self.n
        for end in range(n, len(tokens) + 1):
            self._next.setdefault(tuple(tokens[end - n : end - 1]), set()).add(tokens[end - 1])

    def banned(self, context: Sequence[int]) -> set[int]:
        """Tokens that would complete a recorded n-gram after ``context`` (its last n - 1)."""
        key = tuple(context[len(context) - self.n + 1 :]) if self.n > 1 else ()
        return self._next.get(key, set()) if len(key) == self.n - 1 else set()

    @classmethod
    def of_episode(
        cls, n: int, tokens: Sequence[int], policy_mask: Sequence[bool]
    ) -> NoRepeatNgram:
        """The rule for an episode's next reply: its earlier replies (runs of policy tokens),
        each with the ``n - 1`` tokens before it."""
        segments, start = [], None
        for i, policy in enumerate([*policy_mask, False]):
            if policy and start is None:
                start = i
            elif not policy and start is not None:
                segments.append(tokens[max(0, start - n + 1) : i])
                start = None
        return cls(n, segments)
