from relier.tasks.decorator import rl_task

from effects import charge_card


@rl_task(idempotent=True)
async def send_invoice(invoice_id: str) -> dict:
    # The task itself is still async, Relier runs it on the worker's loop.
    result = await charge_card(invoice_id)
    return result
