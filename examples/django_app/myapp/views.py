# views.py
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST
from relier.core.exceptions import AdmissionRejectedError

from .tasks import send_invoice

@require_POST
def dispatch_invoice(request: HttpRequest, invoice_id: str) -> JsonResponse:
    try:
        send_invoice.push(invoice_id)
    except AdmissionRejectedError as exc:
        response = JsonResponse(
            {"detail": "Service at capacity, retry later."},
            status=429,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    return JsonResponse({"status": "queued"}, status=202)


# Async view (Django 4.1+)
async def dispatch_invoice_async(request: HttpRequest, invoice_id: str) -> JsonResponse:
    try:
        await send_invoice.apush(invoice_id)
    except AdmissionRejectedError as exc:
        response = JsonResponse(
            {"detail": "Service at capacity, retry later."},
            status=429,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    return JsonResponse({"status": "queued"}, status=202)
