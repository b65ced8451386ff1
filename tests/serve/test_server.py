"""``mobilenet serve`` over real HTTP on 127.0.0.1: each kind's answers equal the library's, concurrent requests are
batched with results equal to single-image calls, and bad uploads, overload and clients that leave are answered
without harm to the server."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.serve.client import get, metric, multipart, post


def jpeg(seed: int, size: tuple[int, int] = (80, 60)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def decoded_mask(url: str) -> Image.Image:
    """A segmenter's mask from its data URL."""
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_each_kind_answers_as_predict_json(server: str, tiny_models: list, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(jpeg(0))
    for served in tiny_models:
        status, _, answer = post(f"{server}/v1/models/{served.name}:predict", image.read_bytes())
        assert status == 200, answer
        (expected,) = served.kind.call("predict", served.runners[0], [str(image)], **served.spec.options)
        del expected["image"]
        if served.kind.name == "segmentation":  # the mask besides: a palette PNG of the classes, background clear
            mask = decoded_mask(answer.pop("mask"))
            assert mask.mode == "P" and mask.size == (80, 60) and mask.info.get("transparency") == 0
            shares = np.bincount(np.asarray(mask).ravel(), minlength=3) / (80 * 60)
            assert {name: round(float(shares[i]), 6) for i, name in enumerate("abc") if shares[i]} == answer["classes"]
            assert set(answer.pop("colors")) == set(answer["classes"])
        assert answer == json.loads(json.dumps(expected))


def test_models_health_and_page(server: str, tiny_models: list) -> None:
    listed = json.loads(get(f"{server}/v1/models")[1])["models"]
    assert [model["name"] for model in listed] == ["classifier", "segmenter", "detector"]
    assert [model["kind"] for model in listed] == ["classification", "segmentation", "detection"]
    assert listed[0]["class_names"] == ["a", "b", "c"] and listed[0]["preprocessing"]["input_size"] == 32
    health = json.loads(get(f"{server}/healthz")[1])
    assert health == {"status": "ok", "models": ["classifier", "segmenter", "detector"]}
    page = get(f"{server}/")[1]
    assert "/static/app.js" in page and "http" not in page.replace("http-equiv", "")  # nothing fetched elsewhere
    assert "fetch(" in get(f"{server}/static/app.js")[1]


def same_result(kind: str, batched: dict, alone: dict) -> None:
    """A result from a batch against the same image's alone: equal up to float rounding between batch sizes."""
    if kind == "classification":
        assert [c["index"] for c in batched["top"]] == [c["index"] for c in alone["top"]]
        np.testing.assert_allclose([c["prob"] for c in batched["top"]], [c["prob"] for c in alone["top"]], atol=1e-5)
    elif kind == "segmentation":
        masks = [np.asarray(decoded_mask(result["mask"])) for result in (batched, alone)]
        assert masks[0].shape == masks[1].shape and (masks[0] == masks[1]).mean() > 0.999
    else:
        assert [d["class"] for d in batched["detections"]] == [d["class"] for d in alone["detections"]]
        for ours, theirs in zip(batched["detections"], alone["detections"], strict=True):
            np.testing.assert_allclose(ours["box"], theirs["box"], atol=0.05)
            assert abs(ours["score"] - theirs["score"]) < 1e-3


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_requests_are_batched_and_equal_single_calls(
    tiny_files: dict[str, Path], tiny_models: list, workers: int
) -> None:
    from mobilenet.serve import Limits, load_models, parse_spec, running

    # One worker on the deployed models; two, each with its own copy, on PyTorch (an export less per copy).
    specs = [parse_spec(str(path)) for path in tiny_files.values()]
    models = tiny_models if workers == 1 else load_models(specs, backend="torch", workers=workers)
    images = [jpeg(seed, (64 + 8 * (seed % 4), 48 + 4 * (seed % 3))) for seed in range(24)]  # sizes differ
    jobs = [(served, data) for served in models for data in images]
    with running(models, Limits(max_batch=8, max_wait_ms=200)) as url:
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda job: post(f"{url}/v1/models/{job[0].name}:predict", job[1]), jobs))
        metrics = get(f"{url}/metrics")[1]
    for served in models:
        assert metric(metrics, "mobilenet_batch_size_sum", model=served.name) == 24
        assert metric(metrics, "mobilenet_batch_size_count", model=served.name) < 24, "no batch of two or more"
    for (served, data), (status, _, answer) in zip(jobs, answers, strict=True):
        assert status == 200
        (alone,) = served.run_batch(served.runners[0])([Image.open(io.BytesIO(data)).convert("RGB")])
        same_result(served.kind.name, answer, alone)


