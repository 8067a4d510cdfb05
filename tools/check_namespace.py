"""Fail when a distribution other than the meta-package ships relier/__init__.py.

``relier`` is a PEP 420 namespace shared by every ``relier-*`` distribution; only the ``relier``
meta-package may own its ``__init__.py`` (which calls ``pkgutil.extend_path``). A second owner
breaks editable installs and makes wheels collide on install.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    problems = []
    for package in sorted((ROOT / "packages").iterdir()):
        init = package / "src" / "relier" / "__init__.py"
        if package.name != "relier" and init.exists():
            problems.append(f"{init.relative_to(ROOT)}: only packages/relier may own it")
        portion = package.name.removeprefix("relier-").replace("-", "_")
        if package.name != "relier" and not (package / "src" / "relier" / portion).is_dir():
            problems.append(f"{package.name}: expected its code in src/relier/{portion}/")
    for line in problems:
        print(f"namespace: {line}")
    print("namespace: ok" if not problems else f"namespace: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
