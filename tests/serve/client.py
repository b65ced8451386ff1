"""Plain HTTP for the server tests (the standard library's client: what the server must answer, whoever asks)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def post(url: str, body: bytes, content_type: str = "image/jpeg") -> tuple[int, dict[str, str], Any]:
    """POST ``body``: the status, the headers and the JSON answer."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, json.loads(error.read())


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of Prometheus text (0 where it is absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") or line.startswith(f"{name} "):
            sample, value = line.rsplit(" ", 1)
            found = sample[len(name) :].strip("{}")
            if ",".join(sorted(found.split(","))) == wanted:
                return float(value)
    return 0.0


def multipart(field: str, filename: str, data: bytes, content_type: str = "image/jpeg") -> tuple[bytes, str]:
    """A multipart/form-data body with one file (what ``curl -F field=@file`` sends), and its content type."""
    boundary = "mobilenet-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
