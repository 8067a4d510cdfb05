"""Every exception Relier raises, in one always-installed module.

Celery records ``exc_module``/``exc_type`` for failures, so keeping the whole hierarchy in
``relier-core`` keeps these classes importable on every node. Each message says what went wrong
*and* what to do about it: these are read by whoever is on call.
"""

from __future__ import annotations

import time

from relier.core.urls import mask_url

__all__ = [
    "AdmissionRejectedError",
    "BrokerPublishDeferredError",
    "CheckpointError",
    "CheckpointTooLargeError",
    "ConfigurationError",
    "DispatchError",
    "EpochFencedError",
    "IdempotencyInFlightError",
    "IdempotencyKeyError",
    "LegacyMessageRejectedError",
    "MaxHandoffsExceededError",
    "MaxResurrectionsExceededError",
    "MigrationMissingError",
    "PayloadIntegrityError",
    "PreflightError",
    "RedisConnectionError",
    "RelierError",
    "SchemaMigrationError",
    "SchemaVersionTooNewError",
    "TaskDeadLetteredError",
    "TaskExpiredError",
    "TaskNotFoundError",
    "TaskTimeoutError",
]


class RelierError(Exception):
    """Base class of every Relier error."""


class ConfigurationError(RelierError, ValueError):
    """A ``RELIER_*`` setting has a value Relier cannot use.

    Attributes:
        variable: The environment variable, e.g. ``RELIER_HEARTBEAT_TTL``.
        value: The offending raw value (secrets are masked by the caller).
        expected: The accepted form, in words.
    """

    def __init__(self, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        # Callers mask secrets; a URL is masked here again, so that no caller can leak one.
        self.value = value = mask_url(value) if "://" in value else value
        self.expected = expected
        super().__init__(f"{variable}={value!r} is not valid: expected {expected}.")


class PreflightError(RelierError):
    """The Redis server fails a check that Relier's guarantees depend on.

    Attributes:
        failures: One line per failed check, each naming the setting and the one-line fix.
    """

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(
            "Relier refuses to start: the Redis server cannot keep Relier's promises.\n"
            f"{lines}\n"
            "Fix the server, or set RELIER_PREFLIGHT=warn to start anyway (development only)."
        )


class RedisConnectionError(RelierError, ConnectionError):
    """Relier could not reach Redis (dispatch, worker start, or a CLI command)."""

    def __init__(self, url: str, cause: BaseException | str) -> None:
        self.url = url = mask_url(url)
        super().__init__(
            f"cannot reach Redis at {url}: {cause}. Check RELIER_REDIS_URL and that the server "
            "is running (`redis-cli -u <url> ping` should answer PONG)."
        )


class DispatchError(RelierError):
    """A task could not be dispatched; nothing was enqueued."""


class BrokerPublishDeferredError(RelierError):
    """The task WAS accepted, but its broker message could not be published yet: do not retry.

    Only with a separate broker (``RELIER_BROKER_URL`` set): the ledger script recorded the task
    on the coordination Redis, then pushing its message to the broker failed. The record is the
    acceptance (I1): the resurrector's lost-message pass publishes the message once the broker
    answers (until then the task waits, ``queued``, in the ledger), so dispatching the same
    call again would make a second task. Deliberately not a ``DispatchError`` nor a
    ``ConnectionError``: handlers that retry those must not catch this one.

    Attributes:
        receipt: The accepted task's ``TaskReceipt`` (follow it as if ``push`` had returned it).
        task_id: The accepted task's id.
        task_name: The registered task name.
        broker_url: The broker URL, password masked.
    """

    def __init__(self, task_name: str, task_id: str, broker_url: str, cause: BaseException | str,
                 receipt: object = None) -> None:
        self.task_name = task_name
        self.task_id = task_id
        self.broker_url = broker_url
        self.receipt = receipt
        super().__init__(
            f"{task_name} [{task_id}] WAS accepted (its record is in the ledger), but its message "
            f"could not be published to the broker at {broker_url}: {cause}. Do not dispatch it "
            "again, that would make a second task: a resurrector (`rl run-resurrector`) publishes "
            f"it once the broker answers. Follow it with this error's .receipt or `rl tasks show "
            f"{task_id}`; check RELIER_BROKER_URL and that the broker is running."
        )


class AdmissionRejectedError(RelierError):
    """The cluster is at the admission limit; nothing was enqueued.

    Attributes:
        retry_after: Whole seconds (at least 1) until capacity returns; send it as ``Retry-After``.
        scope: Which limit refused (``global``, ``queue:<name>`` or ``key:<tenant>``).
    """

    def __init__(self, message: str, retry_after: int, scope: str = "global") -> None:
        self.retry_after = max(1, int(retry_after))
        self.scope = scope
        super().__init__(message)


class PayloadIntegrityError(RelierError):
    """A sealed envelope failed verification or could not be decoded.

    The raw bytes travel with the error so that the dead-letter queue can keep them; a payload
    that fails here is never run.

    Attributes:
        raw: The exact bytes that failed.
        reason: Why, in words (bad signature, unknown key id, truncated, ...).
    """

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        self.reason = reason
        self.raw = raw
        super().__init__(
            f"payload integrity check failed: {reason}. The payload was not run; it is kept "
            "byte for byte in the dead-letter queue (`rl dlq show <id>`)."
        )


class SchemaMigrationError(RelierError):
    """A registered payload migration raised; the original payload is kept unchanged.

    Attributes:
        task_name: The task whose payload failed to migrate.
        from_version: The version the failing step starts from.
        raw: The original sealed bytes.
    """

    def __init__(self, task_name: str, from_version: int, cause: str, raw: bytes = b"") -> None:
        self.task_name = task_name
        self.from_version = from_version
        self.raw = raw
        super().__init__(
            f"migration of {task_name!r} payload from version {from_version} to "
            f"{from_version + 1} failed: {cause}. The original payload is in the dead-letter "
            "queue; fix the migration, deploy, then `rl dlq release <id>`."
        )


class MigrationMissingError(SchemaMigrationError):
    """No migration step is registered between a payload's version and the worker's."""

    def __init__(self, task_name: str, from_version: int, raw: bytes = b"") -> None:
        RelierError.__init__(
            self,
            f"no migration registered for {task_name!r} from version {from_version} to "
            f"{from_version + 1}. Register one with "
            f"`@migrations.step({task_name!r}, from_version={from_version})`, deploy, then "
            "`rl dlq release <id>`.",
        )
        self.task_name = task_name
        self.from_version = from_version
        self.raw = raw


class SchemaVersionTooNewError(RelierError):
    """A payload was produced by newer code than this worker runs (rolling deploy skew)."""

    def __init__(self, task_name: str, version: int, supported: int, raw: bytes = b"") -> None:
        self.task_name = task_name
        self.version = version
        self.supported = supported
        self.raw = raw
        super().__init__(
            f"payload of {task_name!r} has schema version {version} but this worker knows "
            f"versions up to {supported}. Deploy workers before producers; once every worker "
            "runs the new code, `rl dlq release --all --reason SchemaVersionTooNewError`."
        )


class LegacyMessageRejectedError(RelierError):
    """An unsigned Celery message (``.delay()``/``.apply_async()``) arrived and is not accepted."""

    def __init__(self, task_name: str) -> None:
        self.task_name = task_name
        super().__init__(
            f"{task_name!r} arrived as a plain Celery message (sent with .delay() or "
            ".apply_async()) and RELIER_ACCEPT_UNSIGNED=false. Dispatch with `await "
            "task.apush(...)` or `task.push(...)`; the message is kept in the dead-letter queue."
        )


class TaskTimeoutError(RelierError, TimeoutError):
    """A task ran past its ``hard_timeout`` and was cancelled."""

    def __init__(self, task_name: str, hard_timeout: float) -> None:
        self.task_name = task_name
        self.hard_timeout = hard_timeout
        super().__init__(
            f"{task_name!r} exceeded its hard_timeout of {hard_timeout:g}s and was cancelled."
        )


class TaskExpiredError(RelierError):
    """A task was not started before its ``expires`` time; it is dead-lettered unrun."""

    def __init__(self, task_name: str, expires_at: float, attempt: int = 1) -> None:
        self.task_name = task_name
        self.expires_at = expires_at
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
        what = ("before it started, so it was not run" if attempt <= 1 else
                f"before attempt {attempt} could start (an earlier attempt started and lost "
                "its worker), so it was not run again")
        super().__init__(
            f"{task_name!r} expired at {when} {what}. The expiry is sealed in the task (a "
            "release would expire it again): dispatch it anew if it is still wanted."
        )


class EpochFencedError(RelierError):
    """A write came from a superseded incarnation of a task and was refused (invariant I3).

    This is what a paused "zombie" worker sees when it wakes up after its task was resurrected
    elsewhere. Its checkpoint, result and dead-letter writes are all rejected.
    """

    def __init__(self, task_id: str, epoch: int, what: str) -> None:
        self.task_id = task_id
        self.epoch = epoch
        super().__init__(
            f"{what} for task {task_id} refused: epoch {epoch} no longer owns the task (it "
            "was resurrected or handed off). This incarnation's writes are discarded."
        )


class CheckpointError(RelierError):
    """A checkpoint could not be written or read."""


class CheckpointTooLargeError(CheckpointError):
    """A checkpoint exceeds ``RELIER_CHECKPOINT_MAX_INLINE_BYTES`` with the inline backend."""

    def __init__(self, task_id: str, size: int, limit: int) -> None:
        self.task_id = task_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"checkpoint of task {task_id} is {size} bytes; the inline limit is {limit}. "
            "Store less (a cursor, not the data), or set RELIER_CHECKPOINT_BACKEND=filesystem "
            "with RELIER_CHECKPOINT_DIR on a volume shared by every worker."
        )


