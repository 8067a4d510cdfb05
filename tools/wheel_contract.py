"""Build every package's wheel, install the wheels in fresh venvs, and import the public paths.

Editable installs hide packaging mistakes (a missing Lua file, a stray namespace __init__);
this runs the documented import paths against real wheels, the way users get them:

1. all wheels together: every documented path imports, Lua scripts load from the wheel, and
   ``import relier.core.keys`` does not drag in Celery;
2. each package alone (with its declared dependencies only): its own paths import, and paths
   of packages it does not depend on stay absent.

Usage: ``uv run python tools/wheel_contract.py``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The public import paths, per distribution (documented in each package's README).
CONTRACT: dict[str, list[str]] = {
    "relier-core": [
        "from relier.core import Settings, get_settings, Keys, Ops, preflight, redis_client",
        "from relier.core.exceptions import AdmissionRejectedError, PayloadIntegrityError",
        "from relier.core.exceptions import CheckpointTooLargeError, SchemaMigrationError",
        "from relier.core.keys import KEYSPACE_VERSION",
        "from relier.core.idempotency import idempotency_lock, IdempotencyResult",
        "from relier.core.scripts import SPECS, script_source",
    ],
    "relier-envelope": [
        "from relier.envelope import Envelope, Keyring, seal, open_envelope, migrations",
    ],
    "relier-admission": [
        "from relier.admission import Admission, AdmissionPolicy, admission_key",
    ],
    "relier-idempotency": [
        "from relier.idempotency import idempotency_key, IdempotencyMiddleware",
    ],
    "relier-phoenix": [
        "from relier.phoenix import Ledger, Resurrector, DeadLetterQueue, task_story",
        "from relier.phoenix import LeaseKeeper, PhoenixMiddleware, request_drain",
        "from relier.phoenix.celery import install",
    ],
    "relier-cli": [
        "from relier.cli.main import app, main",
        "from relier.cli.plugins import add_plugins, GROUP",
    ],
    "relier-tasks": [
        "from relier.tasks.decorator import rl_task",
        "from relier.tasks.context import TaskContext, task_context",
        "from relier.tasks.app import app, celery_app",
    ],
    "relier-lab": [
        "from relier.lab.procs import LocalRedis, WorkerProcess",
        "from relier.lab.demo_cmd import demo",
    ],
    "relier": [
        "from relier import rl_task, TaskContext, TaskReceipt, AdmissionRejectedError, install",
    ],
}

#: What ``rl`` offers, by what is installed: the shell alone has no harness commands (and
#: still starts); with relier-lab they plug in, and ``rl`` still imports no task runtime.
LAB_COMMANDS = ("bench", "chaos", "cluster", "demo")
CHECK_RL = """
import sys
import typer
from relier.cli.main import app
commands = set(typer.main.get_command(app).commands)
lab = {lab!r}
assert {{"doctor", "tasks", "dlq", "worker", "config", "run-resurrector"}} <= commands, commands
assert (lab <= commands) if {with_lab!r} else not (lab & commands), commands
assert "relier.tasks" not in sys.modules, "rl imported the task runtime"
print("  rl: " + ", ".join(sorted(commands)))
"""

CHECK_LUA = """
from relier.core.scripts import SPECS, script_source, script_sha
for name in SPECS:
    assert "--@include" not in script_source(name), name
    assert len(script_sha(name)) == 40
print(f"  lua: {len(SPECS)} scripts load from the wheel")
"""

CHECK_LAZY = """
import sys
import relier.core.keys
assert "celery" not in sys.modules, "importing relier.core pulled in Celery"
assert "relier.tasks" not in sys.modules
print("  lazy: relier.core imports without Celery")
"""


def run(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed: {' '.join(args)}")
    return done.stdout


def workspace_deps(package: str) -> set[str]:
    """The package and every workspace package it depends on, transitively."""
    names = {p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists()}
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        meta = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())
        for dep in meta["project"].get("dependencies", []):
            dep_name = dep.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
            if dep_name in names:
                todo.append(dep_name)
    return seen


def venv_with(wheels: list[Path], where: Path) -> Path:
    run("uv", "venv", "--quiet", "--python", sys.executable, str(where))
    python = where / "bin" / "python"
    run("uv", "pip", "install", "--quiet", "--python", str(python), *map(str, wheels))
    return python


def check(python: Path, code: str) -> None:
    run(str(python), "-I", "-c", textwrap.dedent(code))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="relier-wheels-") as tmp:
        dist = Path(tmp) / "dist"
        run("uv", "build", "--quiet", "--all-packages", "--no-sources", "--wheel",
            "--out-dir", str(dist))
        wheels = {w.name.split("-")[0].replace("_", "-"): w for w in dist.glob("*.whl")}
        packages = sorted(CONTRACT)
        missing = set(packages) - set(wheels)
        if missing:
            raise SystemExit(f"no wheel built for {sorted(missing)}")
        print(f"built {len(wheels)} wheels")

        print("all wheels together:")
        python = venv_with(list(wheels.values()), Path(tmp) / "all")
        for package in packages:
            for line in CONTRACT[package]:
                check(python, line)
        check(python, CHECK_LUA)
        check(python, CHECK_LAZY)
        check(python, CHECK_RL.format(lab=set(LAB_COMMANDS), with_lab=True))
        print(f"  imports: {sum(map(len, CONTRACT.values()))} documented paths")

        for package in packages:
            deps = workspace_deps(package)
            python = venv_with([wheels[d] for d in sorted(deps)], Path(tmp) / package)
            for line in CONTRACT[package]:
                check(python, line)
            for other in set(packages) - deps:
                for line in CONTRACT[other]:
                    module = ".".join(line.split()[1].split(".")[:2])
                    if module.startswith("relier."):
                        check(python, f"""
                            import importlib.util
                            assert importlib.util.find_spec({module!r}) is None, {module!r}
                        """)
            if "relier-cli" in deps:
                check(python, CHECK_RL.format(lab=set(LAB_COMMANDS),
                                              with_lab="relier-lab" in deps))
            print(f"{package} alone (+ {', '.join(sorted(deps - {package})) or 'nothing'}): ok")
    print("wheel contract: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
