"""Adversarial review of the issue 10 fixes: `rl` must not replay attacker bytes to a terminal.

A task name, a dead-letter reason and message can come from unsigned message headers (a plain
Celery message, or one for a task no worker registered): whoever can write to the broker
chooses them. `rl dlq list`, `rl dlq show` and `rl tasks show` printed them raw, escape
character included, so a forged message could drive the operator's terminal (clear the screen,
retitle it, hide text, or write the clipboard with OSC 52).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from relier.phoenix import Ledger
from relier.phoenix.registry import handle_unknown

EVIL = "evil\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x1b\\name"


def rl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier.cli", *args],
                          env={**os.environ, **env, "COLUMNS": "300"}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("command", [("dlq", "list"), ("dlq", "show", "{id}"),
                                     ("tasks", "show", "{id}")])
def test_forged_task_name_reaches_no_terminal_escape(
    relier_env: dict[str, str], command: tuple[str, ...]
) -> None:
    task_id = "f0r93d00-0000-4000-8000-000000000000"
    # What the task_unknown handler does with a forged plain message naming task EVIL.
    outcome = handle_unknown(Ledger(), task_id=task_id, name=EVIL, queue="default",
                             body=b"[[], {}, {}]", headers={}, content_type="",
                             content_encoding="")
    assert outcome == "dead"
    done = rl(*(part.format(id=task_id) for part in command), env=relier_env)
    assert done.returncode in (0, 1), done.stderr
    assert "evil" in done.stdout
    assert "\x1b" not in done.stdout, repr(done.stdout[:2000])