def bomb() -> bytes:
    """A PNG of 30,000 x 30,000 one-bit pixels: 100 KB that would decode to 900 million pixels."""
    buffer = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_uploads_get_one_line_and_the_server_goes_on(tiny_models: list) -> None:
    from mobilenet.serve import Limits, running

    good = jpeg(1)
    with running(tiny_models[:1], Limits(max_upload_mb=200_000 / 2**20)) as url:
        predict = f"{url}/v1/models/classifier:predict"
        cases = {
            "not an image": (b"hello, this is text", 400, "no image format"),
            "truncated": (good[: len(good) // 2], 400, "cannot read image"),
            "empty": (b"", 400, "holds no image"),
            "bomb": (bomb(), 400, "decompression bomb"),
        }
        for case, (body, code, words) in cases.items():
            status, _, answer = post(predict, body)
            assert (status, list(answer)) == (code, ["error"]), case
            assert words in answer["error"] and "\n" not in answer["error"], (case, answer)
        status, answer = raw_post(url, "/v1/models/classifier:predict", 300_000, good)  # refused from its header
        assert status == 413 and "300,000 bytes, more than the 200,000" in answer["error"], answer
        assert post(f"{url}/v1/models/nobody:predict", good)[0] == 404
        form, content_type = multipart("image", "photo.jpg", good)
        status, _, answer = post(predict, form, content_type)
        assert status == 200 and answer == post(predict, good)[2]  # a form's file, as curl -F sends it
        form, content_type = multipart("image", "photo.jpg", b"")
        assert post(predict, form.replace(b'; filename="photo.jpg"', b""), content_type)[0] == 400  # no file
        metrics = get(f"{url}/metrics")[1]
        assert get(f"{url}/healthz")[0] == 200
    for cause, count in {"bad_image": 3, "bad_request": 2, "too_large": 1, "not_found": 1}.items():
        assert metric(metrics, "mobilenet_errors_total", model="classifier" if cause != "not_found" else "(unknown)",
                      cause=cause) == count, cause  # fmt: skip


def raw_post(url: str, path: str, length: int, start: bytes) -> tuple[int, dict]:
    """A POST that announces ``length`` bytes and sends only ``start`` of them, then reads the answer: what a server
    that refuses an upload from its header answers before the rest is sent."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n".encode()
            + start
        )
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            sizes = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            if sizes and len(body) >= int(sizes[0].split(b":")[1]):
                break
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


class Gated:
    """A served model whose batches wait for ``gate`` to open: a busy model, on demand (``entered``: a batch is in)."""

    def __init__(self, served, gate: threading.Event) -> None:
        self.served, self.gate, self.entered = served, gate, threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.served, name)

    def run_batch(self, runner):
        run = self.served.run_batch(runner)

        def gated(images):
            self.entered.set()
            self.gate.wait(60)
            return run(images)

        return gated


def test_overload_is_refused_at_once_and_a_client_that_leaves_costs_nothing(tiny_models: list) -> None:
    from mobilenet.serve import Limits, running

    gate, data = threading.Event(), jpeg(2)
    busy = Gated(tiny_models[0], gate)
    with running([busy], Limits(max_batch=1, max_wait_ms=0, max_queue=2)) as url:
        predict = f"{url}/v1/models/classifier:predict"
        host, port = url.removeprefix("http://").split(":")
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(post, predict, data)  # taken by the worker, which waits at the gate
            assert busy.entered.wait(30)
            leaver = socket.create_connection((host, int(port)))  # queued, then gone
            leaver.sendall(
                f"POST /v1/models/classifier:predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            queued = [pool.submit(post, predict, data)]
            wait_for(lambda: metric(get(f"{url}/metrics")[1], "mobilenet_queue_depth", model="classifier") == 2)
            status, headers, answer = post(predict, data)  # the queue is full: refused at once
            assert status == 503 and headers["retry-after"] == "1" and "at capacity" in answer["error"]
            leaver.close()
            wait_for(lambda: metric(get(f"{url}/metrics")[1], "mobilenet_errors_total", model="classifier",
                                    cause="disconnected") == 1)  # fmt: skip
            gate.set()
            assert first.result()[0] == 200 and [q.result()[0] for q in queued] == [200]
        metrics = get(f"{url}/metrics")[1]
    assert metric(metrics, "mobilenet_batch_size_sum", model="classifier") == 2  # the leaver was never run
    assert metric(metrics, "mobilenet_errors_total", model="classifier", cause="overloaded") == 1


def wait_for(condition, seconds: float = 30) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the server did not get there in time")
        time.sleep(0.02)


def resident_mb() -> float:
    """This process's resident memory (the server runs on its threads)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from Linux's /proc")
def test_a_long_mixed_run_neither_fails_nor_grows(tiny_models: list) -> None:
    from mobilenet.serve import Limits, running

    good, bad = [jpeg(seed, (64 + seed % 7, 48 + seed % 5)) for seed in range(16)], b"\xff\xd8\xff\xe0 truncated"
    bodies = [(name, body) for body in [*good, bad] for name in ("classifier", "segmenter", "detector", "nobody")]
    with running(tiny_models, Limits(max_batch=8, max_wait_ms=2)) as url:

        def rounds(count: int) -> list[int]:
            with ThreadPoolExecutor(8) as pool:
                jobs = [(name, body) for _ in range(count) for name, body in bodies]
                return list(pool.map(lambda job: post(f"{url}/v1/models/{job[0]}:predict", job[1])[0], jobs))

        rounds(3)  # warm: every path taken, the allocators' pools grown
        before = resident_mb()
        codes = rounds(30)  # 2,040 requests
        grown = resident_mb() - before
        assert get(f"{url}/healthz")[0] == 200
    assert sorted(set(codes)) == [200, 400, 404] and codes.count(200) == 30 * 16 * 3
    assert grown < 25, f"resident memory grew by {grown:.0f} MB over 2,040 requests"
