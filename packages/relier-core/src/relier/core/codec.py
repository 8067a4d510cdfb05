"""JSON encoding of results and checkpoints, shared by every package that stores them.

Results and checkpoints are JSON (msgspec) so that any process, the CLI and ``redis-cli`` can
read them. A value JSON cannot represent fails loudly here, before any state changes.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

__all__ = ["check_json_value", "decode", "encode", "text"]

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


def check_json_value(value: Any, where: str, error: type[TypeError] = TypeError) -> None:
    """Refuse ``value`` unless it is a JSON value that comes back as the same value.

    Task arguments must: JSON would turn a ``datetime`` into a string and a ``set`` into a
    list without a word, and a ``set`` has no stable order to hash for an idempotency key.
    The envelope and the idempotency key both check with this one walk.

    Raises:
        error: ``value`` (or something inside it, named by ``where``) is not a JSON value.
    """
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{where} is {value}, which JSON cannot carry; pass None or a string")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json_value(item, f"{where}[{i}]", error)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"{where} has a non-str key {key!r}; JSON objects take str keys")
            check_json_value(item, f"{where}[{key!r}]", error)
        return
    hint = " (sets have no stable order: pass sorted(...))" if isinstance(
        value, set | frozenset) else ""
    raise error(
        f"{where} is a {type(value).__name__}, which would not arrive as the same type{hint}. "
        "Pass JSON values (str, int, float, bool, None, list, dict), e.g. dt.isoformat() or "
        "str(uuid)."
    )


def decode(data: bytes) -> Any:
    """Decode JSON bytes written by ``encode``."""
    return _decoder.decode(data)


def text(value: Any) -> str:
    """A Redis reply as text (replies are bytes: Relier's clients do not decode).

    The one bytes-to-text helper of every package: ``None`` (a missing field) is ``''``, and
    bytes that are not UTF-8 (a field written by something else) decode with replacement
    characters rather than fail a listing.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode(errors="replace")
    return str(value)
