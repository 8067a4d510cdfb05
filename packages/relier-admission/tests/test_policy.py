from __future__ import annotations

from relier.admission import AdmissionPolicy, admission_key, current_admission_key
from relier.core.settings import Settings


def policy(**env: str) -> AdmissionPolicy:
    return AdmissionPolicy(Settings.load(environ=env, env_file=None))


def test_global_scope_by_default() -> None:
    scopes = policy().scopes("default")
    assert [s.name for s in scopes] == ["global"]
    assert scopes[0].limit == 5000
    assert scopes[0].window_ms == 10_000
    assert scopes[0].key == "rl:adm:global"


def test_queue_and_key_scopes() -> None:
    p = policy(RELIER_ADMISSION_QUEUE_LIMITS="low_priority=10",
               RELIER_ADMISSION_KEY_LIMIT="3", RELIER_ADMISSION_WINDOW="2")
    assert [s.name for s in p.scopes("default")] == ["global"]
    assert [s.name for s in p.scopes("low_priority", key="t1")] == [
        "global", "queue:low_priority", "key:t1"]
    with admission_key("tenant:9"):
        assert current_admission_key() == "tenant:9"
        assert p.scopes("default")[-1].name == "key:tenant:9"
    assert current_admission_key() is None


def test_limit_zero_disables() -> None:
    p = policy(RELIER_ADMISSION_LIMIT="0")
    assert not p.enabled
    assert p.scopes("default") == ()
