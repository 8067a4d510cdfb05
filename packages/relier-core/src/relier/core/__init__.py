"""relier-core: settings, Redis connections, key layout, Lua scripts and preflight.

The thin base every other Relier package builds on. It has no Celery dependency, so the CLI,
web apps and the resurrector can use it alone.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from relier.core.lazy import lazy_exports

if TYPE_CHECKING:
    from relier.core.connection import async_redis_client, redis_client
    from relier.core.keys import KEYSPACE_VERSION, Keys
    from relier.core.ops import Ops
    from relier.core.preflight import PreflightReport, preflight, run_preflight
    from relier.core.scripts import async_scripts, scripts
    from relier.core.settings import Settings, get_settings, reset_settings

__all__ = [
    "KEYSPACE_VERSION",
    "Keys",
    "Ops",
    "PreflightReport",
    "Settings",
    "__version__",
    "async_redis_client",
    "async_scripts",
    "get_settings",
    "preflight",
    "redis_client",
    "reset_settings",
    "run_preflight",
    "scripts",
]

# Imported on first use: `import relier.core.settings` (every `rl` call) must not pay for
# redis-py, whose own package imports redis.asyncio (about half a second).
_LAZY = {
    "async_redis_client": "relier.core.connection",
    "redis_client": "relier.core.connection",
    "KEYSPACE_VERSION": "relier.core.keys",
    "Keys": "relier.core.keys",
    "Ops": "relier.core.ops",
    "PreflightReport": "relier.core.preflight",
    "preflight": "relier.core.preflight",
    "run_preflight": "relier.core.preflight",
    "async_scripts": "relier.core.scripts",
    "scripts": "relier.core.scripts",
    "Settings": "relier.core.settings",
    "get_settings": "relier.core.settings",
    "reset_settings": "relier.core.settings",
}


#: Exports named like their own submodule. Eagerly, ``from relier.core.scripts import scripts``
#: used to leave the package attribute ``scripts`` bound to the function; importing a
#: submodule now binds the module there instead, so the package keeps those two names for
#: its exports (the submodules stay importable by their full names).
_SHADOWED = frozenset({"preflight", "scripts"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the import system binding relier.core.<name> to the submodule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, "relier-core")
