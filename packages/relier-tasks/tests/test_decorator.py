"""Decoration-time behaviour of @rl_task: no Redis, no worker."""

from __future__ import annotations

import asyncio

import pytest

from relier.tasks.context import TaskContext, task_context
from relier.tasks.decorator import PUBLIC_QUEUES, RelierTask, rl_task


def test_defaults_and_name() -> None:
    @rl_task()
    async def process(item_id: str) -> str:
        return item_id

    assert process.name == f"{__name__}.test_defaults_and_name.<locals>.process"
    assert isinstance(process, RelierTask)

    @rl_task(name="billing.process", queue="high_priority")
    def other() -> None: ...

    assert other.name == "billing.process"


def test_bare_decorator_form() -> None:
    @rl_task
    async def bare() -> int:
        return 1

    assert hasattr(bare, "apush")


def test_two_tasks_named_alike_in_different_scopes_do_not_collide() -> None:
    def make(scope: str) -> object:
        @rl_task(name=f"{scope}.process")
        async def process() -> None: ...

        return process

    assert make("a").name != make("b").name  # type: ignore[attr-defined]


def test_unknown_option_is_a_type_error_listing_known_ones() -> None:
    with pytest.raises(TypeError, match=r"'retries'.*known options:.*max_resurrections"):
        rl_task(retries=3)


@pytest.mark.parametrize(
    ("options", "is_async", "message"),
    [
        ({"hard_timeout": 10}, False, "need an `async def` task"),
        ({"soft_timeout": 5}, False, "asyncio.to_thread"),
        ({"queue": "re-queue"}, True, "internal queue for resurrected tasks"),
        ({"queue": "urgent"}, True, "queue 'urgent' is not declared; pick one of high_priority, "
                                    "default, low_priority, or add it to RELIER_QUEUES"),
        ({"soft_timeout": 30, "hard_timeout": 30}, True, "must be below hard_timeout"),
        ({"idempotent": True, "idempotency_ttl": 5, "hard_timeout": 10}, True,
         "Raise idempotency_ttl to at least 10"),
        ({"max_resurrections": -1}, True, "whole number of 0 or more"),
        ({"hard_timeout": 0}, True, "seconds above 0"),
        ({"on_soft_timeout": None, "soft_timeout": 1, "hard_timeout": 2}, False, "async def"),
    ],
)
def test_decoration_errors_say_how_to_fix(options: dict[str, object], is_async: bool,
                                           message: str) -> None:
    async def async_fn() -> None: ...

    def sync_fn() -> None: ...

    with pytest.raises(ValueError, match=message):
        rl_task(**options)(async_fn if is_async else sync_fn)


def test_hook_must_be_async_and_needs_soft() -> None:
    def sync_hook(ctx: TaskContext) -> None: ...

    async def hook(ctx: TaskContext) -> None: ...

    async def body() -> None: ...

    with pytest.raises(ValueError, match="async def hook"):
        rl_task(soft_timeout=1, hard_timeout=2, on_soft_timeout=sync_hook)(body)
    with pytest.raises(ValueError, match="needs soft_timeout"):
        rl_task(hard_timeout=2, on_soft_timeout=hook)(body)


def test_decorating_twice_is_refused() -> None:
    @rl_task()
    async def once() -> None: ...

    with pytest.raises(ValueError, match="applied twice"):
        rl_task()(once)


def test_wrapped_calls_the_bare_function_as_the_cookbook_shows() -> None:
    seen: list[TaskContext] = []

    @rl_task()
    async def process_with_ctx(item_id: str, ctx: TaskContext) -> str:
        seen.append(ctx)
        return item_id

    result = asyncio.run(process_with_ctx.__wrapped__(
        None, "item-42",
        ctx=TaskContext(task_id="t1", task_name="test", args=(), kwargs={}),
    ))
    assert result == "item-42"
    assert seen[0].task_id == "t1"
    assert seen[0].attempt == 1
    assert seen[0].partial_result is None

    @rl_task()
    async def send_invoice(invoice_id: str) -> str:
        return f"sent {invoice_id}"

    assert asyncio.run(send_invoice.__wrapped__(None, "INV-1")) == "sent INV-1"


def test_set_partial_outside_a_worker_only_sets_the_value() -> None:
    ctx = TaskContext(task_id="t1", task_name="test")
    asyncio.run(ctx.set_partial({"last_cursor": 3}))
    assert ctx.partial_result == {"last_cursor": 3}
    assert ctx.full_name == "test[t1]"
    assert not ctx.is_resurrection


def test_task_context_proxy_raises_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="only available while a Relier task runs"):
        _ = task_context.task_id


def test_public_queues() -> None:
    assert PUBLIC_QUEUES == ("high_priority", "default", "low_priority")
