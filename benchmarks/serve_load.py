"""``mobilenet serve`` under load, against a plain loop calling ``deploy`` on the same images in the same run.

    python benchmarks/serve_load.py [--weights FILE] [--clients 1,8,32,128] [--seconds 10] [--overload 10]
                                    [--soak 600] [--plot docs/serve_load.png]

The server runs as users start it (``mobilenet serve WEIGHTS --port 0``, a process of its own on 127.0.0.1), once
with batching off (``--max-batch 1``) and once on (the defaults: up to 32 requests per batch, 5 ms wait). Each
client is a keep-alive HTTP/1.1 connection posting real JPEGs (../shared's imagenet-sample, as stored) one after
another; throughput and the p50/p99 latency of each level are measured over ``--seconds``. The baseline is
``classify(deploy(model), images, batch_size=32)`` on the same JPEG bytes: decoding, preprocessing and the model,
with no HTTP. Then ``--overload``: requests arrive at 4x the throughput just measured at 32 clients (open loop, each
on a connection of its own from a pool), and the answers are split into accepted (200) and refused (503) with the
latency of each. ``--soak`` keeps 32 clients going for that many seconds and samples the server's resident memory.

The load generator is asyncio on raw sockets (little CPU per request), but on a 2-core machine it shares the
cores with the server: the figures are what one machine serving itself gets, a lower bound for a server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared")) / "data"


@dataclass
class Answer:
    status: int
    seconds: float


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer, at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def post(self, request: bytes) -> Answer:
        start = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        await self.reader.readexactly(length)
        if status != 200 or re.search(rb"(?i)connection: *close", head):
            # A refusal is answered before the upload is read, and the server then closes the connection (its body
            # unread): open another next time, as HTTP clients do.
            self.writer.close()
            self.reader = None
        return Answer(status, time.perf_counter() - start)


def requests_of(images: list[bytes], host: str, path: str) -> list[bytes]:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\nContent-Length: {{}}\r\n\r\n"
    return [head.format(len(data)).encode() + data for data in images]


async def closed_loop(host: str, port: int, requests: list[bytes], clients: int, seconds: float) -> list[Answer]:
    """``clients`` connections, each posting the next request as soon as its answer is in, for ``seconds``."""
    answers: list[Answer] = []
    stop = time.perf_counter() + seconds

    async def client(number: int) -> None:
        connection = await Connection.open(host, port)
        turn = number
        while time.perf_counter() < stop:
            if connection.reader is None:
                connection = await Connection.open(host, port)
            answers.append(await connection.post(requests[turn % len(requests)]))
            turn += clients

    await asyncio.gather(*(client(number) for number in range(clients)))
    return answers


async def open_loop(host: str, port: int, requests: list[bytes], rate: float, seconds: float) -> list[Answer]:
    """Requests arriving at ``rate`` per second (exponential gaps) for ``seconds``, whatever the answers."""
    idle: list[Connection] = []
    answers: list[Answer] = []

    async def one(request: bytes) -> None:
        connection = idle.pop() if idle else await Connection.open(host, port)
        answers.append(await connection.post(request))
        if connection.reader is not None:
            idle.append(connection)

    tasks, rng, start, turn = [], random.Random(0), time.perf_counter(), 0
    arrival = start
    while arrival < start + seconds:
        arrival += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
        tasks.append(asyncio.create_task(one(requests[turn % len(requests)])))
        turn += 1
    await asyncio.gather(*tasks)
    return answers


def probe(host: str, port: int, path: str, body: bytes, seconds: float, found: multiprocessing.Queue) -> None:
    """In a process of its own: one request every 50 ms on a new connection (the standard library's client), its
    status and latency: what a client sees of an overloaded server, unslowed by the load generator's own work."""
    answers = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        start = time.perf_counter()
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("POST", path, body, {"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        response.read()
        answers.append((response.status, time.perf_counter() - start))
        connection.close()
        time.sleep(0.05)
    found.put(answers)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1] if len(values) > 1 else values[0]


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


class Server:
    """``mobilenet serve`` in a process of its own, on a free port of 127.0.0.1."""

    def __init__(self, weights: str, *flags: str) -> None:
        command = [sys.executable, "-m", "mobilenet", "serve", weights, "--port", "0", *flags]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        line = self.process.stderr.readline()
        match = re.match(r"serving at http://([\d.]+):(\d+)/", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line}{self.process.stderr.read()}")
        self.host, self.port = match.group(1), int(match.group(2))
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/v1/models") as response:
            self.name = json.loads(response.read())["models"][0]["name"]  # as the server names it

    def refused_within(self, seconds: float) -> tuple[int, int]:
        """Of the requests the server refused (503), how many it answered within ``seconds`` of their arrival, by its
        own latency histogram (``seconds`` must be one of its bucket bounds), and how many there were."""
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/metrics") as response:
            text = response.read().decode()
        counts = {
            match.group(1): float(match.group(2))
            for match in re.finditer(r'mobilenet_request_seconds_bucket\{code="503",le="([^"]+)",[^}]*\} (\S+)', text)
        }
        return round(counts.get(repr(seconds), 0.0)), round(counts.get("+Inf", 0.0))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def baseline(weights: str, images: list[bytes], backend: str) -> float:
    """Images per second of the plain loop: decode 32 JPEGs, run the model's kind on them as one batch (what a
    server's batch does, without HTTP), on the same backend."""
    from mobilenet.data.images import load_image
    from mobilenet.registry import kind_of_file, load_deployed

    kind, runner = kind_of_file(weights), load_deployed(weights, backend)
    kind.call("serve", runner, [load_image(data) for data in images[:32]])  # warm-up
    start = time.perf_counter()
    for first in range(0, len(images), 32):
        kind.call("serve", runner, [load_image(data) for data in images[first : first + 32]])
    return len(images) / (time.perf_counter() - start)


@dataclass
class Level:
    """One measured load level."""

    label: str
    clients: int | str
    answers: list[Answer]
    seconds: float

    def accepted(self) -> list[float]:
        return [a.seconds for a in self.answers if a.status == 200]

    def row(self, reference: float) -> str:
        ok, refused = self.accepted(), [a.seconds for a in self.answers if a.status == 503]
        others = len(self.answers) - len(ok) - len(refused)
        rate = len(ok) / self.seconds
        text = (
            f"| {self.label} | {self.clients} | {rate:.0f} | {rate / reference:.2f}x | "
            f"{1000 * percentile(ok, 50):.0f} | {1000 * percentile(ok, 99):.0f} | {len(refused)} | "
        )
        text += f"{1000 * percentile(refused, 99):.1f} / {1000 * max(refused):.1f} |" if refused else "- |"
        return text + f" {others} |"


def measure(server: Server, requests: list[bytes], label: str, clients: list[int], seconds: float) -> list[Level]:
    levels = []
    asyncio.run(closed_loop(server.host, server.port, requests, 4, 2.0))  # warm-up: threads, pools, caches
    for count in clients:
        answers = asyncio.run(closed_loop(server.host, server.port, requests, count, seconds))
        levels.append(Level(label, count, answers, seconds))
        print(levels[-1].row(1.0), flush=True)
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(SHARED / "weights" / "mobilenet_v2_1.0_224_quant.tflite"))
    parser.add_argument("--images", default=str(SHARED / "imagenet-sample"))
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--seconds", type=float, default=10.0, help="per load level")
    parser.add_argument("--overload", type=float, default=10.0, help="seconds at 4x the 32-client throughput (0: no)")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of 32 clients, memory sampled (600: 10 min)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--plot", type=Path, help="a PNG of throughput and latency by clients (and the soak)")
    args = parser.parse_args()
    clients = [int(count) for count in args.clients.split(",")]
    files = sorted(Path(args.images).glob("*.*"))
    images = [path.read_bytes() for path in files]
    reference = baseline(args.weights, images * 4, args.backend)
    print(f"{len(images)} JPEGs of {args.images}, {Path(args.weights).name}, backend {args.backend}")
    print(f"plain loop (decode + batch of 32 through deploy, no HTTP): {reference:.0f} images/s\n")
    print("| batching | clients | requests/s | vs plain loop | p50 ms | p99 ms | refused (503) | 503 p99 / max ms "
          "| other errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    levels: list[Level] = []
    soak: list[tuple[float, float]] = []
    overload = ""
    for label, flags in (("off", ["--max-batch", "1", "--max-queue", "128"]), ("on", [])):  # the same queue
        server = Server(args.weights, "--backend", args.backend, *flags)
        path = f"/v1/models/{server.name}:predict"
        requests = requests_of(images, server.host, path)
        try:
            levels += measure(server, requests, label, clients, args.seconds)
            if label == "on" and args.overload:
                at_32 = next(level for level in levels if level.label == "on" and level.clients == 32)
                rate = 4 * len(at_32.accepted()) / at_32.seconds
                level, overload = run_overload(server, path, requests, rate, args.overload)
                levels.append(level)
                print(f"{level.row(1.0)}\n{overload}", flush=True)
            if label == "on" and args.soak:
                soak = run_soak(server, requests, args.soak)
        finally:
            server.stop()
    print(f"\nagainst the plain loop's {reference:.0f} images/s:")
    for level in levels:
        print(level.row(reference))
    if overload:
        print(overload)
    if soak:
        rss = [mb for _, mb in soak]
        print(f"\nsoak: {args.soak:.0f} s at 32 clients; server memory {rss[0]:.0f} MB at the start, "
              f"{rss[-1]:.0f} MB at the end, {max(rss):.0f} MB at most")  # fmt: skip
    if args.plot:
        plot(levels, reference, soak, args.plot)
        print(f"plot: {args.plot}")


def run_overload(server: Server, path: str, requests: list[bytes], rate: float, seconds: float) -> tuple[Level, str]:
    """Requests at ``rate`` for ``seconds`` (open loop), a probe process beside: the level, and what the server's
    histogram and the probe say of the answers' latency."""
    found: multiprocessing.Queue = multiprocessing.Queue()
    body = requests[0].partition(b"\r\n\r\n")[2]
    prober = multiprocessing.Process(target=probe, args=(server.host, server.port, path, body, seconds, found))
    prober.start()
    answers = asyncio.run(open_loop(server.host, server.port, requests, rate, seconds))
    probed = found.get()
    prober.join()
    within, refused = server.refused_within(0.01)
    said = f"server side: {within} of {refused} refusals answered within 10 ms ({within / max(refused, 1):.1%})"
    for status in (200, 503):
        times = [elapsed for code, elapsed in probed if code == status]
        if times:
            p50, top = 1000 * percentile(times, 50), 1000 * max(times)
            said += f"\nprobe process, {status}: {len(times)} requests, p50 {p50:.1f} ms, max {top:.1f} ms"
    return Level("on, 4x overload", f"{rate:.0f}/s offered", answers, seconds), said


def run_soak(server: Server, requests: list[bytes], seconds: float) -> list[tuple[float, float]]:
    """32 clients for ``seconds``; the server's resident memory every 5 s (time, MB)."""
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            samples.append((time.perf_counter() - start, resident_mb(server.process.pid)))
            await asyncio.sleep(5)

    async def both() -> list[Answer]:
        answers, _ = await asyncio.gather(closed_loop(server.host, server.port, requests, 32, seconds), sample())
        return answers

    answers = asyncio.run(both())
    failed = sum(a.status != 200 for a in answers)
    print(f"soak: {len(answers)} requests in {seconds:.0f} s, {failed} not answered 200", flush=True)
    return samples


def plot(levels: list[Level], reference: float, soak: list[tuple[float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if soak else 2
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    for label, marker in (("off", "o"), ("on", "s")):
        rows = [level for level in levels if level.label == label]
        counts = [level.clients for level in rows]
        axes[0].plot(counts, [len(level.accepted()) / level.seconds for level in rows], marker=marker,
                     label=f"batching {label}")  # fmt: skip
        axes[1].plot(counts, [1000 * percentile(level.accepted(), 99) for level in rows], marker=marker,
                     label=f"batching {label}")  # fmt: skip
    axes[0].axhline(reference, color="gray", linestyle="--", label="plain loop, batch 32")
    axes[0].set(xscale="log", xlabel="concurrent clients", ylabel="requests/s", title="throughput")
    axes[1].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="p99 latency")
    for axis in axes[:2]:
        axis.legend()
        axis.grid(alpha=0.3)
    if soak:
        axes[2].plot([t / 60 for t, _ in soak], [mb for _, mb in soak])
        axes[2].set(xlabel="minutes at 32 clients", ylabel="server resident MB", title="memory", ylim=(0, None))
        axes[2].grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
