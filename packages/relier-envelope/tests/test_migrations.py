from __future__ import annotations

from typing import Any

import pytest

from relier.core.exceptions import (
    MigrationMissingError,
    SchemaMigrationError,
    SchemaVersionTooNewError,
)
from relier.envelope import Envelope, Migrations


def env(version: int, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None
        ) -> Envelope:
    return Envelope("billing.send", "t1", version, args or ["INV-1"], kwargs or {})


def test_chain_upgrades_step_by_step() -> None:
    m = Migrations()

    @m.step("billing.send", from_version=1)
    def add_currency(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return args, {**kwargs, "currency": "EUR"}

    @m.step("billing.send", from_version=2)
    def rename(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return [f"inv:{args[0]}"], kwargs

    assert m.current_version("billing.send") == 3
    assert m.current_version("other") == 1
    upgraded = m.upgrade(env(1))
    assert upgraded.version == 3
    assert upgraded.args == ["inv:INV-1"]
    assert upgraded.kwargs == {"currency": "EUR"}
    assert m.upgrade(env(3)) == env(3)


def test_too_new_payload_is_its_own_error() -> None:
    with pytest.raises(SchemaVersionTooNewError, match="version 2 but this worker knows"):
        Migrations().upgrade(env(2), b"raw")


def test_missing_step_is_its_own_error_and_keeps_raw() -> None:
    m = Migrations()
    m.step("billing.send", from_version=2)(lambda a, k: (a, k))
    assert m.gaps() == {"billing.send": [1]}
    with pytest.raises(MigrationMissingError, match="from version 1 to 2") as info:
        m.upgrade(env(1), b"raw-bytes")
    assert info.value.raw == b"raw-bytes"
    assert isinstance(info.value, SchemaMigrationError)


def test_failing_step_wraps_cause_and_keeps_raw() -> None:
    m = Migrations()

    @m.step("billing.send", from_version=1)
    def broken(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        raise KeyError("amount")

    with pytest.raises(SchemaMigrationError, match="KeyError") as info:
        m.upgrade(env(1), b"orig")
    assert not isinstance(info.value, MigrationMissingError)
    assert info.value.raw == b"orig"


def test_step_returning_non_json_is_a_migration_error() -> None:
    m = Migrations()
    m.step("billing.send", from_version=1)(lambda a, k: (a, {"x": {1, 2}}))
    with pytest.raises(SchemaMigrationError, match="set"):
        m.upgrade(env(1))


def test_duplicate_and_invalid_registration() -> None:
    m = Migrations()
    m.step("t", from_version=1)(lambda a, k: (a, k))
    with pytest.raises(ValueError, match="already registered"):
        m.step("t", from_version=1)(lambda a, k: (a, k))
    with pytest.raises(ValueError, match="1 or more"):
        m.step("t", from_version=0)
