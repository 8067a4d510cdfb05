"""The story of one task: everything the ledger knows, for ``rl tasks show``."""

from __future__ import annotations

from typing import Any

import msgspec

from relier.core import codec
from relier.core.exceptions import PayloadIntegrityError, TaskNotFoundError
from relier.core.settings import Settings
from relier.envelope import Keyring, open_envelope
from relier.phoenix.ledger import Ledger
from relier.phoenix.records import TaskRecord

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
    view = ledger.task_view(task_id)
    record = view.record
    if not view.found:
        raise TaskNotFoundError(task_id)
    story: dict[str, Any] = {
        "record": record, "in_dlq": view.in_dlq,
        "checkpoint_bytes": ledger.checkpoints.size(record.checkpoint, task_id),
    }
    try:
        envelope = open_envelope(record.envelope, Keyring.from_settings(ledger.settings))
        story["args"], story["kwargs"] = envelope.args, envelope.kwargs
    except PayloadIntegrityError as exc:
        story["envelope_error"] = exc.reason
    if record.state == "running" and record.owner:
        deadline = view.lease_deadline_ms
        story["lease_expires_in_ms"] = deadline - view.now_ms if deadline else -1
        story["owner_hostname"] = view.owner_hostname
    if record.state == "done" and record.result is not None:
        story["result"] = codec.decode(record.result)
    return TaskStory(**story)
