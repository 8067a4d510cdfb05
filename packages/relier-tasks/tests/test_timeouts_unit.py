"""run_with_timeouts in isolation: soft hook, hard cancel, swallowed cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from relier.core.exceptions import TaskTimeoutError
from relier.tasks.context import TaskContext
from relier.tasks.runtime import run_with_timeouts


def ctx() -> TaskContext:
    return TaskContext(task_id="t", task_name="n")


def test_fast_body_returns_and_hook_never_runs() -> None:
    hooked: list[int] = []

    async def hook(c: TaskContext) -> None:
        hooked.append(1)

    async def body() -> int:
        return 7

    assert asyncio.run(run_with_timeouts(body, ctx(), soft=1, hard=2, on_soft=hook)) == 7
    assert hooked == []


def test_soft_hook_sees_live_context_then_hard_cancels() -> None:
    c = ctx()
    seen: list[object] = []

    async def hook(hc: TaskContext) -> None:
        seen.append(hc.metadata.get("cursor"))
        assert hc is c

    async def body() -> None:
        for i in range(100):
            c.metadata["cursor"] = i
            await asyncio.sleep(0.01)

    with pytest.raises(TaskTimeoutError, match=r"hard_timeout of 0.3s"):
        asyncio.run(run_with_timeouts(body, c, soft=0.1, hard=0.3, on_soft=hook))
    assert seen
    assert isinstance(seen[0], int)
    assert seen[0] >= 1


def test_hook_gets_hard_minus_soft_seconds() -> None:
    state: dict[str, float] = {}

    async def hook(c: TaskContext) -> None:
        state["start"] = time.monotonic()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            state["cancelled"] = time.monotonic()
            raise

    async def body() -> None:
        await asyncio.sleep(5)

    t0 = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        asyncio.run(run_with_timeouts(body, ctx(), soft=0.1, hard=0.4, on_soft=hook))
    assert state["start"] - t0 == pytest.approx(0.1, abs=0.08)
    assert state["cancelled"] - state["start"] == pytest.approx(0.3, abs=0.1)


def test_body_swallowing_cancellation_is_still_reported_and_released() -> None:
    async def body() -> None:
        # Swallows every cancellation, but stops on its own after 3 s so the test loop can
        # close (in a worker the ghost simply stays on the persistent loop).
        end = time.monotonic() + 3
        while time.monotonic() < end:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue

    async def main() -> float:
        t0 = time.monotonic()
        with pytest.raises(TaskTimeoutError):
            await run_with_timeouts(body, ctx(), soft=None, hard=0.2, on_soft=None)
        return time.monotonic() - t0

    elapsed = asyncio.run(main())
    assert 0.2 <= elapsed < 2.0


def test_hook_exception_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    async def hook(c: TaskContext) -> None:
        raise RuntimeError("hook broke")

    async def body() -> str:
        await asyncio.sleep(0.2)
        return "done"

    assert asyncio.run(run_with_timeouts(body, ctx(), soft=0.05, hard=1, on_soft=hook)) == "done"
    assert "on_soft_timeout hook raised" in caplog.text


def test_setting_timeouts_apply_only_to_tasks_that_set_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RELIER_SOFT_TIMEOUT / RELIER_HARD_TIMEOUT are real defaults (the earlier product
    documented them but never applied them)."""
    from relier.core.settings import Settings
    from relier.tasks.decorator import rl_task
    from relier.tasks.runtime import Runtime

    runtime = Runtime.__new__(Runtime)
    runtime.settings = Settings.load(environ={"RELIER_SOFT_TIMEOUT": "25",
                                              "RELIER_HARD_TIMEOUT": "30"}, env_file=None)

    @rl_task()
    async def plain() -> None: ...

    @rl_task(hard_timeout=5)
    async def own() -> None: ...

    assert runtime._timeouts(plain._relier_spec) == (25, 30)  # type: ignore[attr-defined]
    assert runtime._timeouts(own._relier_spec) == (None, 5)  # type: ignore[attr-defined]
