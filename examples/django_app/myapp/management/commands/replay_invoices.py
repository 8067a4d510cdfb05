# management/commands/replay_invoices.py
from typing import Any

from django.core.management.base import BaseCommand
from myapp.tasks import send_invoice

class _Invoice:
    def __init__(self, id: str) -> None:
        self.id = id


class _InvoiceQuerySet(list[_Invoice]):
    """Stands in for Invoice.objects.filter(...) in this database-free example."""

    def count(self) -> int:  # type: ignore[override]
        return len(self)


queryset = _InvoiceQuerySet([_Invoice("INV-201"), _Invoice("INV-202")])


class Command(BaseCommand):
    def handle(self, *args: Any, **opts: Any) -> None:
        for invoice in queryset:
            send_invoice.push(invoice.id)
        self.stdout.write(f"Queued {queryset.count()} invoices.")
