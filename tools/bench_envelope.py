"""Cost of sealing and opening a small envelope, in microseconds per operation.

Usage: ``uv run python tools/bench_envelope.py [--json]``

Sealing = argument check + JSON encoding + HMAC-SHA256; opening = parsing + HMAC check + JSON
decoding. Each figure is the median of 7 runs of 20,000 operations.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import timeit

from relier.envelope import Envelope, Keyring, open_envelope, seal

REPEAT, NUMBER = 7, 20_000


def measure() -> dict[str, float]:
    keyring = Keyring([("k1", b"0123456789abcdef0123456789abcdef")])
    dev = Keyring()
    args, kwargs = ["INV-2026-0042"], {"amount_cents": 4200, "currency": "EUR"}

    def make() -> Envelope:
        return Envelope.new("billing.send_invoice", "8c7f5f1e2d4b4c3a9e1f0a2b3c4d5e6f",
                            args, kwargs, producer="web-1:4242")

    env = make()
    raw = seal(env, keyring)
    dev_raw = seal(env, dev)

    def per_op(fn: object) -> float:
        times = timeit.repeat(fn, repeat=REPEAT, number=NUMBER)  # type: ignore[arg-type]
        return statistics.median(times) / NUMBER * 1e6

    return {
        "payload_bytes": float(len(raw)),
        "build_and_seal_us": per_op(lambda: seal(make(), keyring)),
        "seal_us": per_op(lambda: seal(env, keyring)),
        "open_us": per_op(lambda: open_envelope(raw, keyring)),
        "seal_unsigned_us": per_op(lambda: seal(env, dev)),
        "open_unsigned_us": per_op(lambda: open_envelope(dev_raw, dev)),
    }


def main() -> int:
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
        return 0
    print(f"envelope ({platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}), median of {REPEAT} x {NUMBER}:")
    for name, value in result.items():
        unit = "" if name == "payload_bytes" else " us"
        print(f"  {name:<20} {value:8.2f}{unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
