from relier.tasks.decorator import rl_task

from effects import charge_card, email_invoice


@rl_task(
    queue="default",
    idempotent=True,
    idempotency_ttl=3600,
    soft_timeout=25,
    hard_timeout=30,
)
async def send_invoice(invoice_id: str) -> dict:
    # Anything you'd do in a normal async function works here.
    result = await charge_card(invoice_id)
    await email_invoice(invoice_id)
    return {"charged": True, "invoice_id": invoice_id}
