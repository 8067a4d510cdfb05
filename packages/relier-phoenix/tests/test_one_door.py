"""The ledger is the only door: nothing outside it imports its machinery or reaches into it.

Task records are written only by the Lua scripts, and only ``relier.phoenix.ledger`` runs the
task-record scripts. This walks every shipped module and fails when one outside the allowed
few imports the script runner, the call builders or the key layout, or reads a ledger's
private clients, keys or scripts (``ledger._client``, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCES = sorted(ROOT.glob("packages/*/src/relier/**/*.py"))

#: Who may import each piece of the ledger's machinery, and why.
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    # The script runner: the ledger, and the two features whose scripts touch no task record
    # (idempotency_lock's lock_*, the standalone admission check).
    ("relier.core.scripts", "*"): frozenset({
        "relier/core/__init__.py", "relier/core/ops.py", "relier/core/preflight.py",
        "relier/core/idempotency.py", "relier/admission/check.py", "relier/phoenix/ledger.py",
    }),
    ("relier.core.ops", "Ops"): frozenset({
        "relier/core/__init__.py", "relier/core/idempotency.py", "relier/admission/check.py",
        "relier/phoenix/ledger.py",
    }),
    ("relier.core", "Ops"): frozenset({"relier/core/idempotency.py",
                                       "relier/admission/check.py"}),
    # The key layout: the ledger, preflight (keyspace version) and the features that build
    # their own keys (idempotency markers, locks, admission windows). chaos.py is the chaos
    # harness counting states on a benchmark server (it leaves relier-cli with the harness).
    ("relier.core.keys", "Keys"): frozenset({
        "relier/core/__init__.py", "relier/core/ops.py", "relier/core/preflight.py",
        "relier/core/idempotency.py", "relier/idempotency/keys.py",
        "relier/idempotency/middleware.py", "relier/admission/policy.py",
        "relier/phoenix/ledger.py", "relier/lab/chaos.py",
    }),
    ("relier.core", "Keys"): frozenset({"relier/core/idempotency.py"}),
}
PRIVATE = frozenset({"_client", "_keys", "_ops", "_scripts", "_ascripts", "_broker",
                     "_abroker"})


def violations(relative: str, source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                for (module, name), allowed in ALLOWED.items():
                    if node.module == module and name in ("*", alias.name) and \
                            relative not in allowed:
                        found.append(f"{relative}:{node.lineno} imports {module}.{alias.name}"
                                     ": only relier.phoenix.Ledger may run task-record "
                                     "scripts; call a Ledger method instead")
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE and \
                relative != "relier/phoenix/ledger.py" and not (
                    isinstance(node.value, ast.Name) and node.value.id == "self"):
            found.append(f"{relative}:{node.lineno} reads .{node.attr} of another object: "
                         "the ledger's clients, keys and scripts are private; add a Ledger "
                         "method")
    return found


def _relative(path: Path) -> str:
    return path.as_posix().split("/src/", 1)[1]


def test_sources_are_found() -> None:
    assert any(_relative(p) == "relier/phoenix/ledger.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=_relative)
def test_nothing_outside_the_ledger_touches_its_machinery(path: Path) -> None:
    assert violations(_relative(path), path.read_text(encoding="utf-8")) == []


def test_a_caller_reaching_into_the_ledger_is_caught() -> None:
    bad = ("from relier.core.scripts import scripts\n"
           "from relier.core.ops import Ops\n"
           "def f(ledger):\n"
           "    return ledger._client.hget('rl:t:{x}', 'ep')\n")
    problems = violations("relier/phoenix/lease.py", bad)
    assert len(problems) == 3
    assert "imports relier.core.scripts.scripts" in problems[0]
    assert "reads ._client" in problems[2]
    assert violations("relier/phoenix/ledger.py", bad) == []
