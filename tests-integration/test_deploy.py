"""The deployment files keep Relier's requirements (checked without Docker)."""

from __future__ import annotations

from pathlib import Path

import yaml

from relier.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_stack_has_every_role_and_safe_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "worker-high", "worker-default", "worker-recovery", "resurrector",
            "otel-collector"} <= set(services)
    queues = {name: svc["command"][svc["command"].index("-Q") + 1]
              for name, svc in services.items() if name.startswith("worker")}
    consumed = {q for value in queues.values() for q in value.split(",")}
    assert consumed == {"high_priority", "default", "low_priority", "re-queue"}
    assert queues["worker-recovery"] == "re-queue"
    grace = float(Settings().graceful_shutdown_timeout)
    for name in queues:
        assert float(services[name]["stop_grace_period"].rstrip("s")) > grace
        assert services[name]["environment"]["RELIER_REDIS_URL"].startswith("redis://redis")
    assert services["resurrector"]["command"] == ["rl", "run-resurrector"]


def test_redis_conf_is_what_preflight_requires() -> None:
    conf = dict(
        line.split(None, 1) for line in (ROOT / "deploy" / "redis.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert conf["appendonly"] == "yes"
    assert conf["maxmemory-policy"] == "noeviction"
    assert conf["maxmemory"].endswith("mb")  # below the container's limit
