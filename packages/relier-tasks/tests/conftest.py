"""Unit tests build Celery apps on an unused Redis URL; none may stay Celery's current app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import current_app


@pytest.fixture(autouse=True)
def _keep_current_app() -> Iterator[None]:
    # create_app() makes its app current (as the ready-made app must be); left so, every
    # later test that dispatches through the current app would talk to that unused Redis.
    previous = current_app._get_current_object()
    yield
    previous.set_current()
