"""A stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, serving repositories from local folders.

Tests may not reach the Hub, and mocking ``hf_hub_download`` or ``load_dataset`` would leave the clients' own code
(URLs, headers, caches, errors) untested. This server answers just what ``huggingface_hub`` 2.4 and ``datasets`` 5.2
ask when a model's files are downloaded (``hf_hub_download``) and when a dataset is loaded by name (``load_dataset``):

- ``HEAD`` and ``GET /[datasets/]{owner}/{name}/resolve/{revision}/{path}``: a file, with the headers
  ``hf_hub_download`` refuses to go without (``X-Repo-Commit``: the commit, which names the cache's snapshot;
  ``ETag``: the blob's name in the cache; ``Content-Length``: checked against what arrives; ``X-Linked-Etag`` and
  ``X-Linked-Size`` for the files the Hub keeps in LFS). A file that is not there is the Hub's 404 with
  ``X-Error-Code: EntryNotFound`` (and the commit): ``datasets`` asks for several such files (a card, a loading
  script, ``.huggingface.yaml``, ``dataset_infos.json``) and goes on without them.
- ``GET /api/{models|datasets}/{owner}/{name}[/revision/{revision}]``: the repository's info, whose ``sha`` pins the
  revision: ``HfFileSystem`` checks with it that a repository and revision exist; ``datasets`` asks for it when a
  dataset has no card.
- ``GET /api/{models|datasets}/{owner}/{name}/tree/{revision}[/{folder}]``: a folder's listing, in which ``datasets``
  finds a dataset's data files (``data/train-*``) by glob.
- ``GET /api/agent-harnesses``: an empty registry, which ``huggingface_hub`` fetches once per process (it detects
  whether an AI agent runs it) and does without.

An unknown repository is a 404 with ``X-Error-Code: RepoNotFound``, an unknown revision ``RevisionNotFound``: the
clients turn those codes into their exceptions. Anything else is a bare 404, recorded in ``unserved``. Each repository
has one revision, ``main``, whose commit hash is derived from its files. Files are served whole (a request for a
range is unserved: no client here asks for one), from the folder (not redirected to a CDN) and never through Xet (no
``X-Xet-Hash``): the clients then download them over plain HTTP.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

Kind = Literal["model", "dataset"]
API_KINDS: dict[str, Kind] = {"models": "model", "datasets": "dataset"}
LFS_SUFFIXES = (".parquet", ".arrow", ".safetensors", ".bin", ".pt")  # what the Hub's .gitattributes put in LFS
DATE = "2024-01-01T00:00:00.000Z"  # the repositories' dates: the same answers at every run
NO_AGENTS = {"standardEnvVars": [], "harnesses": {}}

# /api/{models|datasets}/{owner}/{name}[/{action}/{revision}[/{path}]]: the revision and path come percent-encoded
API = re.compile(r"/api/(?P<kind>models|datasets)/(?P<repo>[^/]+/[^/]+)(?:/(?P<action>[\w-]+)/(?P<rest>.+))?")
RESOLVE = re.compile(r"/(?P<dataset>datasets/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)")


class HubError(Exception):
    """A 404 as the Hub gives it: the code that the clients read (``X-Error-Code``), a message, and the commit."""

    def __init__(self, code: str, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.code, self.commit = code, commit


@dataclass(frozen=True)
class Repository:
    """A repository of the Hub as a folder: its files, their git and LFS names, and its one commit."""

    kind: Kind
    repo_id: str
    folder: Path

    @cached_property
    def files(self) -> dict[str, bytes]:
        """Each file's contents by its path in the repository, read on the first request."""
        paths = sorted(path for path in self.folder.rglob("*") if path.is_file())
        return {path.relative_to(self.folder).as_posix(): path.read_bytes() for path in paths}

    @cached_property
    def folders(self) -> set[str]:
        """Every folder's path in the repository, but the root."""
        return {"/".join(path.split("/")[:depth]) for path in self.files for depth in range(1, path.count("/") + 1)}

    @cached_property
    def commit(self) -> str:
        """The commit of ``main``: a SHA-1 of the files' paths and blobs, so the same folder has the same commit."""
        listing = "".join(f"{path}\0{blob_id(data)}\n" for path, data in self.files.items())
        return hashlib.sha1(listing.encode()).hexdigest()

    def check(self, revision: str) -> None:
        if revision not in ("main", self.commit):
            raise HubError("RevisionNotFound", f"Invalid rev id: {revision}")

    def info(self) -> dict:
        return {"_id": self.commit[:24], "id": self.repo_id, "author": self.repo_id.split("/")[0], "sha": self.commit,
                "private": False, "gated": False, "disabled": False, "createdAt": DATE, "lastModified": DATE,
                "tags": [], "siblings": [{"rfilename": path} for path in self.files]}  # fmt: skip

    def tree(self, folder: str, recursive: bool) -> list[dict]:
        """The entries in ``folder`` (``""``: the root), those of its subfolders too if ``recursive``."""
        if folder and folder not in self.folders:
            raise HubError("EntryNotFound", f"{folder} does not exist on main", self.commit)
        prefix = f"{folder}/" if folder else ""
        paths = [path for path in sorted(self.folders | set(self.files)) if path.startswith(prefix)]
        return [self.entry(path) for path in paths if recursive or "/" not in path[len(prefix) :]]

    def entry(self, path: str) -> dict:
        if path in self.folders:
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}
        data = self.files[path]
        entry = {"type": "file", "oid": blob_id(data), "size": len(data), "path": path}
        if is_lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def headers(self, path: str) -> dict[str, str]:
        """What the Hub says of a file: its commit and ETag, and for an LFS file its SHA-256 and size."""
        data = self.files[path]
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": self.commit,
                   "ETag": f'"{blob_id(data)}"'}  # fmt: skip
        if is_lfs(path):  # the cache names an LFS file's blob by its SHA-256, as the Hub does
            headers |= {"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))}
        return headers


def implemented(api: re.Match[str], query: dict[str, str]) -> bool:
    """Whether the stand-in implements an API request: a repository's info (at ``main`` or a revision) or a folder's
    tree, without the expanded fields (last commits, security scans) that no client here asks for."""
    action, rest = api["action"], api["rest"] or ""
    wanted = action is None or action == "tree" or (action == "revision" and "/" not in rest)
    return wanted and query.get("expand", "false") == "false"


def blob_id(data: bytes) -> str:
    """A file's git blob hash: its ``oid`` on the Hub and, for a file not in LFS, its ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


class HubServer(ThreadingHTTPServer):
    """The stand-in on a free port of 127.0.0.1, serving ``repos`` (``(kind, "owner/name") -> folder``).

    A context manager: served from a thread on entry; on exit shut down, its socket closed and its threads joined.
    ``requests`` holds each request as ``"METHOD /path"`` in order, ``unserved`` those it does not implement."""

    daemon_threads = False  # server_close joins the requests' threads: none outlives the server
    block_on_close = True

    def __init__(self, repos: Mapping[tuple[Kind, str], str | Path]) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.repos = {(kind, name): Repository(kind, name, Path(folder)) for (kind, name), folder in repos.items()}
        self.requests: list[str] = []
        self.unserved: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="hub-stand-in")  # stops in 50 ms

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.thread.join()
        self.server_close()

    def unserved_for(self, repo_id: str) -> list[str]:
        """The requests about ``repo_id`` that the stand-in does not implement: a test asserts there are none, while
        a client's requests about nothing in particular (a newer client's telemetry, say) may go unserved."""
        return [request for request in self.unserved if f"/{repo_id}" in request]

    def repository(self, kind: Kind, repo_id: str) -> Repository:
        if (kind, repo_id) not in self.repos:
            raise HubError("RepoNotFound", "Repository not found")
        return self.repos[kind, repo_id]


class HubHandler(BaseHTTPRequestHandler):
    """One request to the stand-in, on its own connection (``Connection: close``): no thread waits on a kept-alive
    one when the server stops."""

    protocol_version = "HTTP/1.1"
    server: HubServer

    def do_GET(self) -> None:
        self.answer(body=True)

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        request = f"{self.command} {url.path}"
        with self.server.lock:
            self.server.requests.append(request)
        query = {name: values[-1].lower() for name, values in parse_qs(url.query).items()}
        api, resolve = API.fullmatch(url.path), RESOLVE.fullmatch(url.path)
        try:
            if resolve and "Range" not in self.headers:  # whole files: no client here asks for a range
                repo = self.server.repository("dataset" if resolve["dataset"] else "model", resolve["repo"])
                self.file(repo, unquote(resolve["revision"]), unquote(resolve["path"]), body)
            elif api and self.command == "GET" and implemented(api, query):
                self.api(self.server.repository(API_KINDS[api["kind"]], api["repo"]), api, query)
            elif url.path == "/api/agent-harnesses" and self.command == "GET":
                self.send(200, json.dumps(NO_AGENTS).encode(), {"Content-Type": "application/json"})
            else:
                with self.server.lock:
                    self.server.unserved.append(request)
                self.send(404, b'{"error": "not served by the stand-in"}', {"Content-Type": "application/json"}, body)
        except HubError as error:
            headers = {"X-Error-Code": error.code, "X-Error-Message": str(error), "Content-Type": "application/json"}
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            self.send(404, json.dumps({"error": str(error)}).encode(), headers, body)

    def api(self, repo: Repository, match: re.Match[str], query: dict[str, str]) -> None:
        """A repository's info (at ``main`` or at a revision), or a folder's tree."""
        revision, _, folder = (match["rest"] or "").partition("/")
        if match["action"] is not None:
            repo.check(unquote(revision))
        if match["action"] == "tree":
            answer: object = repo.tree(unquote(folder).strip("/"), query.get("recursive") == "true")
        else:
            answer = repo.info()
        self.send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    def file(self, repo: Repository, revision: str, path: str, body: bool) -> None:
        repo.check(revision)
        if path not in repo.files:
            raise HubError("EntryNotFound", f"{path} does not exist on {revision}", repo.commit)
        self.send(200, repo.files[path], repo.headers(path), body)

    def send(self, status: int, data: bytes, headers: dict[str, str], body: bool = True) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data)), "Connection": "close"}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the requests are in ``server.requests``, not on stderr."""


