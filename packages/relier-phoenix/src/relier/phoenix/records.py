"""Task records as typed values (defined once in ``relier.core.record``; kept here by name).

``parse_record`` is ``relier.core.record.decode_record``, the one decoder. Reading a record
from Redis is the ledger's job (``Ledger.record``); ``fetch_record`` is that read for code
that holds only a client (test helpers).
"""

from __future__ import annotations

from typing import Any

from relier.core.record import Attempt, TaskRecord, decode_record

__all__ = ["Attempt", "TaskRecord", "fetch_record", "parse_record"]

parse_record = decode_record


def fetch_record(client: Any, keys: Any, task_id: str) -> TaskRecord:
    """Read one task record and its envelope in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.task(task_id))
    pipe.get(keys.envelope(task_id))
    fields, envelope = pipe.execute()
    return decode_record(task_id, fields, envelope)
