"""``mobilenet serve``: models of any kind behind an HTTP API and a web page, requests batched (see
:mod:`mobilenet.serve`)."""

from __future__ import annotations

import argparse

HELP = "serve models over HTTP: an API (batched, bounded, with metrics) and a page to try them on an image"
DESCRIPTION = (
    "Serve one or more models (any weights file mobilenet reads, of any kind, in any format) on an HTTP "
    "API: POST /v1/models/NAME:predict with an image gives the JSON of `mobilenet predict --json`; GET /v1/models, "
    "/healthz and /metrics (Prometheus). Concurrent requests are run as batches on the fastest backend; a full "
    "queue answers 503 at once. Open the address it prints for a page that shows the results drawn on an image."
    "\n\nexample: mobilenet serve digits=runs/modern-*/best.safetensors mobilenet_v2_1.0_224_quant.tflite"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.cli.kinds import add_inference_flags, add_kind_options
    from mobilenet.registry import kinds

    parser.add_argument("weights", nargs="+", metavar="[NAME=]WEIGHTS",
                        help="a weights file or published weights name, served as NAME (default: the file's "
                        "stem; a run's best.safetensors: the run's folder)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="the port (0: any free one)")
    add_inference_flags(parser)
    parser.add_argument("--max-batch", type=int, default=32, help="the most requests run as one batch")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long a batch waits for requests on their way (still uploading or decoding) "
                        "to join it; never when none is")  # fmt: skip
    parser.add_argument("--max-queue", type=int, metavar="N",
                        help="the most requests waiting per model; more are answered 503 at once (default: 4 "
                        "batches per worker)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="batches run at once per model, each on its own copy (the cores are shared)")  # fmt: skip
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="the largest upload taken")
    parser.add_argument("--max-pixels", type=int, default=50_000_000,
                        help="the largest image taken, in pixels (refused from its header, undecoded)")  # fmt: skip
    add_kind_options(parser, "predict", kinds())


def run(args: argparse.Namespace) -> int:
    from mobilenet.cli.kinds import check_inference_flags, emulated
    from mobilenet.registry import kinds
    from mobilenet.serve import Limits, create_app, listening, load_models, parse_spec, serve, with_options

    specs = [parse_spec(text) for text in args.weights]
    for spec in specs:
        args.weights = spec.weights  # the weights the checks name
        check_inference_flags(args)
    options = {option.name: getattr(args, option.name) for kind in kinds() for option in kind.options("predict")}
    specs = with_options(specs, {name: value for name, value in options.items() if value not in (None, False)})
    limits = Limits(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
        max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
    )  # fmt: skip
    sock = listening(args.host, args.port)
    models = load_models(specs, args.backend, args.precision, args.calibration, args.workers, emulated(args))
    serve(create_app(models, limits), sock)
    return 0
