"""The HTTP side: an ASGI app (Starlette) with the OpenAI routes, on top of the model thread.

A request is read (bounded size and time), parsed and checked (:mod:`desktop.server.protocol`),
planned by the engine off the event loop (chat template, context budget: a request that cannot
fit is refused here, before it waits), then queued for the model thread
(:mod:`desktop.server.worker`). Streaming answers are server-sent events ending with
``data: [DONE]``; a client that disconnects cancels its generation through the engine's flag,
whether it is waiting in the queue, streaming, or waiting for a whole answer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from desktop.engine import ChatEngine, SamplingSettings
from desktop.engine.chat import STOP_CANCELLED, ReplyStream
from desktop.errors import ContextOverflowError, SettingsError, UserError, failure_reason
from desktop.server.protocol import (
    FINISH_REASONS,
    MAX_BODY_BYTES,
    ApiError,
    Envelope,
    GenerationRequest,
    parse_chat,
    parse_completion,
    read_json,
    usage,
)
from desktop.server.serving import is_loopback
from desktop.server.worker import Job, JobObserver, ModelWorker, QueueFull, WorkerClosed

log = logging.getLogger(__name__)

#: Requests planned (template rendered, tokenized) at once, beside the generating thread: a
#: long conversation takes seconds to plan, and a flood of them must not starve generation.
PLANNERS = 2
ROUTES_HINT = "this server has GET /v1/models, POST /v1/chat/completions and POST /v1/completions"
#: The engine's setting names, as the API spells them (for the ``param`` of an error).
_API_NAMES = {"max_new_tokens": "max_tokens", "stop_strings": "stop"}


@dataclass(frozen=True)
class ServerOptions:
    """How the HTTP side behaves (from the command line)."""

    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    #: Seconds a client may take to send a request body (its headers: see serving.py).
    client_timeout: float = 30.0


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class ApiKeyCheck:
    """Refuses every HTTP request without ``Authorization: Bearer <key>`` (401)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self._expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected):
                error = ApiError(401, "missing or wrong API key: send the key given to "
                                 "`onnxchat serve --api-key` as `Authorization: Bearer KEY`",
                                 code="invalid_api_key")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: How many of a chat's earliest messages were left out to fit the context.
DROPPED_HEADER = "OnnxChat-Dropped-Messages"

