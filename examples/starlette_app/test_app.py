from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from conftest_shared import start_worker, wait_for_key  # noqa: E402


@pytest.fixture(scope="module")
def worker() -> Iterator[object]:
    yield from start_worker(HERE, "tasks")


def test_dispatch_runs_and_over_capacity_is_429(worker: object) -> None:
    from app import app
    from starlette.testclient import TestClient

    client = TestClient(app)
    response = client.post("/invoices/INV-1/send")
    assert response.json() == {"status": "queued"}
    assert wait_for_key("example:charged:INV-1") == b"1"
    refused = [r for r in (client.post(f"/invoices/INV-{n}/send") for n in range(2, 8))
               if r.status_code == 429]
    assert refused
    assert int(refused[0].headers["Retry-After"]) >= 1
