"""Worker and resurrector processes for crash tests (the CLI's own helpers)."""

from __future__ import annotations

from relier.cli.procs import ManagedProcess, ResurrectorProcess, WorkerProcess

__all__ = ["ManagedProcess", "ResurrectorProcess", "WorkerProcess"]