class PageCheck:
    """Without an API key, only programs on this machine may use the server, not the web pages
    its browser shows: a request that names a page in its ``Origin`` header is refused (403)
    unless ``--cors-origin`` allowed that page, and so is one addressed to a host name other
    than loopback's (a page whose DNS name was pointed at 127.0.0.1 to read the replies). A
    browser sends a plain-text POST to any address without asking first, so without this any
    page could make the model write, and fill the history."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self._origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1").lower()
            error = None
            if origin and origin not in self._origins:
                error = ApiError(403, f"requests from web pages ({origin}) are refused; to let "
                                 "a page use the model, start the server with --cors-origin "
                                 f"{origin}", code="origin_not_allowed")
            elif host and not is_loopback(urlsplit(f"//{host}").hostname or ""):
                error = ApiError(403, f"this server answers requests addressed to localhost, "
                                 f"127.0.0.1 or [::1], not to {host!r}; give --api-key to serve "
                                 "other names", code="host_not_allowed")
            if error is not None:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class EventStream(StreamingResponse):
    """Server-sent events that cancel their job however the response ends (done, client gone,
    server shutting down); cancelling a finished job does nothing."""

    def __init__(self, chunks: AsyncIterator[bytes], job: Job,
                 headers: Mapping[str, str]) -> None:
        super().__init__(chunks, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", **headers})
        self._job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._job.cancel()


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False,
                                                         separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class Service:
    """The routes, sharing one engine (planning) and one model thread (generating)."""

    def __init__(self, engine: ChatEngine, worker: ModelWorker, options: ServerOptions,
                 observer: JobObserver | None = None) -> None:
        self.engine = engine
        self.worker = worker
        self.options = options
        self.observer = observer
        manifest = engine.model.manifest
        self.model_name = manifest.name
        self.fingerprint = f"fp_{manifest.sha256[:12]}"
        self.defaults = SamplingSettings.from_dict(manifest.sampling_defaults)
        self._planners: anyio.CapacityLimiter | None = None  # made in the event loop
        try:
            self.created = int(datetime.fromisoformat(str(manifest.raw.get("created"))
                                                      ).timestamp())
        except ValueError:
            self.created = 0

    def app(self) -> Starlette:
        routes = [
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
        ]
        middleware = []
        if self.options.cors_origins:
            # Any request header: the official clients add their own (x-stainless-…).
            middleware.append(Middleware(CORSMiddleware,
                                         allow_origins=list(self.options.cors_origins),
                                         allow_methods=["GET", "POST"], allow_headers=["*"],
                                         expose_headers=[DROPPED_HEADER, "Retry-After"]))
        if self.options.api_key:
            middleware.append(Middleware(ApiKeyCheck, key=self.options.api_key))
        else:
            middleware.append(Middleware(PageCheck, origins=self.options.cors_origins))
        return Starlette(routes=routes, middleware=middleware, exception_handlers={
            ApiError: _on_api_error, HTTPException: _on_http_error, Exception: _on_bug})

    # --- models -------------------------------------------------------------------------

    def _model_object(self) -> dict[str, Any]:
        return {"id": self.model_name, "object": "model", "created": self.created,
                "owned_by": "onnxchat"}

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_object()]})

    async def model(self, request: Request) -> Response:
        wanted = request.path_params["model_id"]
        if wanted != self.model_name:
            raise ApiError(404, f"no model {wanted!r} here; this server runs "
                           f"{self.model_name!r}", param="model", code="model_not_found")
        return JSONResponse(self._model_object())

    # --- generation ---------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        body = read_json(await self._read_body(request))
        return await self._generate(request, parse_chat(body, self.engine.model.context_length))

    async def completions(self, request: Request) -> Response:
        body = read_json(await self._read_body(request))
        return await self._generate(request,
                                    parse_completion(body, self.engine.model.context_length))

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _too_large()
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(self.options.client_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise _too_large()
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(408, "the request body did not arrive within "
                           f"{self.options.client_timeout:g} s",
                           headers={"Connection": "close"}) from None
        return b"".join(chunks)

    async def _generate(self, request: Request, req: GenerationRequest) -> Response:
        if self._planners is None:
            self._planners = anyio.CapacityLimiter(PLANNERS)
        stream = await anyio.to_thread.run_sync(self._plan, req, limiter=self._planners)
        conversation = (req.messages if req.endpoint == "chat"
                        else [{"role": "user", "content": req.prompt}])
        job = Job(f"{'chatcmpl' if req.endpoint == 'chat' else 'cmpl'}-{secrets.token_hex(12)}",
                  req.endpoint, stream, asyncio.get_running_loop(), conversation, self.observer)
        try:
            self.worker.submit(job)
        except QueueFull as full:
            raise ApiError(429, f"the server is busy: {self.worker.queue_size} requests are "
                           f"already waiting; retry after {full.retry_after} s",
                           code="queue_full",
                           headers={"Retry-After": str(full.retry_after)}) from None
        except WorkerClosed:
            raise ApiError(503, "the server is shutting down", code="shutting_down",
                           headers={"Retry-After": "5"}) from None
        envelope = Envelope(job.id, int(time.time()), self.model_name, self.fingerprint)
        dropped = stream.plan.dropped
        headers = {DROPPED_HEADER: str(len(dropped))} if dropped else {}
        if req.stream:
            return EventStream(_events(job, req, envelope), job, headers)
        text = await _collect(job, request.receive)
        if text is None:  # the client has gone; nobody reads this
            return Response(status_code=499)
        if job.stats.stop_reason == STOP_CANCELLED:  # by the server, shutting down
            raise ApiError(503, "the server is shutting down", code="shutting_down")
        finish = FINISH_REASONS.get(job.stats.stop_reason, "stop")
        use = usage(job.stats.prompt_tokens, job.stats.new_tokens)
        body = (envelope.chat(text, finish, use) if req.endpoint == "chat"
                else envelope.completion(text, finish, use))
        return JSONResponse(body, headers=headers)

    def _plan(self, req: GenerationRequest) -> ReplyStream:
        """Render and fit the prompt (runs in a thread: a long conversation takes a while)."""
        try:
            settings = self.defaults.with_changes(**req.overrides)
            if req.endpoint == "chat":
                return self.engine.reply(req.messages, settings)
            return self.engine.complete(req.prompt, settings)
        except ContextOverflowError as exc:
            text = "messages" if req.endpoint == "chat" else "prompt"
            if exc.reply_room is None:
                raise ApiError(400, str(exc), param=text,
                               code="context_length_exceeded") from None
            context = self.engine.model.context_length
            # a chat's earlier turns can be left out, not its system prompt and last message
            take = "the messages need at least" if req.endpoint == "chat" else "the prompt takes"
            raise ApiError(
                400, f"{take} {context - exc.reply_room:,} tokens and max_tokens asks "
                f"for {settings.max_new_tokens:,} more: together more than the model's context "
                f"of {context:,}; lower max_tokens to {exc.reply_room:,} or less, or shorten "
                f"the {text}", param="max_tokens", code="context_length_exceeded") from None
        except SettingsError as exc:
            name = str(exc).split(" ", 1)[0]
            raise ApiError(400, str(exc), param=_API_NAMES.get(name, name)) from None
        except UserError as exc:  # the chat template refused the conversation
            raise ApiError(400, str(exc), param="messages") from None


async def _events(job: Job, req: GenerationRequest, envelope: Envelope) -> AsyncIterator[bytes]:
    """The SSE body: role, text pieces, the finish reason, usage if asked, ``[DONE]``.

    With ``include_usage`` every chunk carries ``"usage": null`` and one more chunk, with no
    choices, carries the usage (as OpenAI sends it)."""
    chat = req.endpoint == "chat"

    def chunk(text: str | None, finish: str | None = None) -> bytes:
        if chat:
            delta = {"role": "assistant", "content": ""} if text is None else (
                {"content": text} if text else {})
            body = envelope.chat_chunk(delta, finish)
        else:
            body = envelope.completion(text or "", finish)
        return sse(body | {"usage": None} if req.include_usage else body)

    if chat:
        yield chunk(None)
    try:
        async for piece in job.pieces():
            yield chunk(piece)
    except Exception as exc:
        yield sse(ApiError(500, f"the generation failed: {failure_reason(exc)}").body())
        return
    stats = job.stats
    if stats.stop_reason == STOP_CANCELLED:  # not by this client, which is still here
        yield sse(ApiError(503, "the server is shutting down", code="shutting_down").body())
        return
    yield chunk("", FINISH_REASONS.get(stats.stop_reason, "stop"))
    if req.include_usage:
        kind = "chat.completion.chunk" if chat else "text_completion"
        yield sse(envelope.usage_chunk(kind, usage(stats.prompt_tokens, stats.new_tokens)))
    yield sse("[DONE]")


async def _collect(job: Job, receive: Receive) -> str | None:
    """The whole text of ``job``, or None if the client disconnects first (then the job is
    cancelled). Raises what the generation raised."""

    async def text() -> str:
        return "".join([piece async for piece in job.pieces()])

    collecting = asyncio.ensure_future(text())
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({collecting, gone}, return_when=asyncio.FIRST_COMPLETED)
        if collecting in done:
            try:
                return collecting.result()
            except Exception as exc:
                raise ApiError(500, f"the generation failed: {failure_reason(exc)}") from None
        return None
    finally:
        gone.cancel()
        collecting.cancel()
        job.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _too_large() -> ApiError:
    return ApiError(413, f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} "
                    "MiB; send less text")


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; {ROUTES_HINT}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; {ROUTES_HINT}"
    else:
        message = str(exc.detail)
    return error_response(ApiError(exc.status_code, message, headers=exc.headers))


async def _on_bug(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, f"the server failed: {failure_reason(exc)}"))
