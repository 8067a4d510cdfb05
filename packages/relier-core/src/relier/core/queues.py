"""The queue names Relier knows: the one place they are spelled.

Tasks go to one of the public queues; resurrected and handed-off tasks go to the recovery
queue, which workers consume with their own ``-Q re-queue`` so that recovery traffic never
waits behind user traffic.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ALL_QUEUES", "DEFAULT_QUEUE", "PUBLIC_QUEUES", "RECOVERY_QUEUE"]

#: The queues a task may be declared on (``rl_task(queue=...)``), highest priority first.
PUBLIC_QUEUES: Final = ("high_priority", "default", "low_priority")
#: The queue of a task declared without one.
DEFAULT_QUEUE: Final = "default"
#: Internal queue of resurrected and handed-off tasks.
RECOVERY_QUEUE: Final = "re-queue"
#: Every queue a complete worker fleet consumes.
ALL_QUEUES: Final = (*PUBLIC_QUEUES, RECOVERY_QUEUE)
