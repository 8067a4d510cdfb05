"""relier-idempotency: exactly-once effects for ``@rl_task(idempotent=True)``.

Keys come from the registered task name and a canonical encoding of the arguments bound to
the task's signature (``idempotency_key``); the ledger scripts deduplicate at dispatch, fence
the in-flight claim on the task's epoch and commit the result atomically with the completion.
For keys you choose yourself, use ``relier.core.idempotency.idempotency_lock``.
"""

from __future__ import annotations

from importlib.metadata import version

from relier.idempotency.keys import KEY_VERSION, canonical_arguments, idempotency_key
from relier.idempotency.middleware import IdempotencyMiddleware

__version__ = version("relier-idempotency")

__all__ = ["KEY_VERSION", "IdempotencyMiddleware", "__version__", "canonical_arguments",
           "idempotency_key"]
