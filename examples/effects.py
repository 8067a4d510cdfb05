"""Stand-ins for the examples' external services: each records its call in Redis."""

from __future__ import annotations

import asyncio
import os

import redis


def _record(what: str, invoice_id: str) -> None:
    client = redis.Redis.from_url(os.environ["RELIER_REDIS_URL"])
    client.incr(f"example:{what}:{invoice_id}")


async def charge_card(invoice_id: str) -> dict[str, str]:
    """Pretend to charge a card."""
    await asyncio.sleep(0)
    _record("charged", invoice_id)
    return {"charge": f"ch_{invoice_id}"}


async def email_invoice(invoice_id: str) -> None:
    """Pretend to email the invoice."""
    await asyncio.sleep(0)
    _record("emailed", invoice_id)


def load_invoice_ids() -> list[str]:
    """Invoices a replay script would load from a database."""
    return ["INV-101", "INV-102", "INV-103"]
