"""Sealing: HMAC-SHA256 over the encoded envelope bytes, with key ids for rotation.

Wire format of a sealed envelope::

    b"RL" | format (1 byte, = 1) | kid length (1 byte) | kid | mac (32 bytes, absent when
    unsigned) | body (the envelope as JSON)

The MAC covers the format byte, the key id and the body, i.e. exactly the bytes that travel;
nothing is re-serialised before verification, so no value can change shape between signing and
checking (the earlier product hashed Python objects before encoding them).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable
from typing import Any

import msgspec

from relier.core.exceptions import PayloadIntegrityError
from relier.core.settings import Settings, get_settings
from relier.envelope.model import Envelope

__all__ = ["FORMAT", "MAGIC", "Keyring", "open_envelope", "peek_task_name", "seal"]

log = logging.getLogger("relier.envelope")

MAGIC = b"RL"
FORMAT = 1
_MAC_SIZE = 32

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


class Keyring:
    """The signing keys of a process: the first signs, every one verifies.

    Rotate by prepending a new key everywhere (producers then sign with it while workers still
    accept the old one), and drop the old key once no message signed with it remains.
    An empty keyring is development mode: envelopes are sealed unsigned, with a warning once
    per process, and only unsigned envelopes are accepted.
    """

    def __init__(self, keys: Iterable[tuple[str, bytes]] = ()) -> None:
        self._keys = dict(keys)
        self._signing = next(iter(self._keys.items()), None)
        # HMAC (RFC 2104) with the padded keys hashed once: per message only two SHA-256
        # copies remain, a third of what OpenSSL's one-shot HMAC costs on small payloads.
        self._pads = {kid: _pads(secret) for kid, secret in self._keys.items()}
        self._warned = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Keyring:
        """The keyring of ``RELIER_SIGNING_KEYS``."""
        return cls((settings or get_settings()).signing_key_pairs())

    @property
    def signing_kid(self) -> str | None:
        """Key id new envelopes are signed with, or None in development mode."""
        return self._signing[0] if self._signing else None

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id this keyring accepts."""
        return tuple(self._keys)

    def _warn_unsigned(self) -> None:
        with self._lock:
            if not self._warned:
                self._warned = True
                log.warning(
                    "RELIER_SIGNING_KEYS is empty: envelopes are NOT signed (development "
                    "mode). Set RELIER_SIGNING_KEYS='kid:secret' on every producer and worker."
                )

    def mac(self, kid: str, signed: bytes) -> bytes:
        """HMAC-SHA256 of ``signed`` under key ``kid``."""
        inner_pad, outer_pad = self._pads[kid]
        inner = inner_pad.copy()
        inner.update(signed)
        outer = outer_pad.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest


def _pads(secret: bytes) -> tuple[Any, Any]:
    block = hashlib.sha256().block_size
    if len(secret) > block:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in secret))
    return inner, outer


def seal(envelope: Envelope, keyring: Keyring) -> bytes:
    """Encode ``envelope`` and sign it with the keyring's first key."""
    body = _encoder.encode(envelope)
    kid = keyring.signing_kid
    if kid is None:
        keyring._warn_unsigned()
        return MAGIC + bytes((FORMAT, 0)) + body
    kid_bytes = kid.encode()
    head = bytes((FORMAT, len(kid_bytes))) + kid_bytes
    return MAGIC + head + keyring.mac(kid, head + body) + body


def open_envelope(raw: bytes, keyring: Keyring) -> Envelope:
    """Verify and decode a sealed envelope.

    Raises:
        PayloadIntegrityError: for any problem at all (never another exception), carrying
            ``raw`` so the dead-letter queue can keep the exact bytes.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise PayloadIntegrityError(f"expected bytes, got {type(raw).__name__}", b"")
    raw = bytes(raw)
    if len(raw) < 4 or raw[:2] != MAGIC:
        raise PayloadIntegrityError("not a Relier envelope (bad magic bytes)", raw)
    if raw[2] != FORMAT:
        raise PayloadIntegrityError(f"unknown envelope format {raw[2]}", raw)
    kid_len = raw[3]
    head_end = 4 + kid_len
    if kid_len == 0:
        if keyring.signing_kid is not None:
            raise PayloadIntegrityError(
                "unsigned envelope while RELIER_SIGNING_KEYS is set (forged or sent by a "
                "producer without keys)", raw,
            )
        body = raw[head_end:]
    else:
        if len(raw) < head_end + _MAC_SIZE:
            raise PayloadIntegrityError("truncated envelope", raw)
        try:
            kid = raw[4:head_end].decode()
        except UnicodeDecodeError:
            raise PayloadIntegrityError("key id is not text", raw) from None
        if kid not in keyring.kids:
            known = ", ".join(keyring.kids) or "none (development mode)"
            raise PayloadIntegrityError(
                f"signed with key id {kid!r}, which this process does not have (known: "
                f"{known}); add it to RELIER_SIGNING_KEYS", raw,
            )
        mac = raw[head_end:head_end + _MAC_SIZE]
        body = raw[head_end + _MAC_SIZE:]
        if not hmac.compare_digest(mac, keyring.mac(kid, raw[2:head_end] + body)):
            raise PayloadIntegrityError("signature mismatch (the payload was altered)", raw)
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise PayloadIntegrityError(f"body does not decode: {exc}", raw) from None


def peek_task_name(raw: bytes) -> str:
    """Best-effort task name of a sealed envelope, without verifying it (for error reports)."""
    try:
        start = 4 + raw[3] + (_MAC_SIZE if raw[3] else 0)
        name = msgspec.json.decode(raw[start:])[0]
        return name if isinstance(name, str) else "unknown"
    except Exception:
        return "unknown"
