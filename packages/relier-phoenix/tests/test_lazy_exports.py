"""relier.phoenix resolves its re-exports on first use, each to its submodule's object."""

from __future__ import annotations

import subprocess
import sys


def test_every_export_resolves_to_its_submodules_object() -> None:
    code = (
        "import importlib, relier.phoenix as p\n"
        "for name in p.__all__:\n"
        "    value = getattr(p, name)\n"
        "    if name == '__version__':\n"
        "        assert isinstance(value, str), value\n"
        "    else:\n"
        "        assert value is getattr(importlib.import_module(p._LAZY[name]), name), name\n"
        "    assert name in dir(p), name\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "ok"
