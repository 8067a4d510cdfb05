from relier.tasks.decorator import rl_task

from effects import charge_card


@rl_task()
async def send_invoice(invoice_id: str) -> dict:
    return await charge_card(invoice_id)
