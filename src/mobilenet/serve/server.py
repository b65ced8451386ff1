"""Running the service on uvicorn: ``serve`` for the command line (until interrupted), ``running`` for a process
that serves while it does something else (the tests, a notebook): a server on a thread, stopped on exit."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.applications import Starlette

from mobilenet.serve.app import Limits, create_app
from mobilenet.serve.models import ModelSpec, ServedModel, load_served


def load_models(
    specs: Sequence[ModelSpec],
    backend: str = "auto",
    precision: str | None = None,
    calibration: str | None = None,
    workers: int = 1,
    emulate_int8: bool | None = None,
) -> list[ServedModel]:
    """Every model of ``specs``, loaded and deployed (each name once; ``emulate_int8`` as
    :func:`~mobilenet.registry.load_deployed` takes it)."""
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"two models are named {repeated[0]!r}: name them apart (NAME=WEIGHTS)")
    return [load_served(spec, backend, precision, calibration, workers, emulate_int8) for spec in specs]


def listening(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one), or one line saying why not: taken before the models
    load, so that a port in use is said at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it Nagle's
    # algorithm holds each response's body for the client's delayed ACK (40 ms a request on a kept-alive connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror} (choose another --port)") from None
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on a :func:`listening` socket until interrupted (Ctrl-C or SIGTERM: requests in flight finish
    first)."""
    print(f"serving at {url_of(sock)}/ (the page), {url_of(sock)}/v1/models (the API)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=10))
    server.run(sockets=[sock])


@contextlib.contextmanager
def running(models: list[ServedModel], limits: Limits | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``models`` on a free port of ``host`` from a thread; yields the server's URL, stops it on exit."""
    sock = listening(host, 0)
    config = uvicorn.Config(create_app(models, limits), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
