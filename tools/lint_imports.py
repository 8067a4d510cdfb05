"""Run import-linter (``lint-imports``, configured in pyproject.toml) on the ``relier`` namespace.

Usage: ``uv run --locked python tools/lint_imports.py [lint-imports options]``

Why not ``lint-imports`` alone: in the workspace every package is an editable install, and the
meta-package's ``relier/__init__.py`` makes ``relier`` a regular package to
``importlib.util.find_spec``, so grimp sees none of the other portions (it raises
``NotATopLevelModule`` for ``relier.core``). Without that one file ``relier`` is the PEP 420
namespace of the nine ``relier.*`` packages, the way import-linter expects. That file imports
nothing at run time (its re-exports are lazy, by name), so leaving it out of the graph hides no
dependency.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
META = (ROOT / "packages" / "relier" / "src").resolve()


def main() -> int:
    if "relier" in sys.modules:
        raise SystemExit("tools/lint_imports.py: relier was imported before the graph was built; "
                         "run it as a script, not from an interpreter that imported relier")
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != META]
    from importlinter.cli import lint_imports_command

    return int(lint_imports_command(prog_name="lint-imports") or 0)


if __name__ == "__main__":
    sys.exit(main())
