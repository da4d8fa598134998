"""A custom handler module: name it with ``--handler-module examples.my_handlers``."""

from __future__ import annotations

import time
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


@handler("slow_count", mode="thread")
def slow_count(task: TaskInput) -> int:
    """Counts to ``n`` slowly, reporting progress; stops early once cancelled."""
    total = int(task.params.get("n", 100))
    for done in range(total):
        if task.cancelled:  # thread and coroutine handlers poll this
            break
        task.progress(done / total, f"{done} of {total}")
        print(f"counted {done}")
        time.sleep(0.05)
    return total
