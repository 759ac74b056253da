"""The outbound client: sends through the Meta Cloud API (Graph API) on one shared
``aiohttp.ClientSession``, around the plugins' send middlewares.

Every send builds an :class:`~plugin.hooks.pipeline.OutboundMessage` and runs the send middlewares
around the provider call; the built-in tracking middleware then tracks the returned message id
with its recipient, so that its receipts find it. A send the provider refused or never answered
calls ``whatsapp_send_failed`` and raises :class:`SendError` with the provider's error. A message
the provider accepted is never reported as failed: if tracking it fails (the store is away) it
is retried in the background, and a middleware that raises after the provider accepted is logged
and counted, and the send still returns its result.

With ``idempotency_key=``, a key seen within ``ack_tracking_window`` answers with the first
send's result (``replayed=True``) without calling the provider again. Concurrent calls with one
key in this process share one provider call (a dict of futures); across replicas the store's
ledger (:mod:`plugin.stores.idempotency`) lets one claimer send while the others wait for its
record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import replace
from typing import Any

import aiohttp
import pluggy

from adapters.base import bare_address
from plugin.core.errors import StoreUnavailable
from plugin.core.manager import MessageSessionManager
from plugin.core.records import message_key
from plugin.hooks.events import call_hook
from plugin.hooks.pipeline import Handler, OutboundMessage, SendError, SendResult, build_chain
from plugin.hooks.plugins import collect_middlewares
from plugin.settings.loading import MetaSettings
from plugin.stores.base import Store, as_store
from plugin.stores.deferred import deferred_writes
from plugin.stores.idempotency import MemorySendLedger, SendLedger, SendRecord

__all__ = ["SendError", "WhatsAppClient"]

log = logging.getLogger("plugin.client")

#: How long idempotency records last without a store (a store uses its ack_tracking_window).
DEFAULT_IDEMPOTENCY_WINDOW = 24 * 3600.0
_ACCEPTED = "whatsapp_accepted"  # the provider's result, in the send pipeline's data


class WhatsAppClient:
    """Sends WhatsApp messages through the Meta Cloud API.

    ``plugins`` (a plugin manager from :func:`plugin.hooks.plugins.make_plugin_manager`)
    supplies the send middlewares, the tracking among them, and the ``whatsapp_send_failed``
    hook; without it messages are sent but not tracked. Use ``async with`` or :meth:`close`
    when the client owns its session; an application built by ``create_app()``/``setup()``
    closes it on shutdown.
    """

    def __init__(
        self,
        *,
        phone_number_id: str,
        access_token: str,
        api_base_url: str = "https://graph.facebook.com/v21.0",
        plugins: pluggy.PluginManager | None = None,
        manager: Store | MessageSessionManager | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.phone_number_id = phone_number_id
        self._token = access_token
        self.api_base_url = api_base_url.rstrip("/")
        self.plugins = plugins
        self.manager = as_store(manager) if manager is not None else None
        self.timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._chain: Handler | None = None
        self._inflight: dict[str, asyncio.Future[SendResult]] = {}  # idempotent sends under way
        self._own_ledger: MemorySendLedger | None = None  # without a store
        self.replayed = 0  # idempotent sends answered without calling the provider

    @classmethod
    def from_settings(cls, meta: MetaSettings, **kwargs: Any) -> WhatsAppClient | None:
        """A client for ``[meta]`` settings, or None when phone_number_id or access_token is
        not set (sending is then not configured)."""
        if not meta.phone_number_id or not meta.access_token:
            return None
        return cls(
            phone_number_id=meta.phone_number_id,
            access_token=meta.access_token,
            api_base_url=meta.api_base_url,
            **kwargs,
        )

    def __repr__(self) -> str:
        return (
            f"WhatsAppClient(phone_number_id={self.phone_number_id!r}, "
            f"api_base_url={self.api_base_url!r})"
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared HTTP session, created on first use."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> WhatsAppClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- sending --------------------------------------------------------------------------------

    async def send_text(
        self,
        to: str,
        body: str,
        *,
        preview_url: bool = False,
        idempotency_key: str | None = None,
        tag: str | None = None,
    ) -> SendResult:
        """Send a text message, tracked under ``tag``; returns the provider's message id. With
        ``idempotency_key``, a send with that key within ``ack_tracking_window`` is not
        repeated."""
        return await self._send_keyed(
            OutboundMessage(
                to,
                {
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": "text",
                    "text": {"body": body, "preview_url": preview_url},
                },
                tag=tag,
            ),
            idempotency_key,
        )

    async def send_template(
        self,
        to: str,
        name: str,
        language: str,
        components: list[dict[str, Any]] | None = None,
        *,
        idempotency_key: str | None = None,
        tag: str | None = None,
    ) -> SendResult:
        """Send an approved template (the only kind of message allowed outside the 24-hour
        customer-service window: appointment reminders are templates), tracked under ``tag``
        (default: the template's name). With ``idempotency_key`` (the appointment id, say), a
        send with that key within ``ack_tracking_window`` is not repeated."""
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = components
        return await self._send_keyed(
            OutboundMessage(
                to,
                {
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": "template",
                    "template": template,
                },
                tag=name if tag is None else tag,
            ),
            idempotency_key,
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        """Run the send middlewares around the provider call."""
        if self._chain is None:
            middlewares = collect_middlewares(self.plugins).send_middlewares if self.plugins else []
            self._chain = build_chain(middlewares, self._deliver)
        data: dict[str, Any] = {"client": self}
        try:
            result = await self._chain(message, data)
        except Exception as exc:
            accepted = data.get(_ACCEPTED)
            if isinstance(accepted, SendResult):  # the message went out: not a failed send
                log.error(
                    "a send middleware failed after the provider accepted %s (to %s): %s: %s",
                    accepted.message_id,
                    self._redact(message.to),
                    type(exc).__name__,
                    exc,
                )
                if self.manager is not None:
                    self.manager.record_hook_error()
                return accepted
            error = (
                exc
                if isinstance(exc, SendError)
                else SendError(
                    f"send failed: {type(exc).__name__}: {exc}", provider=message.provider
                )
            )
            log.warning("send to %s failed: %s", self._redact(message.to), error)
            await self._send_failed(message, error)
            if error is exc:
                raise
            raise error from exc
        if not isinstance(result, SendResult):
            raise TypeError(f"a send middleware returned {type(result).__name__}, not SendResult")
        return result

    # -- idempotent sends -----------------------------------------------------------------------

    def _ledger(self) -> SendLedger:
        if self.manager is not None:
            return self.manager.send_ledger()
        if self._own_ledger is None:
            self._own_ledger = MemorySendLedger(DEFAULT_IDEMPOTENCY_WINDOW)
        return self._own_ledger

    async def _send_keyed(self, message: OutboundMessage, key: str | None) -> SendResult:
        """``send(message)``, at most once per ``key`` (None: no key, always send)."""
        if key is None:
            return await self.send(message)
        if not isinstance(key, str) or not key:
            raise ValueError("idempotency_key must be a non-empty string")
        ledger = self._ledger()
        digest = ledger.digest(key)
        running = self._inflight.get(digest)
        if running is not None:  # the same key is being sent in this process: share its call
            result = await asyncio.shield(running)
            self.replayed += 1
            return replace(result, replayed=True)
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            result = await self._claim_and_send(ledger, digest, message)
        except BaseException as exc:
            future.set_exception(
                exc
                if isinstance(exc, Exception)
                else SendError(
                    "the first send with this idempotency key was cancelled",
                    provider=message.provider,
                )
            )
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[digest]

    def _pending_ttl(self) -> float:
        # Longer than a send can take (the HTTP timeout), so the claim outlives the send; a
        # claimer that died frees the key after it.
        return 2 * self.timeout + 10.0

    async def _claim_and_send(
        self, ledger: SendLedger, digest: str, message: OutboundMessage
    ) -> SendResult:
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._pending_ttl() + 1.0
        while True:
            try:
                claim = await ledger.claim(digest, token, self._pending_ttl())
                if claim == "claimed":
                    break
                found = claim if claim != "pending" else await self._wait(ledger, digest, deadline)
            except StoreUnavailable as exc:
                raise SendError(
                    f"cannot check the idempotency key, nothing was sent: {exc}",
                    provider=message.provider,
                ) from exc
            if isinstance(found, SendRecord):
                self.replayed += 1
                log.info(
                    "idempotent send to %s answered by %s, not sent again",
                    self._redact(message.to),
                    found.message_id,
                )
                return SendResult(
                    found.message_id, bare_address(message.to), found.provider, replayed=True
                )
            # None: the other send failed and released the key, or its claim expired: retry.
        try:
            result = await self.send(message)
        except SendError:
            try:
                await ledger.release(digest, token)
            except StoreUnavailable:  # the claim expires by itself after the pending TTL
                log.warning("cannot release an idempotency key after a failed send")
            raise
        # Filed by its message key, like its tracking: a serialized id embeds the chat's number.
        record = SendRecord(message_key(result.provider, result.message_id), result.provider)
        if not record.message_id:  # an unusable id (not tracked either): its claim expires
            return result
        try:
            await ledger.complete(digest, token, record)
        except StoreUnavailable as exc:
            label = f"{record.message_id} to {self._redact(result.to)}"
            log.warning("idempotency record of %s deferred: %s", label, exc)
            deferred_writes(self.manager if self.manager is not None else self).defer(
                "idempotency", label, lambda: ledger.complete(digest, token, record)
            )
        return result

    async def _wait(self, ledger: SendLedger, digest: str, deadline: float) -> SendRecord | None:
        """Poll the ledger until the send that holds ``digest`` is recorded (its record) or
        gone (None); SendError when it is still pending at ``deadline``."""
        loop = asyncio.get_running_loop()
        delay = 0.01
        while loop.time() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
            found = await ledger.lookup(digest)
            if found != "pending":
                return found
        raise SendError(
            "a send with this idempotency key is still under way elsewhere; nothing was sent"
        )

    async def _send_failed(self, message: OutboundMessage, error: SendError) -> None:
        if self.plugins is None:
            return
        on_error = self.manager.record_hook_error if self.manager is not None else None
        await call_hook(
            self.plugins, "whatsapp_send_failed", {"message": message, "error": error}, on_error
        )

    def _redact(self, recipient: str) -> str | None:
        return self.manager.redact(recipient) if self.manager is not None else "~redacted"

    async def _deliver(self, message: Any, data: dict[str, Any]) -> SendResult:
        """The innermost handler: POST the payload to ``/{phone_number_id}/messages``."""
        assert isinstance(message, OutboundMessage)
        url = f"{self.api_base_url}/{self.phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self.session.post(url, json=message.payload, headers=headers) as response:
                status = response.status
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(f"cannot reach the Graph API: {type(exc).__name__}: {exc}") from exc
        try:
            document = json.loads(raw) if raw else None
        except ValueError:
            document = None
        if status >= 400 or not isinstance(document, dict):
            raise _graph_error(status, document)
        messages = document.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise SendError("the Graph API answered without messages[0].id", http_status=status)
        contacts = document.get("contacts")
        contact = contacts[0] if isinstance(contacts, list) and contacts else None
        wa_id = contact.get("wa_id") if isinstance(contact, dict) else None
        to = wa_id if isinstance(wa_id, str) and wa_id else bare_address(message.to)
        log.debug("sent %s to %s", message_id, self._redact(to))
        result = SendResult(message_id=message_id, to=to, provider="meta", raw=document)
        data[_ACCEPTED] = result
        return result


def _graph_error(status: int, document: object) -> SendError:
    """The Graph API's ``{"error": {"message", "code", "error_data": {"details"}, …}}``."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return SendError(
            f"the Graph API answered HTTP {status} without an error object", http_status=status
        )
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    code = error.get("code")
    trace = error.get("fbtrace_id")
    return SendError(
        str(error.get("message") or "the Graph API refused the message"),
        code=None if code is None else str(code),
        http_status=status,
        details=details if isinstance(details, str) else None,
        trace_id=trace if isinstance(trace, str) else None,
    )
