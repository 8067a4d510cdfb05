from flask import Flask, jsonify
from relier.core.exceptions import AdmissionRejectedError

from tasks import send_invoice

app = Flask(__name__)

@app.errorhandler(AdmissionRejectedError)
def admission_handler(exc: AdmissionRejectedError) -> tuple:
    response = jsonify(detail="Service at capacity, retry later.")
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response

@app.post("/invoices/<invoice_id>/send")
def dispatch_invoice(invoice_id: str) -> tuple:
    send_invoice.push(invoice_id)        # sync dispatch, no await
    return jsonify(status="queued"), 202
