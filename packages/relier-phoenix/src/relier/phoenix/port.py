"""``LedgerPort``: the part of the ledger the worker side uses, as an interface.

The middleware, the lease keeper, the resurrector and drain depend on this protocol, not on
Redis. ``relier.phoenix.Ledger`` satisfies it (mypy checks that, see the assignment at the
bottom); the phoenix unit tests run every branch of those classes against an in-memory
stub of it, the way dramatiq tests against a stub of its own broker. The real-Redis
integration tests (``tests-integration/phoenix``) exercise the Ledger itself.
"""

# Each method is documented where it is implemented (relier.phoenix.ledger.Ledger).
# ruff: noqa: D102

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from relier.core.ops import CheckpointReply, ClaimReply, RenewReply, ScanReply, TransitionReply
from relier.core.record import TaskRecord
from relier.core.settings import Settings
from relier.phoenix.checkpoints import CheckpointStore
from relier.phoenix.views import WorkerInfo

__all__ = ["LedgerPort"]


class LedgerPort(Protocol):
    """What a worker process and a resurrector ask of the task ledger."""

    settings: Settings
    checkpoints: CheckpointStore

    # -- one run ---------------------------------------------------------------------------------
    def claim(self, *, task_id: str, worker_id: str, queue: str, idem_key: str = "",
              message_seq: str = "", adopt: bytes = b"", adopt_name: str = "",
              adopt_max_resurrections: int = 0, adopt_idem_ttl: int = 0,
              adopt_plain: bool = False) -> ClaimReply: ...

    async def acheckpoint(self, task_id: str, epoch: int, data: bytes) -> CheckpointReply: ...

    def complete(self, *, task_id: str, worker_id: str, epoch: int, result: bytes,
                 idem_key: str = "", idem_ttl: int = 0) -> bool: ...

    def fail(self, *, task_id: str, worker_id: str, epoch: int, reason: str,
             exc_type: str = "", message: str = "", traceback: str = "",
             outcome: str = "failed", raw: bytes = b"", task_name: str = "", queue: str = "",
             idem_key: str = "") -> bool: ...

    # -- moving tasks ----------------------------------------------------------------------------
    def requeue(self, task_id: str, *, owner: str,
                kind: Literal["killed", "lease_expired", "handoff"], cause: str,
                recovery_seconds: float | None = None, epoch: int = 0) -> TransitionReply: ...

    def republish(self, task_id: str, queue: str, seq: int, *, bounce: str = ""
                  ) -> TransitionReply: ...

    def reject(self, *, task_id: str, queue: str, reason: str, exc_type: str = "",
               message: str = "") -> bool: ...

    def put_back(self, queue: str, message: bytes) -> None: ...

    def record_fields(self, task_id: str, *names: str) -> TaskRecord: ...

    # -- workers ---------------------------------------------------------------------------------
    def register_worker(self, worker_id: str, *, ttl_ms: int,
                        facts: dict[str, str]) -> int: ...

    def renew_worker(self, worker_id: str, *, ttl_ms: int) -> RenewReply: ...

    def reap_worker(self, worker_id: str, *, force: bool = False) -> bool: ...

    def worker_tasks(self, worker_id: str) -> set[str]: ...

    def sample_worker_tasks(self, worker_id: str, count: int) -> list[str]: ...

    def worker(self, worker_id: str) -> WorkerInfo | None: ...

    def workers(self, *, live_only: bool = False, running: bool = False
                ) -> list[WorkerInfo]: ...

    def worker_state(self, worker_id: str) -> str: ...

    def set_worker_state(self, worker_id: str, state: str) -> None: ...

    def clear_drain_request(self, worker_id: str) -> None: ...

    # -- recovery --------------------------------------------------------------------------------
    def mark_resurrector(self, resurrector_id: str) -> None: ...

    def expired_workers(self, limit: int) -> ScanReply: ...

    def promote_due(self, limit: int) -> tuple[int, int]: ...

    def queue_depth(self, queue: str) -> int: ...

    def queue_depths(self, queues: list[str]) -> dict[str, int]: ...

    def watermarks(self) -> dict[str, tuple[int, int]]: ...

    def queued_up_to(self, queue: str, seq: int, limit: int) -> list[tuple[str, int]]: ...


if TYPE_CHECKING:  # mypy proves that the real ledger has this interface
    from relier.phoenix.ledger import Ledger

    _port: LedgerPort = Ledger()
