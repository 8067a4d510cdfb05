from django.urls import path
from myapp import views

urlpatterns = [
    path("invoices/<str:invoice_id>/send", views.dispatch_invoice),
    path("async/invoices/<str:invoice_id>/send", views.dispatch_invoice_async),
]
