"""Preflight: does this Redis server let Relier keep its promises?

Checked: reachable, Redis 7 or newer, ``maxmemory-policy noeviction`` (an evicted task record is
a lost task), AOF on (a restart without it forgets accepted tasks), every Lua script loadable
with the SHA1 computed here, and a keyspace no newer than this code. Facts are read from
``INFO``, which managed services usually allow even where ``CONFIG`` is forbidden; when even
``INFO`` is refused the check becomes a warning, not a crash.

Workers call ``preflight`` before consuming (strict by default: refuse to start);
``rl doctor`` calls ``run_preflight`` and prints the report.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import msgspec
import redis

from relier.core.exceptions import PreflightError
from relier.core.keys import KEYSPACE_VERSION, Keys
from relier.core.scripts import SPECS, script_sha, script_source
from relier.core.settings import Settings, get_settings, mask_url

__all__ = ["Check", "PreflightReport", "enforce", "preflight", "run_preflight"]

log = logging.getLogger("relier.preflight")

MIN_REDIS = (7, 0)


class Check(msgspec.Struct, frozen=True):
    """One preflight check: its verdict, what was seen, and the one-line fix."""

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""


class PreflightReport(msgspec.Struct, frozen=True):
    """Every check of one preflight run."""

    url: str
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        """Checks that make Relier refuse to start in strict mode."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        """Checks worth a look that never stop a start."""
        return [c for c in self.checks if c.status == "warn"]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failures

    def lines(self) -> list[str]:
        """The report as text, one line per check."""
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        out = [f"Relier preflight of {self.url}"]
        for c in self.checks:
            out.append(f"  [{mark[c.status]}] {c.name}: {c.detail}")
            if c.fix and c.status != "ok":
                out.append(f"         fix: {c.fix}")
        return out


def _info(client: redis.Redis, section: str) -> dict[str, Any] | None:
    try:
        return dict(client.info(section))
    except redis.ResponseError:  # NOPERM or a disabled command on a managed service
        return None


def run_preflight(
    client: redis.Redis, settings: Settings | None = None, *, write: bool = False
) -> PreflightReport:
    """Check the server behind ``client`` and return the report (raises nothing).

    Args:
        client: A sync client of the coordination store.
        settings: Settings in force (for the key prefix and the URL shown).
        write: Record the keyspace version when the keyspace is new (workers do; read-only
            callers such as ``rl doctor`` do not).
    """
    settings = settings or get_settings()
    url = mask_url(settings.redis_url)
    checks: list[Check] = []
    try:
        client.ping()
    except redis.RedisError as exc:
        checks.append(Check("connection", "fail", f"cannot reach Redis: {exc}",
                            "start Redis or correct RELIER_REDIS_URL"))
        return PreflightReport(url, checks)
    checks.append(Check("connection", "ok", "PING answered"))

    server = _info(client, "server")
    memory = _info(client, "memory")
    persistence = _info(client, "persistence")
    cluster = _info(client, "cluster")
    if server is None:
        checks.append(Check("version", "warn", "INFO is not permitted; version unknown",
                            "make sure the server runs Redis 7 or newer"))
    else:
        version = str(server.get("redis_version", "0"))
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts >= MIN_REDIS:
            checks.append(Check("version", "ok", f"Redis {version}"))
        else:
            checks.append(Check("version", "fail", f"Redis {version} is older than 7.0",
                                "upgrade to Redis 7 or newer (or Valkey 7+)"))

    if memory is None:
        checks.append(Check(
            "maxmemory-policy", "warn", "INFO memory is not permitted; policy unknown",
            "make sure the service's eviction policy is noeviction",
        ))
    else:
        policy = str(memory.get("maxmemory_policy", "unknown"))
        if policy == "noeviction":
            checks.append(Check("maxmemory-policy", "ok", "noeviction"))
        else:
            checks.append(Check(
                "maxmemory-policy", "fail",
                f"{policy}: under memory pressure Redis would evict task records (lost tasks)",
                "redis-cli CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)",
            ))
        if int(memory.get("maxmemory", 0) or 0) == 0:
            checks.append(Check(
                "maxmemory", "warn",
                "0 (unlimited): under noeviction Redis grows until the kernel kills it",
                "set maxmemory below the host's memory so Redis refuses writes instead",
            ))
        else:
            checks.append(Check("maxmemory", "ok", f"{memory['maxmemory']} bytes"))

    if persistence is None:
        checks.append(Check("aof", "warn", "INFO persistence is not permitted; AOF unknown",
                            "make sure the service persists with an append-only file"))
    elif str(persistence.get("aof_enabled", "0")) == "1":
        checks.append(Check("aof", "ok", "appendonly yes"))
    else:
        checks.append(Check(
            "aof", "fail", "appendonly no: a Redis restart forgets accepted tasks",
            "redis-cli CONFIG SET appendonly yes (and appendonly yes in redis.conf)",
        ))

    if cluster is not None and str(cluster.get("cluster_enabled", "0")) == "1":
        checks.append(Check(
            "topology", "fail", "Redis Cluster is not supported yet (global indexes)",
            "use a single primary, with Sentinel for failover",
        ))

    checks.append(_scripts_check(client) if write else _scripts_present(client))

    checks.append(_keyspace_check(client, Keys(settings.key_prefix), write))
    return PreflightReport(url, checks)


def _scripts_check(client: redis.Redis) -> Check:
    broken = []
    for name in SPECS:
        try:
            sha: Any = client.script_load(script_source(name))
        except redis.RedisError as exc:
            broken.append(f"{name} ({exc})")
            continue
        sha = sha.decode() if isinstance(sha, bytes) else sha
        if sha != script_sha(name):
            broken.append(f"{name} (server SHA1 {sha} differs)")
    if broken:
        return Check("scripts", "fail", "cannot load: " + ", ".join(broken),
                     "allow SCRIPT LOAD / EVALSHA for this user (ACL +@scripting)")
    return Check("scripts", "ok", f"{len(SPECS)} scripts loaded")


def _scripts_present(client: redis.Redis) -> Check:
    """Read-only variant: which scripts the server already has (loaded on first use)."""
    names = list(SPECS)
    try:
        present = client.script_exists(*[script_sha(n) for n in names])
    except redis.RedisError as exc:
        return Check("scripts", "warn", f"cannot ask the script cache: {exc}",
                     "allow SCRIPT EXISTS for this user")
    missing = [n for n, ok in zip(names, present, strict=True) if not ok]
    if not missing:
        return Check("scripts", "ok", f"{len(names)} scripts loaded")
    return Check("scripts", "warn",
                 f"{len(missing)} of {len(names)} not loaded yet (a worker loads them at start)",
                 "start a worker (it loads them), or run `rl config validate --load-scripts`")


def _keyspace_check(client: redis.Redis, keys: Keys, write: bool) -> Check:
    raw = client.hget(keys.meta, "keyspace")
    if raw is None:
        if write:
            client.hsetnx(keys.meta, "keyspace", KEYSPACE_VERSION)
        return Check("keyspace", "ok", f"new keyspace (version {KEYSPACE_VERSION})")
    found = int(raw)
    if found > KEYSPACE_VERSION:
        return Check(
            "keyspace", "fail",
            f"version {found} was written by a newer Relier; this one knows {KEYSPACE_VERSION}",
            "upgrade this process to the Relier version the rest of the cluster runs",
        )
    return Check("keyspace", "ok", f"version {found}")


def enforce(report: PreflightReport, mode: Literal["strict", "warn"]) -> None:
    """Act on a report: raise in strict mode when a check failed; log otherwise."""
    for check in report.warnings:
        log.warning("preflight: %s: %s (fix: %s)", check.name, check.detail, check.fix)
    if report.failures:
        lines = [f"{c.name}: {c.detail}. Fix: {c.fix}" for c in report.failures]
        if mode == "strict":
            raise PreflightError(lines)
        for line in lines:
            log.warning("preflight (RELIER_PREFLIGHT=warn, starting anyway): %s", line)


def preflight(client: redis.Redis, settings: Settings | None = None) -> PreflightReport:
    """Run the checks, record the keyspace version, and enforce ``RELIER_PREFLIGHT``.

    Raises:
        PreflightError: a check failed and ``RELIER_PREFLIGHT`` is ``strict``.
    """
    settings = settings or get_settings()
    report = run_preflight(client, settings, write=True)
    enforce(report, settings.preflight)
    return report