class IdempotencyInFlightError(RelierError):
    """Another holder is running the block guarded by this idempotency key right now."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} is held by another run that has not finished. Retry "
            "later; you will get its cached result once it commits."
        )


class IdempotencyKeyError(RelierError, TypeError):
    """Task arguments cannot be encoded canonically, so no stable idempotency key exists."""


class MaxResurrectionsExceededError(RelierError):
    """A task died more often than its ``max_resurrections`` allows; it is dead-lettered."""

    def __init__(self, task_id: str, count: int) -> None:
        self.task_id = task_id
        self.count = count
        super().__init__(
            f"task {task_id} lost its worker {count} times and was dead-lettered. "
            "`rl tasks show <id>` lists the kill cause of every attempt."
        )


class MaxHandoffsExceededError(RelierError):
    """A task was handed off more often than ``RELIER_MAX_HANDOFFS`` allows; dead-lettered."""

    def __init__(self, task_id: str, count: int) -> None:
        self.task_id = task_id
        self.count = count
        super().__init__(
            f"task {task_id} was handed off {count} times (its run interrupted by a worker "
            "shutdown each time) and was dead-lettered. `rl tasks show <id>` lists every "
            "attempt; raise RELIER_MAX_HANDOFFS if your deploys interrupt it legitimately."
        )


class TaskNotFoundError(RelierError, LookupError):
    """The ledger has no record of this task id (never dispatched, or its result expired)."""

    def __init__(self, task_id: str, detail: str = "") -> None:
        self.task_id = task_id
        super().__init__(detail or (
            f"no task {task_id} in the ledger: it was never dispatched to this Redis, or it "
            "completed longer than RELIER_RESULT_TTL ago."
        ))


class TaskDeadLetteredError(RelierError):
    """Raised by ``receipt.get()`` when the task ended in the dead-letter queue."""

    def __init__(self, task_id: str, reason: str, message: str) -> None:
        self.task_id = task_id
        self.reason = reason
        self.detail = message
        super().__init__(
            f"task {task_id} was dead-lettered ({reason}): {message}. "
            f"Inspect with `rl dlq show {task_id}`, release with `rl dlq release {task_id}`."
        )
