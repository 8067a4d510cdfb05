"""Reading the credentials of a URL, and masking them before an error, a log line or a table.

``urllib.parse`` cannot be trusted with this: it ends the network location at the first ``/``,
``?`` or ``#``, so a password holding one of them (``redis://:pa/ss@host``) is read as a host,
a port or a path, and shown (``Port could not be cast to integer value as 'pa'``). Here the
user information ends at the **last** ``@`` of the URL: hosts never contain ``@``, so
everything before it (the password included, whatever it holds) counts as credentials. An
``@`` in a path or query makes more than the password hidden, never less.
"""

from __future__ import annotations

import re

__all__ = ["ambiguous_credentials", "mask_url", "split_credentials"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Query parameters that carry a secret (redis-py passes unknown query arguments to the
# connection, so ``?password=...`` works there).
_SECRET_QUERY = re.compile(
    r"([?&;](?:password|passwd|pass|pwd|secret|token|sentinel_password)=)[^&;#]*",
    re.IGNORECASE,
)


def split_credentials(url: str) -> tuple[str, str | None, str]:
    """``(scheme://, user information or None, the rest after the last @)``."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at < 0:
        return url[:start], None, url[start:]
    return url[:start], url[start:at], url[at + 1:]


def ambiguous_credentials(url: str) -> bool:
    """True when the user information holds an unencoded ``/``, ``?`` or ``#``.

    Standard parsers (redis-py, kombu) would read part of such a password as the host, the port
    or the path.
    """
    _, userinfo, _ = split_credentials(url)
    return userinfo is not None and any(c in userinfo for c in "/?#")


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``redis://user:***@host:6379/0``.

    The user name stays visible (it names an account, not a secret); a password, and any
    ``password=`` query value, becomes ``***``. A URL without credentials is returned as it is.
    """
    if not url:
        return url
    prefix, userinfo, rest = split_credentials(url)
    if userinfo is not None:
        user, colon, _password = userinfo.partition(":")
        if colon:
            url = f"{prefix}{user}:***@{rest}"
        elif not prefix:
            # No scheme: a user name cannot be told from a password; hide all of it.
            url = f"***@{rest}"
    return _SECRET_QUERY.sub(r"\1***", url)
