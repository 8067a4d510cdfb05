"""Binding a dispatch to the task's signature (no Redis): the check and the idempotency key."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relier.core.exceptions import IdempotencyKeyError
from relier.idempotency import idempotency_key
from relier.tasks.calls import CallBinder
from relier.tasks.context import TaskContext
from relier.tasks.decorator import rl_task


@rl_task(name="billing.pay", idempotent=True)
def pay(account: str, amount: int = 5) -> str:
    return f"{account}:{amount}"


@rl_task(name="billing.pay_ctx", idempotent=True)
async def pay_ctx(account: str, amount: int = 5, ctx: TaskContext = None  # type: ignore[assignment]
                  ) -> str:
    return f"{account}:{amount}:{ctx.task_id}"


@rl_task(name="app.one")
def one(x: int) -> int:
    return x


def key(task: Any, *args: Any, **kwargs: Any) -> str:
    spec = task._relier_spec
    return idempotency_key(spec.name, spec.binder.bind(args, kwargs))


@pytest.mark.parametrize("task", [pay, pay_ctx])
def test_four_spellings_of_one_call_give_one_key(task: Any) -> None:
    keys = {key(task, "acct", 5), key(task, "acct", amount=5),
            key(task, account="acct", amount=5), key(task, "acct")}
    assert len(keys) == 1
    assert task._relier_spec.binder.bind(("acct",), {}) == {"account": "acct", "amount": 5}
    assert key(task, "acct", 6) not in keys
    assert key(task, "other") not in keys


def test_ctx_is_never_part_of_the_binding() -> None:
    assert pay_ctx._relier_spec.binder.bind(("acct",), {}) == {"account": "acct", "amount": 5}


def f_all(a: Any, /, b: Any, c: Any = 3, *rest: Any, d: Any, e: Any = 5, **extra: Any) -> None:
    """Every kind of parameter, for the property below."""


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)


@given(a=json_scalars, b=json_scalars, c=json_scalars, d=json_scalars, e=json_scalars,
       rest=st.lists(json_scalars, max_size=3),
       extra=st.dictionaries(st.sampled_from(["x", "y", "z"]), json_scalars, max_size=3),
       b_positional=st.booleans(), c_positional=st.booleans(), omit_defaults=st.booleans())
def test_every_spelling_binds_alike(a: Any, b: Any, c: Any, d: Any, e: Any, rest: list[Any],
                                    extra: dict[str, Any], b_positional: bool,
                                    c_positional: bool, omit_defaults: bool) -> None:
    binder = CallBinder("t", f_all, injects_ctx=False)
    canonical = binder.bind((a, b, c, *rest), {"d": d, "e": e, **extra})
    # Any legal spelling of the same call: b and c positional or by name (positional only as
    # a prefix, and always when *rest is used), defaults left out when they are the value.
    b_pos = b_positional or c_positional or bool(rest)
    c_pos = (c_positional and b_pos) or bool(rest)
    args: list[Any] = [a]
    kwargs: dict[str, Any] = dict(extra)
    for name, value, positional, default in (("b", b, b_pos, None), ("c", c, c_pos, 3)):
        if positional:
            args.append(value)
        elif not (omit_defaults and default is not None and value == default
                  and type(value) is int):
            kwargs[name] = value
    args.extend(rest)
    kwargs["d"] = d
    if not (omit_defaults and e == 5 and type(e) is int):
        kwargs["e"] = e
    bound = binder.bind(tuple(args), kwargs)
    assert bound == canonical
    assert bound == {"a": a, "b": b, "c": c, "rest": rest, "d": d, "e": e, "extra": extra}
    assert idempotency_key("t", bound) == idempotency_key("t", canonical)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("a", "b", "c"), {}, r"app\.one cannot be called.*too many positional.*takes \(x\)"),
        ((), {}, r"app\.one cannot be called.*missing a required argument: 'x'"),
        ((1,), {"y": 2}, r"unexpected keyword argument 'y'"),
        ((1,), {"x": 2}, r"multiple values for argument 'x'"),
    ],
)
def test_calls_that_can_never_run_are_type_errors(args: tuple[Any, ...],
                                                  kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message) as raised:
        one._relier_spec.binder.bind(args, kwargs)
    assert "nothing was enqueued" in str(raised.value)
    assert not isinstance(raised.value, IdempotencyKeyError)


def test_ctx_is_supplied_by_relier_not_the_caller() -> None:
    binder = pay_ctx._relier_spec.binder
    with pytest.raises(TypeError, match=r"do not pass ctx="):
        binder.bind(("acct",), {"ctx": None})
    # A third positional value would land on ctx, which the runtime passes by name.
    with pytest.raises(TypeError, match=r"multiple values for argument 'ctx'.*supplied by "
                                        r"Relier.*takes \(account, amount=5\)"):
        binder.bind(("acct", 5, "extra"), {})


def test_push_refuses_before_any_io() -> None:
    # No Redis is reachable here: the TypeError comes from the check, before any connection.
    with pytest.raises(TypeError, match=r"app\.one cannot be called.*too many positional"):
        one.push("a", "b", "c")


def test_uninspectable_callable_is_not_checked() -> None:
    binder = CallBinder("t", print, injects_ctx=False)
    if binder.signature is None:
        assert binder.bind((1, 2), {"k": 3}) == {"*": [1, 2], "**": {"k": 3}}
    else:  # print has a signature on this Python: it is then checked like any function
        assert binder.bind((1, 2), {"sep": ","})["sep"] == ","


@st.composite
def signatures(draw: st.DrawFn) -> inspect.Signature:
    """Signatures of named parameters (the fast path's shape), sometimes with a ctx."""
    names = draw(st.lists(st.sampled_from("abcdef"), unique=True, max_size=5))
    if draw(st.booleans()):
        names.insert(draw(st.integers(0, len(names))), "ctx")
    n_positional = draw(st.integers(0, len(names)))
    params, defaulted = [], False
    for i, name in enumerate(names):
        kind = (inspect.Parameter.POSITIONAL_OR_KEYWORD if i < n_positional
                else inspect.Parameter.KEYWORD_ONLY)
        has_default = draw(st.booleans()) or (defaulted and kind is not
                                               inspect.Parameter.KEYWORD_ONLY)
        defaulted = defaulted or has_default
        params.append(inspect.Parameter(name, kind, default=draw(json_scalars)
                                        if has_default else inspect.Parameter.empty))
    return inspect.Signature(params)


@given(sig=signatures(), data=st.data())
def test_fast_path_agrees_with_signature_bind(sig: inspect.Signature, data: st.DataObject
                                              ) -> None:
    def fn(*_a: Any, **_k: Any) -> None: ...

    fn.__signature__ = sig  # type: ignore[attr-defined]
    binder = CallBinder("t", fn, injects_ctx="ctx" in sig.parameters)
    assert binder._positional is not None  # the shape qualifies for the fast path
    # Mostly calls built from the signature (some positional, the rest by name, defaults
    # sometimes left out), then sometimes spoilt: an extra positional, an unknown or
    # duplicate name, ctx, a missing argument.
    names = list(sig.parameters.values())
    n_pos = data.draw(st.integers(0, len(names)))
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for i, param in enumerate(names):
        if param.name == "ctx":  # Relier passes it, by name: nothing after it is positional
            n_pos = min(n_pos, i)
            continue
        if i < n_pos and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            args.append(data.draw(json_scalars))
        elif param.default is inspect.Parameter.empty or data.draw(st.booleans()):
            kwargs[param.name] = data.draw(json_scalars)
    spoil = data.draw(st.sampled_from(["none", "none", "none", "extra", "unknown", "again",
                                       "ctx", "missing"]))
    if spoil == "extra":
        args.append(1)
    elif spoil == "unknown":
        kwargs["zz"] = 1
    elif spoil == "again" and names:
        kwargs[names[0].name] = 1
    elif spoil == "ctx":
        kwargs["ctx"] = None
    elif spoil == "missing" and kwargs:
        kwargs.popitem()
    try:
        reference: dict[str, Any] | None = binder._bind(tuple(args), kwargs)
    except TypeError:
        reference = None
    if reference is None:
        with pytest.raises(TypeError):
            binder.bind(tuple(args), kwargs)
    else:
        assert binder.bind(tuple(args), kwargs) == reference
