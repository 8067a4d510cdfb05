from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relier.core.exceptions import IdempotencyKeyError
from relier.core.pipeline import TaskOptions
from relier.idempotency import (
    KEY_VERSION,
    IdempotencyMiddleware,
    canonical_arguments,
    idempotency_key,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_key_ignores_dict_order(kwargs: dict[str, Any]) -> None:
    reordered = dict(reversed(list(kwargs.items())))
    assert canonical_arguments(kwargs) == canonical_arguments(reordered)


def test_key_uses_registered_task_name() -> None:
    a = idempotency_key("billing.process", {"item": "x"})
    b = idempotency_key("shipping.process", {"item": "x"})
    assert a != b
    assert a.startswith(f"rl:i:billing.process:v{KEY_VERSION}:")


def test_different_arguments_give_different_keys() -> None:
    assert (idempotency_key("t", {"c": "cus_1", "n": 5000})
            != idempotency_key("t", {"c": "cus_1", "n": 5001}))
    assert idempotency_key("t", {"a": 1}) != idempotency_key("t", {"a": "1"})
    assert idempotency_key("t", {"a": 1}) != idempotency_key("t", {"b": 1})


def test_key_is_stable_across_processes_and_hash_seeds() -> None:
    code = ("from relier.idempotency import idempotency_key;"
            "print(idempotency_key('t', {'a': 'a', 'o': {'z': 1, 'b': [1.5, None]}, 'k': 'v'}))")
    keys = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONHASHSEED": seed}, check=True).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert keys == {idempotency_key("t", {"k": "v", "o": {"b": [1.5, None], "z": 1}, "a": "a"})}


@pytest.mark.parametrize(
    ("value", "message"),
    [({1, 2}, "sorted"), (object(), "object"), (float("nan"), "nan"), ({1: "a"}, "non-str key")],
)
def test_non_canonical_arguments_are_refused(value: object, message: str) -> None:
    with pytest.raises(IdempotencyKeyError, match=message):
        idempotency_key("t", {"a": value})


def test_options_validation() -> None:
    mw = IdempotencyMiddleware()

    def opts(**values: object) -> TaskOptions:
        return TaskOptions("t", "default", True, values)

    mw.check_options(opts(idempotency_ttl=60, hard_timeout=30), None)
    with pytest.raises(ValueError, match="at least 30"):
        mw.check_options(opts(idempotency_ttl=10, hard_timeout=30), None)
    with pytest.raises(ValueError, match="above 0"):
        mw.check_options(opts(idempotency_ttl=0), None)
    assert mw.key_for(opts(idempotent=False), {"a": 1}) == ""
    assert mw.key_for(opts(idempotent=True), {"a": 1}).startswith("rl:i:t:v2:")
