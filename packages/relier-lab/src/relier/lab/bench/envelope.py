"""Cost of sealing and opening a small envelope (no Redis), in microseconds per operation.

Sealing = argument check + JSON encoding + HMAC-SHA256; opening = parsing + HMAC check + JSON
decoding. Each figure is the median of ``repeat`` runs of ``number`` operations.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from typing import Any

from relier.envelope import Envelope, Keyring, open_envelope, seal
from relier.lab.bench import BenchEnv


def run(env: BenchEnv | None = None, repeat: int = 7, number: int = 20_000) -> dict[str, Any]:
    """Seal and open a one-argument task with two keyword arguments."""
    keyring = Keyring([("k1", b"0123456789abcdef0123456789abcdef")])
    dev = Keyring()
    args, kwargs = ["INV-2026-0042"], {"amount_cents": 4200, "currency": "EUR"}

    def make() -> Envelope:
        return Envelope.new("billing.send_invoice", "8c7f5f1e2d4b4c3a9e1f0a2b3c4d5e6f",
                            args, kwargs, producer="web-1:4242")

    envelope = make()
    raw, dev_raw = seal(envelope, keyring), seal(envelope, dev)

    def per_op(fn: Callable[[], object]) -> float:
        return statistics.median(timeit.repeat(fn, repeat=repeat, number=number)) / number * 1e6

    return {
        "unit": "us", "repeat": repeat, "number": number, "payload_bytes": len(raw),
        "build_and_seal": per_op(lambda: seal(make(), keyring)),
        "seal": per_op(lambda: seal(envelope, keyring)),
        "open": per_op(lambda: open_envelope(raw, keyring)),
        "seal_unsigned": per_op(lambda: seal(envelope, dev)),
        "open_unsigned": per_op(lambda: open_envelope(dev_raw, dev)),
    }
