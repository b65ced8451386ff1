"""``mobilenet detect``: SSDLite's boxes of image files, with class names and scores, drawn on the images (PNG):
``mobilenet predict`` for detectors alone."""

from __future__ import annotations

from mobilenet.cli.kinds import own_command

HELP = "boxes, classes and scores of objects in images (SSDLite / SSD)"
DESCRIPTION = (
    "Detect objects in images: one line per box (score, class name, x0, y0, x1, y1 in the image's pixels), or "
    "JSON; --out draws the boxes. Class names come with the weights: Google's .tflite and .pb files take theirs "
    "from a labels file beside them (<stem>_labels.txt, one name a line)."
)
WEIGHTS = "Google's SSD .tflite, a frozen_inference_graph.pb, or a detector saved by `mobilenet train`"

add_arguments, run = own_command("detection", WEIGHTS)
