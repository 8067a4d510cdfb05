from __future__ import annotations

from pathlib import Path

import pytest

from relier.core.exceptions import CheckpointError, CheckpointTooLargeError
from relier.core.settings import Settings
from relier.phoenix.checkpoints import CheckpointStore
from relier.phoenix.records import parse_record


def store(tmp_path: Path, backend: str = "inline", limit: int = 100) -> CheckpointStore:
    return CheckpointStore(Settings.load(environ={
        "RELIER_CHECKPOINT_BACKEND": backend, "RELIER_CHECKPOINT_DIR": str(tmp_path),
        "RELIER_CHECKPOINT_MAX_INLINE_BYTES": str(limit)}, env_file=None))


def test_inline_round_trip_and_limit(tmp_path: Path) -> None:
    s = store(tmp_path)
    data = s.encode("t1", 1, {"cursor": 5})
    assert s.decode(data) == {"cursor": 5}
    assert s.decode(b"") is None
    with pytest.raises(CheckpointTooLargeError, match="RELIER_CHECKPOINT_BACKEND=filesystem"):
        s.encode("t1", 1, {"blob": "x" * 200})


def test_filesystem_spills_large_values_atomically_and_cleans_up(tmp_path: Path) -> None:
    s = store(tmp_path, "filesystem")
    small = s.encode("t1", 1, {"cursor": 1})
    assert not small.startswith(b"@file:")
    big = s.encode("t1", 2, {"blob": "x" * 500})
    assert big.startswith(b"@file:")
    assert s.decode(big) == {"blob": "x" * 500}
    assert s.size(big) > 500
    older = s.encode("t1", 1, {"blob": "y" * 500})
    s.discard("t1", keep=big)
    assert not (tmp_path / older[len(b"@file:"):].decode()).exists()
    assert [p.name for p in tmp_path.iterdir()] == [big[len(b"@file:"):].decode()]
    s.discard("t1")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="shared volume"):
        s.decode(big)


def test_unsafe_task_id_cannot_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        store(tmp_path, "filesystem", 1).encode("../etc/passwd", 1, {"a": "long enough"})


def test_parse_record_with_history() -> None:
    rec = parse_record("t1", {
        b"n": b"app.job", b"s": b"dead", b"a": b"3", b"k": b"2", b"dr": b"ValueError",
        b"h": b'{"a":1,"w":"w1","ts":1,"te":2,"o":"killed","c":"signal 9"}\n'
              b'{"a":2,"w":"w2","ts":3,"te":4,"o":"failed","c":"ValueError"}\n',
    })
    assert rec.state == "dead"
    assert [a.outcome for a in rec.history] == ["killed", "failed"]
    assert rec.history[0].cause == "signal 9"
    assert parse_record("t2", {}).state == "unknown"
