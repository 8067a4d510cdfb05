"""Canonical idempotency keys: the same task and arguments give the same key everywhere.

The key is the registered task name (never the bare function name, so two ``process`` tasks in
different modules cannot collide) plus a SHA-256 of the arguments in a canonical JSON form:
object keys sorted at every depth, compact separators, integers exact, floats in their
shortest round-trip form. That encoding is the same in every process, on every machine, and
across Python hash seeds. Arguments with no canonical form (a ``set``, whose order depends on
the process; a ``datetime``; any object) are refused at dispatch with the argument named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from relier.core.codec import check_json_value
from relier.core.exceptions import IdempotencyKeyError
from relier.core.keys import Keys

__all__ = ["canonical_arguments", "idempotency_key"]

_encoder = msgspec.json.Encoder(order="sorted")


def canonical_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a call's arguments.

    Raises:
        IdempotencyKeyError: an argument has no canonical form (the message names it).
    """
    for i, value in enumerate(args):
        check_json_value(value, f"positional argument {i}", IdempotencyKeyError)
    for name, value in kwargs.items():
        check_json_value(value, f"argument {name!r}", IdempotencyKeyError)
    return _encoder.encode([list(args), dict(kwargs)])


def idempotency_key(task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                    keys: Keys | None = None) -> str:
    """The Redis key of an idempotent call of ``task_name``."""
    digest = hashlib.sha256(canonical_arguments(args, kwargs)).hexdigest()[:32]
    return (keys or Keys()).idempotency(task_name, digest)
