from __future__ import annotations

import pytest

from relier.core import codec
from relier.core.connection import kombu_broker_options, parse_sentinel_url
from relier.core.settings import Settings


def test_parse_sentinel_url() -> None:
    spec = parse_sentinel_url("sentinel://:pw@h1:26379,h2:26380/mymaster/3")
    assert spec.nodes == (("h1", 26379), ("h2", 26380))
    assert spec.master == "mymaster"
    assert spec.db == 3
    assert spec.password == "pw"
    assert not spec.ssl
    with pytest.raises(ValueError, match="master name"):
        parse_sentinel_url("sentinel://h1:26379")


def test_sentinel_password_with_reserved_characters_never_becomes_a_host() -> None:
    spec = parse_sentinel_url("sentinel://:pa/ss@h1:26379/mymaster/0")
    assert spec.nodes == (("h1", 26379),)
    assert (spec.password, spec.master) == ("pa/ss", "mymaster")
    assert parse_sentinel_url("sentinel://:pa%2Fss@h1:26379/m").password == "pa/ss"
    with pytest.raises(ValueError, match="master name") as info:
        parse_sentinel_url("sentinel://:se/cret@h1:26379")
    assert "se/cret" not in str(info.value)
    s = Settings.load(environ={"RELIER_REDIS_URL": "sentinel://:pa%2Fss@h1:1/m/0"},
                      env_file=None)
    assert kombu_broker_options(s)[0] == "sentinel://:pa%2Fss@h1:1/0"


def test_kombu_options_translate_sentinel() -> None:
    s = Settings.load(environ={"RELIER_REDIS_URL": "sentinel://h1:1,h2:2/m/0"}, env_file=None)
    url, options = kombu_broker_options(s)
    assert url == "sentinel://h1:1/0;sentinel://h2:2/0"
    assert options == {"master_name": "m"}
    plain = Settings.load(environ={"RELIER_REDIS_URL": "redis://x:1/0"}, env_file=None)
    assert kombu_broker_options(plain) == ("redis://x:1/0", {})


def test_kombu_url_carries_relier_redis_password() -> None:
    def broker(**env: str) -> str:
        return kombu_broker_options(Settings.load(environ=env, env_file=None))[0]

    assert broker(RELIER_REDIS_URL="redis://x:1/0", RELIER_REDIS_PASSWORD="p@ss") == (
        "redis://:p%40ss@x:1/0")
    assert broker(RELIER_REDIS_URL="rediss://app@x:1/0", RELIER_REDIS_PASSWORD="pw") == (
        "rediss://app:pw@x:1/0")
    # The setting overrides the URL's password, as for Relier's own clients; a separate
    # broker server is not given Relier's password.
    assert broker(RELIER_REDIS_URL="redis://:url@x:1/0", RELIER_REDIS_PASSWORD="pw") == (
        "redis://:pw@x:1/0")
    assert broker(RELIER_REDIS_URL="redis://x:1/0", RELIER_BROKER_URL="redis://y:1/0",
                  RELIER_REDIS_PASSWORD="pw") == "redis://y:1/0"


def test_codec_round_trip_and_clear_error() -> None:
    assert codec.decode(codec.encode({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}
    with pytest.raises(TypeError, match="result is not JSON-serialisable"):
        codec.encode(object(), "result")
