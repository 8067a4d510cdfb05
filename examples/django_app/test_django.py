from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")

import django  # noqa: E402

django.setup()

from conftest_shared import start_worker, wait_for_key  # noqa: E402


@pytest.fixture(scope="module")
def worker() -> Iterator[object]:
    yield from start_worker(HERE, "myapp.tasks")


def test_sync_view_dispatches_and_refuses_over_capacity(worker: object) -> None:
    from django.test import Client

    client = Client()
    response = client.post("/invoices/INV-1/send")
    assert response.status_code == 202
    assert wait_for_key("example:charged:INV-1") == b"1"
    assert client.get("/invoices/INV-1/send").status_code == 405  # @require_POST
    refused = [r for r in (client.post(f"/invoices/INV-{n}/send") for n in range(2, 8))
               if r.status_code == 429]
    assert refused
    assert int(refused[0]["Retry-After"]) >= 1


def test_async_view_dispatches(worker: object) -> None:
    import redis
    from django.test import AsyncClient

    redis.Redis.from_url(os.environ["RELIER_REDIS_URL"]).delete("rl:adm:global")

    async def call() -> int:
        response = await AsyncClient().post("/async/invoices/INV-A/send")
        return response.status_code

    assert asyncio.run(call()) == 202
    assert wait_for_key("example:charged:INV-A") == b"1"


def test_management_command(worker: object) -> None:
    import redis
    from django.core.management import call_command

    redis.Redis.from_url(os.environ["RELIER_REDIS_URL"]).delete("rl:adm:global")
    out = io.StringIO()
    call_command("replay_invoices", stdout=out)
    assert "Queued 2 invoices." in out.getvalue()
    assert wait_for_key("example:charged:INV-201") == b"1"
    assert wait_for_key("example:charged:INV-202") == b"1"
