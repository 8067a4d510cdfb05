"""The Lua scripts: one file per atomic operation, loaded by name, registered once per client.

Each ``lua/<name>.lua`` opens with a Redis 7 shebang declaring its flags, then a header
listing its ``KEYS[i]``, ``ARGV[i]`` and return values; ``SPECS`` declares the same
names in Python and a unit test holds the two together. A line ``--@include <name>``
splices ``lua/include/<name>.lua`` in (the clock, the attempt history and the admission
window are shared by several scripts).

The flags matter under memory pressure. A script without them is checked for OOM only at its
first write, so a full Redis could stop it half-way; with a shebang, Redis decides before the
first line. Scripts that add work (dispatch, admission, checkpoints, DLQ release) are refused
whole when Redis is at ``maxmemory``; scripts that let the backlog drain (claim, complete,
dead-letter, requeue, lease renewal, purge) declare ``allow-oom``.

Registration goes through redis-py's ``register_script``: the SHA1 is computed locally, calls
use EVALSHA, and a NOSCRIPT reply (after a server restart or ``SCRIPT FLUSH``) loads the script
and retries. Scripts are registered once per client object, never sent in full per call.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript, Script

__all__ = [
    "SPECS",
    "AsyncScripts",
    "Call",
    "ScriptSpec",
    "Scripts",
    "async_scripts",
    "script_sha",
    "script_source",
    "scripts",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    """The declared interface of one script. A trailing ``...`` marks a variadic tail."""

    name: str
    keys: tuple[str, ...]
    args: tuple[str, ...]


SPECS: dict[str, ScriptSpec] = {
    spec.name: spec
    for spec in (
        ScriptSpec(
            "task_dispatch",
            ("record", "envelope", "pending", "qseq", "queue_list", "idem", "due", "scheduled",
             "dlq", "occurrence", "admission..."),
            ("task_id", "task_name", "queue", "envelope", "max_res", "idem_ttl", "message",
             "traceparent", "delay_ms", "plain", "from_epoch", "occ_gap_ms", "n_scopes",
             "limits..."),
        ),
        ScriptSpec(
            "task_promote",
            ("record", "due", "scheduled", "pending", "qseq", "queue_list"),
            ("task_id", "queue", "fused"),
        ),
        ScriptSpec(
            "task_claim",
            ("record", "envelope", "pending", "worker_tasks", "workers", "qclaimed", "idem"),
            ("task_id", "worker_id", "queue", "adopt", "adopt_name", "adopt_max_res",
             "adopt_idem_ttl", "result_ttl", "message_seq", "adopt_plain"),
        ),
        ScriptSpec(
            "task_complete",
            ("record", "envelope", "worker_tasks", "idem"),
            ("task_id", "epoch", "result", "result_ttl", "idem_ttl"),
        ),
        ScriptSpec(
            "task_fail",
            ("record", "envelope", "worker_tasks", "dlq", "idem"),
            ("task_id", "epoch", "reason", "exc_type", "message", "traceback", "outcome", "raw",
             "task_name", "queue"),
        ),
        ScriptSpec(
            "task_requeue",
            ("record", "worker_tasks", "pending", "qseq", "queue_list", "dlq", "idem",
             "workers"),
            ("task_id", "owner", "kind", "cause", "queue", "message", "max_handoffs",
             "epoch"),
        ),
        ScriptSpec(
            "task_republish",
            ("record", "pending", "qseq", "queue_list", "dlq", "idem"),
            ("task_id", "seq", "message", "max_republish", "bounce"),
        ),
        ScriptSpec(
            "task_reject",
            ("record", "pending", "dlq", "idem"),
            ("task_id", "reason", "exc_type", "message"),
        ),
        ScriptSpec("task_checkpoint", ("record",), ("epoch", "checkpoint")),
        ScriptSpec(
            "dlq_release",
            ("record", "dlq", "pending", "qseq", "queue_list", "idem"),
            ("task_id", "message"),
        ),
        ScriptSpec("dlq_purge", ("record", "envelope", "dlq", "idem"), ("task_id",)),
        ScriptSpec("scan_due", ("index",), ("limit",)),
        ScriptSpec("worker_register", ("workers", "worker"), ("worker_id", "ttl_ms", "facts...")),
        ScriptSpec("worker_renew", ("workers", "worker", "worker_tasks"), ("worker_id", "ttl_ms")),
        ScriptSpec("worker_reap", ("workers", "worker", "worker_tasks"), ("worker_id", "force")),
        ScriptSpec("lock_acquire", ("lock",), ("token", "ttl_ms")),
        ScriptSpec("lock_renew", ("lock",), ("token", "ttl_ms")),
        ScriptSpec("lock_commit", ("lock",), ("token", "result", "ttl_s")),
        ScriptSpec("lock_release", ("lock",), ("token",)),
        ScriptSpec("admit", ("scopes...",), ("member", "n_scopes", "limits...")),
    )
}

_INCLUDE = re.compile(r"^--@include (\w+)$", re.MULTILINE)


@cache
def script_source(name: str) -> str:
    """The full source of script ``name``, with its includes spliced in."""
    if name not in SPECS:
        raise KeyError(f"no Lua script named {name!r}; known: {', '.join(sorted(SPECS))}")
    lua = files("relier.core") / "lua"
    text = (lua / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(
        lambda m: (lua / "include" / f"{m.group(1)}.lua").read_text(encoding="utf-8"), text
    )


def script_sha(name: str) -> str:
    """The SHA1 Redis will know script ``name`` by."""
    return hashlib.sha1(script_source(name).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One prepared script call: which script, its keys and arguments, how to read the reply."""

    script: str
    keys: Sequence[str]
    args: Sequence[str | bytes | int | float]
    parse: Callable[[Any], T]

    def __post_init__(self) -> None:
        spec = SPECS[self.script]
        for declared, given, what in ((spec.keys, self.keys, "KEYS"),
                                      (spec.args, self.args, "ARGV")):
            variadic = bool(declared) and declared[-1].endswith("...")
            fixed = len(declared) - variadic
            if len(given) < fixed or (not variadic and len(given) != fixed):
                raise TypeError(
                    f"{self.script}: {len(given)} {what} given, the script declares {declared}"
                )


