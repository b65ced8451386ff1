"""``mobilenet serve``: models of any kind the registry loads, behind an HTTP API and a web page.

Requests are gathered into batches (:mod:`~mobilenet.serve.batching`) and run on each model's deployed backend;
the queue is bounded, uploads are checked before they are decoded, and Prometheus metrics say what happened
(:mod:`~mobilenet.serve.app`). ``running`` serves from a thread of the calling process (tests, notebooks).
"""

from mobilenet.utils.optional import require

for dependency in ("starlette", "uvicorn", "python_multipart", "prometheus_client"):
    require(dependency, "serve")  # one line naming the extra, where one is missing

from mobilenet.serve.app import Limits, create_app  # noqa: E402
from mobilenet.serve.models import ModelSpec, ServedModel, load_served, parse_spec, with_options  # noqa: E402
from mobilenet.serve.server import listening, load_models, running, serve  # noqa: E402

__all__ = [
    "Limits",
    "ModelSpec",
    "ServedModel",
    "create_app",
    "listening",
    "load_models",
    "load_served",
    "parse_spec",
    "running",
    "serve",
    "with_options",
]
