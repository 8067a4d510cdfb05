"""Broker messages: the Celery protocol-2 message Relier publishes for a task.

A Relier message is a *doorbell*: it names the task (Celery's ``task`` and ``id`` headers) and
carries no arguments. The signed envelope lives in the task's ledger record, written in the same
atomic call that pushes this message, and the worker reads it back when it claims the task.
So a payload is stored once, a re-publication (resurrection, lost-message recovery, release)
never needs to read the payload, and a message forged in the broker carries nothing to run.

The message is what kombu's Redis transport itself pushes for ``apply_async`` with the default
exchange (routing key = queue, priority 0, body base64-encoded), so a stock Celery worker
consumes it; a test compares it field by field with kombu's own.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping

import msgspec

__all__ = [
    "IDEM_HEADER",
    "RELIER_HEADER",
    "SEQ_HEADER",
    "build_message",
    "kombu_message",
    "stamp_seq",
]

#: Header that marks a message as a Relier doorbell.
RELIER_HEADER = "rl"
#: Header carrying the idempotency key. It is unsigned, so it is only a guess that lets the
#: claim declare the record's key in its first call: the claim script acts on the key stored in
#: the record and refuses (reply ``rekey``) when the header names any other.
IDEM_HEADER = "rl_idem"
#: Header carrying the broker sequence of this publication (stamped when the sequence is taken,
#: see ``stamp_seq``). The claim moves the queue's claimed watermark only for the message whose
#: sequence is the one the record waits for, so a stale duplicate cannot move it.
SEQ_HEADER = "rl_seq"
#: Header carrying the W3C traceparent, so the worker's span joins the dispatcher's trace
#: before the envelope is even read.
TRACE_HEADER = "rl_trace"

# Celery protocol 2 body: (args, kwargs, embed). Arguments travel in the ledger, not here.
_BODY = base64.b64encode(
    msgspec.json.encode([[], {}, {"callbacks": None, "errbacks": None, "chain": None,
                                  "chord": None}])
).decode()

_encoder = msgspec.json.Encoder()


_SEQ_PLACEHOLDER = re.compile(rb'"rl_seq":0([,}])')


def stamp_seq(message: bytes, seq: int) -> bytes:
    """``message`` with its sequence header set to ``seq`` (as ``lua/include/message.lua``).

    JSON escapes every quote inside string values, so only the header itself can match.
    """
    return _SEQ_PLACEHOLDER.sub(rb'"rl_seq":%d\1' % seq, message, count=1)


def build_message(task_id: str, task_name: str, queue: str, idem_key: str = "",
                  traceparent: str = "") -> bytes:
    """The kombu message that makes a worker run ``task_name`` for ``task_id``."""
    headers: dict[str, object] = {
        "lang": "py",
        "task": task_name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "(relier)",
        "kwargsrepr": "{}",
        "origin": "relier",
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        RELIER_HEADER: 1,
        # Placeholder, stamped with the real sequence by the script that takes it (fused
        # broker) or by ``stamp_seq`` (separate broker). 0 never names a real sequence.
        SEQ_HEADER: 0,
    }
    if idem_key:
        headers[IDEM_HEADER] = idem_key
    if traceparent:
        headers[TRACE_HEADER] = traceparent
    return kombu_message(_BODY, headers, queue, correlation_id=task_id)


def kombu_message(body_base64: str, headers: Mapping[str, object], queue: str, *,
                  correlation_id: str, content_type: str = "application/json",
                  content_encoding: str = "utf-8") -> bytes:
    """A message as kombu's Redis transport stores it in a queue's list (body in base64)."""
    return _encoder.encode({
        "body": body_base64,
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": dict(headers),
        "properties": {
            "correlation_id": correlation_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            # kombu keys its unacked bookkeeping by this tag: unique per publication.
            "delivery_tag": str(uuid.uuid4()),
        },
    })
