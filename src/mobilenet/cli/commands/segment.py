"""``mobilenet segment``: Mobile DeepLabv3's class of every pixel of image files, written as palette PNGs with
overlays: ``mobilenet predict`` for segmentation models alone."""

from __future__ import annotations

from mobilenet.cli.kinds import own_command

HELP = "the class of every pixel of images (Mobile DeepLabv3)"
DESCRIPTION = (
    "The class of every pixel of each image, with a Mobile DeepLabv3: the share of each class, and with --out a "
    "palette PNG (pixel value = class) and an overlay per image."
)
WEIGHTS = (
    "Coral's deeplabv3_*.tflite, a trained deeplabv3 .safetensors, or a published weights name (mobilenet weights)"
)

add_arguments, run = own_command("segmentation", WEIGHTS)
