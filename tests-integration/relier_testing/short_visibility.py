"""A Relier app whose kombu visibility timeout is 1 s (far below the tasks it runs)."""

from __future__ import annotations

from relier.tasks.install import create_app

app = create_app()
app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                     "visibility_timeout": 1}
