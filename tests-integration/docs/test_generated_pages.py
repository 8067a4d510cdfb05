"""The generated reference pages (docs/cli.md, docs/configuration.md) match the code.

``tools/gen_docs.py`` builds them from the ``rl`` typer app and the settings table; this fails
when someone changed a command or a setting and did not regenerate. No Redis is needed.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "tools" / "gen_docs.py"


def _load_generator() -> ModuleType:
    # tools/ is not a package: load the script by path.
    spec = importlib.util.spec_from_file_location("gen_docs", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pages_are_current() -> None:
    # A fresh interpreter, exactly as CI runs it.
    done = subprocess.run([sys.executable, str(GENERATOR), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr or done.stdout


@pytest.mark.parametrize("command", ["chaos", "cluster", "bench", "demo"])
def test_cli_page_has_the_optionally_registered_commands(command: str) -> None:
    # relier-lab plugs these into rl (entry-point group "relier.cli"); the page must not lose them.
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert re.search(rf"^##+ `rl {command}`$", page, re.M), f"rl {command} missing from cli.md"


def test_check_mode_names_the_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    gen_docs = _load_generator()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fresh.md").write_text("same\n", encoding="utf-8")
    (tmp_path / "docs" / "stale.md").write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    monkeypatch.setattr(gen_docs, "PAGES", {"docs/fresh.md": lambda: "same\n",
                                            "docs/stale.md": lambda: "new\n",
                                            "docs/missing.md": lambda: "new\n"})

    assert gen_docs.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/stale.md is out of date: run uv run python tools/gen_docs.py" in err
    assert "docs/missing.md is missing: run uv run python tools/gen_docs.py" in err
    assert "fresh.md" not in err
    assert (tmp_path / "docs" / "stale.md").read_text(encoding="utf-8") == "old\n"

    assert gen_docs.main([]) == 0
    assert (tmp_path / "docs" / "stale.md").read_text(encoding="utf-8") == "new\n"
    assert gen_docs.main(["--check"]) == 0
