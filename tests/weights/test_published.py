"""Published weights by name: the table, the cache, and downloads from a local server (no internet)."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import mobilenet
from mobilenet.registry import published_weights
from mobilenet.weights.download import cache_dir, fetch, sha256_of
from mobilenet.weights.published import PublishedWeights
from tests.helpers.data import shared_path
from tests.helpers.runs import cli

ENTRY = next(entry for entry in published_weights() if entry.name == "mobilenet_v1_025.coral_uint8_128")  # 526 KB


class Server(http.server.BaseHTTPRequestHandler):
    """Serves one real file: whole (/good), with a byte flipped (/corrupt), cut short (/truncated), or stalled."""

    payload = b""

    def do_GET(self) -> None:
        data = self.payload
        if self.path.startswith("/corrupt/"):
            data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        if self.path.startswith(("/truncated/", "/stall/")):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if self.path.startswith("/stall/"):
                time.sleep(3)  # longer than the client's timeout
            return
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    Server.payload = shared_path("weights/mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOBILENET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def served(server: str, how: str) -> PublishedWeights:
    return replace(ENTRY, url=f"{server}/{how}/{ENTRY.filename}")


def test_the_table_is_checked_against_the_shared_files() -> None:
    for entry in published_weights():
        if entry.url.startswith("https://github.com/google-coral/"):
            local = shared_path(f"weights/{entry.filename}")
            assert sha256_of(local) == entry.sha256 and local.stat().st_size == entry.size, entry.name
    names = mobilenet.list_models(pretrained=True)
    assert "mobilenet_v2_100.tv2_in1k" in names and "deeplabv3_mobilenet_v2.coral_uint8_voc" in names
    # timm's deeper MobileNetV2s by name, each its model's DEFAULT; the hash in the file name starts its sha256.
    timm = {entry.name: entry for entry in published_weights() if "rwightman" in entry.url}
    assert timm["mobilenet_v2_120d.ra_in1k"].default and timm["mobilenet_v2_120d.ra_in1k"].top1_published == 77.3
    assert all(re.fullmatch(r"[0-9a-f]{8}", entry.sha256) for entry in timm.values()) and len(timm) == 5
    assert mobilenet.list_models("mobilenet_v1*", pretrained=True) == [
        "mobilenet_v1_025.coral_uint8_128", "mobilenet_v1_050.coral_uint8_160", "mobilenet_v1_075.coral_uint8_192"
    ]  # fmt: skip


def test_download_is_checked_cached_and_loads(server: str, cache: Path) -> None:
    path = fetch(served(server, "good"), progress=False)
    assert path == cache_dir() / ENTRY.filename == cache / ENTRY.filename
    assert path.read_bytes() == Server.payload
    assert sorted(p.name for p in cache.iterdir()) == [ENTRY.filename]
    assert fetch(replace(ENTRY, url=f"http://127.0.0.1:9/{ENTRY.filename}"), progress=False) == path  # cached
    # By name: the cached file, loaded with the table's preprocessing, equals the file loaded directly.
    named = mobilenet.create_model("mobilenet_v1_025", weights="DEFAULT").eval()
    direct = mobilenet.create_model("mobilenet_v1_025", weights=shared_path(f"weights/{ENTRY.filename}")).eval()
    assert named.preprocessing == ENTRY.preprocessing
    # The names of the label file Google's file carries (its TFLite Model Metadata's), as beside the shared copy.
    assert named.class_names[:2] == direct.class_names[:2] == ["tench, Tinca tinca", "goldfish, Carassius auratus"]
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(named(x), direct(x))


@pytest.mark.parametrize(("how", "message"), [("corrupt", "is damaged"), ("truncated", "stopped at")])
def test_a_bad_download_is_refused_and_removed(server: str, cache: Path, how: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fetch(served(server, how), progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_an_interrupted_download_leaves_nothing(server: str, cache: Path) -> None:
    with pytest.raises(OSError, match="could not be downloaded"):
        fetch(served(server, "stall"), progress=False, timeout=1.0)
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_names_the_url_and_where_to_put_the_file(cache: Path) -> None:
    entry = replace(ENTRY, url="http://127.0.0.1:9/mobilenet_v1_0.25_128_quant.tflite")  # nothing listens on 9
    with pytest.raises(OSError, match=re.escape(f"put it at {cache / ENTRY.filename}")) as error:
        fetch(entry, progress=False)
    assert entry.url in str(error.value)


def test_a_damaged_cached_file_is_refused(cache: Path) -> None:
    cache.mkdir()
    (cache / ENTRY.filename).write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="delete it to download it again"):
        fetch(ENTRY, progress=False)


def test_names_that_do_not_fit_say_what_exists(cache: Path) -> None:
    with pytest.raises(ValueError, match="no published weights 'DEFAULT' for mobilenet_v2_035"):
        mobilenet.create_model("mobilenet_v2_035", pretrained=True)
    with pytest.raises(ValueError, match="are weights of mobilenet_v1_025, not of mobilenet_v2_100"):
        mobilenet.create_model("mobilenet_v2", weights="mobilenet_v1_025.coral_uint8_128")
    with pytest.raises(ValueError, match="are weights of deeplabv3_mobilenet_v2, not of mobilenet_v2"):
        mobilenet.create_model("mobilenet_v2", weights="deeplabv3_mobilenet_v2.coral_uint8_voc")
    with pytest.raises(ValueError, match=re.escape("no published weights 'mobilenet_v2_100.imagenet'")):
        mobilenet.mobilenet_v2(weights="mobilenet_v2_100.imagenet")
    done = cli("predict", "x.jpg", "--weights", "missing.safetensors")
    assert done.returncode == 2 and "missing.safetensors" in done.stderr  # a file name stays a file name
