from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from relier.core.exceptions import ConfigurationError
from relier.core.settings import Settings, mask_url, parse_dotenv, setting_infos


def load(**env: str) -> Settings:
    return Settings.load(environ=env, env_file=None)


def test_defaults_are_valid_and_broker_follows_redis_url() -> None:
    s = load(RELIER_REDIS_URL="redis://cache:6380/2")
    assert s.broker_url == "redis://cache:6380/2"
    assert s.preflight == "strict"
    assert s.max_resurrections == 5
    assert s.heartbeat_interval == pytest.approx(s.heartbeat_ttl / 3)


def test_explicit_broker_url_is_kept() -> None:
    s = load(RELIER_REDIS_URL="redis://a/0", RELIER_BROKER_URL="redis://b/1")
    assert s.broker_url == "redis://b/1"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("RELIER_HEARTBEAT_TTL", "ten", "a number"),
        ("RELIER_MAX_RESURRECTIONS", "1.5", "a whole number"),
        ("RELIER_ACCEPT_UNSIGNED", "maybe", "true or false"),
        ("RELIER_PREFLIGHT", "loose", "one of strict, warn"),
        ("RELIER_REDIS_URL", "http://x", "redis://"),
        ("RELIER_HEARTBEAT_TTL", "0", "above 0"),
        ("RELIER_MAX_RESURRECTIONS", "-1", "0 or more"),
        ("RELIER_ADMISSION_QUEUE_LIMITS", "default:5", "queue=limit"),
    ],
)
def test_bad_value_names_variable_value_and_form(var: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load(**{var: value})
    message = str(info.value)
    assert var in message
    assert value in message
    assert expected in message


def test_soft_must_be_below_hard() -> None:
    with pytest.raises(ConfigurationError, match="RELIER_SOFT_TIMEOUT"):
        load(RELIER_SOFT_TIMEOUT="30", RELIER_HARD_TIMEOUT="30")
    assert load(RELIER_SOFT_TIMEOUT="25", RELIER_HARD_TIMEOUT="30").hard_timeout == 30.0


def test_optional_values_accept_empty() -> None:
    assert load(RELIER_HARD_TIMEOUT="").hard_timeout is None


def test_literals_are_case_insensitive() -> None:
    assert load(RELIER_LOG_LEVEL="debug").log_level == "DEBUG"
    assert load(RELIER_PREFLIGHT="WARN").preflight == "warn"


def test_retired_variables_fail_loudly() -> None:
    with pytest.raises(ConfigurationError, match="RELIER_SIGNING_KEYS"):
        load(RELIER_SECRET_KEY="x")


def test_signing_keys_parse_and_validate() -> None:
    s = load(RELIER_SIGNING_KEYS="k2:0123456789abcdef0123, k1:fedcba9876543210fedc")
    assert [kid for kid, _ in s.signing_key_pairs()] == ["k2", "k1"]
    repeated = "a:0123456789abcdef,a:0123456789abcdef"
    for bad in ("nocolon", "k1:short", "k 1:0123456789abcdef", repeated):
        with pytest.raises(ConfigurationError, match="RELIER_SIGNING_KEYS") as info:
            load(RELIER_SIGNING_KEYS=bad)
        assert "0123456789abcdef" not in str(info.value), "secrets must never be echoed"


def test_secret_values_are_masked_in_errors_and_listing() -> None:
    s = load(RELIER_REDIS_URL="redis://:hunter2@h:6379/0", RELIER_REDIS_PASSWORD="pw",
             RELIER_SIGNING_KEYS="k:0123456789abcdef")
    shown = s.masked()
    assert "hunter2" not in shown["RELIER_REDIS_URL"]
    assert shown["RELIER_REDIS_PASSWORD"] == "***"
    assert shown["RELIER_SIGNING_KEYS"] == "***"
    assert mask_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"


def test_dotenv_is_read_below_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport RELIER_MAX_RESURRECTIONS=7\nRELIER_KEY_PREFIX='app'\n"
        "RELIER_LOG_LEVEL=debug # trailing comment\n",
        encoding="utf-8",
    )
    s = Settings.load(environ={"RELIER_KEY_PREFIX": "env"}, env_file=env_file)
    assert s.max_resurrections == 7
    assert s.key_prefix == "env"
    assert s.log_level == "DEBUG"


