"""Celery's own integration tests, run on a plain app and on one with ``relier.install(app)``.

Usage::

    uv run --locked python tools/celery_suite.py [--tests test_tasks.py,test_canvas.py]
        [--keep] [--markdown PATH] [-k EXPR] [--test-timeout S] [--max-reruns N]
        [--side-timeout S]

What it does (docs/celery-suite.md says why and what came out):

1. In a temporary directory, a throwaway venv (``uv venv``) gets the installed Celery version
   (``celery[redis]``), pytest, pytest-timeout and pytest-rerunfailures, and every Relier
   package of ``packages/`` (editable), constrained to this workspace's ``uv.lock``. The
   project's own environment and lock are not touched.
2. The sdist of that Celery version is downloaded from PyPI (``pip download --no-binary``) and
   its test tree ``t/`` (with its ``pyproject.toml``, for the suite's pytest settings) is
   copied out, without the ``celery/`` package, so that the tests run the installed Celery.
3. For each side, plain then relier: a fresh ``redis-server`` on a free 127.0.0.1 port
   (``--appendonly yes --maxmemory-policy noeviction``, in its own temp dir) is the broker and
   the result backend (``TEST_BROKER``/``TEST_BACKEND``, ``REDIS_HOST``/``REDIS_PORT``), and
   pytest runs the chosen ``t/integration`` files with ``celery.contrib.pytest`` and
   ``tools/celery_suite_plugin.py``. On the relier side that plugin applies
   ``relier.install(app)`` to the suite's apps and relaxes the suite's queue check for
   Relier's own queues only (see the plugin). Afterwards the ledger records (``rl:t:*``) in
   that Redis are counted, on both sides: the relier side must have some, or it measured
   nothing; then the Redis is stopped by its PID.
4. Prints each test's outcome on both sides, a summary, and the regressions (tests that pass
   plain and fail, error or do not finish with Relier) with the assertion lines of the
   failure. Exit code 1 if there is a regression, 2 if the relier side left no ledger record
   (Relier was not active) or a side could not run.

Bounded in time: the suite's per-test timeouts and reruns are capped (``--test-timeout``,
``--max-reruns``, both sides alike), and each side's pytest is stopped (its whole process
group) after ``--side-timeout`` seconds; tests it did not reach show as ``not run``.
Everything it starts listens on or talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
SIDES = ("plain", "relier")
#: Outcomes that count as a pass, a failure and a skip in the summary.
PASS = ("passed", "xpassed")
FAIL = ("failed", "error")
SKIP = ("skipped", "xfailed")
NOT_RUN = "not run"


@dataclass
class SideResult:
    """One side's run: each test's outcome line from the plugin, and what was seen in Redis."""

    side: str
    tests: dict[str, dict[str, object]] = field(default_factory=dict)
    installed_on: list[str] = field(default_factory=list)
    ledger_records: int = 0
    ledger_states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    exit_code: int | None = None
    timed_out: bool = False
    log: Path | None = None


def log(msg: str) -> None:
    print(f"[celery-suite] {msg}", flush=True)


def run(cmd: list[str]) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True)


# -- the throwaway environment --------------------------------------------------------------
def build_venv(work: Path, celery_version: str) -> tuple[Path, Path]:
    """The venv's python, and the extracted suite directory (holding ``t/``)."""
    venv = work / "venv"
    python = venv / "bin" / "python"
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    run([uv, "venv", "-q", "--python", sys.executable, str(venv)])
    constraints = work / "constraints.txt"
    with constraints.open("w") as out:
        subprocess.run([uv, "export", "--locked", "--no-hashes", "--no-emit-workspace",
                        "--all-groups", "-q"], cwd=ROOT, stdout=out, check=True)
    run([uv, "pip", "install", "-q", "--python", str(python), "pip"])
    sdist_dir = work / "sdist"
    run([str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         f"celery=={celery_version}", "-d", str(sdist_dir)])
    (sdist,) = sdist_dir.glob("celery-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "src", filter="data")
    source = work / "src" / f"celery-{celery_version}"
    suite = work / "suite"
    suite.mkdir()
    shutil.copytree(source / "t", suite / "t")
    shutil.copy(source / "pyproject.toml", suite / "pyproject.toml")
    rerun_pin = _pin(source / "requirements" / "test.txt", "pytest-rerunfailures")
    editable = [arg for pkg in sorted((ROOT / "packages").iterdir())
                if (pkg / "pyproject.toml").is_file() for arg in ("-e", str(pkg))]
    run([uv, "pip", "install", "-q", "--python", str(python), "-c", str(constraints),
         f"celery[redis]=={celery_version}", "pytest", "pytest-timeout", rerun_pin,
         *editable])
    return python, suite


def _pin(requirements: Path, name: str) -> str:
    """``name==version`` as Celery's own test requirements pin it (else just ``name``)."""
    with contextlib.suppress(OSError):
        for line in requirements.read_text().splitlines():
            if re.match(rf"{re.escape(name)}\s*==", line.strip()):
                return line.strip().split(";")[0].strip()
    return name


# -- redis-server ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[int]:
    """A redis-server of our own on a free 127.0.0.1 port, stopped by its PID at the end."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    directory.mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "",
         "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if proc.poll() is not None:
                raise SystemExit(f"redis-server exited with {proc.returncode}")
            time.sleep(0.1)
        else:
            raise SystemExit("redis-server did not answer PING within 10 s")
        log(f"redis-server pid {proc.pid} on 127.0.0.1:{port} ({directory})")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log(f"redis-server pid {proc.pid} stopped")


def ledger_census(port: int) -> tuple[int, dict[str, int]]:
    """How many ``rl:t:*`` task records Redis holds, and their states (field ``s``)."""
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    keys = list(client.scan_iter(match="rl:t:*", count=1000))
    states: Counter[str] = Counter()
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, "s")
    for state in pipe.execute():
        states[str(state)] += 1
    return len(keys), dict(states)


# -- one side -------------------------------------------------------------------------------
def run_side(side: str, python: Path, suite: Path, work: Path, files: list[str],
             args: argparse.Namespace) -> SideResult:
    result = SideResult(side)
    report = work / f"{side}.jsonl"
    result.log = work / f"{side}.log"
    with redis_server(work / f"redis-{side}") as port:
        url = f"redis://127.0.0.1:{port}/0"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RELIER_", "TEST_", "CELERY_", "REDIS_"))}
        env.update({
            "TEST_BROKER": url, "TEST_BACKEND": url,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port),
            "RELIER_REDIS_URL": url, "RELIER_PREFLIGHT": "warn",
            "RELIER_SIGNING_KEYS": f"suite:{secrets.token_hex(16)}",
            "CELERY_SUITE_SIDE": side, "CELERY_SUITE_REPORT": str(report),
            "CELERY_SUITE_TEST_TIMEOUT": str(args.test_timeout),
            "CELERY_SUITE_MAX_RERUNS": str(args.max_reruns),
            "PYTHONPATH": str(TOOLS), "PYTHONDONTWRITEBYTECODE": "1",
        })
        cmd = [str(python), "-m", "pytest", *[f"t/integration/{f}" for f in files],
               "-p", "celery.contrib.pytest", "-p", "celery_suite_plugin",
               "-p", "no:cacheprovider", "-q", "-rfE", f"--timeout={args.test_timeout}"]
        if args.k:
            cmd += ["-k", args.k]
        log(f"{side}: {' '.join(cmd[1:])} (log: {result.log})")
        started = time.monotonic()
        with result.log.open("w") as out:
            proc = subprocess.Popen(cmd, cwd=suite, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                result.exit_code = proc.wait(timeout=args.side_timeout)
            except subprocess.TimeoutExpired:
                result.timed_out = True
                log(f"{side}: stopped after {args.side_timeout} s (--side-timeout)")
            finally:
                _stop_group(proc)
        result.seconds = time.monotonic() - started
        result.ledger_records, result.ledger_states = ledger_census(port)
    if report.exists():
        for line in report.read_text().splitlines():
            entry = json.loads(line)
            if "nodeid" in entry:
                result.tests[str(entry["nodeid"])] = entry
            elif "installed_on" in entry:
                result.installed_on = list(entry["installed_on"])
    log(f"{side}: {len(result.tests)} tests in {result.seconds:.0f} s, pytest exit "
        f"{result.exit_code}, {result.ledger_records} ledger records (rl:t:*) "
        f"{result.ledger_states}")
    return result


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End the pytest process and what it started (its pool children): its own group."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # children left behind by a clean exit
            return
        except subprocess.TimeoutExpired:
            continue


# -- the report -----------------------------------------------------------------------------
def outcome(result: SideResult, nodeid: str) -> str:
    entry = result.tests.get(nodeid)
    return str(entry["outcome"]) if entry else NOT_RUN


def counts(result: SideResult, nodeids: list[str]) -> str:
    seen = Counter(outcome(result, n) for n in nodeids)
    text = (f"{sum(seen[o] for o in PASS)} passed / {sum(seen[o] for o in FAIL)} failed / "
            f"{sum(seen[o] for o in SKIP)} skipped")
    extra = [f"{seen[o]} {o}" for o in ("xpassed", "error", "xfailed") if seen[o]]
    if seen[NOT_RUN]:
        extra.append(f"{seen[NOT_RUN]} not run")
    return text + (f" ({', '.join(extra)})" if extra else "")


def regressions(plain: SideResult, relier: SideResult, nodeids: list[str]) -> list[str]:
    return [n for n in nodeids if outcome(plain, n) in PASS
            and outcome(relier, n) in (*FAIL, NOT_RUN)]


def assertion_lines(excerpt: str, limit: int = 8) -> list[str]:
    lines = [line for line in excerpt.splitlines() if line.startswith("E ")]
    return (lines or excerpt.splitlines()[-limit:])[:limit]


def short(nodeid: str) -> str:
    return nodeid.removeprefix("t/integration/")


def render(plain: SideResult, relier: SideResult, nodeids: list[str], files: list[str],
           celery_version: str, elapsed: float) -> tuple[str, list[str]]:
    width = max([len(short(n)) for n in nodeids] + [4])
    lines = [f"{'test':<{width}}  {'plain':<8}  relier", f"{'-' * width}  {'-' * 8}  ------"]
    lines += [f"{short(n):<{width}}  {outcome(plain, n):<8}  {outcome(relier, n)}"
              for n in nodeids]
    lines.append("")
    for name in files:
        mine = [n for n in nodeids if n.startswith(f"t/integration/{name}::")]
        lines.append(f"{name}: plain: {counts(plain, mine)}; relier: {counts(relier, mine)}")
    found = regressions(plain, relier, nodeids)
    lines.append(f"plain: {counts(plain, nodeids)}; relier: {counts(relier, nodeids)}; "
                 f"regressions: {[short(n) for n in found]}")
    relaxed = sum(1 for e in relier.tests.values() if e.get("relaxed"))
    lines.append(f"relier active: {relier.ledger_records} ledger records (rl:t:*) after the "
                 f"run {relier.ledger_states}, install applied to {relier.installed_on}; "
                 f"plain side: {plain.ledger_records}; queue check relaxed on {relaxed} tests")
    lines.append(f"celery {celery_version}; plain {plain.seconds:.0f} s, relier "
                 f"{relier.seconds:.0f} s, whole run {elapsed:.0f} s")
    for nodeid in found:
        entry = relier.tests.get(nodeid)
        lines.append("")
        lines.append(f"regression {short(nodeid)}: relier {outcome(relier, nodeid)}")
        if entry:
            lines += ["    " + x for x in assertion_lines(str(entry.get("excerpt", "")))]
    return "\n".join(lines), found


def markdown(plain: SideResult, relier: SideResult, nodeids: list[str], files: list[str],
             celery_version: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"Celery {celery_version} integration suite, {when}.", "",
           "| test | plain | relier |", "| --- | --- | --- |"]
    out += [f"| `{short(n)}` | {outcome(plain, n)} | {outcome(relier, n)} |" for n in nodeids]
    out.append("")
    for name in files:
        mine = [n for n in nodeids if n.startswith(f"t/integration/{name}::")]
        out.append(f"- {name}: plain {counts(plain, mine)}; relier {counts(relier, mine)}")
    out.append(f"- regressions: {[short(n) for n in regressions(plain, relier, nodeids)]}")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", default="test_tasks.py,test_canvas.py",
                        help="files of t/integration, comma-separated")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (venv, suite, logs, per-test JSON)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the results table to this file")
    parser.add_argument("-k", default="", help="pytest -k expression (a partial run)")
    parser.add_argument("--test-timeout", type=int, default=120,
                        help="cap on each test's timeout, s (the suite says 300 on most)")
    parser.add_argument("--max-reruns", type=int, default=2,
                        help="cap on the suite's flaky reruns (it says up to 5)")
    parser.add_argument("--side-timeout", type=int, default=3000,
                        help="each side's pytest is stopped after this many seconds")
    parser.add_argument("--celery-version", default=importlib.metadata.version("celery"))
    args = parser.parse_args()
    files = [f.strip() for f in args.tests.split(",") if f.strip()]
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="celery-suite-"))
    log(f"work directory {work}; celery {args.celery_version}; tests {files}")
    try:
        python, suite = build_venv(work, args.celery_version)
        for name in files:
            if not (suite / "t" / "integration" / name).is_file():
                raise SystemExit(f"no t/integration/{name} in celery {args.celery_version}")
        plain = run_side("plain", python, suite, work, files, args)
        relier = run_side("relier", python, suite, work, files, args)
        elapsed = time.monotonic() - started
        nodeids = list(dict.fromkeys([*plain.tests, *relier.tests]))
        text, found = render(plain, relier, nodeids, files, args.celery_version, elapsed)
        print(text, flush=True)
        if args.markdown:
            args.markdown.write_text(markdown(plain, relier, nodeids, files,
                                              args.celery_version))
            log(f"wrote {args.markdown}")
        if not nodeids or relier.ledger_records == 0:
            log("the relier side left no ledger record: Relier was not active, or nothing ran")
            return 2
        return 1 if found else 0
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
