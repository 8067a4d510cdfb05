"""Task records as typed values, under their older names.

The record is defined once, in ``relier.core.record`` (its fields, ``TaskRecord`` and the one
decoder); ``parse_record`` is ``decode_record``. Reading a record from Redis is the ledger's
job: ``Ledger.record(task_id)``.
"""

from __future__ import annotations

from relier.core.record import Attempt, TaskRecord, decode_record

__all__ = ["Attempt", "TaskRecord", "parse_record"]

parse_record = decode_record
