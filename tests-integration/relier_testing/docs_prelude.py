"""Stand-ins for the outside world that documentation snippets talk to.

Every page of ``docs/`` and README.md is run as a module that starts with
``from relier_testing.docs_prelude import *``, in the test process and in the worker, so a
snippet may call ``stripe.charge(...)`` or ``fetch(cursor)`` as a reader would in their own code.
Each stand-in counts its calls in Redis (``docs:calls:<name>``) so a snippet can show, and the
test can check, that a side effect happened exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import redis

__all__ = [
    "acquire_external_lock", "blocking_call", "calls", "charge_card", "email_invoice",
    "fetch", "fetch_all_user_ids", "handle", "handle_event", "logger", "long_running_work",
    "release_external_lock", "send_receipt", "smtp", "stripe",
]

logger = logging.getLogger("docs")


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["RELIER_REDIS_URL"], decode_responses=True)


def _count(name: str) -> None:
    with _client() as client:
        client.incr(f"docs:calls:{name}")


def calls(name: str) -> int:
    """How many times the stand-in ``name`` ran (in any process)."""
    with _client() as client:
        return int(client.get(f"docs:calls:{name}") or 0)


async def _charge(customer_id: str, amount_cents: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    _count("stripe.charge")
    return {"charged": amount_cents, "customer": customer_id, "id": f"ch_{customer_id}"}


stripe = SimpleNamespace(charge=_charge)


async def _send(to: str, subject: str, body: str = "") -> None:
    _count("smtp.send")


smtp = SimpleNamespace(send=_send)


async def charge_card(order_id: str) -> None:
    _count("charge_card")


async def send_receipt(order_id: str) -> None:
    _count("send_receipt")


async def email_invoice(invoice_id: str) -> None:
    _count("email_invoice")


@dataclass(frozen=True)
class Item:
    id: str


async def fetch(cursor: str, total: int = 250) -> AsyncIterator[Item]:
    """Items after ``cursor`` in a list of ``total``: what a paginated API would return."""
    for n in range(int(cursor) + 1, total + 1):
        await asyncio.sleep(0)
        yield Item(id=str(n))


async def handle(item: Item) -> None:
    _count("handle")


async def handle_event(payload: dict[str, Any]) -> dict[str, Any]:
    _count("handle_event")
    return {"handled": payload.get("type", "unknown")}


async def fetch_all_user_ids() -> list[str]:
    return [f"user-{n}" for n in range(5)]


@asynccontextmanager
async def acquire_external_lock(item_id: str) -> AsyncIterator[None]:
    _count("lock.acquire")
    yield


async def release_external_lock(item_id: str) -> None:
    _count("lock.release")


async def long_running_work(item_id: str) -> None:
    await asyncio.sleep(0.05)


def blocking_call(x: int) -> int:
    return x * 2
