"""A custom handler module: name it with ``--handler-module examples.my_handlers``."""

from __future__ import annotations

from collections import Counter

from boson import TaskInput, handler


@handler("word_count", mode="inline")
def word_count(task: TaskInput) -> int:
    """Words in the task's data."""
    return len((task.data or b"").split())


@handler("top_words")
def top_words(task: TaskInput) -> list[tuple[str, int]]:
    """The ``n`` most frequent words (runs in a worker process)."""
    n = int(task.params.get("n", 5))
    words = (task.data or b"").decode("utf-8", errors="replace").lower().split()
    return Counter(words).most_common(n)
