"""Sealing: every envelope carries a tag over its exact bytes; keys make the tag an HMAC.

Wire format of a sealed envelope::

    signed:    b"RL" | 1 | kid length | kid | HMAC-SHA256 (32 bytes) | body
    unsigned:  b"RL" | 2 | 0 | BLAKE2b-128 digest (16 bytes) | body
    legacy:    b"RL" | 1 | 0 | body        (unsigned, written before digests; no tag)

``body`` is the envelope as JSON. The tag covers the format byte, the key id (length and
bytes) and the body, i.e. exactly the bytes that travel; nothing is re-serialised before
verification, so no value can change shape between sealing and checking (the earlier product
hashed Python objects before encoding them).

The unsigned digest detects corruption and casual edits of a stored envelope (one changed
character of an argument in ``rl:e:{id}``), not forgery: whoever can write Redis can recompute
it. Only an HMAC key (``RELIER_SIGNING_KEYS``) stops a forger. Signed envelopes keep format 1
byte for byte, so signed producers and workers of either version interoperate. Legacy unsigned
envelopes (no tag at all) are opened only by a keyring that accepts them
(``RELIER_ACCEPT_UNSIGNED``, like plain Celery messages).
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

__all__ = [
    "DIGEST_SIZE",
    "FORMAT",
    "FORMAT_DIGEST",
    "MAGIC",
    "Keyring",
    "open_bytes",
    "open_envelope",
    "peek_task_name",
    "seal",
    "seal_bytes",
]

log = logging.getLogger("relier.envelope")

MAGIC = b"RL"
#: Signed envelopes (HMAC-SHA256 tag), and legacy unsigned ones (no tag) written before digests.
FORMAT = 1
#: Unsigned envelopes with a BLAKE2b-128 digest tag.
FORMAT_DIGEST = 2
#: Bytes of the unsigned digest: 128 bits make an undetected random corruption negligible.
DIGEST_SIZE = 16
_MAC_SIZE = 32

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


class Keyring:
    """The signing keys of a process: the first signs, every one verifies.

    Rotate by prepending a new key everywhere (producers then sign with it while workers still
    accept the old one), and drop the old key once no message signed with it remains.
    An empty keyring is development mode: envelopes are sealed unsigned (with a digest), with a
    warning once per process, and only unsigned envelopes are accepted.

    Args:
        keys: ``(kid, secret)`` pairs, the first one signing.
        accept_legacy: Also open legacy unsigned envelopes that carry no digest (written before
            digests existed). ``from_settings`` follows ``RELIER_ACCEPT_UNSIGNED``; off by
            default, since such an envelope has no integrity check at all.
    """

    def __init__(self, keys: Iterable[tuple[str, bytes]] = (), *,
                 accept_legacy: bool = False) -> None:
        self._keys = dict(keys)
        self.accept_legacy = accept_legacy
        self._signing = next(iter(self._keys.items()), None)
        # HMAC (RFC 2104) with the padded keys hashed once: per message only two SHA-256
        # copies remain, a third of what OpenSSL's one-shot HMAC costs on small payloads.
        self._pads = {kid: _pads(secret) for kid, secret in self._keys.items()}
        self._warned = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Keyring:
        """The keyring of ``RELIER_SIGNING_KEYS`` (and ``RELIER_ACCEPT_UNSIGNED``)."""
        settings = settings or get_settings()
        return cls(settings.signing_key_pairs(), accept_legacy=settings.accept_unsigned)

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
                    "mode; a digest detects corruption, not forgery). Set "
                    "RELIER_SIGNING_KEYS='kid:secret' on every producer and worker."
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


_DIGEST_HEAD = bytes((FORMAT_DIGEST, 0))
# The digest covers the head (format byte, kid length 0) and the body; the head's state is
# computed once and copied per message, sparing a concatenation of the body.
_DIGEST_BASE = hashlib.blake2b(_DIGEST_HEAD, digest_size=DIGEST_SIZE)


def _digest(body: bytes) -> bytes:
    state = _DIGEST_BASE.copy()
    state.update(body)
    return state.digest()


def seal(envelope: Envelope, keyring: Keyring) -> bytes:
    """Encode ``envelope`` and sign it with the keyring's first key (digest it without keys)."""
    return seal_bytes(_encoder.encode(envelope), keyring)


def seal_bytes(body: bytes, keyring: Keyring) -> bytes:
    """Seal ``body`` as it is (a plain Celery message of an installed app, say)."""
    kid = keyring.signing_kid
    if kid is None:
        keyring._warn_unsigned()
        return MAGIC + _DIGEST_HEAD + _digest(body) + body
    kid_bytes = kid.encode()
    head = bytes((FORMAT, len(kid_bytes))) + kid_bytes
    return MAGIC + head + keyring.mac(kid, head + body) + body


def open_envelope(raw: bytes, keyring: Keyring) -> Envelope:
    """Verify and decode a sealed envelope.

    Raises:
        PayloadIntegrityError: for any problem at all (never another exception), carrying
            ``raw`` so the dead-letter queue can keep the exact bytes.
    """
    body = open_bytes(raw, keyring)
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise PayloadIntegrityError(f"body does not decode: {exc}", bytes(raw)) from None


def open_bytes(raw: bytes, keyring: Keyring) -> bytes:
    """Verify a sealed envelope and return its body, undecoded (see ``open_envelope``).

    Raises:
        PayloadIntegrityError: the tag does not verify, or ``raw`` is not a sealed envelope.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise PayloadIntegrityError(f"expected bytes, got {type(raw).__name__}", b"")
    raw = bytes(raw)
    if len(raw) < 4 or raw[:2] != MAGIC:
        raise PayloadIntegrityError("not a Relier envelope (bad magic bytes)", raw)
    if raw[2] not in (FORMAT, FORMAT_DIGEST):
        raise PayloadIntegrityError(
            f"unknown envelope format {raw[2]} (corrupted, or sealed by a newer Relier: "
            "upgrade workers before producers)", raw,
        )
    kid_len = raw[3]
    head_end = 4 + kid_len
    if kid_len == 0:
        if keyring.signing_kid is not None:
            raise PayloadIntegrityError(
                "unsigned envelope while RELIER_SIGNING_KEYS is set (forged or sent by a "
                "producer without keys)", raw,
            )
        if raw[2] == FORMAT_DIGEST:
            if len(raw) < 4 + DIGEST_SIZE:
                raise PayloadIntegrityError("truncated envelope", raw)
            body = raw[4 + DIGEST_SIZE:]
            if not hmac.compare_digest(raw[4:4 + DIGEST_SIZE], _digest(body)):
                raise PayloadIntegrityError(
                    "digest mismatch (the stored payload was altered or corrupted)", raw,
                )
        elif keyring.accept_legacy:
            body = raw[head_end:]
        else:
            raise PayloadIntegrityError(
                "legacy unsigned envelope without a digest (sealed before digests existed, or "
                "forged) while RELIER_ACCEPT_UNSIGNED=false; dispatch the work again", raw,
            )
    elif raw[2] == FORMAT_DIGEST:
        raise PayloadIntegrityError("digest envelope with a key id (corrupted)", raw)
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
    return body


def peek_task_name(raw: bytes) -> str:
    """Best-effort task name of a sealed envelope, without verifying it (for error reports)."""
    try:
        start = 4 + raw[3] + (_MAC_SIZE if raw[3] else 0)
        if raw[2] == FORMAT_DIGEST:
            start += DIGEST_SIZE
        name = msgspec.json.decode(raw[start:])[0]
        return name if isinstance(name, str) else "unknown"
    except Exception:
        return "unknown"
