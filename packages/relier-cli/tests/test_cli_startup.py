"""``rl`` starts fast: importing the CLI loads no Redis client, no Celery, no telemetry.

Deterministic guard instead of a timed assertion. redis-py's package imports redis.asyncio
(about half a second, with the OpenTelemetry SDK when installed), Celery and kombu as much
again: only the commands that talk to Redis or run tasks may import them, inside the command.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Modules that a bare ``import relier.cli.main`` (``rl --help``) must not load.
HEAVY = ("redis", "redis.asyncio", "celery", "kombu", "opentelemetry", "relier.tasks")


def loaded_after(statement: str) -> list[str]:
    """Which of ``HEAVY`` a fresh interpreter holds after running ``statement``."""
    code = (f"import json, sys\n{statement}\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement", [
    "import relier.cli.main",
    "import relier.core.settings",
    "import relier.phoenix.records",
    "import relier.cli._common, relier.phoenix.schema",
])
def test_cli_import_loads_no_redis_celery_or_telemetry(statement: str) -> None:
    loaded = loaded_after(statement)
    assert loaded == [], (
        f"`{statement}` imports {', '.join(loaded)}: every `rl` call (even `rl --help`) now "
        "pays for it. Import it inside the command or function that uses it (see "
        "relier.cli._common.with_redis_errors for catching redis errors lazily)."
    )


def test_the_guard_sees_a_heavy_import() -> None:
    # The probe itself works: a statement that does import redis is reported.
    assert "redis.asyncio" in loaded_after("import relier.core.connection")
