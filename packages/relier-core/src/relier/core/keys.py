"""Every Redis key Relier uses, built in this one module.

Per-task keys wrap the task id in a ``{hash tag}`` so that a script touching several keys of one
task stays in one Cluster slot. Indexes are shared keys whose cost is one member per task, never
one key per task. The broker's queue lists belong to kombu and keep kombu's names.

Layout (prefix ``rl``, see ``RELIER_KEY_PREFIX``)::

    rl:meta                     hash    keyspace version, first-seen time
    rl:t:{<task id>}            hash    the task record: state, epoch, attempts, owner, ...
                                        (no TTL while live; RELIER_RESULT_TTL once done;
                                        kept while dead-lettered)
    rl:e:{<task id>}            string  the task's sealed envelope, same lifetime as the record
                                        (apart, so the record stays a compact listpack)
    rl:m:{<task id>}            string  the message a scheduled task's promotion pushes
                                        (deleted at promotion)
    rl:due                      zset    task id -> due time (ms, Redis clock) of scheduled
                                        tasks (countdown, eta)
    rl:pending:<queue>          zset    task id -> broker sequence, for tasks whose message
                                        has not been claimed yet (lost-message detection)
    rl:qseq                     hash    queue -> last sequence number published
    rl:qclaimed                 hash    queue -> highest sequence number claimed
    rl:workers                  zset    worker id -> lease deadline (ms, Redis clock)
    rl:w:{<worker id>}          hash    worker facts: hostname, pid, queues, started, drain
    rl:w:{<worker id>}:tasks    set     ids of the tasks that worker runs now
    rl:dlq                      zset    task id -> dead-lettered at (ms); entry = the record
    rl:i:<task name>:v<n>:<digest>
                                hash    idempotency marker of an idempotent task (n: the
                                        key derivation's version, relier.idempotency)
    rl:lock:<key>               hash    idempotency_lock marker
    rl:adm:<scope>              zset    sliding-window log: admission id -> time (ms)
    rl:resurrectors             zset    resurrector id -> last pass (ms)
    rl:stats                    hash    cluster-wide counters (legacy messages, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEYSPACE_VERSION", "Keys"]

#: Bumped whenever the layout above changes incompatibly; preflight refuses a newer keyspace.
KEYSPACE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builders for one prefix."""

    prefix: str = "rl"

    # -- one task -------------------------------------------------------------------------------
    def task(self, task_id: str) -> str:
        """The task record (hash)."""
        return f"{self.prefix}:t:{{{task_id}}}"

    def envelope(self, task_id: str) -> str:
        """The task's sealed envelope (string), kept beside its record."""
        return f"{self.prefix}:e:{{{task_id}}}"

    def scheduled(self, task_id: str) -> str:
        """The message a scheduled task's promotion pushes (string), beside its record."""
        return f"{self.prefix}:m:{{{task_id}}}"

    @property
    def due(self) -> str:
        """Scheduled tasks: task id -> due time in ms of the Redis clock (zset)."""
        return f"{self.prefix}:due"

    # -- broker bookkeeping --------------------------------------------------------------------
    def pending(self, queue: str) -> str:
        """Unclaimed tasks of one queue, scored by their broker sequence number (zset)."""
        return f"{self.prefix}:pending:{queue}"

    @staticmethod
    def broker_list(queue: str, priority: int = 0) -> str:
        """Kombu's list holding a queue's messages (kombu's own name, not prefixed).

        Relier pushes messages there itself (in the same script as the ledger write), so the
        name must match kombu's Redis transport: the bare queue name for priority 0, and
        ``queue`` + kombu's separator (bytes 6 and 22) + the priority step for the others (a
        plain Celery message published with a priority). Re-publications (resurrection, lost
        message, release) use priority 0.
        """
        return f"{queue}\x06\x16{priority}" if priority else queue

    @property
    def queue_seq(self) -> str:
        """Last sequence number published per queue (hash)."""
        return f"{self.prefix}:qseq"

    @property
    def queue_claimed(self) -> str:
        """Highest sequence number claimed per queue (hash)."""
        return f"{self.prefix}:qclaimed"

    # -- workers -------------------------------------------------------------------------------
    @property
    def workers(self) -> str:
        """Worker leases: worker id -> deadline in ms of the Redis clock (zset)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Facts about one worker process (hash)."""
        return f"{self.prefix}:w:{{{worker_id}}}"

    def worker_tasks(self, worker_id: str) -> str:
        """Ids of the tasks a worker is running (set)."""
        return f"{self.prefix}:w:{{{worker_id}}}:tasks"

    @property
    def resurrectors(self) -> str:
        """Resurrector liveness: id -> time of its last pass (zset)."""
        return f"{self.prefix}:resurrectors"

    # -- outcomes ------------------------------------------------------------------------------
    @property
    def dlq(self) -> str:
        """Dead-lettered task ids by time (zset); each entry's data is its task record."""
        return f"{self.prefix}:dlq"

    def idempotency(self, task_name: str, digest: str) -> str:
        """Marker of an idempotent task's key (hash)."""
        return f"{self.prefix}:i:{task_name}:{digest}"

    def beat_occurrence(self, occurrence: str) -> str:
        """Task id of a beat entry's last sent occurrence (string, expires after its gap).

        ``occurrence`` is ``<task name>:<entry name>``: two apps on one Redis may both have
        an entry called ``cleanup``.
        """
        return f"{self.prefix}:beat:{occurrence}"

    def lock(self, key: str) -> str:
        """Marker of an ``idempotency_lock`` key (hash)."""
        return f"{self.prefix}:lock:{key}"

    def admission(self, scope: str) -> str:
        """Sliding-window log of one admission scope (zset: admission id -> time in ms)."""
        return f"{self.prefix}:adm:{scope}"

    # -- housekeeping --------------------------------------------------------------------------
    @property
    def meta(self) -> str:
        """Keyspace metadata (hash)."""
        return f"{self.prefix}:meta"

    @property
    def stats(self) -> str:
        """Cluster-wide counters (hash)."""
        return f"{self.prefix}:stats"
