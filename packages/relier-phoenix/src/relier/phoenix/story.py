"""The story of one task: everything the ledger knows, for ``rl tasks show``."""

from __future__ import annotations

from typing import Any

import msgspec

from relier.core import codec
from relier.core.codec import text
from relier.core.exceptions import PayloadIntegrityError, TaskNotFoundError
from relier.core.settings import Settings
from relier.envelope import Keyring, open_envelope
from relier.phoenix.ledger import Ledger
from relier.phoenix.records import TaskRecord, parse_record

__all__ = ["TaskStory", "task_story"]


class TaskStory(msgspec.Struct, frozen=True, kw_only=True):
    """A task record plus what it means right now.

    Attributes:
        record: The stored record (states, attempts with workers, times and kill causes).
        args / kwargs: The arguments, when the envelope verifies with this process's keys.
        envelope_error: Why the arguments could not be shown, otherwise ''.
        owner_hostname: Celery node running it, when running.
        lease_expires_in_ms: Time left on the owner's lease (negative: expired, waiting for
            the resurrector), when running.
        checkpoint_bytes: Size of the last checkpoint.
        result: The decoded result, when done.
        in_dlq: Whether it sits in the dead-letter queue.
    """

    record: TaskRecord
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    envelope_error: str = ""
    owner_hostname: str = ""
    lease_expires_in_ms: int | None = None
    checkpoint_bytes: int = 0
    result: Any = None
    in_dlq: bool = False


def task_story(task_id: str, settings: Settings | None = None) -> TaskStory:
    """Everything known about ``task_id``.

    Raises:
        TaskNotFoundError: no record (never dispatched here, or expired after completion).
    """
    ledger = Ledger(settings)
    client, keys = ledger.client, ledger.keys
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.task(task_id))
    pipe.get(keys.envelope(task_id))
    pipe.zscore(keys.dlq, task_id)
    pipe.time()
    fields, envelope, dlq_score, (seconds, micros) = pipe.execute()
    if not fields:
        raise TaskNotFoundError(task_id)
    record = parse_record(task_id, fields, envelope)
    story: dict[str, Any] = {
        "record": record, "in_dlq": dlq_score is not None,
        "checkpoint_bytes": ledger.checkpoints.size(record.checkpoint, task_id),
    }
    try:
        envelope = open_envelope(record.envelope, Keyring.from_settings(ledger.settings))
        story["args"], story["kwargs"] = envelope.args, envelope.kwargs
    except PayloadIntegrityError as exc:
        story["envelope_error"] = exc.reason
    if record.state == "running" and record.owner:
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        deadline = client.zscore(keys.workers, record.owner)
        story["lease_expires_in_ms"] = int(deadline) - now_ms if deadline else -1
        host = client.hget(keys.worker(record.owner), "hostname")
        story["owner_hostname"] = text(host) if host else ""
    if record.state == "done" and record.result is not None:
        story["result"] = codec.decode(record.result)
    return TaskStory(**story)