class Scripts:
    """Every script registered on one sync client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._scripts: dict[str, Script] = {
            name: client.register_script(script_source(name)) for name in SPECS
        }

    def run(self, call: Call[T], client: Any = None) -> T:
        """Run ``call`` (on a pipeline when ``client`` is one) and parse its reply."""
        reply = self._scripts[call.script](keys=call.keys, args=call.args, client=client)
        return call.parse(reply)

    def queue(self, pipe: redis.client.Pipeline, call: Call[Any]) -> None:
        """Add ``call`` to a pipeline; parse the replies with ``call.parse`` after execute."""
        self._scripts[call.script](keys=call.keys, args=call.args, client=pipe)


class AsyncScripts:
    """Every script registered on one asyncio client."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name)) for name in SPECS
        }

    async def run(self, call: Call[T]) -> T:
        """Run ``call`` and parse its reply."""
        reply = await self._scripts[call.script](keys=call.keys, args=call.args)
        return call.parse(reply)


_sync_registry: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()
_async_registry: weakref.WeakKeyDictionary[aredis.Redis, AsyncScripts] = (
    weakref.WeakKeyDictionary()
)


def scripts(client: redis.Redis) -> Scripts:
    """The scripts registered on ``client`` (registered on first use)."""
    found = _sync_registry.get(client)
    if found is None:
        found = _sync_registry[client] = Scripts(client)
    return found


def async_scripts(client: aredis.Redis) -> AsyncScripts:
    """The scripts registered on an asyncio ``client`` (registered on first use)."""
    found = _async_registry.get(client)
    if found is None:
        found = _async_registry[client] = AsyncScripts(client)
    return found
