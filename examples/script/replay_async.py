# replay.py, async script
import asyncio

from effects import load_invoice_ids
from tasks import send_invoice


async def main() -> None:
    for invoice_id in load_invoice_ids():
        await send_invoice.apush(invoice_id)

asyncio.run(main())
