"""What a type checker sees of ``@rl_task`` handles: checked by mypy strict in CI.

Not a pytest module (nothing here runs): ``.ci/run`` type-checks it with
``warn_unused_ignores``, so every ``# type: ignore[...]`` below is an assertion that mypy
*rejects* that line. If a regression let the call through, the ignore becomes unused and the
step fails; if a regression rejected a good call, that line fails. ``assert_type`` pins the
types of handles, receipts and results.

What is checked: the arguments of ``push``/``apush`` against the function's parameters (count,
names, types, defaults), and the result type of ``get``/``aget`` (the awaited result for an
``async def``). What is not: ``ctx``. It stays in the signature a type checker sees (typing
cannot drop a named parameter from a ParamSpec); declared with a default it is optional and
everything else is checked, and passing it is refused at ``push`` at run time instead.
"""

from __future__ import annotations

from typing import Any, assert_type

from relier import TaskContext, TaskReceipt, rl_task, task_context
from relier.tasks.decorator import RelierTaskHandle


@rl_task
def add(a: int, b: int = 1) -> int:
    return a + b


@rl_task
async def ping(n: int) -> int:
    return n


@rl_task(queue="high_priority", soft_timeout=5, hard_timeout=10)
async def resize(image_id: str, *, width: int) -> dict[str, int]:
    return {image_id: width}


@rl_task()
async def enrich(item_id: str, ctx: TaskContext = task_context) -> str:
    return f"{item_id}@{ctx.attempt}"


@rl_task()
async def enrich_required_ctx(item_id: str, ctx: TaskContext) -> str:
    return item_id


@rl_task()
def untyped(*args: Any, **kwargs: Any) -> None:
    return None


def handles() -> None:
    assert_type(add.name, str)
    # The coroutine overload: an async task's handle carries the awaited result type.
    handle: RelierTaskHandle[[str], str] = enrich
    del handle
    not_a_handle: RelierTaskHandle[[str], int] = enrich  # type: ignore[assignment]
    del not_a_handle


def sync_dispatch() -> None:
    receipt = add.push(1, 2)
    assert_type(receipt, TaskReceipt[int])
    assert_type(receipt.get(timeout=1), int)
    assert_type(add.push(1).get(), int)
    assert_type(add.push(a=1, b=2), TaskReceipt[int])
    assert_type(resize.push("img", width=640).get(), dict[str, int])
    assert_type(enrich.push("item").get(), str)
    untyped.push(1, "two", three=3)  # *args/**kwargs accept anything, as they would
    # Per-call options keep the task's types, and are not mistaken for its arguments.
    assert_type(add.with_options(countdown=5, queue="default").push(1, 2), TaskReceipt[int])
    add.with_options(countdown=5).push("1", 2)  # type: ignore[arg-type]
    add.with_options(countdown="5")  # type: ignore[arg-type]

    # Calls that can never run are rejected before they reach Redis.
    add.push("1", 2)  # type: ignore[arg-type]
    add.push()  # type: ignore[call-arg]
    add.push(1, 2, 3)  # type: ignore[call-arg]
    add.push(1, c=3)  # type: ignore[call-arg]
    resize.push("img", 640)  # type: ignore[call-arg]
    resize.push("img")  # type: ignore[call-arg]
    enrich.push(42)  # type: ignore[arg-type]
    text: str = add.push(1).get()  # type: ignore[assignment]
    del text

    # The limit, pinned so that a change in it is noticed: a ctx without a default is a
    # required parameter to a type checker (declare it `ctx: TaskContext = task_context`).
    enrich_required_ctx.push("item")  # type: ignore[call-arg]


async def async_dispatch() -> None:
    receipt = await resize.apush("img", width=1280)
    assert_type(receipt, TaskReceipt[dict[str, int]])
    assert_type(await receipt.aget(timeout=30), dict[str, int])
    assert_type(await (await add.apush(1)).aget(), int)
    assert_type(await (await ping.apush(1)).aget(), int)
    assert_type(ping.push(2).get(), int)
    assert_type(await enrich.apush(item_id="item"), TaskReceipt[str])

    await resize.apush("img", width="wide")  # type: ignore[arg-type]
    await add.apush(1, 2, 3)  # type: ignore[call-arg]
    await ping.apush("1")  # type: ignore[arg-type]
    await enrich.apush(item="x")  # type: ignore[call-arg]
    number: int = await (await enrich.apush("item")).aget()  # type: ignore[assignment]
    del number
