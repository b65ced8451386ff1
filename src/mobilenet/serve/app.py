"""The HTTP service: an ASGI application (Starlette) over the served models' batchers.

- ``POST /v1/models/{name}:predict``: an image (its bytes as the body, or a multipart form's file) -> the model
  kind's result as JSON (a classifier's ``top``, a segmenter's ``classes`` with its mask, a detector's
  ``detections``), as ``mobilenet predict --json`` gives them.
- ``GET /v1/models``: what is served: kind, weights, backend, class names, preprocessing, options.
- ``GET /healthz``, ``GET /metrics`` (Prometheus), ``GET /``: a page to try the models on an image.

Nothing a client sends can stop the server: an upload over the limit is refused (413) before it is read whole, an
image that does not decode or would decode to too many pixels is refused (400), a full queue is answered at once
(503 with Retry-After), and every refusal is one line of JSON (``{"error": ...}``) naming the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mobilenet.data.images import load_image
from mobilenet.serve.batching import BatchDone, Batcher, Overloaded
from mobilenet.serve.metrics import CONTENT_TYPE, Metrics
from mobilenet.serve.models import ServedModel

PAGE = Path(__file__).with_name("page")
UNKNOWN = "(unknown)"  # the metrics' label of requests to models that are not served
RETRY_AFTER = "1"  # seconds: a full queue drains in well under that at the batch sizes served


@dataclass(frozen=True)
class Limits:
    """What the server takes: batches, the queue, uploads."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int | None = None  # None: 4 batches' worth per worker
    max_upload_mb: float = 20.0
    max_pixels: int = 50_000_000  # refused from the image's header, before its pixels are decoded

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.max_upload_bytes < 1:
            raise ValueError(f"--max-upload-mb must be positive, got {self.max_upload_mb:g}")
        if self.max_wait_ms < 0:
            raise ValueError(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms:g}")

    @property
    def max_upload_bytes(self) -> int:
        return round(self.max_upload_mb * 2**20)

    def queue_size(self, workers: int) -> int:
        return self.max_queue if self.max_queue is not None else 4 * self.max_batch * workers


class Refused(Exception):
    """A request answered without a result: its status, the metrics' cause, and the one-line reason."""

    def __init__(self, status: int, cause: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.cause, self.headers = status, cause, headers


def create_app(models: list[ServedModel], limits: Limits | None = None) -> Starlette:
    """The ASGI application serving ``models`` (see the module's docstring); run it with uvicorn."""
    limits = limits or Limits()
    names = [model.name for model in models]
    if not models or len(set(names)) != len(names):
        raise ValueError(f"serve needs at least one model, each under its own name: got {names}")
    metrics = Metrics()
    served = {model.name: model for model in models}
    batchers = {
        model.name: Batcher(
            [model.run_batch(runner) for runner in model.runners],
            limits.max_batch,
            limits.max_wait_ms / 1000,
            limits.queue_size(len(model.runners)),
            on_batch=batch_metrics(metrics, model.name),
        )
        for model in models
    }

    # Decoding is CPU work: as many threads as cores (more would only contend, and grow the allocator's arenas).
    decoder = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="decode")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for batcher in batchers.values():
            await batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()
        decoder.shutdown(wait=True)

    async def predict(request: Request) -> Response:
        name = request.path_params["name"]
        label = name if name in served else UNKNOWN  # a client's names never become labels: bounded memory
        start = time.perf_counter()
        try:
            if name not in served:
                raise Refused(404, "not_found", f"no model is named {name!r} here: GET /v1/models lists {names}")
            result = await predict_one(request, batchers[name], decoder, limits)
            response: Response = JSONResponse(result)
        except Refused as refused:
            response = JSONResponse({"error": str(refused)}, refused.status, headers=refused.headers)
            metrics.errors.labels(label, refused.cause).inc()
        metrics.requests.labels(label, str(response.status_code)).inc()
        metrics.latency.labels(label, str(response.status_code)).observe(time.perf_counter() - start)
        return response

    async def list_models(request: Request) -> Response:
        return JSONResponse({"models": [model.describe() for model in models]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": names})

    async def prometheus(request: Request) -> Response:
        for name, batcher in batchers.items():
            metrics.queue_depth.labels(name).set(batcher.depth)
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    async def page(request: Request) -> Response:
        return FileResponse(PAGE / "index.html")

    routes = [
        Route("/", page),
        Route("/healthz", health),
        Route("/metrics", prometheus),
        Route("/v1/models", list_models),
        Route("/v1/models/{name}:predict", predict, methods=["POST"]),
        Mount("/static", StaticFiles(directory=PAGE), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def batch_metrics(metrics: Metrics, name: str) -> Callable[[BatchDone], None]:
    """What a model's batcher reports after each batch: its size and time, into the metrics."""

    def record(done: BatchDone) -> None:
        metrics.batch_size.labels(name).observe(done.size)
        metrics.batch_seconds.labels(name).observe(done.seconds)

    return record


async def predict_one(request: Request, batcher: Batcher, decoder: ThreadPoolExecutor, limits: Limits) -> Any:
    """One request's image through the batcher: refused at once if the queue is full, read within the limits,
    decoded off the event loop, then batched; a client that leaves before its batch is dropped from it."""
    try:
        with batcher.admission() as submit:  # a place held from now: a request over capacity costs next to nothing
            try:
                data = await read_upload(request, limits.max_upload_bytes)
            except ClientDisconnect:
                raise Refused(499, "disconnected", "the client left before its upload was read") from None
            try:
                image = await asyncio.get_running_loop().run_in_executor(decoder, load_image, data, limits.max_pixels)
            except ValueError as error:
                raise Refused(400, "bad_image", str(error)) from None
            future = submit(image)
    except Overloaded:
        raise Refused(503, "overloaded", overloaded(batcher), {"Retry-After": RETRY_AFTER}) from None
    watcher = asyncio.ensure_future(client_left(request))
    try:
        await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not future.done():
        future.cancel()  # never run, if its batch has not started
        raise Refused(499, "disconnected", "the client left before its result was ready")
    try:
        return future.result()
    except Exception as error:
        raise Refused(500, "internal", f"the model failed on this batch: {error}") from None


def overloaded(batcher: Batcher) -> str:
    return f"the server is at capacity ({batcher.depth} requests queued): retry after {RETRY_AFTER} s"


async def client_left(request: Request) -> None:
    """Returns when the client disconnects (the server's next message after the body is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def read_upload(request: Request, limit: int) -> bytes:
    """The image of a request: its body, or the file of a multipart form; over ``limit`` bytes is refused as soon as
    that is known (from Content-Length, else while the body streams in)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise Refused(413, "too_large", too_large(int(length), limit))
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=16, max_part_size=limit)
        except Exception as error:  # Starlette's multipart errors: a malformed form, a part over the limit
            raise Refused(400, "bad_request", f"cannot read the multipart form: {error}") from None
        files = [value for value in form.values() if isinstance(value, UploadFile)]
        if not files:
            raise Refused(400, "bad_request", "the form holds no file: send the image as one (curl -F image=@a.jpg)")
        data = await files[0].read()
        await form.close()
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", too_large(size, limit))
            chunks.append(chunk)
        data = b"".join(chunks)
    if not data:
        raise Refused(400, "bad_request", "the request holds no image: POST the image's bytes, or a form with its file")
    return data


def too_large(size: int, limit: int) -> str:
    return (
        f"the upload has {size:,} bytes, more than the {limit:,} this server takes: send a smaller image, or start "
        "the server with a larger --max-upload-mb"
    )
