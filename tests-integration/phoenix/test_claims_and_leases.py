"""Issue 10, items 1, 3 and 4 on real processes: the claim trusts only the record, the
lost-message pass reads the broker it publishes to, and a late lease renewal never revives an
expired lease."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from relier.core.settings import reset_settings
from relier.phoenix import lease as lease_module
from relier.phoenix.lease import LeaseKeeper
from relier.phoenix.ledger import MAX_REPUBLISH, Ledger
from relier.phoenix.resurrector import Resurrector
from relier.tasks import dispatch
from relier_testing import tasks
from relier_testing.helpers import KEYS, counter, record, wait_for
from relier_testing.redis_server import LocalRedis
from relier_testing.workers import WorkerProcess

GRACE = 0.2  # RELIER_RESURRECTION_CLAIM_GRACE_PERIOD in these tests
#: Longer than it takes a wrongly "lost" message to be re-published MAX_REPUBLISH times and
#: dead-lettered NeverClaimed (one round per grace period plus a check interval).
NEVER_CLAIMED_WINDOW = (MAX_REPUBLISH + 2) * (GRACE + 0.1) + 1.0


@pytest.fixture
def client(relier_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(relier_env["RELIER_REDIS_URL"])


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings(None)
    dispatch.reset_dispatcher(None)


def _forge_header(client: redis.Redis, queue: str, task_id: str, rl_idem: str) -> None:
    """Rewrite the queued message of ``task_id``: its unsigned rl_idem header now lies."""
    messages = client.lrange(queue, 0, -1)
    for raw in messages:
        message = json.loads(raw)
        if message["headers"]["id"] == task_id:
            client.lrem(queue, 1, raw)
            message["headers"]["rl_idem"] = rl_idem
            client.lpush(queue, json.dumps(message))
            return
    raise AssertionError(f"no message of {task_id} in {queue}")


# -- item 1 ------------------------------------------------------------------------------------

def test_forged_idem_header_naming_another_record_cannot_lose_it(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """A header naming rl:t:{victim} used to leave the victim in state 'r' forever."""
    victim = tasks.record.push("victim")
    payer = tasks.charge.push("acct", 5)
    _forge_header(client, "default", payer.id, KEYS.task(victim.id))
    worker = relier_worker(concurrency=1)
    assert payer.get(timeout=20)["charged"] == 5
    assert victim.get(timeout=20) == "victim"
    assert record(client, victim.id).state == "done"
    assert counter(client, "done", "victim") == 1
    # The stamped rl_seq reached the claim through a real worker: the watermark moved.
    assert client.hget(KEYS.queue_claimed, "high_priority") == b"1"
    assert "the message header is not trusted" in worker.log()


def test_forged_idem_header_naming_a_committed_key_cannot_borrow_its_result(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """A header naming another call's committed key used to mark the task done with that
    call's result, without running it."""
    early = relier_worker(concurrency=1)
    first = tasks.charge.push("alice", 1)
    assert first.get(timeout=20)["charged"] == 1
    early.stop(timeout=10)
    committed = client.hget(KEYS.task(first.id), "x")
    assert committed
    second = tasks.charge.push("bob", 2)
    _forge_header(client, "default", second.id, committed.decode())
    relier_worker(concurrency=1)
    assert second.get(timeout=20)["charged"] == 2
    rec = record(client, second.id)
    assert rec.duplicate_of == ""
    assert counter(client, "charge", "bob:2") == 1


# -- item 3 ------------------------------------------------------------------------------------

