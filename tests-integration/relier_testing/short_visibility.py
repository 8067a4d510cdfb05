"""A Relier app with kombu's ack emulation switched back on and a 1 s visibility timeout.

Relier turns ack emulation off; a user may turn it on again, and then kombu redelivers every
message still "unacked" after the timeout. The claim must drop those redeliveries.
"""

from __future__ import annotations

from relier.tasks.install import create_app

app = create_app()
app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                     "ack_emulation": True, "visibility_timeout": 1}
