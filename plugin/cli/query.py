"""``wa-sessions stats`` and ``wa-sessions debug-info``: ask a running server and print its JSON.

Defaults come from the settings (``http://{server.host}:{server.port}``, ``server.admin_token``);
``--url`` and ``--token`` override them. An unreachable server or a refused request prints a
clear error and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

__all__ = ["ROUTES", "fetch", "query_command"]

ROUTES = {"stats": "/sessions/stats", "debug-info": "/sessions/debug"}
EXIT_FAILED = 1


class QueryError(Exception):
    """The server could not be asked, or refused."""


def fetch(base_url: str, path: str, token: str | None, timeout: float = 10.0) -> Any:
    """GET ``base_url + path`` as JSON, with the admin token if given."""
    request = urllib.request.Request(base_url.rstrip("/") + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        hint = ""
        if exc.code in (401, 403):
            hint = " (pass --token, or set server.admin_token / WHATSAPP_SERVER__ADMIN_TOKEN)"
        raise QueryError(f"{request.full_url} answered HTTP {exc.code}: {detail}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryError(
            f"cannot reach the server at {base_url}: {reason} "
            "(is `wa-sessions serve` running? see --url)"
        ) from None
    except ValueError as exc:
        raise QueryError(f"{request.full_url} did not answer JSON: {exc}") from None


def _defaults(args: argparse.Namespace) -> tuple[str, str | None]:
    url, token = args.url, args.token
    if url is None or token is None:
        from plugin.settings.loading import load_settings

        server = load_settings(getattr(args, "settings", None)).server
        if url is None:
            host = server.host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            elif ":" in host:
                host = f"[{host}]"
            url = f"http://{host}:{server.port}"
        if token is None:
            token = server.admin_tokens[0] if server.admin_tokens else None
    return url, token


def query_command(args: argparse.Namespace) -> int:
    """Print the JSON of ``/sessions/stats`` or ``/sessions/debug``; 1 when that fails."""
    url, token = _defaults(args)
    try:
        document = fetch(url, ROUTES[args.command], token)
    except QueryError as exc:
        print(f"wa-sessions: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(json.dumps(document, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:  # `wa-sessions stats | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
