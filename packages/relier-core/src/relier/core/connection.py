"""Redis clients for Relier: sync and asyncio, from one URL, pooled per process, fork-safe.

Clients are cached per process id (and, for asyncio, per event loop). A forked child therefore
never reuses a socket of its parent: the first call in the child builds new pools. The parent's
clients stay referenced, so the child never closes (or, worse, shuts down) sockets it inherited.
"""

from __future__ import annotations

import os
import threading
import weakref
from asyncio import AbstractEventLoop, get_running_loop
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from relier.core.settings import Settings, get_settings, mask_url
from relier.core.urls import split_credentials

__all__ = [
    "SentinelURL",
    "async_redis_client",
    "kombu_broker_options",
    "parse_sentinel_url",
    "redis_client",
]


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A parsed ``sentinel://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    master: str
    db: int
    password: str | None
    ssl: bool


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse ``sentinel[s]://[:password@]host:port[,host:port...]/<master>[/<db>]``."""
    # Credentials end at the last '@' (see relier.core.urls): urlsplit would take a password
    # holding '/', '?' or '#' for a host, which then shows up in connection errors.
    prefix, creds, rest = split_credentials(url)
    parts = urlsplit(prefix + rest)
    netloc = parts.netloc
    password = None
    if creds is not None:
        password = unquote(creds.partition(":")[2]) or None
    nodes = []
    for node in netloc.split(","):
        host, _, port = node.rpartition(":")
        nodes.append((host or node, int(port) if port.isdigit() else 26379))
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ValueError(
            f"{mask_url(url)}: a sentinel URL needs the master name as its path, "
            "e.g. sentinel://host:26379/mymaster/0"
        )
    db = int(segments[1]) if len(segments) > 1 else 0
    return SentinelURL(tuple(nodes), segments[0], db, password, parts.scheme == "sentinels")


def _common_kwargs(settings: Settings, url: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": settings.redis_health_check_interval,
        "max_connections": settings.redis_max_connections,
        "retry_on_timeout": False,
    }
    if not url.startswith("unix:"):
        kwargs["socket_keepalive"] = settings.redis_socket_keepalive
    if settings.redis_password:
        kwargs["password"] = settings.redis_password
    return kwargs


_lock = threading.Lock()
_sync_clients: dict[tuple[int, str], redis.Redis] = {}
_async_clients: dict[tuple[int, str], weakref.WeakKeyDictionary[AbstractEventLoop, aredis.Redis]]
_async_clients = {}


def redis_client(settings: Settings | None = None, url: str | None = None) -> redis.Redis:
    """The process's pooled sync client for ``url`` (default: ``RELIER_REDIS_URL``).

    Replies are bytes (``decode_responses=False``): envelopes are binary.
    """
    settings = settings or get_settings()
    url = url or settings.redis_url
    key = (os.getpid(), url)
    client = _sync_clients.get(key)
    if client is None:
        with _lock:
            client = _sync_clients.get(key)
            if client is None:
                client = _build_sync(settings, url)
                _sync_clients[key] = client
    return client


def async_redis_client(settings: Settings | None = None, url: str | None = None) -> aredis.Redis:
    """The asyncio client for ``url`` bound to the running event loop of this process.

    asyncio connections belong to the loop that opened them, so each loop gets its own pool.
    """
    settings = settings or get_settings()
    url = url or settings.redis_url
    loop = get_running_loop()
    key = (os.getpid(), url)
    with _lock:
        per_loop = _async_clients.setdefault(key, weakref.WeakKeyDictionary())
        client = per_loop.get(loop)
        if client is None:
            client = _build_async(settings, url)
            per_loop[loop] = client
    return client


def _build_sync(settings: Settings, url: str) -> redis.Redis:
    client: redis.Redis = _build(settings, url, Sentinel, redis.BlockingConnectionPool,
                                 redis.Redis)
    return client


def _build_async(settings: Settings, url: str) -> aredis.Redis:
    client: aredis.Redis = _build(settings, url, AsyncSentinel, aredis.BlockingConnectionPool,
                                  aredis.Redis)
    return client


def _build(settings: Settings, url: str, sentinel_class: Any, pool_class: Any,
           client_class: Any) -> Any:
    """One client of redis-py's sync or asyncio flavour (the classes given), same options."""
    kwargs = _common_kwargs(settings, url)
    if urlsplit(url).scheme.startswith("sentinel"):
        spec = parse_sentinel_url(url)
        sentinel = sentinel_class(
            list(spec.nodes),
            sentinel_kwargs={"password": settings.redis_sentinel_password},
            socket_timeout=settings.redis_socket_timeout,
        )
        if spec.password and "password" not in kwargs:
            kwargs["password"] = spec.password
        kwargs.pop("max_connections")
        return sentinel.master_for(spec.master, db=spec.db, ssl=spec.ssl, **kwargs)
    # A blocking pool: past max_connections, callers wait for a free connection (up to the
    # socket timeout) instead of failing with "Too many connections" under a burst.
    pool = pool_class.from_url(url, timeout=settings.redis_socket_timeout, **kwargs)
    return client_class(connection_pool=pool)


def kombu_broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """Translate ``RELIER_BROKER_URL`` into what kombu expects: ``(url, transport_options)``.

    kombu spells Sentinel as ``sentinel://h1:p1;sentinel://h2:p2`` with the master name in the
    transport options; plain Redis URLs pass through unchanged.
    """
    url = settings.broker_url or settings.redis_url
    options: dict[str, Any] = {}
    if urlsplit(url).scheme.startswith("sentinel"):
        spec = parse_sentinel_url(url)
        auth = f":{quote(spec.password, safe='')}@" if spec.password else ""
        url = ";".join(f"sentinel://{auth}{h}:{p}/{spec.db}" for h, p in spec.nodes)
        options["master_name"] = spec.master
        if settings.redis_sentinel_password:
            options["sentinel_kwargs"] = {"password": settings.redis_sentinel_password}
    elif settings.redis_password and url == settings.redis_url:
        # kombu reads credentials only from the URL; without this, RELIER_REDIS_PASSWORD would
        # reach Relier's own clients but not the broker connection on the same server. As for
        # those clients, the setting overrides a password in the URL.
        parts = urlsplit(url)
        if parts.scheme in ("redis", "rediss"):
            user = quote(parts.username or "", safe="")
            host = parts.netloc.rpartition("@")[2]
            secret = quote(settings.redis_password, safe="")
            url = urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))
    return url, options
