"""Canonical idempotency keys: the same task and arguments give the same key everywhere.

The key is the registered task name (never the bare function name, so two ``process`` tasks in
different modules cannot collide) plus a SHA-256 of the **bound** arguments in a canonical JSON
form. Bound: the call is first matched to the task's signature with its defaults applied
(``relier.tasks.calls.CallBinder``), so ``pay('acct', 5)``, ``pay('acct', amount=5)``,
``pay(account='acct', amount=5)`` and ``pay('acct')`` with ``amount=5`` as default are one
mapping ``{"account": "acct", "amount": 5}`` and one key. Canonical: object keys sorted at every
depth, compact separators, integers exact, floats in their shortest round-trip form. That
encoding is the same in every process, on every machine, and across Python hash seeds.
Arguments with no canonical form (a ``set``, whose order depends on the process; a
``datetime``; any object) are refused at dispatch with the argument named.

Keys carry the version of this derivation (``KEY_VERSION``, as ``rl:i:<task>:v2:<digest>``):
version 1 hashed the positional and keyword arguments as spelled. A key of one version never
equals a key of another, so keys written by older code are simply never found again and expire
with their TTL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from relier.core.codec import check_json_value
from relier.core.exceptions import IdempotencyKeyError
from relier.core.keys import Keys

__all__ = ["KEY_VERSION", "canonical_arguments", "idempotency_key"]

#: Version of the key derivation, part of every key. Bump it whenever the same call could get
#: a different digest (encoding or binding change), and say so in the changelog.
KEY_VERSION = 2

_encoder = msgspec.json.Encoder(order="sorted")


def canonical_arguments(arguments: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a call's bound arguments (parameter name -> value).

    Raises:
        IdempotencyKeyError: an argument has no canonical form (the message names it).
    """
    for name, value in arguments.items():
        check_json_value(value, f"argument {name!r}", IdempotencyKeyError)
    return _encoder.encode(dict(arguments))


def idempotency_key(task_name: str, arguments: Mapping[str, Any], keys: Keys | None = None
                    ) -> str:
    """The Redis key of an idempotent call of ``task_name``.

    ``arguments`` is the call bound to the task's signature with defaults applied
    (``TaskSpec.binder.bind(args, kwargs)``), not the arguments as the caller spelled them.
    """
    digest = hashlib.sha256(canonical_arguments(arguments)).hexdigest()[:32]
    return (keys or Keys()).idempotency(task_name, f"v{KEY_VERSION}:{digest}")