def test_parse_dotenv_forms() -> None:
    assert parse_dotenv('A=1\nB="two words"\n\n#C=3\nnot a pair\nD=x=y') == {
        "A": "1", "B": "two words", "D": "x=y",
    }


def test_every_setting_is_documented() -> None:
    infos = setting_infos()
    assert len({i.variable for i in infos}) == len(infos)
    for info in infos:
        assert info.variable.startswith("RELIER_")
        assert len(info.doc) > 20, info.variable


def test_admission_queue_limits_parse() -> None:
    s = load(RELIER_ADMISSION_QUEUE_LIMITS="low_priority=100, default=2000")
    assert s.admission_queue_limit_map() == {"low_priority": 100, "default": 2000}


def test_imports_split() -> None:
    assert load(RELIER_IMPORTS="app.tasks, other.tasks,").import_modules == (
        "app.tasks", "other.tasks",
    )


# -- URL passwords never leak (issue 10, item 10) ---------------------------------------------
_URL_FORMS = (
    "redis://:{pw}@cache.internal:6379/0",
    "redis://app:{pw}@cache.internal:6379/0",
    "rediss://app:{pw}@cache.internal:6380/1?ssl_cert_reqs=required",
    "unix://:{pw}@/run/redis.sock?db=2",
    "sentinel://:{pw}@s1:26379,s2:26379/mymaster/0",
    "http://:{pw}@cache.internal:6379/0",  # a wrong scheme: refused, and still masked
)


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=40), st.sampled_from(_URL_FORMS))
def test_masked_url_never_contains_the_password(password: str, form: str) -> None:
    url = form.format(pw=password)
    masked = mask_url(url)
    # A password that is also a piece of the rest of the URL ("6", "cache") cannot be told
    # apart; every other one must be gone.
    assume(password not in form.format(pw="***"))
    assert password not in masked
    assert "***" in masked


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=40),
       st.sampled_from(["http://:{pw}@cache.internal:6379/0", "redis+tls://app:{pw}@h:1/0"]),
       st.sampled_from(["RELIER_REDIS_URL", "RELIER_BROKER_URL"]))
def test_configuration_errors_never_contain_the_password(password: str, form: str,
                                                         variable: str) -> None:
    # The error's own words ("=", "://", the variable's name) are not the password: compare
    # with the error a placeholder password gets, which must read the same once masked.
    with pytest.raises(ConfigurationError) as reference:
        load(**{variable: form.format(pw="placeholder")})
    assume(password not in str(reference.value) + reference.value.value)
    with pytest.raises(ConfigurationError) as info:
        load(**{variable: form.format(pw=password)})
    assert password not in str(info.value)
    assert password not in info.value.value


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:pa/ss@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://:p@ss@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://u:a#b?c:d@host/0", "redis://u:***@host/0"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("redis://host/0?password=hunter2&db=1", "redis://host/0?password=***&db=1"),
    ("", ""),
])
def test_mask_url_reads_the_netloc_itself(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_password_with_reserved_characters_is_refused_masked() -> None:
    with pytest.raises(ConfigurationError, match=r"percent-encoded \(%2F") as info:
        load(RELIER_REDIS_URL="redis://:pa/ss@host:6379/0")
    assert "pa/ss" not in str(info.value)
    assert "ss@" not in str(info.value)
    encoded = load(RELIER_REDIS_URL="redis://:pa%2Fss@host:6379/0")
    assert encoded.redis_url == "redis://:pa%2Fss@host:6379/0"


def test_connection_errors_mask_the_url() -> None:
    from relier.core.exceptions import RedisConnectionError

    assert "hunter2" not in str(RedisConnectionError("redis://:hunter2@h:1/0", "refused"))