@pytest.fixture
def separate_broker(local_redis_factory: Callable[..., LocalRedis], relier_env: dict[str, str],
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    broker = local_redis_factory()
    env = {"RELIER_BROKER_URL": broker.url,
           "RELIER_RESURRECTION_CLAIM_GRACE_PERIOD": str(GRACE),
           "RELIER_RESURRECTION_CHECK_INTERVAL": "0.1",
           "RELIER_HEARTBEAT_TTL": "1"}
    _use(monkeypatch, env)
    yield env
    reset_settings(None)
    dispatch.reset_dispatcher(None)


def test_separate_broker_backlog_is_not_republished_nor_dead_lettered(
    separate_broker: dict[str, str], resurrector: Callable[..., WorkerProcess],
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """The lost-message pass measured the broker's lists on the coordination Redis, saw them
    empty, and re-published a healthy backlog until it was dead-lettered NeverClaimed."""
    broker = redis.Redis.from_url(separate_broker["RELIER_BROKER_URL"])
    receipts = [tasks.record.push(f"backlog{i}") for i in range(20)]
    assert broker.llen("high_priority") == 20
    assert client.llen("high_priority") == 0
    resurrector(env=separate_broker)
    time.sleep(NEVER_CLAIMED_WINDOW)  # no worker yet: the backlog just waits
    assert broker.llen("high_priority") == 20
    assert client.zcard(KEYS.dlq) == 0
    assert [record(client, r.id).republished for r in receipts] == [0] * 20
    relier_worker(concurrency=2, env=separate_broker)
    assert [r.get(timeout=30) for r in receipts] == [f"backlog{i}" for i in range(20)]
    # Messages pushed to the separate broker carry their sequence too (stamped in Python).
    assert client.hget(KEYS.queue_claimed, "high_priority") == b"20"


def test_fused_stale_duplicate_message_does_not_push_the_watermark_past_the_backlog(
    relier_env: dict[str, str], client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A claim used to move the queue's watermark to the record's latest sequence even when
    the delivered message was an older copy: the whole backlog then looked lost."""
    _use(monkeypatch, {"RELIER_RESURRECTION_CLAIM_GRACE_PERIOD": str(GRACE)})
    ledger = Ledger()
    receipts = [tasks.record.push(f"fused{i}") for i in range(20)]
    first = receipts[0].id
    seq = int(client.hget(KEYS.task(first), "sq") or 0)
    assert ledger.republish(first, "high_priority", seq).kind == "done"  # a second copy
    stale = client.rpop("high_priority")  # the oldest message: the first copy
    assert stale is not None
    headers = json.loads(stale)["headers"]
    assert (headers["id"], headers["rl_seq"]) == (first, seq)
    ledger.register_worker("w", ttl_ms=60_000, facts={"hostname": "w"})
    claimed = ledger.claim(task_id=first, worker_id="w", queue="high_priority",
                           message_seq=str(headers["rl_seq"]))
    assert claimed.kind == "claimed"
    resurrector = Resurrector(ledger.settings)
    end = time.monotonic() + NEVER_CLAIMED_WINDOW
    while time.monotonic() < end:
        resurrector.run_pass()
        time.sleep(0.05)
    assert client.zcard(KEYS.dlq) == 0
    assert [record(client, r.id).republished for r in receipts[1:]] == [0] * 19
    assert client.llen("high_priority") == 20  # 19 waiting + the second copy of the first


# -- item 4 ------------------------------------------------------------------------------------

def test_keeper_fences_the_runs_of_a_lease_that_expired_before_its_renewal(
    relier_env: dict[str, str], client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lease_module, "_current", None)  # register() sets it; undo at teardown
    ledger = Ledger()
    keeper = LeaseKeeper(ledger, hostname="celery@stalled", queues=["high_priority"],
                         active_ids=set)
    keeper.register()
    receipt = tasks.record.push("stalled")
    run = ledger.claim(task_id=receipt.id, worker_id=keeper.worker_id, queue="high_priority")
    assert run.kind == "claimed"
    client.zadd(KEYS.workers, {keeper.worker_id: 1})  # the deadline passed during a stall
    keeper.renew()
    assert keeper.lost_leases == 1
    rec = record(client, receipt.id)
    assert rec.state == "queued"
    assert [a.outcome for a in rec.history] == ["lease_expired"]
    assert "renewed too late" in rec.history[0].cause
    now_ms = int(time.time() * 1000)
    assert (client.zscore(KEYS.workers, keeper.worker_id) or 0) > now_ms  # registered again
    # The old run is fenced: its result is refused.
    assert not ledger.complete(
        task_id=receipt.id, worker_id=keeper.worker_id, epoch=run.epoch, result=b'"old"')
    # A new incarnation under the new lease; a resurrector acting on a scan made while the
    # lease was expired must not take it away.
    again = ledger.claim(task_id=receipt.id, worker_id=keeper.worker_id, queue="re-queue")
    assert (again.kind, again.epoch) == ("claimed", run.epoch + 1)
    stale_scan = ledger.requeue(receipt.id, owner=keeper.worker_id, kind="lease_expired",
                                cause="lease expired (stale scan)")
    assert stale_scan.kind == "skipped"
    assert record(client, receipt.id).state == "running"


def test_worker_stalled_past_its_ttl_is_fenced_and_the_task_completes_once(
    relier_worker: Callable[..., WorkerProcess], client: redis.Redis,
) -> None:
    """SIGSTOP for longer than the 3 s lease, then SIGCONT: the late renewal must report the
    lease lost (it used to revive it), the stalled run is fenced, the task completes once."""
    stalled = relier_worker(concurrency=1, queues=["high_priority"])
    receipt = tasks.record.push("stall", 8.0)
    wait_for(lambda: counter(client, "start", "stall"), 15, "running")
    stalled.kill_group(signal.SIGSTOP)
    try:
        time.sleep(4.5)
        relier_worker(concurrency=1, queues=["re-queue"])
    finally:
        stalled.kill_group(signal.SIGCONT)
    assert receipt.get(timeout=40) == "stall"
    wait_for(lambda: "run fenced off" in stalled.log(), 15, "the stalled run fenced off")
    rec = record(client, receipt.id)
    assert rec.state == "done"
    assert [a.outcome for a in rec.history] == ["lease_expired", "completed"]
    assert rec.epoch == 2
    log = stalled.log()
    assert "lost its lease" in log
    assert "run fenced (lease lost)" in log
