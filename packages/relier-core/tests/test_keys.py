from __future__ import annotations

import re

from relier.core.keys import KEYSPACE_VERSION, Keys


def slot_tag(key: str) -> str | None:
    m = re.search(r"\{([^}]*)\}", key)
    return m.group(1) if m else None


def test_per_task_keys_share_a_hash_tag() -> None:
    keys = Keys("app")
    assert keys.task("abc") == "app:t:{abc}"
    assert slot_tag(keys.task("abc")) == "abc"
    assert slot_tag(keys.worker("w1")) == slot_tag(keys.worker_tasks("w1")) == "w1"


def test_every_key_carries_the_prefix_except_broker_lists() -> None:
    keys = Keys("pfx")
    built = [
        keys.task("t"), keys.pending("q"), keys.queue_seq, keys.queue_claimed, keys.workers,
        keys.worker("w"), keys.worker_tasks("w"), keys.resurrectors, keys.dlq,
        keys.idempotency("n", "d"), keys.lock("k"), keys.admission("global"), keys.meta,
        keys.stats,
    ]
    assert all(k.startswith("pfx:") for k in built)
    assert len(set(built)) == len(built)
    assert keys.broker_list("default") == "default"  # kombu's own name


def test_keyspace_version_is_positive() -> None:
    assert KEYSPACE_VERSION >= 1
