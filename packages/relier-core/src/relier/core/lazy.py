"""Package re-exports imported on first use (PEP 562), for ``relier.core`` and its siblings.

``import relier.core.settings`` runs ``relier/core/__init__.py`` first; if that imported every
re-exported name eagerly, every ``rl`` call would pay for redis-py (whose package imports
redis.asyncio, about half a second) before printing its help. Packages list their exports
under ``TYPE_CHECKING`` (so type checkers see them) and resolve them here when first used.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, str], distribution: str
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: The package's ``__name__``.
        names: Exported name -> the submodule defining it.
        distribution: The distribution whose version ``__version__`` reports.
    """

    def getattr_(name: str) -> Any:
        if name == "__version__":
            from importlib.metadata import version

            value: Any = version(distribution)
        elif name in names:
            value = getattr(import_module(names[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # Cached in the package's namespace: the next lookup does not come here.
        vars(sys.modules[package])[name] = value
        return value

    def dir_() -> list[str]:
        module = sys.modules[package]
        return sorted({*vars(module), *getattr(module, "__all__", ())})

    return getattr_, dir_
