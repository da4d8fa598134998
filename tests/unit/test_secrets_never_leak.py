"""Key material never reaches error text, reprs, logs or the terminal.

Two realistic failures are provoked: a decode with the wrong key, and
settings whose key spec is malformed. Everything they leave behind is
scanned for the key: the exception's str and repr, the full formatted
traceback with its chained causes, what the logging and print paths captured,
and the reprs of the objects involved. The key is searched for raw, in hex
(both cases) and in base64 (standard, URL-safe, unpadded).
"""

from __future__ import annotations

import base64
import logging
import traceback

import pytest
from pydantic import SecretStr

from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.contract.messages import TaskSubmitted
from boson_shared.errors import AuthenticationError, ConfigError
from boson_shared.settings import BosonSettings

logger = logging.getLogger(__name__)

WRITER_KEY = bytes.fromhex("5a" * 16 + "c3" * 16)
READER_KEY = bytes(range(200, 232))


def forms(secret: bytes) -> list[str]:
    """Every way the secret could show up in text."""
    standard = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode()
    return [
        secret.decode("latin-1"),
        repr(secret),
        secret.hex(),
        secret.hex().upper(),
        secret.hex(" "),
        standard,
        standard.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
        str(list(secret)),
    ]


def assert_absent(secret: bytes, *texts: str) -> None:
    haystack = "\n".join(texts)
    for form in forms(secret):
        assert form not in haystack, "key material leaked"


def everything_about(error: BaseException) -> list[str]:
    return [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        *(repr(arg) for arg in error.args),
    ]


def task() -> TaskSubmitted:
    return TaskSubmitted(task_id="t1", handler="noop", reply_to="c1")


def test_self_check_the_scanner_finds_a_leak() -> None:
    for leaked in forms(READER_KEY):
        with pytest.raises(AssertionError):
            assert_absent(READER_KEY, f"oops {leaked} oops")


def test_wrong_key_decode_leaks_no_key(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    writer = EnvelopeCodec(Keyring({"shared-id": WRITER_KEY}))
    reader = EnvelopeCodec(Keyring({"shared-id": READER_KEY}))
    envelope = writer.encode([task()])
    with pytest.raises(AuthenticationError) as caught:
        reader.decode(envelope)
    # What a consumer boundary does with it: log it with the traceback, show it.
    logger.exception("dead-lettering message", exc_info=caught.value)
    logger.warning("decode failed: %s (%r)", caught.value, caught.value)
    print(f"error: {caught.value}")
    captured = capsys.readouterr()
    texts = [
        *everything_about(caught.value),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
        captured.out,
        captured.err,
        repr(reader),
        repr(writer),
        repr(reader.keyring),
        str(reader.keyring),
    ]
    assert "'shared-id'" in str(caught.value)  # the id, which is what an operator needs
    for key in (READER_KEY, WRITER_KEY):
        assert_absent(key, *texts)


@pytest.mark.parametrize(
    "spec",
    [
        # Key and id swapped: the "id" is the key.
        f"{base64.b64encode(READER_KEY).decode()}:k1",
        # No id at all.
        base64.b64encode(READER_KEY).decode(),
        # One byte short.
        f"k1:{base64.b64encode(READER_KEY[:31]).decode()}",
        # One byte too many.
        f"k1:{base64.b64encode(READER_KEY + b'x').decode()}",
        # Corrupted base64.
        f"k1:{base64.b64encode(READER_KEY).decode()[:-2]}!!",
        # A good key, then a broken entry.
        f"k1:{base64.b64encode(READER_KEY).decode()},k2",
        # Duplicate ids.
        f"k1:{base64.b64encode(READER_KEY).decode()},k1:{base64.b64encode(READER_KEY).decode()}",
    ],
)
def test_failing_settings_load_leaks_no_key(
    spec: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = BosonSettings(keys=SecretStr(spec))
    with pytest.raises(ConfigError) as caught:
        Keyring.from_settings(settings)
    logger.exception("cannot start", exc_info=caught.value)
    print(f"boson: ConfigError: {caught.value}")
    captured = capsys.readouterr()
    texts = [
        *everything_about(caught.value),
        caplog.text,
        captured.out,
        captured.err,
        repr(settings),
        str(settings),
        repr(settings.model_dump()),
    ]
    # The partial keys of the short and corrupted specs are secrets too.
    for secret in (READER_KEY, READER_KEY[:31], READER_KEY[:30]):
        assert_absent(secret, *texts)
    assert spec not in "\n".join(texts)


def test_failing_active_key_id_leaks_no_key() -> None:
    good = base64.b64encode(READER_KEY).decode()
    settings = BosonSettings(keys=SecretStr(f"k1:{good}"), active_key_id=good)
    with pytest.raises(ConfigError) as caught:
        Keyring.from_settings(settings)
    assert_absent(READER_KEY, *everything_about(caught.value))
