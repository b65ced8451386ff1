"""``mobilenet serve`` as a user starts it: it says where it serves, answers, and stops cleanly on SIGTERM; what
cannot be served is refused in one line before anything loads."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers.data import png_bytes
from tests.helpers.faults import assert_refused, mobilenet_command, quiet_env, run_in_process
from tests.serve.client import get, multipart, post


def test_serve_answers_then_stops_on_sigterm(tiny_files: dict[str, Path]) -> None:
    command = mobilenet_command("serve", f"digits={tiny_files['classifier']}", "--port", "0", "--top", "2")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=quiet_env())
    try:
        line = process.stderr.readline()
        assert line.startswith("serving at http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        form, content_type = multipart("image", "a.png", png_bytes(40, 50))
        status, _, answer = post(f"{url}/v1/models/digits:predict", form, content_type)
        assert status == 200 and len(answer["top"]) == 2  # the kind's own option, as predict takes it
        assert "mobilenet_requests_total" in get(f"{url}/metrics")[1]
        process.send_signal(signal.SIGTERM)  # uvicorn finishes what is in flight, then ends by the signal it got
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["{classifier}", "--score", "0.5"], "--score is an option of detection models, and none is served"),
        (["a={classifier}", "a={segmenter}"], "two models are named 'a'"),
        (["a b={classifier}"], "cannot name a model in a URL"),
        (["{classifier}", "--max-batch", "0"], "--max-batch must be positive"),
        (["nothing.safetensors"], "not found"),
    ],
)
def test_what_cannot_be_served_is_refused_in_one_line(tiny_files: dict[str, Path], args, words) -> None:
    line = assert_refused(run_in_process(["serve", *(arg.format(**tiny_files) for arg in args)]))
    assert words in line, line


def test_a_port_in_use_is_said_before_the_models_load(tiny_files: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        line = assert_refused(run_in_process(["serve", str(tiny_files["classifier"]), "--port", port]))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_the_listening_socket_lets_asyncio_turn_nagle_off() -> None:
    """asyncio sets TCP_NODELAY on accepted sockets only where the listening one names IPPROTO_TCP; without it a
    kept-alive client waits 40 ms (its delayed ACK) for each response's body."""
    from mobilenet.serve import listening

    with listening("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        with socket.create_connection(sock.getsockname()) as client:
            accepted, _ = sock.accept()
            with accepted:
                assert client and accepted.proto == socket.IPPROTO_TCP
