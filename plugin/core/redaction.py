"""How secrets are shown to people: one spelling for every log line, error and view."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_url"]

#: What a secret is shown as.
REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` with its password shown as :data:`REDACTED`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
