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
    from fastapi.testclient import TestClient
    from main import app

    client = TestClient(app)
    response = client.post("/invoices/INV-1/send")
    assert response.status_code == 200
    assert response.json() == {"status": "queued"}
    assert wait_for_key("example:emailed:INV-1") == b"1"
    assert client.post("/invoices/INV-1/send").status_code == 200  # duplicate: deduplicated
    statuses = [client.post(f"/invoices/INV-{n}/send") for n in range(2, 8)]
    refused = [r for r in statuses if r.status_code == 429]
    assert refused, "RELIER_ADMISSION_LIMIT=3 must refuse some of 7 dispatches"
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json() == {"detail": "Service at capacity, retry later."}
