"""Worker and resurrector processes for crash tests (the CLI's own helpers)."""

from __future__ import annotations

from relier.lab.procs import ManagedProcess, ResurrectorProcess, WorkerProcess

__all__ = ["ManagedProcess", "ResurrectorProcess", "WorkerProcess"]
