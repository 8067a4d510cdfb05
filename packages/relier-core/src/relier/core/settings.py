"""Relier's settings: one frozen, typed object read from ``RELIER_*`` variables and ``.env``.

Precedence is environment > ``.env`` in the working directory > defaults. Every value is checked
when the object is built: a bad value raises ``ConfigurationError``
naming the variable, the value and the accepted form, so a worker never starts half-configured.

The field table below is also the documentation: ``rl config show`` and the configuration page
of the docs are generated from it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from relier.core.exceptions import ConfigurationError
from relier.core.queues import RECOVERY_QUEUE
from relier.core.urls import ambiguous_credentials, mask_url

__all__ = [
    "ENV_PREFIX",
    "SettingInfo",
    "Settings",
    "get_settings",
    "mask_url",
    "parse_dotenv",
    "reset_settings",
    "setting_infos",
]

ENV_PREFIX = "RELIER_"

# Settings of the earlier product that we dropped on purpose, with what replaces them. Setting
# one of them is an error rather than a silent no-op: a stranger upgrading at 3 a.m. must learn
# that their value is not applied.
_RETIRED: dict[str, str] = {
    "RELIER_SECRET_KEY": "set RELIER_SIGNING_KEYS='kid:secret' (envelopes are signed with HMAC)",
    "RELIER_REDIS_USE_SENTINEL": "use a sentinel:// URL in RELIER_REDIS_URL",
    "RELIER_REDIS_SENTINEL_NODES": "use RELIER_REDIS_URL=sentinel://host1:26379,host2:26379/<master>",
    "RELIER_REDIS_SENTINEL_MASTER_NAME": "put the master name in the sentinel:// URL path",
    "RELIER_DATABASE_URL": "Relier needs no database; remove it",
}

_SCHEMES = ("redis", "rediss", "unix", "sentinel", "sentinels")


def _meta(doc: str, *, secret: bool = False, group: str = "general") -> dict[str, Any]:
    return {"doc": doc, "secret": secret, "group": group}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every ``RELIER_*`` setting. Build it with ``Settings.load`` or ``get_settings``."""

    # -- Redis ---------------------------------------------------------------------------------
    redis_url: str = field(
        default="redis://localhost:6379/0",
        metadata=_meta(
            "Coordination store (ledger, leases, DLQ). redis://, rediss://, unix:///path.sock, "
            "or sentinel://[:password@]host:26379[,host2:26379]/<master>[/<db>]. Percent-encode "
            "'/', '?', '#' in a password (%2F, %3F, %23); errors and listings mask it.",
            group="redis",
        ),
    )
    broker_url: str = field(
        default="",
        metadata=_meta(
            "Celery broker. Empty means the same as RELIER_REDIS_URL, which lets dispatch write "
            "the ledger record and the broker message in one atomic call.",
            group="redis",
        ),
    )
    redis_password: str | None = field(
        default=None,
        metadata=_meta("Password for the data nodes; overrides one in the URL.", secret=True,
                       group="redis"),
    )
    redis_sentinel_password: str | None = field(
        default=None,
        metadata=_meta("Password of the Sentinel processes themselves.", secret=True,
                       group="redis"),
    )
    redis_max_connections: int = field(
        default=50,
        metadata=_meta("Connection pool size per process (and per event loop).", group="redis"),
    )
    redis_socket_timeout: float = field(
        default=5.0, metadata=_meta("Seconds to wait for a Redis reply.", group="redis")
    )
    redis_connect_timeout: float = field(
        default=2.0, metadata=_meta("Seconds to wait for a TCP connect.", group="redis")
    )
    redis_socket_keepalive: bool = field(
        default=False,
        metadata=_meta(
            "TCP keepalive on Relier's Redis sockets. Off by default: idle pooled connections "
            "are already checked by RELIER_REDIS_HEALTH_CHECK_INTERVAL, and keepalive sockets "
            "measured several times slower per call on some virtualised networks.",
            group="redis",
        ),
    )
    redis_health_check_interval: int = field(
        default=30,
        metadata=_meta("Seconds between PINGs on idle pooled connections; 0 disables.",
                       group="redis"),
    )
    key_prefix: str = field(
        default="rl",
        metadata=_meta("Prefix of every Relier key, to share one Redis between deployments.",
                       group="redis"),
    )
    preflight: Literal["strict", "warn"] = field(
        default="strict",
        metadata=_meta(
            "strict: refuse to start when Redis lacks version 7+, noeviction, AOF or a script. "
            "warn: log and start (development only).",
            group="redis",
        ),
    )

    # -- Envelope ------------------------------------------------------------------------------
    signing_keys: str = field(
        default="",
        metadata=_meta(
            "HMAC-SHA256 keys as 'kid:secret,kid2:secret2'. The first signs, all verify, so "
            "rotate by prepending a new key and removing the old one after a drain. Empty: "
            "development mode, envelopes unsigned (warned once) but still digest-checked.",
            secret=True,
            group="envelope",
        ),
    )
    accept_unsigned: bool = field(
        default=True,
        metadata=_meta(
            "Run plain Celery messages sent with .delay()/.apply_async() (counted as legacy) "
            "and unsigned envelopes sealed before digests existed. false: dead-letter them "
            "instead.",
            group="envelope",
        ),
    )

    # -- Tasks and workers ---------------------------------------------------------------------
    imports: str = field(
        default="",
        metadata=_meta(
            "Comma-separated modules holding @rl_task functions; workers import them. Unset: a "
            "worker imports a `tasks` module from the directory it starts in, if there is one.",
            group="tasks",
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = field(
        default="INFO", metadata=_meta("Log level of Relier's own loggers.", group="tasks")
    )
    soft_timeout: float | None = field(
        default=None,
        metadata=_meta("Default soft_timeout (seconds) of async tasks that set none. Unset: none.",
                       group="tasks"),
    )
    hard_timeout: float | None = field(
        default=None,
        metadata=_meta("Default hard_timeout (seconds) of async tasks that set none. Unset: none.",
                       group="tasks"),
    )
    result_ttl: int = field(
        default=86_400,
        metadata=_meta("Seconds a completed task's record and result stay readable.",
                       group="tasks"),
    )
    queues: str = field(
        default="high_priority,default,low_priority",
        metadata=_meta(
            "Queues an @rl_task may be declared on or pushed to (comma-separated). Plain Celery "
            "tasks of an installed app use the app's own routing instead; re-queue is "
            "Relier's internal queue and cannot be listed.",
            group="tasks",
        ),
    )
    max_countdown: float = field(
        default=365 * 86_400.0,
        metadata=_meta(
            "Longest countdown or eta ahead accepted at dispatch (seconds; default one year). A "
            "task due later is refused with an error that says so: almost always a unit "
            "mistake (milliseconds for seconds).",
            group="tasks",
        ),
    )
    graceful_shutdown_timeout: float = field(
        default=30.0,
        metadata=_meta(
            "On SIGTERM or `rl worker drain`, seconds running tasks get to finish before they "
            "are handed off (lease released, re-queued with their checkpoint).",
            group="tasks",
        ),
    )

    # -- Phoenix (leases, resurrector, checkpoints) ------------------------------------------------
    heartbeat_ttl: float = field(
        default=3.0,
        metadata=_meta(
            "Lease of a worker process, renewed every third of it by one thread per worker. "
            "A worker silent this long is dead and its tasks are resurrected.",
            group="phoenix",
        ),
    )
    max_resurrections: int = field(
        default=5,
        metadata=_meta(
            "Default number of times a task may be resurrected after its worker died before it "
            "is dead-lettered (reason max_resurrections_exceeded). 0: dead-letter the first "
            "orphan.",
            group="phoenix",
        ),
    )
    max_handoffs: int = field(
        default=10,
        metadata=_meta(
            "Times a task may be handed off (a draining or shutting-down worker gives its run "
            "back, which is not a death) before it is dead-lettered (reason "
            "max_handoffs_exceeded). Bounds a task that is interrupted on every run. 0: "
            "dead-letter at the first hand-off.",
            group="phoenix",
        ),
    )
    resurrection_check_interval: float = field(
        default=0.5,
        metadata=_meta("Longest sleep of the resurrector between passes (seconds).",
                       group="phoenix"),
    )
    resurrection_batch_size: int = field(
        default=1000, metadata=_meta("Most orphans handled per pass.", group="phoenix")
    )
    resurrection_max_queue_depth: int = field(
        default=10_000,
        metadata=_meta(
            "The resurrector pauses re-queueing while re-queue holds this many messages, "
            "instead of flooding it.",
            group="phoenix",
        ),
    )
    resurrection_claim_grace_period: float = field(
        default=5.0,
        metadata=_meta(
            "Seconds a message may sit between leaving its queue and being claimed before the "
            "resurrector re-publishes it (covers the window where kombu has popped a message "
            "but a killed worker never recorded it).",
            group="phoenix",
        ),
    )
    resurrector_in_worker: bool = field(
        default=False,
        metadata=_meta(
            "Also run a resurrector thread inside every worker's main process (small "
            "deployments without a separate `rl run-resurrector`). Off by default: one or two "
            "dedicated resurrectors do the same work for the whole cluster.",
            group="phoenix",
        ),
    )
    checkpoint_backend: Literal["inline", "filesystem"] = field(
        default="inline",
        metadata=_meta("inline: in Redis, up to the inline limit. filesystem: files in "
                       "RELIER_CHECKPOINT_DIR.", group="phoenix"),
    )
    checkpoint_max_inline_bytes: int = field(
        default=262_144,
        metadata=_meta("Largest inline checkpoint; larger raises CheckpointTooLargeError.",
                       group="phoenix"),
    )
    checkpoint_dir: str = field(
        default="/var/lib/relier/checkpoints",
        metadata=_meta("Directory of the filesystem backend, shared by every worker.",
                       group="phoenix"),
    )

    # -- Idempotency ------------------------------------------------------------------------------
    idempotency_default_ttl: int = field(
        default=3600,
        metadata=_meta("Seconds a committed idempotent result is kept (idempotency_lock default).",
                       group="idempotency"),
    )
    idempotency_inflight_ttl: int = field(
        default=60,
        metadata=_meta(
            "TTL of an idempotency_lock claim while its block runs; renewed every third of it, "
            "so it only lapses when the holder dies.",
            group="idempotency",
        ),
    )

    # -- Admission ---------------------------------------------------------------------------------
    admission_limit: int = field(
        default=5000,
        metadata=_meta("Dispatches admitted per window, cluster-wide. 0 disables admission.",
                       group="admission"),
    )
    admission_window: float = field(
        default=10.0, metadata=_meta("Admission window in seconds.", group="admission")
    )
    admission_queue_limits: str = field(
        default="",
        metadata=_meta(
            "Extra per-queue limits per window, as 'queue=limit,...' "
            "(e.g. 'low_priority=100').",
            group="admission",
        ),
    )
    admission_key_limit: int = field(
        default=0,
        metadata=_meta(
            "Limit per admission key (tenant) per window, applied when a key is given. "
            "0: no per-key limit.",
            group="admission",
        ),
    )
    admission_fail: Literal["open", "closed"] = field(
        default="open",
        metadata=_meta(
            "On a Redis error during the admission check: open admits (with a warning and a "
            "metric), closed refuses.",
            group="admission",
        ),
    )

    # -- OpenTelemetry -----------------------------------------------------------------------------
    otel_enabled: bool = field(
        default=False,
        metadata=_meta("Emit spans and metrics through opentelemetry-api.", group="otel"),
    )
    otel_exporter_otlp_endpoint: str = field(
        default="http://localhost:4318",
        metadata=_meta("OTLP endpoint used when relier-otel[sdk] sets up the exporter.",
                       group="otel"),
    )

    # -----------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = ".env",
    ) -> Settings:
        """Build settings from the environment and an optional ``.env`` file.

        Args:
            environ: Variables to read; ``os.environ`` when omitted.
            env_file: A dotenv file read beneath the environment; ``None`` to skip it.

        Raises:
            ConfigurationError: a value is malformed or out of range.
        """
        merged: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            merged.update(parse_dotenv(Path(env_file).read_text(encoding="utf-8")))
        merged.update(os.environ if environ is None else environ)

        for retired, replacement in _RETIRED.items():
            if merged.get(retired):
                raise ConfigurationError(
                    retired, "<set>", f"nothing: it was retired; {replacement}"
                )

        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if var in merged:
                raw = merged[var]
                shown = "***" if f.metadata.get("secret") else _shown(f.name, raw)
                values[f.name] = _parse(var, raw, shown, hints[f.name])
        settings = cls(**values)
        if not settings.broker_url:
            settings = dataclasses.replace(settings, broker_url=settings.redis_url)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check ranges and cross-field rules; raise ConfigurationError on the first problem."""
        for name in ("redis_url", "broker_url"):
            url = getattr(self, name)
            # The scheme by hand: urlsplit raises on some passwords (``[``), naming no setting.
            scheme = url.partition("://")[0].lower() if "://" in url else ""
            if url and scheme not in _SCHEMES:
                raise ConfigurationError(
                    ENV_PREFIX + name.upper(), mask_url(url),
                    "a URL starting with redis://, rediss://, unix://, sentinel:// or sentinels://",
                )
            if ambiguous_credentials(url):
                raise ConfigurationError(
                    ENV_PREFIX + name.upper(), mask_url(url),
                    "a URL whose password has '/', '?' and '#' percent-encoded (%2F, %3F, %23; "
                    "an '@' outside the password as %40): as written, Redis clients would read "
                    "part of the password as the host, port or path",
                )
        positive = (
            "redis_max_connections", "redis_socket_timeout", "redis_connect_timeout",
            "heartbeat_ttl", "resurrection_check_interval", "resurrection_batch_size",
            "resurrection_max_queue_depth", "resurrection_claim_grace_period", "result_ttl",
            "checkpoint_max_inline_bytes", "idempotency_default_ttl", "idempotency_inflight_ttl",
            "admission_window", "max_countdown",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigurationError(
                    ENV_PREFIX + name.upper(), str(getattr(self, name)), "a number above 0"
                )
        non_negative = (
            "redis_health_check_interval", "max_resurrections", "max_handoffs",
            "graceful_shutdown_timeout",
            "admission_limit", "admission_key_limit",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigurationError(
                    ENV_PREFIX + name.upper(), str(getattr(self, name)), "a number of 0 or more"
                )
        for name in ("soft_timeout", "hard_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(ENV_PREFIX + name.upper(), str(value), "a number above 0")
        if (
            self.soft_timeout is not None
            and self.hard_timeout is not None
            and self.soft_timeout >= self.hard_timeout
        ):
            raise ConfigurationError(
                "RELIER_SOFT_TIMEOUT", str(self.soft_timeout),
                f"a value below RELIER_HARD_TIMEOUT ({self.hard_timeout:g})",
            )
        if not self.key_prefix or any(c in self.key_prefix for c in "{} "):
            raise ConfigurationError(
                "RELIER_KEY_PREFIX", self.key_prefix, "a non-empty string without braces or spaces"
            )
        self.signing_key_pairs()  # raises on a malformed value
        self.admission_queue_limit_map()
        self.queue_names()

    # -- derived values ----------------------------------------------------------------------------
    @property
    def heartbeat_interval(self) -> float:
        """Seconds between lease renewals: a third of the TTL, so two renewals may be lost."""
        return self.heartbeat_ttl / 3

    @property
    def import_modules(self) -> tuple[str, ...]:
        """The modules of ``RELIER_IMPORTS`` as a tuple."""
        return tuple(m.strip() for m in self.imports.split(",") if m.strip())

    def signing_key_pairs(self) -> tuple[tuple[str, bytes], ...]:
        """Parse ``RELIER_SIGNING_KEYS`` into ``(kid, secret)`` pairs, first one signing."""
        pairs: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for item in (s.strip() for s in self.signing_keys.split(",")):
            if not item:
                continue
            kid, sep, secret = item.partition(":")
            form = "'kid:secret[,kid:secret...]' with a key id of 1-32 letters, digits, - or _"
            if not sep or not kid or not secret:
                raise ConfigurationError("RELIER_SIGNING_KEYS", "***", form)
            if len(kid) > 32 or not all(c.isalnum() or c in "-_" for c in kid):
                raise ConfigurationError("RELIER_SIGNING_KEYS", f"{kid}:***", form)
            if kid in seen:
                raise ConfigurationError(
                    "RELIER_SIGNING_KEYS", f"{kid}:***", "distinct key ids (this one repeats)"
                )
            if len(secret.encode()) < 16:
                raise ConfigurationError(
                    "RELIER_SIGNING_KEYS", f"{kid}:***",
                    "secrets of at least 16 bytes (generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
                )
            seen.add(kid)
            pairs.append((kid, secret.encode()))
        return tuple(pairs)

    def queue_names(self) -> tuple[str, ...]:
        """``RELIER_QUEUES`` as a tuple, checked.

        Raises:
            ConfigurationError: empty, repeated or malformed names, or ``re-queue`` listed.
        """
        names = tuple(n.strip() for n in self.queues.split(","))
        bad = [n for n in names if not n or any(c.isspace() or c in "{}:*" for c in n)]
        if bad or len(set(names)) != len(names) or RECOVERY_QUEUE in names:
            raise ConfigurationError(
                "RELIER_QUEUES", self.queues,
                "a comma-separated list of distinct queue names (no spaces, braces, ':' or "
                f"'*'), without Relier's internal {RECOVERY_QUEUE!r}",
            )
        return names

    def admission_queue_limit_map(self) -> dict[str, int]:
        """Parse ``RELIER_ADMISSION_QUEUE_LIMITS`` into ``{queue: limit}``."""
        limits: dict[str, int] = {}
        for item in (s.strip() for s in self.admission_queue_limits.split(",")):
            if not item:
                continue
            queue, sep, limit = item.partition("=")
            if not sep or not queue.strip() or not limit.strip().isdigit():
                raise ConfigurationError(
                    "RELIER_ADMISSION_QUEUE_LIMITS", self.admission_queue_limits,
                    "'queue=limit[,queue=limit...]' with whole-number limits",
                )
            limits[queue.strip()] = int(limit)
        return limits

    def masked(self) -> dict[str, str]:
        """Every setting by variable name, with secrets and URL passwords masked."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                shown = "***"
            elif _is_url(f.name):
                shown = mask_url(value)
            else:
                shown = "" if value is None else str(value)
            out[ENV_PREFIX + f.name.upper()] = shown
        return out


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """Documentation of one setting, for ``rl config`` and the generated docs."""

    variable: str
    type: str
    default: str
    doc: str
    group: str
    secret: bool


def setting_infos() -> list[SettingInfo]:
    """Describe every setting (variable, type, default, meaning) in declaration order."""
    hints = typing.get_type_hints(Settings)
    infos = []
    for f in dataclasses.fields(Settings):
        default = f.default
        infos.append(
            SettingInfo(
                variable=ENV_PREFIX + f.name.upper(),
                type=_type_name(hints[f.name]),
                default="(unset)" if default is None else repr(default),
                doc=f.metadata["doc"],
                group=f.metadata["group"],
                secret=f.metadata["secret"],
            )
        )
    return infos


def _is_url(name: str) -> bool:
    return name.endswith(("_url", "_endpoint"))


def _shown(name: str, raw: str) -> str:
    """A raw value as an error may show it: URLs with their password masked."""
    return mask_url(raw) if _is_url(name) else raw


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse dotenv text: ``KEY=value`` lines, ``#`` comments, optional quotes and ``export``."""
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(var: str, raw: str, shown: str, hint: Any) -> Any:
    """Convert one raw string to the field's type, or raise a ConfigurationError."""
    value = raw.strip()
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value == "":
            return None
        (hint,) = [a for a in args if a is not type(None)]
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        normal = value.upper() if all(str(c).isupper() for c in choices) else value.lower()
        if normal not in choices:
            raise ConfigurationError(var, shown, "one of " + ", ".join(map(str, choices)))
        return normal
    converters: dict[Any, tuple[Callable[[str], Any], str]] = {
        int: (int, "a whole number"),
        float: (float, "a number (seconds may have decimals)"),
        str: (str, "text"),
    }
    if hint is bool:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigurationError(var, shown, "true or false (also 1/0, yes/no, on/off)")
    convert, form = converters[hint]
    try:
        return convert(value)
    except ValueError:
        raise ConfigurationError(var, shown, form) from None


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(str(c) for c in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None)) + (
            " (optional)"
        )
    return str(getattr(hint, "__name__", hint))


_lock = threading.Lock()
_cached: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded once on first use."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = Settings.load()
    return _cached


def reset_settings(settings: Settings | None = None) -> None:
    """Replace (or forget) the process-wide settings; for tests and embedding."""
    global _cached
    with _lock:
        _cached = settings
