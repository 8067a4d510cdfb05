"""relier-admission: cluster-wide admission control with ``Retry-After``.

Sliding-window limits, global (``RELIER_ADMISSION_LIMIT`` per ``RELIER_ADMISSION_WINDOW``
seconds), per queue (``RELIER_ADMISSION_QUEUE_LIMITS``) and per key
(``RELIER_ADMISSION_KEY_LIMIT``, with ``admission_key``). Relier applies them inside the
dispatch script itself; ``Admission`` checks them on its own, in any web app.
"""

from __future__ import annotations

from importlib.metadata import version

from relier.admission.check import Admission, Decision, counters
from relier.admission.policy import AdmissionPolicy, admission_key, current_admission_key

__version__ = version("relier-admission")

__all__ = [
    "Admission",
    "AdmissionPolicy",
    "Decision",
    "__version__",
    "admission_key",
    "counters",
    "current_admission_key",
]
