"""What dispatch and adoption share (no Redis): the call sealer, and the held-key waits."""

from __future__ import annotations

from typing import Any

import pytest

from relier.core.exceptions import IdempotencyInFlightError
from relier.core.settings import Settings
from relier.envelope import Keyring, open_envelope
from relier.idempotency import idempotency_key
from relier.tasks.context import TaskContext, task_context
from relier.tasks.decorator import rl_task
from relier.tasks.runtime import _HeldKeyWaits
from relier.tasks.sealing import CallSealer


@rl_task(name="billing.charge", idempotent=True, idempotency_ttl=60)
def charge(account: str, amount: int = 5, ctx: TaskContext = task_context) -> str:
    return f"{account}:{amount}"


@rl_task(name="billing.note")
def note(text: str) -> str:
    return text


def spec(task: Any) -> Any:
    return task._relier_spec


def test_dispatch_and_adoption_give_one_key_for_one_call() -> None:
    sealer = CallSealer(Settings())
    expected = idempotency_key("billing.charge", {"account": "acct", "amount": 5})
    assert sealer.key(spec(charge), ("acct",), {}) == (expected, 60)
    assert sealer.key(spec(charge), (), {"account": "acct"}, strict=False) == (expected, 60)


def test_a_call_that_cannot_run_raises_at_dispatch_and_gets_no_key_at_adoption() -> None:
    sealer = CallSealer(Settings())
    with pytest.raises(TypeError, match=r"billing\.charge cannot be called"):
        sealer.key(spec(charge), ("a", 1, 2), {})
    assert sealer.key(spec(charge), ("a", 1, 2), {}, strict=False) == ("", 0)


def test_a_task_that_is_not_idempotent_has_no_key_but_dispatch_still_checks_it() -> None:
    sealer = CallSealer(Settings())
    assert sealer.key(spec(note), ("x",), {}) == ("", 0)
    assert sealer.key(spec(note), (), {"nope": 1}, strict=False) == ("", 0)
    with pytest.raises(TypeError, match=r"billing\.note cannot be called"):
        sealer.key(spec(note), (), {"nope": 1})


def test_the_sealed_envelope_opens_to_the_call() -> None:
    settings = Settings()
    sealed = CallSealer(settings).seal(spec(note), "t-1", ("hello",), {}, producer="legacy")
    envelope = open_envelope(sealed, Keyring.from_settings(settings))
    assert (envelope.task, envelope.id, envelope.args, envelope.kwargs) == (
        "billing.note", "t-1", ["hello"], {})
    assert envelope.headers.producer == "legacy"


def test_held_key_waits_double_to_two_seconds_then_reraise() -> None:
    waits = _HeldKeyWaits(limit=5.0)
    error = IdempotencyInFlightError("k")
    pauses = [waits.pause(error) for _ in range(6)]
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]  # 5.1 s waited >= the 5 s limit
    with pytest.raises(IdempotencyInFlightError) as info:
        waits.pause(error)
    assert info.value is error
