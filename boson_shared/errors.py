"""Every error Boson raises, rooted at :class:`BosonError`.

The classes are split by what the *caller* should do, not by where they come
from (docs/design.md#errors):

* :class:`DecodeError` and its children — the bytes can never become a valid
  message. Dead-letter them at once; never requeue.
* :class:`TransientError` — the operation may succeed later. Retry with delay.
* :class:`ConfigError` — the process cannot run as configured. Exit at start.
* :class:`TaskError` — a task's own handler failed; retried by the executor,
  then reported as a failed result.

Error text never contains key material: callers pass key *ids*, never keys.
"""

from __future__ import annotations


class BosonError(Exception):
    """Root of every error Boson raises on purpose."""


class ConfigError(BosonError):
    """The configuration cannot work; the service exits at start."""


class TransientError(BosonError):
    """A temporary failure (broker away, timeout); retry with delay."""


class BrokerUnavailableError(TransientError):
    """The broker could not be reached or the connection dropped."""


class PublishNotConfirmedError(TransientError):
    """The broker did not confirm a publish (nack, return or timeout)."""


class UnroutableError(PublishNotConfirmedError):
    """A ``mandatory`` publish routed to no queue: the broker returned it.

    Nothing consumes that route yet (its queue is not declared, or expired).
    The message was not delivered anywhere; publish again once the queue exists.
    """


class DecodeError(BosonError):
    """Bytes that can never become a valid message: dead-letter, never requeue.

    ``reason`` is a short machine-readable token that goes into the
    dead-letter headers (``x-boson-reason``).
    """

    reason: str = "decode"


class BadMagicError(DecodeError):
    """The bytes do not start with the Boson envelope magic."""

    reason = "bad-magic"


class UnsupportedVersionError(DecodeError):
    """The envelope version is one this build does not know."""

    reason = "unsupported-version"


class TruncatedError(DecodeError):
    """The envelope ends before its header or authentication tag does."""

    reason = "truncated"


class OversizeError(DecodeError):
    """The message exceeds the maximum message size."""

    reason = "oversize"


class DecompressionBombError(DecodeError):
    """The compressed payload would expand past the allowed size."""

    reason = "decompression-bomb"


class UnknownKeyError(DecodeError):
    """The envelope names a key id this keyring does not hold."""

    reason = "unknown-key"


class AuthenticationError(DecodeError):
    """The AEAD tag did not verify: wrong key, or the bytes were tampered with."""

    reason = "authentication"


class MalformedPayloadError(DecodeError):
    """The decrypted payload is not valid msgpack or not the expected shape."""

    reason = "malformed-payload"


class UnknownKindError(DecodeError):
    """The message kind is not one this build knows."""

    reason = "unknown-kind"


class SchemaError(DecodeError):
    """The payload decoded but does not validate against its message model."""

    reason = "schema"


class InvalidTaskError(BosonError, ValueError):
    """A task the client was asked to submit breaks the schema; nothing was published."""


class EncodeError(BosonError):
    """A message could not be encoded (too large, or not serialisable)."""


class TaskError(BosonError):
    """A task handler failed. Retried with backoff, then a failed result."""


class TaskTimeoutError(TaskError):
    """A task ran past its timeout."""


class PermanentTaskError(TaskError):
    """A task failure no retry can fix: reported as failed at once."""


class UnknownHandlerError(PermanentTaskError):
    """The task names a handler that is not registered. Never retried."""


class InvalidTaskInputError(PermanentTaskError):
    """The task's data or parameters are unusable by its handler. Never retried."""


class InvalidTaskOutputError(PermanentTaskError):
    """The handler's return value cannot travel (not serialisable, or too large)."""


class UnplaceableTaskError(BosonError):
    """The task's demand exceeds every node's total capacity: it can never run."""


class NoAnswerError(BosonError):
    """The cluster did not answer in time (no monitor, no scheduler, nothing consuming)."""


class TaskFailedError(BosonError):
    """Raised by the client SDK when awaiting the result of a failed task."""

    def __init__(self, task_id: str, error_type: str, message: str) -> None:
        super().__init__(f"task {task_id} failed: {error_type}: {message}")
        self.task_id = task_id
        self.error_type = error_type
        self.message = message


class TaskCancelledError(TaskFailedError):
    """Raised by the client SDK when awaiting the output of a cancelled task."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id, "cancelled", "the task was cancelled")


class RecordError(BosonError):
    """A question to the task record that cannot be answered as asked."""


class TaskNotFoundError(RecordError, LookupError):
    """The record holds no task with this id (never submitted, or expired)."""


class InvalidQueryError(RecordError, ValueError):
    """A malformed filter or cursor: nothing was looked up."""


class RecordUnavailableError(TransientError):
    """The record's database does not answer now; the question may be asked again."""


__all__ = [
    "AuthenticationError",
    "BadMagicError",
    "BosonError",
    "BrokerUnavailableError",
    "ConfigError",
    "DecodeError",
    "DecompressionBombError",
    "EncodeError",
    "InvalidQueryError",
    "InvalidTaskError",
    "InvalidTaskInputError",
    "InvalidTaskOutputError",
    "MalformedPayloadError",
    "NoAnswerError",
    "OversizeError",
    "PermanentTaskError",
    "PublishNotConfirmedError",
    "RecordError",
    "RecordUnavailableError",
    "SchemaError",
    "TaskCancelledError",
    "TaskError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskTimeoutError",
    "TransientError",
    "TruncatedError",
    "UnknownHandlerError",
    "UnknownKeyError",
    "UnknownKindError",
    "UnplaceableTaskError",
    "UnroutableError",
    "UnsupportedVersionError",
]
