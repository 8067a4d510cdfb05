"""The ready-made Celery app: ``celery -A relier.tasks.app worker``.

Configured from ``RELIER_*`` settings (``RELIER_IMPORTS`` names the modules holding your
tasks, or pass Celery's ``--include``). To keep your own app instead, call
``relier.install(your_app)``.
"""

from __future__ import annotations

from relier.tasks.install import create_app

__all__ = ["app", "celery_app"]

app = create_app()
#: The name the earlier Relier used.
celery_app = app
