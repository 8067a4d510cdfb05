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
    assert s.decode(data, "t1") == {"cursor": 5}
    assert s.decode(b"", "t1") is None
    with pytest.raises(CheckpointTooLargeError, match="RELIER_CHECKPOINT_BACKEND=filesystem"):
        s.encode("t1", 1, {"blob": "x" * 200})


def test_filesystem_spills_large_values_atomically_and_cleans_up(tmp_path: Path) -> None:
    s = store(tmp_path, "filesystem")
    small = s.encode("t1", 1, {"cursor": 1})
    assert not small.startswith(b"@file:")
    big = s.encode("t1", 2, {"blob": "x" * 500})
    assert big.startswith(b"@file:")
    assert s.decode(big, "t1") == {"blob": "x" * 500}
    assert s.size(big, "t1") > 500
    older = s.encode("t1", 1, {"blob": "y" * 500})
    other_task = s.encode("t10", 1, {"blob": "z" * 500})
    s.forget(older, "t1")
    assert not (tmp_path / older[len(b"@file:"):].decode()).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        r[len(b"@file:"):].decode() for r in (big, other_task))
    s.discard("t1")
    assert [p.name for p in tmp_path.iterdir()] == [other_task[len(b"@file:"):].decode()]
    with pytest.raises(CheckpointError, match="shared volume"):
        s.decode(big, "t1")


def test_every_write_has_its_own_file(tmp_path: Path) -> None:
    # Two writes of one epoch (or a zombie's and the live run's) never share a file name, so
    # no write replaces a file another reference may still name.
    s = store(tmp_path, "filesystem", 1)
    first, second = s.encode("t1", 3, {"n": 1}), s.encode("t1", 3, {"n": 2})
    assert first != second
    assert (s.decode(first, "t1"), s.decode(second, "t1")) == ({"n": 1}, {"n": 2})


def test_legacy_file_names_still_resolve(tmp_path: Path) -> None:
    (tmp_path / "t1.4.json").write_bytes(b'{"n":4}')
    assert store(tmp_path, "filesystem", 1).decode(b"@file:t1.4.json", "t1") == {"n": 4}


@pytest.mark.parametrize("reference", [
    "/etc/passwd", "../../../../etc/passwd", "../outside/t1.1.json", "t1.1.json/../../x",
    "t2.1.json", "t1.passwd", "t1.1.json\x00", "t1.1.json\n", "",
])
def test_reference_outside_the_checkpoint_dir_is_refused(tmp_path: Path, reference: str) -> None:
    # A reference comes from Redis: whoever can write Redis must not make a worker read or
    # delete an arbitrary file.
    inside = tmp_path / "ck"
    inside.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "t1.1.json").write_bytes(b'{"secret":1}')
    (inside / "t2.1.json").write_bytes(b'{"other task":1}')
    s = store(inside, "filesystem", 1)
    stored = b"@file:" + reference.encode()
    with pytest.raises(CheckpointError, match=r"refused, not read.*tampered"):
        s.decode(stored, "t1")
    s.forget(stored, "t1")
    assert (outside / "t1.1.json").exists()
    assert (inside / "t2.1.json").exists()
    assert s.size(stored, "t1") == 0


def test_symlink_out_of_the_checkpoint_dir_is_refused(tmp_path: Path) -> None:
    inside = tmp_path / "ck"
    inside.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"secret":1}')
    (inside / "t1.1.json").symlink_to(secret)
    with pytest.raises(CheckpointError, match="refused"):
        store(inside, "filesystem", 1).decode(b"@file:t1.1.json", "t1")


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
