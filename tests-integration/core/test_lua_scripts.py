"""Each Lua script against a real Redis: the atomic protocol of the task ledger."""

from __future__ import annotations

import json
import time

import pytest
import redis

from relier.core import Keys, Ops, scripts
from relier.core.ops import AdmissionScope, CheckpointReply, DispatchRequest

K = Keys()
OPS = Ops(K)


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def dispatch(r: redis.Redis, task_id: str = "t1", **kw: object):  # type: ignore[no-untyped-def]
    args = {"task_name": "app.job", "queue": "default", "envelope": b"ENV",
            "max_resurrections": 2, "message": b"MSG:" + task_id.encode()}
    args.update(kw)
    message = args.pop("message")
    return scripts(r).run(OPS.dispatch(DispatchRequest(task_id=task_id, **args),  # type: ignore[arg-type]
                                       message))  # type: ignore[arg-type]


def register(r: redis.Redis, wid: str = "w1", ttl_ms: int = 10_000) -> None:
    scripts(r).run(OPS.register_worker(worker_id=wid, ttl_ms=ttl_ms, facts={"hostname": "h"}))


def claim(r: redis.Redis, task_id: str = "t1", wid: str = "w1", queue: str = "default",
          **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("result_ttl", 60)
    return scripts(r).run(OPS.claim(task_id=task_id, worker_id=wid, queue=queue, **kw))  # type: ignore[arg-type]


def history(r: redis.Redis, task_id: str = "t1") -> list[dict[str, object]]:
    raw = r.hget(K.task(task_id), "h") or b""
    return [json.loads(line) for line in raw.decode().splitlines()]


def test_dispatch_writes_record_index_and_message_atomically(r: redis.Redis) -> None:
    reply = dispatch(r)
    assert reply.kind == "accepted"
    assert reply.seq == 1
    rec = r.hgetall(K.task("t1"))
    assert rec[b"s"] == b"queued"
    assert r.get(K.envelope("t1")) == b"ENV"
    assert r.object("encoding", K.task("t1")) == b"listpack"  # compact while live
    assert rec[b"ep"] == b"0"
    assert r.zscore(K.pending("default"), "t1") == 1
    assert r.lrange("default", 0, -1) == [b"MSG:t1"]
    assert r.ttl(K.task("t1")) == -1  # live records never expire


def test_dispatch_without_message_writes_only_the_ledger(r: redis.Redis) -> None:
    assert dispatch(r, message=b"").kind == "accepted"
    assert r.llen("default") == 0
    assert r.exists(K.task("t1"))


def test_admission_refusal_writes_nothing_and_consumes_nothing(r: redis.Redis) -> None:
    scope = (AdmissionScope(K.admission("global"), 2, 60_000),)
    assert dispatch(r, "a", admission=scope).kind == "accepted"
    assert dispatch(r, "b", admission=scope).kind == "accepted"
    before = sorted(r.keys("*"))
    refused = dispatch(r, "c", admission=scope)
    assert refused.kind == "rejected"
    assert 0 < refused.retry_after_ms <= 60_000
    assert refused.scope_position == 1
    assert sorted(r.keys("*")) == before
    assert r.zcard(K.admission("global")) == 2


def test_idempotent_duplicate_returns_owner_without_spending_admission(r: redis.Redis) -> None:
    scope = (AdmissionScope(K.admission("global"), 1, 60_000),)
    idem = K.idempotency("app.job", "abc")
    assert dispatch(r, "t1", idem_key=idem, idem_ttl=60, admission=scope).kind == "accepted"
    dup = dispatch(r, "t2", idem_key=idem, idem_ttl=60, admission=scope)
    assert (dup.kind, dup.task_id, dup.state) == ("duplicate", "t1", "queued")
    assert not r.exists(K.task("t2"))
    assert r.llen("default") == 1


def test_claim_requires_a_live_lease(r: redis.Redis) -> None:
    dispatch(r)
    assert claim(r).kind == "no_lease"
    register(r, ttl_ms=1)
    time.sleep(0.01)
    assert claim(r).kind == "no_lease"
    assert r.hget(K.task("t1"), "s") == b"queued"


def test_claim_opens_epochs_and_drops_every_duplicate(r: redis.Redis) -> None:
    register(r)
    dispatch(r)
    first = claim(r, message_seq="1")
    assert (first.kind, first.epoch, first.attempt, first.envelope) == ("claimed", 1, 1, b"ENV")
    assert r.sismember(K.worker_tasks("w1"), "t1")
    assert not r.zscore(K.pending("default"), "t1")
    assert r.hget(K.queue_claimed, "default") == b"1"
    again = claim(r, wid="w1")
    assert (again.kind, again.state, again.owner) == ("duplicate", "running", "w1")
    assert claim(r, "missing-id").kind == "missing"


def test_complete_is_fenced_on_epoch(r: redis.Redis) -> None:
    register(r)
    dispatch(r)
    c = claim(r)
    sc = scripts(r)
    assert not sc.run(OPS.complete(task_id="t1", worker_id="w1", epoch=c.epoch + 1,
                                   result=b"1", result_ttl=60))
    assert sc.run(OPS.complete(task_id="t1", worker_id="w1", epoch=c.epoch, result=b"42",
                               result_ttl=60))
    rec = r.hgetall(K.task("t1"))
    assert (rec[b"s"], rec[b"r"]) == (b"done", b"42")
    assert 0 < r.ttl(K.task("t1")) <= 60
    assert not r.sismember(K.worker_tasks("w1"), "t1")
    assert [h["o"] for h in history(r)] == ["completed"]
    assert claim(r).kind == "duplicate"  # a late redelivery of a done task never runs


def test_zombie_loses_every_write_after_takeover(r: redis.Redis) -> None:
    sc = scripts(r)
    register(r, "w1", ttl_ms=50)
    register(r, "w2")
    dispatch(r)
    zombie = claim(r, wid="w1")
    time.sleep(0.08)  # w1 stops renewing: its lease expires
    moved = sc.run(OPS.requeue(task_id="t1", owner="w1", kind="lease_expired",
                               cause="lease expired", queue="re-queue", message=b"M"))
    assert moved.kind == "done"
    fresh = claim(r, wid="w2", queue="re-queue")
    assert fresh.epoch == zombie.epoch + 1
    assert fresh.attempt == 2
    assert fresh.resurrections == 1
    assert not sc.run(OPS.checkpoint(task_id="t1", epoch=zombie.epoch, data=b"old")).stored
    assert not sc.run(OPS.complete(task_id="t1", worker_id="w1", epoch=zombie.epoch,
                                   result=b"zombie", result_ttl=60))
    assert not sc.run(OPS.fail(task_id="t1", worker_id="w1", epoch=zombie.epoch, reason="X"))
    assert sc.run(OPS.checkpoint(task_id="t1", epoch=fresh.epoch, data=b"new")) == \
        CheckpointReply(stored=True, replaced=b"")
    assert sc.run(OPS.checkpoint(task_id="t1", epoch=fresh.epoch, data=b"newer")) == \
        CheckpointReply(stored=True, replaced=b"new")
    assert r.hget(K.task("t1"), "ck") == b"newer"
    assert r.hget(K.task("t1"), "s") == b"running"


def test_requeue_counts_deaths_and_dead_letters_past_the_limit(r: redis.Redis) -> None:
    sc = scripts(r)
    register(r)
    dispatch(r, max_resurrections=1)
    claim(r)
    handoff = sc.run(OPS.requeue(task_id="t1", owner="w1", kind="handoff", cause="drain",
                                 queue="re-queue", message=b"M"))
    assert handoff.kind == "done"
    assert r.hget(K.task("t1"), "k") == b"0"  # a hand-off is not a death
    claim(r, queue="re-queue")
    assert sc.run(OPS.requeue(task_id="t1", owner="w1", kind="killed",
                              cause="signal 9 (SIGKILL)", queue="re-queue",
                              message=b"M")).kind == "done"
    claim(r, queue="re-queue")
    assert sc.run(OPS.requeue(task_id="t1", owner="wrong", kind="killed", cause="x",
                              queue="re-queue")).kind == "skipped"
    dead = sc.run(OPS.requeue(task_id="t1", owner="w1", kind="killed",
                              cause="signal 9 (SIGKILL)", queue="re-queue", message=b"M"))
    assert dead.kind == "dead"
    rec = r.hgetall(K.task("t1"))
    assert rec[b"dr"] == b"max_resurrections_exceeded"
    assert r.zscore(K.dlq, "t1") is not None
    assert [h["o"] for h in history(r)] == ["handoff", "killed", "killed"]
    assert history(r)[-1]["c"] == "signal 9 (SIGKILL)"


def test_fail_keeps_envelope_and_history_and_releases_the_key(r: redis.Redis) -> None:
    sc = scripts(r)
    register(r)
    idem = K.idempotency("app.job", "k")
    dispatch(r, idem_key=idem, idem_ttl=60)
    c = claim(r, idem_key=idem)
    assert sc.run(OPS.fail(task_id="t1", worker_id="w1", epoch=c.epoch, reason="ValueError",
                           exc_type="builtins.ValueError", message="bad", traceback="TB",
                           idem_key=idem))
    rec = r.hgetall(K.task("t1"))
    assert (rec[b"s"], rec[b"dr"], rec[b"tb"]) == (b"dead", b"ValueError", b"TB")
    assert r.get(K.envelope("t1")) == b"ENV"
    assert not r.exists(idem)
    assert r.ttl(K.task("t1")) == -1


def test_fail_without_claim_records_raw_bytes_of_an_orphan(r: redis.Redis) -> None:
    sc = scripts(r)
    assert sc.run(OPS.fail(task_id="ghost", worker_id="w1", epoch=0,
                           reason="LedgerRecordMissing", raw=b"\x00raw", task_name="app.job",
                           queue="default", outcome="rejected"))
    rec = r.hgetall(K.task("ghost"))
    assert (rec[b"s"], rec[b"n"]) == (b"dead", b"app.job")
    assert r.get(K.envelope("ghost")) == b"\x00raw"
    assert not sc.run(OPS.fail(task_id="ghost", worker_id="w1", epoch=0, reason="again"))


def test_release_restarts_fencing_keeps_history_and_uses_own_queue(r: redis.Redis) -> None:
    sc = scripts(r)
    register(r)
    dispatch(r, max_resurrections=0)
    claim(r)
    sc.run(OPS.requeue(task_id="t1", owner="w1", kind="killed", cause="signal 9",
                       queue="re-queue", message=b"M"))
    r.delete("default")
    released = sc.run(OPS.release(task_id="t1", queue="default", message=b"REL"))
    assert released.kind == "done"
    rec = r.hgetall(K.task("t1"))
    assert (rec[b"s"], rec[b"k"], rec[b"mq"]) == (b"queued", b"0", b"default")
    assert b"dr" not in rec
    assert r.lrange("default", 0, -1) == [b"REL"]
    assert r.zscore(K.dlq, "t1") is None
    assert [h["o"] for h in history(r)] == ["killed", "released"]
    again = claim(r)
    assert again.kind == "claimed"
    assert again.epoch == 2
    assert sc.run(OPS.release(task_id="t1", queue="default", message=b"")).kind == "skipped"


def test_purge_only_removes_dead_records(r: redis.Redis) -> None:
    sc = scripts(r)
    dispatch(r)
    assert not sc.run(OPS.purge(task_id="t1"))
    assert r.exists(K.task("t1"))
    sc.run(OPS.fail(task_id="t2", worker_id="w", epoch=0, reason="x", raw=b"r",
                    task_name="n", queue="default"))
    assert sc.run(OPS.purge(task_id="t2"))
    assert not r.exists(K.task("t2"))
    assert r.zcard(K.dlq) == 0


def test_republish_is_a_compare_and_set_and_gives_up(r: redis.Redis) -> None:
    sc = scripts(r)
    dispatch(r)
    r.delete("default")  # the message is lost
    one = sc.run(OPS.republish(task_id="t1", queue="default", seq=1, message=b"M2",
                               max_republish=1))
    assert (one.kind, one.seq) == ("done", 2)
    assert r.lrange("default", 0, -1) == [b"M2"]
    stale = sc.run(OPS.republish(task_id="t1", queue="default", seq=1, message=b"M3",
                                 max_republish=1))
    assert stale.kind == "skipped"
    assert sc.run(OPS.republish(task_id="t1", queue="default", seq=2, message=b"M3",
                                max_republish=1)).kind == "dead"
    assert r.hget(K.task("t1"), "dr") == b"NeverClaimed"


def test_never_claimed_limit_counts_only_since_the_last_claim(r: redis.Redis) -> None:
    """Hand-offs of a task that keeps being claimed must not drift it into NeverClaimed."""
    sc = scripts(r)
    register(r)
    dispatch(r)
    for _ in range(3):  # lost once, re-published, claimed, handed off: again and again
        seq = r.hget(K.task("t1"), "sq").decode()
        mq = r.hget(K.task("t1"), "mq").decode()
        assert sc.run(OPS.republish(task_id="t1", queue=mq, seq=int(seq), message=b"M",
                                    max_republish=1)).kind == "done"
        assert claim(r, queue=mq).kind == "claimed"
        sc.run(OPS.requeue(task_id="t1", owner="w1", kind="handoff", cause="drain",
                           queue="re-queue", message=b"H"))
    assert r.hget(K.task("t1"), "s") == b"queued"
    assert r.hget(K.task("t1"), "rp") == b"3"  # the story keeps the total


def test_a_bounce_counts_apart_from_never_claimed_and_ends_unregistered(r: redis.Redis
                                                                          ) -> None:
    """A worker lacking the task put it back for a busy one that has it: not a lost message."""
    sc = scripts(r)
    register(r)
    dispatch(r)
    for _ in range(3):
        seq = int(r.hget(K.task("t1"), "sq") or 0)
        assert sc.run(OPS.republish(task_id="t1", queue="default", seq=seq, message=b"M",
                                    max_republish=3, bounce="busy: celery@big")).kind == "done"
    assert (r.hget(K.task("t1"), "rp"), r.hget(K.task("t1"), "ub")) == (None, b"3")
    assert claim(r, queue="default").kind == "claimed"
    assert r.hget(K.task("t1"), "ub") is None  # counted since the last claim
    sc.run(OPS.requeue(task_id="t1", owner="w1", kind="handoff", cause="drain",
                       queue="default", message=b"H"))
    for _ in range(3):
        seq = int(r.hget(K.task("t1"), "sq") or 0)
        assert sc.run(OPS.republish(task_id="t1", queue="default", seq=seq, message=b"M",
                                    max_republish=3, bounce="busy: celery@big")).kind == "done"
    seq = int(r.hget(K.task("t1"), "sq") or 0)
    assert sc.run(OPS.republish(task_id="t1", queue="default", seq=seq, message=b"M",
                                max_republish=3, bounce="busy: celery@big")).kind == "dead"
    rec = r.hgetall(K.task("t1"))
    assert (rec[b"s"], rec[b"dr"], rec[b"dm"]) == (b"dead", b"UnregisteredTask",
                                                     b"busy: celery@big")
    assert r.zscore(K.dlq, "t1") is not None
    assert r.zscore(K.pending("default"), "t1") is None
    assert history(r)[-1]["o"] == "rejected"
    assert sc.run(OPS.release(task_id="t1", queue="default", message=b"R")).kind == "done"
    assert r.hget(K.task("t1"), "ub") is None  # a release starts afresh


def test_a_stale_republish_keeps_the_index_entry_of_the_newer_message(r: redis.Redis) -> None:
    """Two callers saw the same sequence: the loser must not unindex the winner's message."""
    sc = scripts(r)
    dispatch(r)
    won = sc.run(OPS.republish(task_id="t1", queue="default", seq=1, message=b"M2",
                               max_republish=10))
    assert won.kind == "done"
    assert sc.run(OPS.republish(task_id="t1", queue="default", seq=1, message=b"M3",
                                max_republish=10, bounce="x")).kind == "skipped"
    assert r.zscore(K.pending("default"), "t1") == won.seq


def test_idempotent_duplicate_at_claim_never_runs(r: redis.Redis) -> None:
    register(r)
    idem = K.idempotency("app.job", "k")
    dispatch(r, "t1", idem_key=idem, idem_ttl=60)
    # A second record with the same key (as an expired-and-reused key would produce).
    r.hset(K.task("t2"), mapping={"s": "queued", "x": idem, "it": 60, "n": "app.job",
                                  "q": "default"})
    dup = claim(r, "t2", idem_key=idem)
    assert (dup.kind, dup.other_task_id) == ("idempotent_duplicate", "t1")
    assert r.hget(K.task("t2"), "dup") == b"t1"
    assert r.hget(K.task("t2"), "s") == b"done"


def test_claim_adopts_a_plain_celery_message(r: redis.Redis) -> None:
    register(r)
    c = claim(r, "legacy-1", adopt=b"SEALED", adopt_name="app.job", adopt_max_resurrections=3)
    assert (c.kind, c.envelope, c.max_resurrections) == ("claimed", b"SEALED", 3)
    assert r.hget(K.task("legacy-1"), "lg") == b"1"


def test_worker_lease_lifecycle(r: redis.Redis) -> None:
    sc = scripts(r)
    register(r, "w1", ttl_ms=50)
    renewed = sc.run(OPS.renew_worker(worker_id="w1", ttl_ms=50))
    assert (renewed.lost, renewed.running, renewed.drain) == (False, 0, "")
    r.hset(K.worker("w1"), "drain", "30")
    assert sc.run(OPS.renew_worker(worker_id="w1", ttl_ms=50)).drain == "30"
    time.sleep(0.08)
    scan = sc.run(OPS.scan_due(K.workers, 10))
    assert scan.due == ["w1"]
    assert sc.run(OPS.reap_worker(worker_id="w1"))
    assert sc.run(OPS.renew_worker(worker_id="w1", ttl_ms=50)).lost
    register(r, "w2", ttl_ms=10_000)
    assert not sc.run(OPS.reap_worker(worker_id="w2"))  # alive
    assert sc.run(OPS.reap_worker(worker_id="w2", force=True))


def test_scan_due_reports_next_deadline(r: redis.Redis) -> None:
    register(r, "w1", ttl_ms=5000)
    scan = scripts(r).run(OPS.scan_due(K.workers, 10))
    assert scan.due == []
    assert 4000 < scan.next_deadline_ms - scan.now_ms <= 5000


def test_sliding_window_admits_at_most_limit_in_any_window(r: redis.Redis) -> None:
    sc = scripts(r)
    scope = (AdmissionScope(K.admission("t"), 5, 300),)
    admitted = [sc.run(OPS.admit(member=f"m{i}", scopes=scope))[0] == 0 for i in range(12)]
    assert sum(admitted) == 5
    wait, position = sc.run(OPS.admit(member="late", scopes=scope))
    assert 0 < wait <= 300
    assert position == 1
    time.sleep(wait / 1000 + 0.02)
    assert sc.run(OPS.admit(member="after", scopes=scope))[0] == 0


def test_multi_scope_refusal_consumes_no_scope(r: redis.Redis) -> None:
    sc = scripts(r)
    wide = AdmissionScope(K.admission("global"), 100, 60_000)
    narrow = AdmissionScope(K.admission("key:t1"), 1, 60_000)
    assert sc.run(OPS.admit(member="a", scopes=(wide, narrow)))[0] == 0
    assert sc.run(OPS.admit(member="b", scopes=(wide, narrow)))[1] == 2
    assert r.zcard(K.admission("global")) == 1


def test_lock_scripts(r: redis.Redis) -> None:
    sc = scripts(r)
    assert sc.run(OPS.lock_acquire(key="k", token="a", ttl_ms=1000)).kind == "acquired"
    assert sc.run(OPS.lock_acquire(key="k", token="b", ttl_ms=1000)).kind == "held"
    assert not sc.run(OPS.lock_renew(key="k", token="b", ttl_ms=1000))
    assert sc.run(OPS.lock_renew(key="k", token="a", ttl_ms=5000))
    assert r.pttl(K.lock("k")) > 1000
    assert not sc.run(OPS.lock_commit(key="k", token="b", result=b"1", ttl_s=60))
    assert sc.run(OPS.lock_commit(key="k", token="a", result=b'"r"', ttl_s=60))
    done = sc.run(OPS.lock_acquire(key="k", token="c", ttl_ms=1000))
    assert (done.kind, done.result) == ("committed", b'"r"')
    assert sc.run(OPS.lock_acquire(key="k2", token="a", ttl_ms=1000)).kind == "acquired"
    assert sc.run(OPS.lock_release(key="k2", token="a"))
    assert not r.exists(K.lock("k2"))


def test_scripts_survive_script_flush(r: redis.Redis) -> None:
    register(r)
    r.script_flush()
    dispatch(r)  # NOSCRIPT -> redis-py loads the script and retries
    assert claim(r).kind == "claimed"


# -- issue 10: the claim trusts the record, never the message's unsigned headers ---------------

def snapshot(r: redis.Redis, *keys: str) -> dict[str, object]:
    """Every listed key's type and content (to prove a call touched none of them)."""
    out: dict[str, object] = {}
    for key in keys:
        kind = r.type(key)
        out[key] = (kind, r.hgetall(key) if kind == b"hash" else r.get(key)
                    if kind == b"string" else None, r.ttl(key))
    return out


def test_forged_idem_header_naming_another_record_touches_nothing(r: redis.Redis) -> None:
    """Issue 10 item 1: rl_idem = rl:t:{victim} left the victim in state 'r' forever."""
    sc = scripts(r)
    register(r)
    dispatch(r, "victim")
    idem = K.idempotency("app.job", "own")
    dispatch(r, "t1", idem_key=idem, idem_ttl=60)
    before = snapshot(r, K.task("victim"), K.task("t1"), idem)
    forged = claim(r, "t1", idem_key=K.task("victim"))
    assert (forged.kind, forged.idem_key) == ("rekey", idem)
    assert snapshot(r, K.task("victim"), K.task("t1"), idem) == before
    # A non-idempotent task carrying the forged header: the header is ignored entirely.
    dispatch(r, "plain")
    assert claim(r, "plain", idem_key=K.task("victim")).kind == "claimed"
    assert snapshot(r, K.task("victim")) == {K.task("victim"): before[K.task("victim")]}
    # The worker claims again with the record's key; the victim still runs to completion.
    own = claim(r, "t1", idem_key=forged.idem_key)
    assert (own.kind, own.idem_key) == ("claimed", idem)
    victim = claim(r, "victim")
    assert victim.kind == "claimed"
    assert sc.run(OPS.complete(task_id="victim", worker_id="w1", epoch=victim.epoch,
                               result=b'"v"', result_ttl=60))
    assert r.hget(K.task("victim"), "s") == b"done"


def test_forged_idem_header_naming_a_committed_key_cannot_borrow_its_result(
    r: redis.Redis,
) -> None:
    """Issue 10 item 1: a header naming another call's committed key marked the task done
    with that call's result."""
    sc = scripts(r)
    register(r)
    other = K.idempotency("app.job", "other-call")
    dispatch(r, "a", idem_key=other, idem_ttl=60)
    a = claim(r, "a", idem_key=other)
    assert sc.run(OPS.complete(task_id="a", worker_id="w1", epoch=a.epoch, result=b'"A"',
                               result_ttl=60, idem_key=other, idem_ttl=60))
    mine = K.idempotency("app.job", "my-call")
    dispatch(r, "b", idem_key=mine, idem_ttl=60)
    forged = claim(r, "b", idem_key=other)
    assert (forged.kind, forged.idem_key) == ("rekey", mine)
    rec = r.hgetall(K.task("b"))
    assert rec[b"s"] == b"queued"
    assert b"dup" not in rec
    assert b"r" not in rec
    # Without any header (a message that lost it): same answer, nothing written.
    assert claim(r, "b").kind == "rekey"
    b = claim(r, "b", idem_key=forged.idem_key)
    assert b.kind == "claimed"
    assert sc.run(OPS.complete(task_id="b", worker_id="w1", epoch=b.epoch, result=b'"B"',
                               result_ttl=60, idem_key=mine, idem_ttl=60))
    assert r.hget(K.task("b"), "r") == b'"B"'
    assert r.hget(other, "r") == b'"A"'


def test_adoption_takes_the_key_computed_from_the_message_args(r: redis.Redis) -> None:
    """A plain Celery message has no record: its key comes from its own arguments."""
    register(r)
    idem = K.idempotency("app.job", "from-args")
    c = claim(r, "legacy-2", idem_key=idem, adopt=b"SEALED", adopt_name="app.job",
              adopt_max_resurrections=3, adopt_idem_ttl=60)
    assert (c.kind, c.idem_key, c.idem_ttl) == ("claimed", idem, 60)
    assert r.hget(idem, "t") == b"legacy-2"
    assert r.hget(K.task("legacy-2"), "x") == idem.encode()


def test_idempotent_duplicate_resolved_at_claim_expires_like_a_completion(
    r: redis.Redis,
) -> None:
    """Issue 10 item 8: the duplicate's record and envelope got no TTL (a leak)."""
    register(r)
    idem = K.idempotency("app.job", "k")
    dispatch(r, "t1", idem_key=idem, idem_ttl=60)
    dispatch(r, "t2", message=b"")
    # A second record with the same key (as an expired-and-reused key would produce).
    r.hset(K.task("t2"), mapping={"x": idem, "it": 60})
    dup = claim(r, "t2", idem_key=idem, result_ttl=120)
    assert dup.kind == "idempotent_duplicate"
    assert 0 < r.ttl(K.task("t2")) <= 120
    assert 0 < r.ttl(K.envelope("t2")) <= 120
    assert r.ttl(K.task("t1")) == -1  # the owner is untouched


# -- issue 10 item 3: the claimed watermark moves only for the message the record waits for ---

def test_stale_duplicate_message_does_not_move_the_watermark(r: redis.Redis) -> None:
    from relier.phoenix.broker import build_message

    register(r)
    for i in range(5):
        dispatch(r, f"b{i}", message=build_message(f"b{i}", "app.job", "default"))
    sc = scripts(r)
    # b0's message is believed lost and published again: the record now waits for seq 6.
    again = sc.run(OPS.republish(task_id="b0", queue="default", seq=1,
                                 message=build_message("b0", "app.job", "default"),
                                 max_republish=10))
    assert again.seq == 6
    stamped = [json.loads(m)["headers"]["rl_seq"] for m in r.lrange("default", 0, -1)]
    assert stamped == [6, 5, 4, 3, 2, 1]  # every publication carries its own sequence
    # The old copy (seq 1) is delivered first: b0 runs, but the backlog b1..b4 is still
    # queued, so the watermark must not jump to 6.
    assert claim(r, "b0", message_seq="1").kind == "claimed"
    assert r.hget(K.queue_claimed, "default") is None
    # The message a record waits for moves it to exactly its own sequence.
    assert claim(r, "b1", message_seq="2").kind == "claimed"
    assert r.hget(K.queue_claimed, "default") == b"2"
    # A message without the header (older producer) never moves it.
    assert claim(r, "b2").kind == "claimed"
    assert r.hget(K.queue_claimed, "default") == b"2"


# -- issue 10 item 4: an expired lease stays expired ----------------------------------------

def test_late_renewal_of_an_expired_lease_reports_it_lost(r: redis.Redis) -> None:
    sc = scripts(r)
    register(r, "w1", ttl_ms=50)
    dispatch(r)
    claim(r)
    time.sleep(0.08)  # a GC pause or a throttled CPU: the worker misses its deadline
    deadline = r.zscore(K.workers, "w1")
    assert sc.run(OPS.renew_worker(worker_id="w1", ttl_ms=10_000)).lost
    assert r.zscore(K.workers, "w1") == deadline  # not revived
    moved = sc.run(OPS.requeue(task_id="t1", owner="w1", kind="lease_expired",
                               cause="lease expired", queue="re-queue", message=b"M"))
    assert moved.kind == "done"
    assert r.hget(K.task("t1"), "s") == b"queued"


def test_lease_expired_requeue_rechecks_the_owner_deadline(r: redis.Redis) -> None:
    """The resurrector's scan is older than its requeue: a live owner keeps its task."""
    sc = scripts(r)
    register(r, "w1", ttl_ms=10_000)
    dispatch(r)
    c = claim(r)
    before = r.hgetall(K.task("t1"))
    stale = sc.run(OPS.requeue(task_id="t1", owner="w1", kind="lease_expired",
                               cause="lease expired", queue="re-queue", message=b"M"))
    assert stale.kind == "skipped"
    assert r.hgetall(K.task("t1")) == before
    assert r.sismember(K.worker_tasks("w1"), "t1")
    assert r.llen("re-queue") == 0
    assert sc.run(OPS.complete(task_id="t1", worker_id="w1", epoch=c.epoch, result=b"1",
                               result_ttl=60))
    # The worker's own parent still re-queues at once when a child dies (no lease check).
    dispatch(r, "t2")
    claim(r, "t2")
    assert sc.run(OPS.requeue(task_id="t2", owner="w1", kind="killed", cause="signal 9",
                              queue="re-queue", message=b"M")).kind == "done"
