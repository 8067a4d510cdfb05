"""Adversarial review of the issue 10 fixes: the unsigned digest can be stripped.

With default settings (no signing keys, ``RELIER_ACCEPT_UNSIGNED`` on) every envelope Relier
seals carries a BLAKE2b digest, but the worker still opens the *legacy* format (``RL\\x01\\x00``
and a bare body) for any record. Rewriting ``rl:e:{id}`` to that format, argument edited, runs
the edited argument: the digest is stripped, not checked. A record written by a producer that
seals digests can never legitimately hold a legacy envelope.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from relier.envelope.sealing import DIGEST_SIZE
from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, record, wait_for
from relier_testing.workers import WorkerProcess


@pytest.mark.xfail(strict=True, reason=(
    "hole 13: unsigned mode accepts a digest envelope rewritten to the legacy format: "
    "docs/limitations.md"))
def test_digest_envelope_downgraded_to_legacy_format_is_not_run(
    relier_worker: Callable[..., WorkerProcess], relier_env: dict[str, str]
) -> None:
    client = redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])
    receipt = tasks.record.push("honest")  # no worker yet: the envelope waits in Redis
    sealed = client.get(KEYS.envelope(receipt.id))
    assert sealed is not None
    assert sealed[2] == 2  # sealed with a digest
    body = sealed[4 + DIGEST_SIZE:]
    assert b'"honest"' in body
    client.set(KEYS.envelope(receipt.id), b"RL\x01\x00" + body.replace(b'"honest"', b'"forged"'))
    relier_worker(concurrency=1, pool="solo")
    wait_for(lambda: client.hget(KEYS.task(receipt.id), "s") in (b"done", b"dead"), 20,
             "the task to leave")
    assert counter(client, "start", "forged") == 0
    rec = record(client, receipt.id)
    assert rec.state == "dead", rec.state
    assert rec.reason == "PayloadIntegrityError", rec.reason
