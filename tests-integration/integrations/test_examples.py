"""Run each example's own tests in a fresh process (each example has its own ``tasks``
module, as the recipes write it), against the session's Redis and a real worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("test_file", [
    "fastapi_app/test_app.py",
    "flask_app/test_app.py",
    "starlette_app/test_app.py",
    "django_app/test_django.py",
    "script/test_scripts.py",
])
def test_example(test_file: str, redis_url: str) -> None:
    env = {**os.environ, "RELIER_REDIS_URL": redis_url, "RELIER_ADMISSION_LIMIT": "3",
           "RELIER_ADMISSION_WINDOW": "60", "RELIER_PREFLIGHT": "strict"}
    for key in ("RELIER_BROKER_URL", "RELIER_IMPORTS", "DJANGO_SETTINGS_MODULE"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         str(EXAMPLES / test_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
