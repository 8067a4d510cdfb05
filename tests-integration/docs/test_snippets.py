"""Every Python example in README.md and docs/ runs, against real Redis and a real worker.

Each page is one module (``docsnip_<page>``): its ```python blocks run in order in this process,
as a reader would paste them, with ``relier_testing.docs_prelude`` standing in for the outside
world (``stripe``, ``fetch``...). A block with a top-level ``await`` runs under
``asyncio.run``. The worker imports the same page reduced to its definitions (imports,
functions, classes, plain assignments), so every task a page dispatches is executed for real
and every result a page prints or asserts came back from a worker.

A block made only of ``--8<-- "examples/..."`` lines includes a file of ``examples/``; those
run under their own framework's test client in ``integrations/test_examples.py``, so here we
only check that the included file exists.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from relier_testing.workers import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.S | re.M)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')
PRELUDE = "from relier_testing.docs_prelude import *  # noqa: F403\n"
# Calls that act rather than define: the worker's copy of a page must not dispatch or wait.
ACTIONS = {"push", "apush", "delay", "apply_async", "aget", "run", "print"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the block's first code line in the page
    source: str

    @property
    def includes(self) -> list[str]:
        lines = [ln.strip() for ln in self.source.splitlines() if ln.strip()]
        found = [m.group(1) for ln in lines if (m := INCLUDE.match(ln))]
        return found if len(found) == len(lines) else []


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text()
    if re.search(r"^[ \t]+```python", text, re.M):
        pytest.fail(f"{page.relative_to(ROOT)}: an indented ```python block would escape this "
                    "test; put Python examples at the top level of the page")
    return [Block(page, text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in FENCE.finditer(text)]


def pages() -> list[Path]:
    return [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
            if FENCE.search(p.read_text())]


def module_name(page: Path) -> str:
    return "docsnip_" + re.sub(r"\W", "_", page.stem.lower())


def _acts(node: ast.AST, dropped: set[str]) -> bool:
    """True when ``node`` awaits, calls an action, or uses a name bound by a dropped line."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Await):
            return True
        if isinstance(sub, ast.Name) and sub.id in dropped:
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ACTIONS:
                return True
    return False


def definitions(blocks: list[Block]) -> str:
    """The page as the worker imports it: everything that defines, nothing that acts."""
    kept: list[ast.stmt] = []
    dropped: set[str] = set()
    for block in blocks:
        tree = compile(block.source, str(block.page), "exec",
                       flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for stmt in tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom | ast.FunctionDef
                          | ast.AsyncFunctionDef | ast.ClassDef):
                kept.append(stmt)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                if _acts(stmt, dropped):
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    dropped.update(n.id for t in targets for n in ast.walk(t)
                                   if isinstance(n, ast.Name))
                else:
                    kept.append(stmt)
    return PRELUDE + ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"


def run_block(block: Block, namespace: dict[str, object]) -> None:
    # Padding puts the code at its own line numbers, so a traceback names the page and line.
    padded = "\n" * (block.line - 1) + block.source
    code = compile(padded, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_page_examples_run(page: Path, relier_env: dict[str, str], tmp_path: Path,
                           worker_factory: Callable[..., WorkerProcess]) -> None:
    blocks = blocks_of(page)
    runnable = [b for b in blocks if not b.includes]
    for block in blocks:
        for path in block.includes:
            assert (ROOT / path).is_file(), f"{page.name}:{block.line}: no file {path}"
            assert path.startswith("examples/"), (
                f"{page.name}:{block.line}: {path} is included but not run by any test; "
                "include only files under examples/")
    name = module_name(page)
    (tmp_path / f"{name}.py").write_text(definitions(runnable))
    if "rl_task" in "".join(b.source for b in runnable):
        env = {**relier_env, "RELIER_IMPORTS": name,
               "PYTHONPATH": os.pathsep.join([str(tmp_path), relier_env["PYTHONPATH"]])}
        worker_factory("relier.tasks.app", env=env, concurrency=2).wait_ready()
    module = types.ModuleType(name)
    module.__file__ = str(page)
    sys.modules[name] = module
    try:
        exec(PRELUDE, module.__dict__)
        for block in runnable:
            run_block(block, module.__dict__)
    finally:
        del sys.modules[name]
