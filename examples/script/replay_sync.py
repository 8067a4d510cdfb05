# replay.py, sync script
from effects import load_invoice_ids
from tasks import send_invoice

for invoice_id in load_invoice_ids():
    send_invoice.push(invoice_id)
