"""The meta-package ``relier``: its names load on first use, from the packages that own them."""

from __future__ import annotations

import pytest


def test_root_package_exports_lazily() -> None:
    import relier

    assert "rl_task" in relier.__all__
    assert relier.AdmissionRejectedError.__name__ == "AdmissionRejectedError"
    with pytest.raises(AttributeError):
        _ = relier.nothing_here  # type: ignore[attr-defined]
