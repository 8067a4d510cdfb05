"""Every task-record field a Lua script touches is declared in ``relier.core.record.FIELDS``.

The scripts are parsed (every ``redis.call`` on the record hash, includes spliced in), the
way ``test_scripts.py`` holds the KEYS/ARGV headers to the specs: a script that writes or
reads an undeclared field fails here, and so does a table whose writers or readers are not
exactly the scripts that touch the field.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator

import pytest

from relier.core import record
from relier.core.scripts import SPECS, script_source

WRITES = frozenset(("HSET", "HSETNX", "HINCRBY", "HDEL"))
READS = frozenset(("HGET", "HMGET", "HEXISTS", "HSTRLEN"))
_ONE_FIELD = frozenset(("HSETNX", "HINCRBY", "HGET", "HEXISTS", "HSTRLEN"))
_HEADER_KEY = re.compile(r"^-- KEYS\[(\d+)\]\s+(\w+)", re.MULTILINE)
_LITERAL = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def _calls(source: str) -> Iterator[tuple[int, list[str]]]:
    """Each ``redis.call(...)``: its line and its top-level arguments, as source text."""
    for match in re.finditer(r"redis\.call\(", source):
        i, depth, args, current, quote = match.end(), 1, [], "", ""
        while depth:
            c = source[i]
            if quote:
                current += c
                if c == "\\":
                    current += source[i + 1]
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
                current += c
            elif c in "({[":
                depth += 1
                current += c
            elif c in ")}]":
                depth -= 1
                if depth:
                    current += c
            elif c == "," and depth == 1:
                args.append(current.strip())
                current = ""
            else:
                current += c
            i += 1
        args.append(current.strip())
        yield source.count("\n", 0, match.start()) + 1, args


def _literal(arg: str) -> str | None:
    match = _LITERAL.fullmatch(arg)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def record_accesses(source: str) -> list[tuple[int, str, str]]:
    """``(line, command, field)`` for every access to the task record in a script.

    The record is the key its header names ``record`` (``KEYS[n] record``), or a local or
    parameter called ``record``. A field that is not a string literal is returned as
    ``<expression>`` (and is never in the table: the record's fields are fixed names).
    """
    names = {"record"} | {f"KEYS[{i}]" for i, label in _HEADER_KEY.findall(source)
                          if label == "record"}
    found = []
    for line, args in _calls(source):
        command = (_literal(args[0]) or "").upper()
        if command not in WRITES | READS or len(args) < 2 or args[1] not in names:
            continue
        rest = args[2:]
        fields = rest[0::2] if command == "HSET" else rest[:1] if command in _ONE_FIELD \
            else rest
        for arg in fields:
            value = _literal(arg)
            found.append((line, command, value if value is not None else f"<{arg}>"))
    return found


def undeclared(name: str, source: str) -> list[str]:
    """What a script does to record fields that ``FIELDS`` does not declare."""
    declared = {f.name for f in record.FIELDS}
    return [f"{name}.lua line {line}: {command} of record field {field!r}, which "
            "relier.core.record.FIELDS does not declare: add it to the table (name, meaning, "
            "type, writers) or use a declared field"
            for line, command, field in record_accesses(source) if field not in declared]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_scripts_touch_only_declared_record_fields(name: str) -> None:
    assert undeclared(name, script_source(name)) == []


def test_the_table_names_exactly_the_scripts_that_write_and_read_each_field() -> None:
    writers: dict[str, set[str]] = collections.defaultdict(set)
    readers: dict[str, set[str]] = collections.defaultdict(set)
    for name in SPECS:
        for _, command, field in record_accesses(script_source(name)):
            (writers if command in WRITES else readers)[field].add(name)
    for f in record.FIELDS:
        assert set(f.written_by) == writers.pop(f.name, set()), \
            f"FIELDS[{f.name!r}].written_by is out of date"
        assert set(f.read_by) == readers.pop(f.name, set()), \
            f"FIELDS[{f.name!r}].read_by is out of date"


def test_a_bogus_field_in_a_copy_of_a_script_is_caught() -> None:
    source = script_source("task_complete").replace(
        "redis.call('HSET', record, 's', 'done', 'r', ARGV[3])",
        "redis.call('HSET', record, 's', 'done', 'r', ARGV[3], 'bogus', 1)")
    assert "'bogus'" in source
    problems = undeclared("task_complete", source)
    assert len(problems) == 1
    assert "HSET of record field 'bogus'" in problems[0]
    # A read through the header's KEYS slot and a computed field are caught as well.
    source = script_source("task_checkpoint").replace(
        "redis.call('HMGET', KEYS[1], 's', 'ep', 'ck')",
        "redis.call('HMGET', KEYS[1], 's', 'ep', 'ck', 'nope', ARGV[1])")
    assert [p.split(" of record field ")[1].split(",")[0] for p in
            undeclared("task_checkpoint", source)] == ["'nope'", "'<ARGV[1]>'"]


def test_values_are_not_mistaken_for_fields() -> None:
    # HSET's values (here 'queued', 'running') are not field names.
    fields = {field for _, _, field in record_accesses(script_source("task_claim"))}
    assert "queued" not in fields
    assert "running" not in fields
    assert {"ep", "s", "w", "ts"} <= fields


def test_every_field_is_a_record_attribute_and_names_are_unique() -> None:
    names = [f.name for f in record.FIELDS]
    assert len(names) == len(set(names))
    attrs = set(record.TaskRecord.__struct_fields__)
    assert {f.attr for f in record.FIELDS} <= attrs
    constants = {v for k, v in vars(record).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(names)


def test_decode_record_reads_every_declared_field() -> None:
    # One raw hash with every field set to something non-default decodes to no default.
    raw = {f.name.encode(): (b"1" if f.type.startswith(("int", "'1'")) else b"x")
           for f in record.FIELDS}
    raw[record.STATE.encode()] = b"dead"
    raw[record.HISTORY.encode()] = b'{"a":1,"w":"w","ts":1,"te":2,"o":"failed","c":""}\n'
    decoded = record.decode_record("t", raw)
    default = record.TaskRecord(task_id="t")
    for f in record.FIELDS:
        assert getattr(decoded, f.attr) != getattr(default, f.attr), f.name
