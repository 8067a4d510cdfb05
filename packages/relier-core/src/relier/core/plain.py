"""Plain Celery messages in the ledger: the stored copy and how it is re-published.

A task of an installed Celery app that is not an ``@rl_task`` travels as Celery's own message
(arguments in its body, in whatever serializer the app uses). Relier records it at publish
time: the record's envelope is the *stored message*, the kombu message as the Redis transport
keeps it in a queue's list (JSON, body base64), sealed by ``relier.envelope`` like any
envelope. A re-publication (resurrection, lost message, release, promotion of a scheduled task)
pushes the stored message again, so the worker gets the very bytes the producer sent.

This module knows two things and no more: the byte layout of a sealed envelope, to take the
stored message out of it without verifying (the worker verifies at claim, where it matters;
``relier.envelope.sealing`` owns the layout and this mirrors it), and the JSON shape of a kombu
message, to address a copy to another queue. The stored message carries the placeholder header
``"rl_seq":0`` that every publishing script stamps (``lua/include/message.lua``).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

__all__ = ["SEQ_PLACEHOLDER", "readdress", "sealed_body", "stored_message"]

#: Header the publishing scripts stamp with the broker sequence (see relier.phoenix.broker).
SEQ_PLACEHOLDER = "rl_seq"

_MAGIC = b"RL"
_DIGEST_FORMAT = 2
_DIGEST_SIZE = 16
_MAC_SIZE = 32
_encoder = msgspec.json.Encoder()


def sealed_body(raw: bytes) -> bytes:
    """The body of a sealed envelope, unverified (b'' when ``raw`` is not one)."""
    if len(raw) < 4 or raw[:2] != _MAGIC:
        return b""
    kid_len = raw[3]
    if kid_len:
        return raw[4 + kid_len + _MAC_SIZE:]
    return raw[4 + (_DIGEST_SIZE if raw[2] == _DIGEST_FORMAT else 0):]


def stored_message(message: dict[str, Any]) -> bytes:
    """The compact JSON of a kombu message, with the sequence placeholder in its headers.

    Compact (no spaces) so that the placeholder is the exact ``"rl_seq":0`` the scripts look
    for; kombu reads any JSON back.
    """
    headers = dict(message.get("headers") or {})
    headers[SEQ_PLACEHOLDER] = 0
    return _encoder.encode({**message, "headers": headers})


def readdress(stored: bytes, queue: str) -> bytes:
    """A copy of a stored message addressed to ``queue``, with a fresh delivery tag.

    The worker reads the queue a message came from out of its ``delivery_info``; a message
    re-published to another queue (``re-queue`` after a resurrection) must say so, or its
    claim would look in the wrong queue's indexes.
    """
    message: dict[str, Any] = msgspec.json.decode(stored)
    properties = dict(message.get("properties") or {})
    info = dict(properties.get("delivery_info") or {})
    info["routing_key"] = queue
    info["exchange"] = ""
    properties["delivery_info"] = info
    properties["delivery_tag"] = str(uuid.uuid4())
    message["properties"] = properties
    headers = dict(message.get("headers") or {})
    headers[SEQ_PLACEHOLDER] = 0
    message["headers"] = headers
    return _encoder.encode(message)
