"""The envelope: msgpack → zstd (only where it pays) → AEAD, in a versioned header.

``docs/wire-format.md`` is the normative description; this module implements
it. In short::

    b"BSN" | version=1 | flags | len | key id | len | kind | nonce (12)   ← header = AAD
    ciphertext || tag (16)

and the plaintext is (optionally a zstd frame of) the msgpack map
``{"v": schema_version, "items": [item, …]}`` whose items are the model dumps
without ``kind`` (the kind is in the header, where it is authenticated).

Every failure is a typed :class:`~boson_shared.errors.DecodeError` (dead-letter,
never requeue) or :class:`~boson_shared.errors.EncodeError`. Error text carries key
ids and sizes, never key material and never more than a short excerpt of a
payload.

The layout's constants and the :class:`Codec` Protocol are in
:mod:`~boson_shared.contract.envelope`, the header's slow-path checks in
:mod:`~boson_shared.contract.envelope_header`, compression in
:mod:`~boson_shared.contract.compression`; this module is the public face the
runtime, the services and the SDK import the codec from, and re-exports the
layout constants and :class:`Codec` for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgpack
from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from boson_shared.contract.compression import ThreadContexts, decompress_bounded, worth_compressing
from boson_shared.contract.envelope import (
    CIPHER_MASK,
    CIPHER_SHIFT,
    CIPHERS,
    FLAG_BATCH,
    FLAG_COMPRESSED,
    KIND_PATTERN,
    MAGIC,
    MIN_ENVELOPE_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    VERSION,
    Codec,
    NonceSequence,
)
from boson_shared.contract.envelope_header import AEAD, AEAD_CLASSES, Route, parse_header
from boson_shared.contract.keyring import KEY_ID_PATTERN, Keyring
from boson_shared.contract.messages import MESSAGE_TYPES, SCHEMA_VERSION, Message
from boson_shared.errors import (
    AuthenticationError,
    BadMagicError,
    ConfigError,
    EncodeError,
    MalformedPayloadError,
    OversizeError,
    SchemaError,
    TruncatedError,
    UnknownKeyError,
    UnknownKindError,
    UnsupportedVersionError,
)

if TYPE_CHECKING:
    from boson_shared.settings import BosonSettings

_HEADER_CACHE_LIMIT: Final = 1024
_EXCLUDE_KIND: Final[set[str]] = {"kind"}
_ERROR_TEXT_LIMIT: Final = 600
_SCHEMA_VERSIONS: Final = {kind: model.schema_version for kind, model in MESSAGE_TYPES.items()}


def _reject_ext(code: int, data: bytes) -> object:
    raise ValueError(f"msgpack extension type {code} is not part of the Boson wire format")


def _excerpt(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_validation(kind: str, index: int, error: ValidationError) -> str:
    """A short error text: locations and messages only, never the input values."""
    problems = error.errors(include_input=False, include_url=False, include_context=False)
    parts = [
        f"{'.'.join(_excerpt(str(part)) for part in problem['loc']) or '(item)'}: "
        f"{_excerpt(problem['msg'], 160)}"
        for problem in problems[:5]
    ]
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    text = f"{kind} item {index} does not validate: {'; '.join(parts)}{more}"
    return _excerpt(text, _ERROR_TEXT_LIMIT)


class EnvelopeCodec:
    """The Boson envelope (``docs/wire-format.md``); implements :class:`Codec`.

    Encrypts with the keyring's active key and the configured cipher; decrypts
    with whatever key id and cipher the header names, if the ring holds it.
    Thread-safe: per-thread zstd contexts, an atomic nonce counter.
    """

    def __init__(
        self,
        keyring: Keyring,
        *,
        cipher: str = "aes-256-gcm",
        max_message_bytes: int = 16 * 1024 * 1024,
        compress_min_bytes: int = 4096,
        zstd_level: int = 3,
    ) -> None:
        if cipher not in CIPHERS:
            raise ConfigError(f"unknown cipher {cipher!r}; choose one of {', '.join(CIPHERS)}")
        if max_message_bytes < 1024:
            raise ConfigError("max_message_bytes must be at least 1024")
        if compress_min_bytes < 0:
            raise ConfigError("compress_min_bytes must not be negative")
        if not 1 <= zstd_level <= 22:
            raise ConfigError("zstd_level must be between 1 and 22")
        self._keyring = keyring
        self._cipher_id = CIPHERS[cipher]
        self._flags = self._cipher_id << CIPHER_SHIFT
        self._max = max_message_bytes
        self._compress_min = max(compress_min_bytes, 1)
        self._threads = ThreadContexts(zstd_level)
        self._active_id = keyring.active_key_id.encode("ascii")
        self._sealer: AEAD = AEAD_CLASSES[self._cipher_id](keyring.key(keyring.active_key_id))
        self._openers: dict[tuple[int, bytes], AEAD] = {
            (self._cipher_id, self._active_id): self._sealer
        }
        self._headers: dict[tuple[str, int], bytes] = {}
        self._routes: dict[bytes, Route] = {}
        self._nonces = NonceSequence()

    @classmethod
    def from_settings(
        cls, settings: BosonSettings, keyring: Keyring | None = None
    ) -> EnvelopeCodec:
        """The codec the settings describe (keys from ``BOSON_KEYS`` unless given)."""
        return cls(
            Keyring.from_settings(settings) if keyring is None else keyring,
            cipher=settings.cipher,
            max_message_bytes=settings.max_message_bytes,
            compress_min_bytes=settings.compress_min_bytes,
            zstd_level=settings.zstd_level,
        )

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    @property
    def max_message_bytes(self) -> int:
        return self._max

    def __repr__(self) -> str:
        cipher = next(name for name, ident in CIPHERS.items() if ident == self._cipher_id)
        return (
            f"EnvelopeCodec(active_key_id={self._keyring.active_key_id!r}, "
            f"cipher={cipher!r}, max_message_bytes={self._max})"
        )

    # -- encoding ---------------------------------------------------------------

    def encode(self, messages: Sequence[Message]) -> bytes:
        """One envelope for ``messages`` (at least one, all of one kind)."""
        if not messages:
            raise EncodeError("an envelope carries at least one message")
        first = messages[0]
        kind = first.kind
        for message in messages:
            if message.kind != kind:
                raise EncodeError(
                    f"an envelope carries one kind: got {kind!r} and {message.kind!r}"
                )
        items = [m.model_dump(mode="python", exclude=_EXCLUDE_KIND) for m in messages]
        return self._seal(kind, type(first).schema_version, items)

    def encode_raw(self, kind: str, items: Sequence[Mapping[str, Any]]) -> bytes:
        """One envelope for plain item maps; they must not carry a ``kind`` key."""
        if not items:
            raise EncodeError("an envelope carries at least one item")
        for item in items:
            if "kind" in item:
                raise EncodeError("items carry no 'kind' key: the kind travels in the header")
        version = _SCHEMA_VERSIONS.get(kind, SCHEMA_VERSION)
        return self._seal(kind, version, items if isinstance(items, list) else list(items))

    def _seal(self, kind: str, version: int, items: list[Any]) -> bytes:
        threads = self._threads
        try:
            plain = threads.packer.pack({"v": version, "items": items})
        except (TypeError, ValueError, OverflowError) as e:
            raise EncodeError(f"a {_excerpt(kind)} item cannot be serialised: {e}") from e
        size = len(plain)
        if size > self._max:
            raise EncodeError(f"payload of {size} bytes exceeds max_message_bytes={self._max}")
        flags = self._flags
        if len(items) > 1:
            flags |= FLAG_BATCH
        if size >= self._compress_min and worth_compressing(threads.prober, plain):
            packed = threads.compressor.compress(plain)
            if len(packed) < size:
                plain = packed
                flags |= FLAG_COMPRESSED
        header = self._headers.get((kind, flags))
        if header is None:
            header = self._build_header(kind, flags)
        nonce = self._nonces.next()
        header += nonce
        envelope = header + self._sealer.encrypt(nonce, plain, header)
        if len(envelope) > self._max:
            raise EncodeError(
                f"envelope of {len(envelope)} bytes exceeds max_message_bytes={self._max}"
            )
        return envelope

    def _build_header(self, kind: str, flags: int) -> bytes:
        if KIND_PATTERN.fullmatch(kind) is None:
            raise EncodeError("a kind is 1-255 characters of [A-Za-z0-9._-]")
        kind_bytes = kind.encode("ascii")
        header = b"".join(
            (
                MAGIC,
                bytes((VERSION, flags, len(self._active_id))),
                self._active_id,
                bytes((len(kind_bytes),)),
                kind_bytes,
            )
        )
        if len(self._headers) < _HEADER_CACHE_LIMIT:
            self._headers[(kind, flags)] = header
        return header

    # -- decoding ---------------------------------------------------------------

    def decode(self, data: bytes) -> list[Message]:
        """The validated messages of one envelope."""
        kind, version, items = self._open(data)
        model = MESSAGE_TYPES.get(kind)
        if model is None:
            raise UnknownKindError(f"unknown message kind {kind!r}")
        if version != model.schema_version and version not in model.also_reads:
            readable = ", ".join(str(v) for v in sorted({model.schema_version, *model.also_reads}))
            raise SchemaError(
                f"{kind} schema version {version} is not a version this build reads ({readable})"
            )
        messages: list[Message] = []
        for index, item in enumerate(items):
            try:
                messages.append(model.model_validate(item))
            except ValidationError as e:
                raise SchemaError(_describe_validation(kind, index, e)) from e
        return messages

    def decode_raw(self, data: bytes) -> tuple[str, list[dict[str, Any]]]:
        """The authenticated kind and the plain item maps of one envelope."""
        kind, _, items = self._open(data)
        return kind, items

    def peek_kind(self, data: bytes) -> str | None:
        """The header's kind *without* authenticating it, or None if unreadable.

        Only for labelling dead letters: never trust it for processing.
        """
        try:
            _, _, _, kind = parse_header(data, self._max)
        except (BadMagicError, UnsupportedVersionError, TruncatedError, OversizeError):
            return None
        text = kind.decode("ascii", errors="replace")
        return text if KIND_PATTERN.fullmatch(text) else None

    def _opener(self, cipher_id: int, key_id: bytes) -> AEAD:
        opener = self._openers.get((cipher_id, key_id))
        if opener is None:
            name = key_id.decode("ascii", errors="replace")
            if KEY_ID_PATTERN.fullmatch(name) is None or name not in self._keyring:
                shown = repr(name) if KEY_ID_PATTERN.fullmatch(name) else "(not a valid key id)"
                raise UnknownKeyError(f"envelope key id {shown} is not in the keyring")
            opener = AEAD_CLASSES[cipher_id](self._keyring.key(name))
            self._openers[(cipher_id, key_id)] = opener
        return opener

    def _route(self, data: bytes) -> Route:
        """Check a header the slow way and remember the outcome for its prefix."""
        header_len, flags, key_id, kind_bytes = parse_header(data, self._max)
        opener = self._opener((flags & CIPHER_MASK) >> CIPHER_SHIFT, key_id)
        kind: str | None = kind_bytes.decode("ascii", errors="replace")
        if kind is not None and KIND_PATTERN.fullmatch(kind) is None:
            kind = None  # refused only after authentication, so the reason is trustworthy
        route = Route(
            header_len,
            bool(flags & FLAG_COMPRESSED),
            bool(flags & FLAG_BATCH),
            opener,
            kind,
            key_id.decode("ascii"),
        )
        if len(self._routes) < _HEADER_CACHE_LIMIT:
            self._routes[data[: header_len - NONCE_BYTES]] = route
        return route

    def _open(self, data: bytes) -> tuple[str, int, list[dict[str, Any]]]:
        size = len(data)
        if size > self._max:
            raise OversizeError(f"message of {size} bytes exceeds max_message_bytes={self._max}")
        if type(data) is not bytes:
            data = bytes(data)
        # Fast path: a header prefix seen before (same magic, flags, key id and
        # kind) was fully checked then; only its length bytes are read here.
        try:
            kind_at = 6 + data[5]
            route = self._routes.get(data[: kind_at + 1 + data[kind_at]])
        except IndexError:
            route = None
        if route is None:
            route = self._route(data)
        header_len = route.header_len
        if size < header_len + TAG_BYTES:
            raise TruncatedError(f"message of {size} bytes ends before its authentication tag")
        view = memoryview(data)
        try:
            plain = route.opener.decrypt(
                view[header_len - NONCE_BYTES : header_len], view[header_len:], view[:header_len]
            )
        except InvalidTag as e:
            raise AuthenticationError(
                f"authentication failed under key id {route.key_id!r}: "
                "wrong key, or the bytes were altered"
            ) from e
        kind = route.kind
        if kind is None:
            raise UnknownKindError("the header's kind is not a valid kind name")
        if route.compressed:
            plain = decompress_bounded(self._threads.decompressor, plain, self._max)
        try:
            payload = msgpack.unpackb(
                plain,
                raw=False,
                strict_map_key=True,
                ext_hook=_reject_ext,
                max_str_len=self._max,
                max_bin_len=self._max,
                max_array_len=self._max,
                max_map_len=self._max,
                # No extension type has a place in the payload. msgpack decodes
                # type -1 (timestamp) itself, without calling ext_hook, but it
                # checks every extension's length against this bound first:
                # 0 refuses them all, at no cost to payloads without any.
                max_ext_len=0,
            )
        except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
            raise MalformedPayloadError(f"the {kind} payload is not valid msgpack") from e
        try:
            if type(payload) is not dict or len(payload) != 2:
                raise KeyError("v")
            version, items = payload["v"], payload["items"]
        except KeyError:
            raise MalformedPayloadError(
                f"the {kind} payload is not a map of exactly 'v' and 'items'"
            ) from None
        if type(version) is not int or version < 1:
            raise MalformedPayloadError(f"the {kind} payload's 'v' is not a positive integer")
        if type(items) is not list or not items:
            raise MalformedPayloadError(f"the {kind} payload's 'items' is not a non-empty array")
        if (len(items) > 1) is not route.batch:
            raise MalformedPayloadError(
                f"the batch flag disagrees with the {len(items)} item(s) of the {kind} payload"
            )
        for item in items:
            if type(item) is not dict:
                raise MalformedPayloadError(f"a {kind} item is not a map")
        return kind, version, items


__all__ = [
    "CIPHERS",
    "FLAG_BATCH",
    "FLAG_COMPRESSED",
    "KIND_PATTERN",
    "MAGIC",
    "MIN_ENVELOPE_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "VERSION",
    "Codec",
    "EnvelopeCodec",
]
