"""The keyring: envelope keys by id, one of them active.

New messages are encrypted with the active key; any key the ring holds
decrypts. That makes rotation three restarts with no lost message
(``docs/wire-format.md``): add the new key everywhere (decrypt-only), make it
active, then retire the old one once nothing in flight uses it.

Key material never reaches a repr, a log line or an error message: errors name
key *ids* or list positions, never the text of a key, and an entry that does
not parse is never echoed (it may be a key pasted in the wrong place).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from boson_shared.errors import ConfigError, UnknownKeyError

if TYPE_CHECKING:
    from boson_shared.settings import BosonSettings

KEY_BYTES = 32
"""Every key is 256 bits: AES-256-GCM and ChaCha20-Poly1305 both take it."""

KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
"""Key ids travel in the envelope header (one length byte, ASCII)."""

# Accept URL-safe base64 too: a key pasted from a tool that emits it is the same key.
_URLSAFE_TO_STD = str.maketrans("-_", "+/")


def _padded(text: str) -> str:
    """Base64 text with its ``=`` padding restored: keys are accepted with or without it."""
    return text + "=" * (-len(text) % 4) if not text.endswith("=") else text


def _is_key_id(text: str) -> bool:
    return KEY_ID_PATTERN.fullmatch(text) is not None


def _safe_id(text: str) -> str:
    """The id quoted for an error, or a placeholder when it may not be an id at all."""
    return repr(text) if _is_key_id(text) else "(not a valid key id)"


class Keyring:
    """Keys by id; the active one encrypts, any of them decrypts.

    Immutable: rotation is a configuration change and a restart, which keeps
    every codec built from one ring consistent for its whole life.
    """

    __slots__ = ("_active", "_keys")

    _keys: dict[str, bytes]
    _active: str

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str | None = None) -> None:
        if not keys:
            raise ConfigError("the keyring holds no key")
        held: dict[str, bytes] = {}
        for position, (key_id, key) in enumerate(keys.items(), start=1):
            if not isinstance(key_id, str) or not _is_key_id(key_id):
                raise ConfigError(
                    f"key {position}: its id must be 1-32 characters of [A-Za-z0-9_-]"
                )
            if len(key) != KEY_BYTES:
                raise ConfigError(f"key {key_id!r} must be {KEY_BYTES} bytes, it has {len(key)}")
            held[key_id] = bytes(key)
        active = next(iter(held)) if active_key_id is None else active_key_id
        if active not in held:
            raise ConfigError(
                f"active key id {_safe_id(active)} is not in the keyring "
                f"(it holds {', '.join(held)})"
            )
        self._keys = held
        self._active = active

    @classmethod
    def parse(cls, spec: str, active_key_id: str | None = None) -> Keyring:
        """Parse ``id:base64key[,id:base64key…]``; the first listed is active by default."""
        keys: dict[str, bytes] = {}
        entries = [entry.strip() for entry in spec.split(",")]
        for position, entry in enumerate(entries, start=1):
            where = f"BOSON_KEYS entry {position}"
            if not entry:
                raise ConfigError(f"{where} is empty (expected id:base64key)")
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                raise ConfigError(f"{where} has no ':' (expected id:base64key)")
            if not _is_key_id(key_id):
                raise ConfigError(
                    f"{where}: the id before ':' must be 1-32 characters of [A-Za-z0-9_-]"
                )
            if key_id in keys:
                raise ConfigError(f"{where}: key id {key_id!r} is listed twice")
            try:
                key = base64.b64decode(
                    _padded(encoded.strip().translate(_URLSAFE_TO_STD)), validate=True
                )
            except (binascii.Error, ValueError) as e:
                # binascii's message describes lengths and positions, never the text.
                raise ConfigError(f"{where}: key {key_id!r} is not valid base64") from e
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    f"{where}: key {key_id!r} must decode to {KEY_BYTES} bytes, "
                    f"it decodes to {len(key)}"
                )
            keys[key_id] = key
        return cls(keys, active_key_id)

    @classmethod
    def from_settings(cls, settings: BosonSettings) -> Keyring:
        """The ring configured by ``BOSON_KEYS`` and ``BOSON_ACTIVE_KEY_ID``.

        Raises :class:`ConfigError` when no key is configured: against a real
        broker a service must not invent one (docs/design.md#keys).
        """
        if settings.keys is None or not settings.keys.get_secret_value().strip():
            raise ConfigError(
                "no encryption key configured: set BOSON_KEYS (make one with `boson keys generate`)"
            )
        return cls.parse(settings.keys.get_secret_value(), settings.active_key_id)

    @classmethod
    def ephemeral(cls) -> Keyring:
        """A one-process ring with a fresh random key, for the embedded mode."""
        return cls({f"ephemeral-{secrets.token_hex(4)}": os.urandom(KEY_BYTES)})

    @property
    def active_key_id(self) -> str:
        """The id of the key new messages are encrypted with."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every id the ring can decrypt, in configuration order."""
        return tuple(self._keys)

    def key(self, key_id: str) -> bytes:
        """The key with this id; :class:`UnknownKeyError` naming the id if absent."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"no key with id {_safe_id(key_id)} in the keyring") from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r}, active_key_id={self._active!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write key material somewhere we do not control.
        raise TypeError("a Keyring cannot be pickled")


def generate_key_spec(key_id: str | None = None) -> str:
    """A fresh ``id:base64key`` line, exactly in the format ``BOSON_KEYS`` takes.

    The default id is ``k`` + today's UTC date + a random suffix, so ids sort by
    age and two operators generating on the same day do not collide.
    """
    if key_id is None:
        today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
        key_id = f"k{today}-{secrets.token_hex(3)}"
    elif not _is_key_id(key_id):
        raise ConfigError("a key id must be 1-32 characters of [A-Za-z0-9_-]")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode('ascii')}"


__all__ = ["KEY_BYTES", "KEY_ID_PATTERN", "Keyring", "generate_key_spec"]
