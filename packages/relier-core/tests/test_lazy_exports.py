"""relier.core resolves its re-exports on first use (no Redis); relier-phoenix tests its own."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def test_every_export_resolves_to_its_submodules_object() -> None:
    out = run(
        "import importlib, relier.core as p\n"
        "for name in p.__all__:\n"
        "    value = getattr(p, name)\n"
        "    if name == '__version__':\n"
        "        assert isinstance(value, str), value\n"
        "    else:\n"
        "        assert value is getattr(importlib.import_module(p._LAZY[name]), name), name\n"
        "    assert name in dir(p), name\n"
        "print('ok')"
    )
    assert out == "ok"


def test_an_unknown_name_is_an_attribute_error() -> None:
    import relier.core

    with pytest.raises(AttributeError, match=r"'relier\.core' has no attribute 'nope'"):
        relier.core.nope  # noqa: B018


def test_scripts_and_preflight_stay_the_functions_after_their_modules_load() -> None:
    # As when the package imported them eagerly: the submodule import does not rebind them.
    out = run("import relier.core.scripts, relier.core.preflight\n"
              "from relier.core import preflight, scripts\n"
              "print(callable(scripts), scripts.__module__, preflight.__module__)")
    assert out == "True relier.core.scripts relier.core.preflight"
    assert run("import relier.core.scripts as m; print(type(m).__name__)") == "function"
