"""Reading the record's answers, for every reader (the CLI's, the dashboard's).

A :class:`RecordReply` carries its error as a code; each code is one typed
error here, so every reader raises the same one for the same answer.
"""

from __future__ import annotations

from boson_shared.contract.messages import RecordReply
from boson_shared.errors import InvalidQueryError, RecordUnavailableError, TaskNotFoundError


def raise_for(reply: RecordReply) -> None:
    """Raise the typed error ``reply`` carries; nothing if it has none."""
    if reply.error == "not-found":
        raise TaskNotFoundError(reply.detail)
    if reply.error == "bad-query":
        raise InvalidQueryError(reply.detail)
    if reply.error == "unavailable":
        raise RecordUnavailableError(reply.detail)


def first_problem(error: ValueError) -> str:
    """The first field a query's validation refused, as ``field: why``."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        problems = errors(include_input=False, include_url=False, include_context=False)
        if problems:
            first = problems[0]
            return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(error).splitlines()[0]


__all__ = ["first_problem", "raise_for"]
