"""Tasks for the worker-runtime regression tests (issue 10, items 2, 7 and 13).

Workers import them next to ``relier_testing.tasks``
(``RELIER_IMPORTS=relier_testing.tasks,relier_testing.runtime_tasks``); like those, each one
counts what it did in Redis under ``test:*`` keys.
"""

from __future__ import annotations

import asyncio
import sys

from relier import rl_task
from relier_testing.tasks import mark


@rl_task()
async def raises_cancelled(key: str) -> None:
    """Counts its run, then raises ``asyncio.CancelledError`` itself (no shutdown)."""
    mark("start", key)
    raise asyncio.CancelledError()


@rl_task()
def raises_system_exit(key: str) -> None:
    """Counts its run, then calls ``sys.exit`` (a sync body, no shutdown)."""
    mark("start", key)
    sys.exit(3)


@rl_task()
def raises_keyboard_interrupt(key: str) -> None:
    """Counts its run, then raises ``KeyboardInterrupt`` (a sync body, no shutdown)."""
    mark("start", key)
    raise KeyboardInterrupt


@rl_task()
def echo(value: object) -> object:
    """Returns its argument (sent with ``.delay()`` to test legacy adoption)."""
    mark("start", "echo")
    return value
