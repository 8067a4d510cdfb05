"""JSON encoding of results and checkpoints, shared by every package that stores them.

Results and checkpoints are JSON (msgspec) so that any process, the CLI and ``redis-cli`` can
read them. A value JSON cannot represent fails loudly here, before any state changes.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["decode", "encode", "text"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode(value: Any, what: str = "value") -> bytes:
    """Encode ``value`` as JSON bytes.

    Raises:
        TypeError: ``value`` (or something inside it) has no JSON form; the message names it.
    """
    try:
        return _encoder.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(
            f"{what} is not JSON-serialisable ({exc}); return or store dicts, lists, str, "
            "int, float, bool or None"
        ) from None


def decode(data: bytes) -> Any:
    """Decode JSON bytes written by ``encode``."""
    return _decoder.decode(data)


def text(value: Any) -> str:
    """A Redis reply as text (replies are bytes: Relier's clients do not decode)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()
    return str(value)
