"""pywa's webhook server for webhook_throughput.py, in its fastest fair configuration: pywa_async
on a Starlette app under uvicorn (standard extras: uvloop, httptools), signature validation on,
duplicate-skipping off, an async status handler that stores each status.

Runs with a Python that has pywa installed (a separate venv: ``pip install pywa fastapi
'uvicorn[standard]'``):

    /path/to/pywa-venv/bin/python benchmarks/pywa_server.py --port 8082 --secret S
"""

from __future__ import annotations

import argparse

import uvicorn
from pywa_async import WhatsApp, types
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette()
    app.add_route("/healthz", health)
    wa = WhatsApp(
        phone_id="106540352242922",
        token="bench-token",
        server=app,
        webhook_endpoint="/webhooks/meta",
        verify_token="bench-verify-token",
        app_secret=args.secret,
        validate_updates=True,
        skip_duplicate_updates=False,
    )
    store: dict[str, str] = {}

    @wa.on_message_status()
    async def on_status(client: WhatsApp, status: types.MessageStatus) -> None:
        store[status.id] = status.status

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
