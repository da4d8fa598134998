"""AMQP topic matching, as RabbitMQ does it, for the in-memory broker.

Keys and patterns are dot-separated words. ``*`` matches exactly one word,
``#`` zero or more. An empty key is one empty word (RabbitMQ splits it that
way), so ``*`` matches ``""`` and ``#`` matches everything.
"""

from __future__ import annotations


class TopicPattern:
    """A compiled binding key; :meth:`matches` tests a routing key."""

    __slots__ = ("_words", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._words = tuple(pattern.split("."))

    def matches(self, routing_key: str) -> bool:
        words = routing_key.split(".")
        # Memo over (pattern index, key index): several `#` would otherwise
        # explore the same split points again and again.
        seen: set[tuple[int, int]] = set()
        return self._match(0, words, 0, seen)

    def _match(self, i: int, words: list[str], j: int, seen: set[tuple[int, int]]) -> bool:
        pattern = self._words
        while i < len(pattern):
            if (i, j) in seen:
                return False
            seen.add((i, j))
            word = pattern[i]
            if word == "#":
                if i == len(pattern) - 1:
                    return True
                return any(self._match(i + 1, words, k, seen) for k in range(j, len(words) + 1))
            if j >= len(words) or (word != "*" and word != words[j]):
                return False
            i += 1
            j += 1
        return j == len(words)

    def __repr__(self) -> str:
        return f"TopicPattern({self.pattern!r})"


def topic_matches(pattern: str, routing_key: str) -> bool:
    """True when ``routing_key`` matches the binding key ``pattern``."""
    return TopicPattern(pattern).matches(routing_key)


__all__ = ["TopicPattern", "topic_matches"]
