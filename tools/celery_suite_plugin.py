"""pytest plugin for ``tools/celery_suite.py``: runs inside Celery's own integration suite.

Loaded with ``-p celery_suite_plugin`` (``tools/`` on ``PYTHONPATH``) by the runner, on both
sides of the comparison. It never edits Celery's files; what it does is driven by environment
variables the runner sets:

- ``CELERY_SUITE_REPORT``: a JSON-lines file; one line per test with its final outcome
  (``passed``, ``failed``, ``error``, ``skipped``, ``xfailed``, ``xpassed``), its reruns and an
  excerpt of the failure. Written as each test ends, so a run cut short keeps what it did.
- ``CELERY_SUITE_TEST_TIMEOUT`` / ``CELERY_SUITE_MAX_RERUNS``: caps on the suite's own
  ``@pytest.mark.timeout`` (300 s on most tests) and ``@pytest.mark.flaky`` reruns (up to 5),
  so that a test that hangs or fails every time cannot stretch the run for half an hour. The
  same caps apply to both sides.
- ``CELERY_SUITE_SIDE=relier``: ``relier.install(app)`` is applied to every app the suite
  builds (the function-scoped ``celery_app``, which the tests publish with, and the
  session-scoped ``celery_session_app``, which the embedded worker runs), right after the
  fixture creates it and before anything uses it. And one check is relaxed, see
  ``_relaxed_queue_check``.
"""

from __future__ import annotations

import ast
import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

SIDE = os.environ.get("CELERY_SUITE_SIDE", "plain")
REPORT = os.environ.get("CELERY_SUITE_REPORT", "")
TEST_TIMEOUT = float(os.environ.get("CELERY_SUITE_TEST_TIMEOUT", "0") or 0)
MAX_RERUNS = int(os.environ.get("CELERY_SUITE_MAX_RERUNS", "-1") or -1)

#: The fixtures that build the suite's Celery apps (``celery.contrib.pytest``).
APP_FIXTURES = ("celery_app", "celery_session_app")
#: The message of the suite's queue check (``t/integration/conftest.py``,
#: ``ZZZZ_set_app_current``), which fails a test at teardown when an app has another queue.
QUEUE_CHECK = "must only use the shared celery queue; found "

_installed: list[str] = []
_state: dict[str, dict[str, Any]] = {}


def _relier_queues() -> set[str]:
    from relier.core.settings import get_settings
    from relier.tasks.install import relier_queues

    return set(relier_queues(get_settings()))


# -- relier.install on the suite's apps -----------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
    """After a fixture of ``APP_FIXTURES`` built its app: ``relier.install(app)``."""
    app = yield  # the fixture's value (a failing fixture raises here, and pytest reports it)
    if SIDE == "relier" and fixturedef.argname in APP_FIXTURES:
        from relier import install

        install(app)
        _installed.append(fixturedef.argname)
    return app


def _relaxed_queue_check(call: Any) -> str | None:
    """What the queue check complained of, if it is only Relier's queues; else None.

    The suite fails every test whose app has any queue but ``celery`` ("tests that need
    additional queues belong in t/smoke/tests/"). ``relier.install`` declares Relier's own
    queues beside the app's (``RELIER_QUEUES`` and ``re-queue``), so on the relier side every
    test would fail there. This accepts exactly that: a single ``pytest.fail`` from the check
    whose queues are ``celery`` plus a subset of Relier's queues. Anything else still fails.
    """
    excinfo = getattr(call, "excinfo", None)
    if excinfo is None or not isinstance(excinfo.value, pytest.fail.Exception):
        return None
    text = str(excinfo.value)
    if QUEUE_CHECK not in text:
        return None
    try:
        found = set(ast.literal_eval(text.split(QUEUE_CHECK, 1)[1].split("]", 1)[0] + "]"))
    except (ValueError, SyntaxError, TypeError):
        return None
    extra = found - {"celery"}
    if "celery" in found and extra <= _relier_queues():
        return ", ".join(sorted(extra))
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, Any]:
    """Relier side: the queue check's failure over Relier's own queues is not a failure."""
    report = yield
    if SIDE == "relier" and call.when == "teardown":
        relaxed = _relaxed_queue_check(call)
        if relaxed is not None:
            report.outcome = "passed"
            report.longrepr = None
            report.user_properties.append(("relaxed_queue_check", relaxed))
    return report


# -- bounded time ---------------------------------------------------------------------------
def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Cap the suite's per-test timeout and rerun markers (both sides alike)."""
    for item in items:
        if TEST_TIMEOUT > 0:
            marker = item.get_closest_marker("timeout")
            wanted = marker.args[0] if marker and marker.args else \
                (marker.kwargs.get("timeout") if marker else None)
            if wanted is None or float(wanted) > TEST_TIMEOUT:
                item.add_marker(pytest.mark.timeout(TEST_TIMEOUT), append=False)
        if MAX_RERUNS >= 0:
            flaky = item.get_closest_marker("flaky")
            if flaky is not None and int(flaky.kwargs.get("reruns", 1)) > MAX_RERUNS:
                item.add_marker(pytest.mark.flaky(**{**flaky.kwargs, "reruns": MAX_RERUNS}),
                                append=False)


# -- the per-test report --------------------------------------------------------------------
def _excerpt(report: Any, lines: int = 60) -> str:
    text = str(getattr(report, "longreprtext", "") or "")
    kept = text.splitlines()
    return "\n".join(kept[-lines:])


def pytest_runtest_logstart(nodeid: str) -> None:
    """A test starts (not again on a rerun: rerunfailures reruns within one protocol)."""
    _state[nodeid] = {"nodeid": nodeid, "outcome": "passed", "reruns": 0, "excerpt": "",
                      "relaxed": "", "started": time.monotonic()}


def pytest_runtest_logreport(report: Any) -> None:
    """Fold each phase's report into the test's final outcome."""
    state = _state.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed",
                                              "reruns": 0, "excerpt": "", "relaxed": "",
                                              "started": time.monotonic()})
    if report.outcome == "rerun":
        state["reruns"] += 1
        state["outcome"], state["excerpt"] = "passed", ""
        return
    for key, value in getattr(report, "user_properties", []):
        if key == "relaxed_queue_check":
            state["relaxed"] = value
    if state["outcome"] not in ("passed",):
        return  # the first bad phase decides
    wasxfail = hasattr(report, "wasxfail")
    if report.when == "call" and wasxfail:
        state["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif report.skipped:
        state["outcome"] = "skipped"
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            state["excerpt"] = str(longrepr[2])
    elif report.failed:
        state["outcome"] = "failed" if report.when == "call" else "error"
        state["excerpt"] = f"[{report.when}]\n{_excerpt(report)}"


def pytest_runtest_logfinish(nodeid: str) -> None:
    """Write the test's line to the report."""
    state = _state.pop(nodeid, None)
    if state is None or not REPORT:
        return
    state["seconds"] = round(time.monotonic() - state.pop("started"), 2)
    with Path(REPORT).open("a", encoding="utf-8") as out:
        out.write(json.dumps(state) + "\n")


def pytest_sessionfinish(session: Any) -> None:
    """Record which app fixtures Relier was installed on (the runner prints it)."""
    if REPORT:
        with Path(REPORT).open("a", encoding="utf-8") as out:
            out.write(json.dumps({"installed_on": sorted(set(_installed)),
                                  "installs": len(_installed)}) + "\n")
