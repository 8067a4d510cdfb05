"""relier-phoenix: nothing is lost. Fenced task ledger, leases, resurrector, DLQ, drain.

- ``Ledger``: the one door to task records, leases and their indexes: every write (dispatch,
  claim, checkpoint, complete, fail, requeue, republish, release, purge) and every read, typed.
- ``LedgerPort``: the part of the ledger the worker side uses (a ``typing.Protocol``).
- ``PhoenixMiddleware``: claim (a new epoch per run) and commit/dead-letter, fenced.
- ``LeaseKeeper``: one lease per worker process, renewed in one call per interval.
- ``Resurrector``: re-queues the tasks of dead workers and re-publishes lost messages.
- ``DeadLetterQueue``: list, show, release, purge.
- ``task_story``: everything the ledger knows about one task.
- ``request_drain``: ask a worker to drain and exit.
- ``relier.phoenix.celery.install(app)``: the worker bootstep and signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relier.core.lazy import lazy_exports

if TYPE_CHECKING:
    from relier.phoenix.dlq import DeadLetterQueue
    from relier.phoenix.drain import Drain, request_drain
    from relier.phoenix.lease import LeaseKeeper, current_keeper
    from relier.phoenix.ledger import RECOVERY_QUEUE, Ledger
    from relier.phoenix.middleware import PhoenixMiddleware
    from relier.phoenix.port import LedgerPort
    from relier.phoenix.records import Attempt, TaskRecord
    from relier.phoenix.resurrector import Resurrector
    from relier.phoenix.story import TaskStory, task_story

__all__ = [
    "RECOVERY_QUEUE",
    "Attempt",
    "DeadLetterQueue",
    "Drain",
    "LeaseKeeper",
    "Ledger",
    "LedgerPort",
    "PhoenixMiddleware",
    "Resurrector",
    "TaskRecord",
    "TaskStory",
    "__version__",
    "current_keeper",
    "request_drain",
    "task_story",
]

# Imported on first use: `import relier.phoenix.records` (the CLI's output schema) must not
# pay for the ledger's Redis clients.
_LAZY = {
    "DeadLetterQueue": "relier.phoenix.dlq",
    "Drain": "relier.phoenix.drain",
    "request_drain": "relier.phoenix.drain",
    "LeaseKeeper": "relier.phoenix.lease",
    "current_keeper": "relier.phoenix.lease",
    "RECOVERY_QUEUE": "relier.phoenix.ledger",
    "Ledger": "relier.phoenix.ledger",
    "PhoenixMiddleware": "relier.phoenix.middleware",
    "LedgerPort": "relier.phoenix.port",
    "Attempt": "relier.phoenix.records",
    "TaskRecord": "relier.phoenix.records",
    "Resurrector": "relier.phoenix.resurrector",
    "TaskStory": "relier.phoenix.story",
    "task_story": "relier.phoenix.story",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, "relier-phoenix")
