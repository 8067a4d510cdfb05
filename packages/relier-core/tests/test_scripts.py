"""Every Lua file is declared, and every header matches its declaration."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from relier.core.scripts import SPECS, Call, script_sha, script_source

LUA = files("relier.core") / "lua"
HEADER = re.compile(r"^-- (KEYS|ARGV)\[(\d+)(\.\.)?\]\s+(\w+)", re.MULTILINE)


def lua_files() -> list[str]:
    return sorted(p.name[:-4] for p in LUA.iterdir() if p.name.endswith(".lua"))


def test_every_file_has_a_spec_and_every_spec_a_file() -> None:
    assert lua_files() == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_header_matches_spec(name: str) -> None:
    text = (LUA / f"{name}.lua").read_text(encoding="utf-8")
    declared: dict[str, list[str]] = {"KEYS": [], "ARGV": []}
    for kind, index, variadic, label in HEADER.findall(text):
        names = declared[kind]
        assert int(index) == len(names) + 1, f"{name}: {kind}[{index}] out of order"
        names.append(label + ("..." if variadic else ""))
    assert tuple(declared["KEYS"]) == SPECS[name].keys
    assert tuple(declared["ARGV"]) == SPECS[name].args
    assert "Returns" in text, f"{name}: header must document its return values"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_script_uses_only_declared_slots(name: str) -> None:
    source = script_source(name)
    spec = SPECS[name]
    for kind, declared in (("KEYS", spec.keys), ("ARGV", spec.args)):
        if declared and declared[-1].endswith("..."):
            continue
        used = {int(i) for i in re.findall(rf"{kind}\[(\d+)\]", source)}
        assert used <= set(range(1, len(declared) + 1)), f"{name} reads an undeclared {kind}"


def test_includes_are_spliced_and_sha_is_stable() -> None:
    source = script_source("task_complete")
    assert "--@include" not in source
    assert "local function now_ms" in source
    assert len(script_sha("task_complete")) == 40
    assert script_sha("task_complete") == script_sha("task_complete")


def test_unknown_script_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="task_claim"):
        script_source("nope")


def test_call_checks_arity() -> None:
    with pytest.raises(TypeError, match="task_checkpoint"):
        Call("task_checkpoint", ["k"], [1], bool)
    Call("task_checkpoint", ["k"], [1, b"x"], bool)
    Call("admit", ["a", "b"], ["m", 2, 1, 10, 1, 10], bool)
