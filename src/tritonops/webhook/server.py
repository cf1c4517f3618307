"""The webhook receiver's HTTP edge: a Starlette app served by uvicorn, bounded against abuse.

Anyone who can reach the port can talk to it; without the secret that must cost nothing. What
each connection may make the receiver hold is bounded before the signature is even looked at:

* **connections**: at most ``max_connections`` at once (uvicorn's ``limit_concurrency``: a
  request beyond it is answered 503 at once);
* **headers**: at most 16 KiB per request (h11's incomplete-event limit; beyond: 400 and closed);
* **time**: every request, headers and body, must arrive and be answered within
  ``deadline_s`` of its first byte (of the connection opening, for the first request); a client
  that trickles bytes is disconnected then. uvicorn has no such deadline of its own, so the
  protocol class here adds one;
* **body**: ``Content-Length`` required (411) and at most :data:`~tritonops.webhook.events.MAX_BODY_BYTES`
  (413, the body is never read); ``Transfer-Encoding`` (chunked) refused (400) — MLflow sends a
  plain JSON body with its length;
* JSON nested at most :data:`~tritonops.webhook.events.MAX_JSON_DEPTH` deep (checked in the receiver).

The app runs on the event loop; the receiver's decision is pure and quick (a deploy runs in the
dispatcher's threads), so answering never waits for a deploy.

``GET /healthz`` says ``ok`` (200) or ``stopping`` (503) and nothing else; ``GET /metrics`` is
the Prometheus exposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from tritonops.core.limits import WEBHOOK_MAX_CONNECTIONS, WEBHOOK_REQUEST_DEADLINE_S
from tritonops.errors import InputError
from tritonops.webhook.receiver import Receiver, Reply

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 << 10
KEEP_ALIVE_S = 5


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request, the first byte to the response.

    Armed when the connection opens (a client that never sends a byte) and again at the first
    byte of each later request; disarmed when the response is complete. On expiry the
    connection is closed: a slow client costs at most ``deadline_s`` of one socket.
    """

    deadline_s = WEBHOOK_REQUEST_DEADLINE_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.deadline_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning(
                "webhook: %s did not finish its request within %.0fs; disconnected",
                self.client,
                self.deadline_s,
            )
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._arm()
        super().data_received(data)

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _json(reply: Reply, close: bool = False) -> JSONResponse:
    return JSONResponse(reply.body, reply.status, headers={"connection": "close"} if close else None)


def make_app(receiver: Receiver) -> Starlette:
    """The receiver's routes: POST (any path) a delivery, GET /healthz, GET /metrics."""

    async def deliver(request: Request) -> Response:
        peer = request.client.host if request.client else "-"
        headers = dict(request.headers.items())
        if "transfer-encoding" in request.headers:
            detail = "Transfer-Encoding is not accepted; send the body with a Content-Length"
            return _json(receiver.refuse("malformed", 400, detail, peer, headers), close=True)
        length_text = request.headers.get("content-length", "")
        if not length_text.isdigit():
            return _json(
                receiver.refuse("malformed", 411, "no valid Content-Length", peer, headers), close=True
            )
        if int(length_text) > receiver.max_body:
            detail = f"{int(length_text)} bytes (at most {receiver.max_body})"
            return _json(receiver.refuse("too_large", 413, detail, peer, headers), close=True)  # never read
        body = await request.body()
        return _json(receiver.handle(headers, body, peer))

    async def healthz(_request: Request) -> Response:
        if receiver.dispatcher.stopping:
            return JSONResponse({"status": "stopping"}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(_request: Request) -> Response:
        return Response(receiver.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", deliver, methods=["POST"]),
        ]
    )


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::]:8080`` for IPv6)."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(f"--listen {listen!r} is not HOST:PORT (e.g. 0.0.0.0:8080)")
    return host, int(port_text)


def bind(listen: str) -> socket.socket:
    """The listening socket, bound now: a port in use is exit 2 before anything else starts."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by SIGTERM/SIGINT without re-raising the signal afterwards
    (uvicorn does, which would end the process before running deploys are waited for)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def serve(
    receiver: Receiver,
    listen: str,
    deadline_s: float = WEBHOOK_REQUEST_DEADLINE_S,
    max_connections: int = WEBHOOK_MAX_CONNECTIONS,
    stop_timeout_s: float = 60.0,
) -> None:
    """Serve until SIGTERM/SIGINT, then let running deploys finish (up to ``stop_timeout_s``)."""
    sock = bind(listen)
    protocol = type("DeadlineProtocol", (_DeadlineProtocol,), {"deadline_s": deadline_s})
    config = uvicorn.Config(
        make_app(receiver),
        http=protocol,
        lifespan="off",
        limit_concurrency=max_connections,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
    )
    bound = sock.getsockname()
    log.info(
        "webhook receiver listening on %s:%s, following %s (at most %d connections, %.0fs a request)",
        bound[0],
        bound[1],
        receiver.rules.describe(),
        max_connections,
        deadline_s,
    )
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
        receiver.dispatcher.stop(stop_timeout_s)


__all__ = ["MAX_HEADER_BYTES", "bind", "make_app", "parse_listen", "serve"]
