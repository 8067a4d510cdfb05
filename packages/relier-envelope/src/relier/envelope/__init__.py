"""relier-envelope: the signed, versioned task envelope.

``seal`` encodes an ``Envelope`` and signs it (HMAC-SHA256, key ids for rotation), or, without
keys, adds a BLAKE2b digest of its bytes; ``open_envelope`` verifies and decodes, raising only
``PayloadIntegrityError``;
``migrations`` upgrades payloads written by older code.
"""

from __future__ import annotations

from importlib.metadata import version

from relier.envelope.migrations import Migrations, MigrationStep, migrations
from relier.envelope.model import Envelope, Headers, check_arguments
from relier.envelope.sealing import (
    Keyring,
    open_bytes,
    open_envelope,
    peek_task_name,
    seal,
    seal_bytes,
)

__version__ = version("relier-envelope")

__all__ = [
    # The envelope
    "Envelope",
    "Headers",
    # Sealing
    "Keyring",
    # Migrations
    "MigrationStep",
    "Migrations",
    "__version__",
    "check_arguments",
    "migrations",
    "open_bytes",
    "open_envelope",
    "peek_task_name",
    "seal",
    "seal_bytes",
]
