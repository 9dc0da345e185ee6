"""TF Serving's REST API on aiohttp.

    GET  /v1/models/NAME[/versions/N|/labels/L]             model status
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata    signature defs
    POST /v1/models/NAME[/versions/N|/labels/L]:predict     {"instances": ...} or {"inputs": ...}

Every answer is JSON; a failure is `{"error": "..."}` with the HTTP status TF Serving
gives its error code (400 bad request, 404 unknown model or version, 413 body over the
size limit, 503 overloaded). Model calls run off the event loop, so a slow request
never holds up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from seq2seq.serving import messages
from seq2seq.serving.servables import ModelManager, ServingError

LOG = logging.getLogger("seq2seq.serve")

_MODEL = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
STATUS_PATH = re.compile(_MODEL + r"(?P<metadata>/metadata)?", re.IGNORECASE)
PREDICT_PATH = re.compile(_MODEL + r":(?P<method>predict|classify|regress)", re.IGNORECASE)

HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
"""HTTP status per gRPC code, as TF Serving's HTTP server maps them (others: 500)."""


def _answer(body: dict, status: int = 200) -> web.Response:
    # NaN and infinities are written as TF Serving writes them (NaN, Infinity). A lone
    # surrogate (an error echoing a request's "\ud800") cannot be UTF-8: it goes back as
    # the same JSON escape.
    text = json.dumps(body, ensure_ascii=False)
    return web.Response(
        body=text.encode("utf-8", errors="backslashreplace"),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def _version(match: re.Match) -> int | None:
    """The version number a path names, if any (TF Serving's versions are int64)."""
    digits = match["version"]
    if digits is None:
        return None
    significant = digits.lstrip("0") or "0"
    if len(significant) > 19 or int(significant) >= 2**63:
        shown = digits if len(digits) <= 30 else f"{digits[:30]}... ({len(digits)} digits)"
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"Failed to convert version {shown} to int64"
        )
    return int(significant)


def _error(message: str, status: int) -> web.Response:
    return _answer({"error": message}, status)


class RestApi:
    """The request handlers, over a model manager and a predictor.

    Args:
        manager: the loaded models.
        predictor: a `Predictor` or `BatchingPredictor`.
        max_request_bytes: the largest request body accepted (413 beyond).
    """

    def __init__(self, manager: ModelManager, predictor: Any, max_request_bytes: int):
        self.manager = manager
        self.predictor = predictor
        self.max_request_bytes = max_request_bytes

    def application(self) -> web.Application:
        """The aiohttp application (one catch-all route: the paths are matched here, as
        TF Serving matches them, case-insensitively)."""
        app = web.Application(client_max_size=self.max_request_bytes)
        # [\s\S], not ".": a path with an encoded line break (%0A) is a path too.
        app.router.add_route("*", r"/{path:[\s\S]*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        """Answers one request; never raises."""
        try:
            if request.method == "GET" and (match := STATUS_PATH.fullmatch(request.path)):
                return self._status_or_metadata(match)
            if request.method == "POST" and (match := PREDICT_PATH.fullmatch(request.path)):
                return await self._predict(request, match)
            if request.path.lower().startswith("/v1/"):
                return _error(f"Malformed request: {request.method} {request.path}", 400)
            return _error(f"Not found: {request.method} {request.path}", 404)
        except ServingError as error:
            return _error(error.message, HTTP_STATUS.get(error.code, 500))
        except web.HTTPRequestEntityTooLarge:
            return _error(
                f"The request body is larger than the limit of {self.max_request_bytes} bytes "
                "(seq2seq serve --max_request_bytes)",
                413,
            )
        except Exception:  # a bug must cost one request, never the server
            LOG.exception("REST %s %s failed", request.method, request.path)
            return _error("Internal error while serving the request", 500)

    def _servable(self, match: re.Match):
        return self.manager.servable(match["name"], _version(match), match["label"])

    def _status_or_metadata(self, match: re.Match) -> web.Response:
        if match["metadata"]:
            return _answer(
                messages.metadata_json(messages.metadata_response(self._servable(match)))
            )
        version = _version(match)
        if match["label"] is not None:
            version = self._servable(match).version
        response = messages.status_response(self.manager, match["name"], version)
        return _answer(messages.to_json(response))

    async def _predict(self, request: web.Request, match: re.Match) -> web.Response:
        if request.content_length is not None and request.content_length > self.max_request_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.max_request_bytes, actual_size=request.content_length
            )
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {error}"
            ) from None
        if match["method"].lower() != "predict":
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{match['method']} needs a classification or regression signature; "
                "these models have predict signatures only",
            )
        servable = self._servable(match)
        signature_name = body.get("signature_name", "") if isinstance(body, dict) else ""
        if not isinstance(signature_name, str):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "'signature_name' must be a string"
            )
        input_names = list(servable.signature_def(signature_name).inputs)
        try:
            values, rows = messages.json_inputs(body, input_names)
        except RecursionError:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "the inputs nest too deeply"
            ) from None
        inputs = servable.check_inputs(signature_name, values)
        future = self.predictor.submit(servable, signature_name, inputs)
        outputs = await asyncio.wrap_future(future)  # cancelled if the client hangs up
        return _answer(messages.json_outputs(outputs, rows))


class _ServerLog(logging.LoggerAdapter):
    """aiohttp's log of the requests it answers itself: a malformed one (the client's
    fault, e.g. a request line over 8190 bytes) is one warning line, not an error with a
    traceback that any client could fill the log with."""

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = " ".join(str(exc_info).split())[:200]
            self.warning(f"{msg}: %s", *args, reason, **kwargs)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)


async def start_rest(api: RestApi, host: str, port: int) -> web.AppRunner:
    """Starts serving `api` on host:port; `await runner.cleanup()` stops it.

    Raises:
        OSError: when the port cannot be bound.
    """
    runner = web.AppRunner(
        api.application(),
        access_log=None,
        logger=_ServerLog(logging.getLogger("aiohttp.server"), {}),
        # A client that hangs up cancels its handler, and so its queued model call
        # (`asyncio.wrap_future` passes the cancellation on): under overload, requests
        # whose callers gave up cost nothing.
        handler_cancellation=True,
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
