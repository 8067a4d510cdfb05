from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from relier.core.exceptions import AdmissionRejectedError

from tasks import send_invoice

async def dispatch_invoice(request: Request) -> JSONResponse:
    invoice_id = request.path_params["invoice_id"]
    try:
        await send_invoice.apush(invoice_id)
    except AdmissionRejectedError as exc:
        return JSONResponse(
            {"detail": "at capacity"},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    return JSONResponse({"status": "queued"})

app = Starlette(routes=[
    Route("/invoices/{invoice_id}/send", dispatch_invoice, methods=["POST"]),
])
