"""The physical limit for webhook_throughput.py: a minimal aiohttp Meta webhook handler that only
checks the HMAC, parses the JSON and stores each status in a dict.

    .venv/bin/python benchmarks/minimal_server.py --port 8081 --secret S
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json

from aiohttp import web


def make_app(secret: str) -> web.Application:
    key = secret.encode()
    store: dict[str, str] = {}

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=403)
        document = json.loads(body)
        for entry in document["entry"]:
            for change in entry["changes"]:
                for status in change["value"].get("statuses", ()):
                    store[status["id"]] = status["status"]
        return web.Response(text="ok")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/webhooks/meta", webhook)
    app.router.add_get("/healthz", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.secret), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