@contextmanager
def serving(
    repos: Mapping[tuple[Kind, str], str | Path], monkeypatch: pytest.MonkeyPatch, home: Path
) -> Iterator[HubServer]:
    """The stand-in serving ``repos``, with ``huggingface_hub`` and ``datasets`` pointed at it and caching under
    ``home``. On exit the server stops and its threads are joined; ``monkeypatch`` undoes the rest."""
    with HubServer(repos) as server:
        point_clients_at(server.endpoint, monkeypatch, home)
        yield server


def point_clients_at(endpoint: str, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """``huggingface_hub`` and (when installed) ``datasets`` talking to ``endpoint`` only, online, without the user's
    token, caching under ``home``. Both read ``HF_ENDPOINT`` and their caches' paths once, at import: the variables
    are set for a later import, the modules' copies for an earlier one."""
    variables = {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_DATASETS_CACHE": str(home / "datasets"),
                 "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}  # fmt: skip
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    constants = importlib.import_module("huggingface_hub.constants")
    hub = {"ENDPOINT": endpoint,
           "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",  # hf_hub_url's
           "HF_HUB_CACHE": str(home / "hub"), "HF_TOKEN_PATH": str(home / "token"),
           "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"), "HF_HUB_OFFLINE": False}  # fmt: skip
    for name, value in hub.items():
        monkeypatch.setattr(constants, name, value)
    if importlib.util.find_spec("datasets") is None:
        return
    cache = home / "datasets"
    datasets = {"HF_ENDPOINT": endpoint,
                "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
                "HF_DATASETS_CACHE": cache, "DOWNLOADED_DATASETS_PATH": cache / "downloads",
                "EXTRACTED_DATASETS_PATH": cache / "downloads" / "extracted",
                "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False,
                # Services besides the Hub's API, which datasets does without (it ignores their failures): a HEAD to
                # s3.amazonaws.com counting downloads, the dataset viewer (datasets-server.HOST) for exported infos.
                "HF_UPDATE_DOWNLOAD_COUNTS": False, "USE_PARQUET_EXPORT": False}  # fmt: skip
    config = importlib.import_module("datasets.config")
    for name, value in datasets.items():
        monkeypatch.setattr(config, name, value)
