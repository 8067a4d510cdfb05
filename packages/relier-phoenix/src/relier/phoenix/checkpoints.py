"""Checkpoint storage: inline in the task record, or files on a shared directory.

Every write is fenced on the run's epoch by the ``task_checkpoint`` script (I3): a superseded
incarnation's checkpoint is refused (and its file removed). What is stored in the record is
either the checkpoint's JSON (inline) or a small reference to a file (filesystem backend).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from relier.core import codec
from relier.core.exceptions import CheckpointError, CheckpointTooLargeError
from relier.core.settings import Settings

__all__ = ["CheckpointStore"]

_REF_PREFIX = b"@file:"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


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

    def decode(self, stored: bytes) -> Any:
        """The checkpoint value stored in a record, or None when there is none.

        Raises:
            CheckpointError: the referenced file is missing or unreadable.
        """
        if not stored:
            return None
        if stored.startswith(_REF_PREFIX):
            path = self.directory / stored[len(_REF_PREFIX):].decode()
            try:
                return codec.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                raise CheckpointError(
                    f"checkpoint file {path} cannot be read ({exc}); is RELIER_CHECKPOINT_DIR "
                    "the same shared volume on every worker?"
                ) from exc
        return codec.decode(stored)

    def size(self, stored: bytes) -> int:
        """Bytes of the checkpoint behind ``stored`` (the file's size for a reference)."""
        if stored.startswith(_REF_PREFIX):
            with contextlib.suppress(OSError):
                return (self.directory / stored[len(_REF_PREFIX):].decode()).stat().st_size
            return 0
        return len(stored)

    def discard(self, task_id: str, keep: bytes = b"") -> None:
        """Delete a task's checkpoint files, except the one ``keep`` references."""
        if self.backend != "filesystem" or not _SAFE_ID.match(task_id):
            return
        kept = keep[len(_REF_PREFIX):].decode() if keep.startswith(_REF_PREFIX) else ""
        for path in self.directory.glob(f"{task_id}.*.json"):
            if path.name != kept:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _write(self, task_id: str, epoch: int, data: bytes) -> Path:
        if not _SAFE_ID.match(task_id):
            raise CheckpointError(f"task id {task_id!r} cannot name a checkpoint file")
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{task_id}.{epoch}.json"
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
