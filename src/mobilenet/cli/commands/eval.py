"""``mobilenet eval``: any model's scores on labelled data, as its kind scores it (a classifier's top-1 on class
folders, a segmenter's mIoU on masks, a detector's COCO mAP on boxes), through ``deploy``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenet.cli.output import add_plot, check_plot

HELP = "scores on labelled data: top-1 of a classifier, mIoU of a segmenter, COCO mAP of a detector"
DESCRIPTION = (
    "Score a model on labelled data, as the kind of model the weights hold is scored (each kind below: what it "
    "scores, and on what --data). The options of one kind are refused for another's weights."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mobilenet.cli.kinds import add_inference_flags, add_kind_options
    from mobilenet.registry import kinds
    from mobilenet.utils.values import non_negative_int, positive_int

    parser.add_argument("--weights", required=True, help="any weights file mobilenet reads, a graph it exported "
                        "(.onnx, OpenVINO .xml, ExecuTorch .pte), or a published weights name")  # fmt: skip
    parser.add_argument("--data", required=True, type=Path, help="the labelled data, laid out as the kind reads it")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch")
    parser.add_argument("--workers", type=non_negative_int, default=2,
                        help="image-decoding worker processes; 0 decodes in this one")  # fmt: skip
    add_plot(parser, "write the scores as a PNG (a confusion matrix, per-class IoU bars, precision-recall curves)")
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object")
    add_inference_flags(parser)
    add_kind_options(parser, "eval", kinds())
    parser.epilog = "kinds of model:\n" + "\n".join(f"  {kind.name}: {kind.evaluates}" for kind in kinds())


def run(args: argparse.Namespace) -> int:
    from mobilenet.cli.kinds import check_inference_flags, emulated, kind_options, weights_kind
    from mobilenet.registry import kinds, load_deployed

    check_plot(args, [args.weights, args.data])
    check_inference_flags(args)
    kind = weights_kind(args.weights)
    options = kind_options(args, kind, "eval", kinds())

    def load(images: int) -> object:
        return load_deployed(
            args.weights, args.backend, args.precision, args.calibration, images=images, emulate_int8=emulated(args)
        )

    progress = not args.json
    result = kind.call("evaluate", load, args.data, args.batch_size, args.workers, progress, **options)
    if args.plot:
        result.plot(args.plot, f"{Path(args.weights).name} on {args.data} ({result.n} images)")
    print(result.to_json() if args.json else result.report(str(args.data)))
    if args.plot and not args.json:
        print(f"plot written to {args.plot}")
    return 0
