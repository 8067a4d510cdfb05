"""relier-core: settings, Redis connections, key layout, Lua scripts and preflight.

The thin base every other Relier package builds on. It has no Celery dependency, so the CLI,
web apps and the resurrector can use it alone.
"""

from __future__ import annotations

from importlib.metadata import version

from relier.core.connection import async_redis_client, redis_client
from relier.core.keys import KEYSPACE_VERSION, Keys
from relier.core.ops import Ops
from relier.core.preflight import PreflightReport, preflight, run_preflight
from relier.core.scripts import async_scripts, scripts
from relier.core.settings import Settings, get_settings, reset_settings

__version__ = version("relier-core")

__all__ = [
    "KEYSPACE_VERSION",
    # Layout and scripts
    "Keys",
    "Ops",
    # Preflight
    "PreflightReport",
    # Settings
    "Settings",
    "__version__",
    # Connections
    "async_redis_client",
    "async_scripts",
    "get_settings",
    "preflight",
    "redis_client",
    "reset_settings",
    "run_preflight",
    "scripts",
]
