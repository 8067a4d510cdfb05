"""``python -m relier.cli`` is ``rl``."""

from __future__ import annotations

from relier.cli.main import main

main()
