"""Checkpoint storage: inline in the task record, or files on a shared directory.

Every write is fenced on the run's epoch by the ``task_checkpoint`` script (I3): a superseded
incarnation's checkpoint is refused. What is stored in the record is either the checkpoint's
JSON (inline) or a small reference to a file (filesystem backend).

Files are named ``{task id}.{epoch}.{random}.json``: every write has its own file, so no write
ever replaces a file another run (or an earlier write of the same run) may still reference.
Whoever writes a file removes exactly one file afterwards: a fenced writer its own (nothing
references it), a stored writer the file its reference replaced (``task_checkpoint`` returns
it atomically). A zombie therefore never deletes the live run's checkpoint.

A reference read from Redis is untrusted input: it must name a checkpoint file of that task
directly inside ``RELIER_CHECKPOINT_DIR``, or it is refused (never read, never deleted).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from relier.core import codec
from relier.core.exceptions import CheckpointError, CheckpointTooLargeError
from relier.core.settings import Settings

__all__ = ["CheckpointStore"]

_REF_PREFIX = b"@file:"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}\Z")
# After the task id: the writer's epoch, then a random tag (absent in files written before
# per-write names).
_FILE_SUFFIX = re.compile(r"^\.[0-9]{1,20}(\.[0-9a-f]{16})?\.json\Z")


class CheckpointStore:
    """Encode checkpoints for the ledger and read them back, per ``RELIER_CHECKPOINT_*``."""

    def __init__(self, settings: Settings) -> None:
        self.backend = settings.checkpoint_backend
        self.max_inline = settings.checkpoint_max_inline_bytes
        self.directory = Path(settings.checkpoint_dir)

    def encode(self, task_id: str, epoch: int, value: Any) -> bytes:
        """What to store in the record for ``value`` (writing its file first, if any).

        Raises:
            TypeError: the value is not JSON.
            CheckpointTooLargeError: inline backend and the value exceeds the inline limit.
        """
        data = codec.encode(value, "checkpoint")
        if len(data) <= self.max_inline:
            return data
        if self.backend == "inline":
            raise CheckpointTooLargeError(task_id, len(data), self.max_inline)
        return _REF_PREFIX + self._write(task_id, epoch, data).name.encode()

    def decode(self, stored: bytes, task_id: str) -> Any:
        """The checkpoint value stored in ``task_id``'s record, or None when there is none.

        Raises:
            CheckpointError: the referenced file is missing or unreadable, or the reference
                does not name a checkpoint file of this task inside ``RELIER_CHECKPOINT_DIR``.
        """
        if not stored:
            return None
        if stored.startswith(_REF_PREFIX):
            path = self.path_of(stored, task_id)
            try:
                return codec.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                raise CheckpointError(
                    f"checkpoint file {path} cannot be read ({exc}); is RELIER_CHECKPOINT_DIR "
                    "the same shared volume on every worker?"
                ) from exc
        return codec.decode(stored)

    def size(self, stored: bytes, task_id: str) -> int:
        """Bytes of the checkpoint behind ``stored`` (the file's size for a reference)."""
        if stored.startswith(_REF_PREFIX):
            with contextlib.suppress(OSError, CheckpointError):
                return self.path_of(stored, task_id).stat().st_size
            return 0
        return len(stored)

    def path_of(self, stored: bytes, task_id: str) -> Path:
        """The file a stored reference names, checked to be one of ``task_id``'s files.

        The reference comes from Redis, so whoever can write Redis controls it: it must not
        make a worker read (or delete) any other file.

        Raises:
            CheckpointError: the reference is not a checkpoint file of this task directly
                inside ``RELIER_CHECKPOINT_DIR`` (a tampered or corrupt record).
        """
        name = stored[len(_REF_PREFIX):].decode("utf-8", "replace")
        root = self.directory.resolve()
        # The name's shape first (no separator, no NUL can reach the file system), then where
        # it really leads: a symlink out of the directory is refused as well.
        named = (_SAFE_ID.match(task_id) is not None and name.startswith(task_id)
                 and _FILE_SUFFIX.match(name[len(task_id):]) is not None)
        path = (root / name).resolve() if named else root
        if not named or path.parent != root:
            raise CheckpointError(
                f"task {task_id}: checkpoint reference {name!r} does not name a checkpoint "
                f"file of this task inside RELIER_CHECKPOINT_DIR ({root}); refused, not read "
                "(the task record was tampered with or is corrupt)"
            )
        return path

    def forget(self, stored: bytes, task_id: str) -> None:
        """Delete the one file ``stored`` references, if it is one of ``task_id``'s files."""
        if not stored.startswith(_REF_PREFIX):
            return
        with contextlib.suppress(OSError, CheckpointError):
            self.path_of(stored, task_id).unlink()

    def discard(self, task_id: str) -> None:
        """Delete every checkpoint file of a task (once it has left: completed or purged)."""
        if self.backend != "filesystem" or not _SAFE_ID.match(task_id):
            return
        with contextlib.suppress(OSError):
            for path in self.directory.iterdir():
                name = path.name
                if name.startswith(task_id) and _FILE_SUFFIX.match(name[len(task_id):]):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def _write(self, task_id: str, epoch: int, data: bytes) -> Path:
        if not _SAFE_ID.match(task_id):
            raise CheckpointError(f"task id {task_id!r} cannot name a checkpoint file")
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{task_id}.{epoch}.{secrets.token_hex(8)}.json"
        # Write a temporary file, flush it to disk, then rename: readers see the old file or
        # the whole new one, never a torn write, even if this process dies half-way.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{task_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target
