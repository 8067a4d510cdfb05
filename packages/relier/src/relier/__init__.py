"""Relier: the reliability layer for Celery on Redis.

``relier`` is a namespace shared by several distributions (``relier-core``, ``relier-envelope``,
...). This file belongs to the ``relier`` meta-package alone. It only extends the package path
so that sibling portions installed elsewhere (editable checkouts) are found, and re-exports the
everyday names lazily, so that ``import relier.core.keys`` never imports Celery.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Spelled the way the packaging guide does: doc tools (griffe) recognise this exact form as a
# pkgutil-style namespace and then look for the sibling portions.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

if TYPE_CHECKING:
    from relier.core.exceptions import AdmissionRejectedError
    from relier.tasks.context import TaskContext, task_context
    from relier.tasks.decorator import rl_task
    from relier.tasks.install import install
    from relier.tasks.receipt import TaskReceipt

__all__ = [
    "AdmissionRejectedError",
    "TaskContext",
    "TaskReceipt",
    "install",
    "rl_task",
    "task_context",
]

_LAZY = {
    "rl_task": "relier.tasks.decorator",
    "TaskReceipt": "relier.tasks.receipt",
    "TaskContext": "relier.tasks.context",
    "task_context": "relier.tasks.context",
    "install": "relier.tasks.install",
    "AdmissionRejectedError": "relier.core.exceptions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'relier' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
