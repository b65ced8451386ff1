"""The published weights the library knows by name: where each file is, its checksum, licence and preprocessing.

Names follow timm's ``<model>.<tag>``. A file is fetched once into the cache (:mod:`mobilenet.weights.download`)
and checked against its sha256 every time it is used. ``top1_measured`` is what this library scores with
the file, and on what, where the file is in the project's shared test data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mobilenet.nn.preprocessing import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, Preprocessing

Task = Literal["classification", "segmentation", "detection"]

# google-coral/test_data pinned to one commit, so a file can never change under its checksum.
CORAL = "https://github.com/google-coral/test_data/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/"
CORAL_LICENSE = "Apache-2.0"
TORCHVISION = "https://download.pytorch.org/models/"
TORCHVISION_LICENSE = "BSD-3-Clause (torchvision)"


@dataclass(frozen=True)
class PublishedWeights:
    """One published weights file: what it is, where it comes from, how to feed it and how good it is."""

    name: str  # "mobilenet_v2_100.coral_uint8_224"
    model: str  # the registered model name it loads into
    task: Task
    url: str
    sha256: str  # the whole hex digest, or (torchvision's convention) its first hex digits
    size: int | None  # bytes, where known
    license: str
    preprocessing: Preprocessing
    categories: str  # what the outputs mean
    top1_published: float | None  # %, the publisher's figure for this architecture (ImageNet validation)
    top1_measured: str | None  # ours with this file, and on what
    note: str = ""

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


def coral_classifier(
    model: str, filename: str, size: int, top1: float, measured: str, file_bytes: int, sha: str
) -> PublishedWeights:
    """One of Coral's uint8 ImageNet classifiers (TF-slim's quantized MobileNets)."""
    return PublishedWeights(
        name=f"{model}.coral_uint8_{size}",
        model=model,
        task="classification",
        url=f"{CORAL}{filename}",
        sha256=sha,
        size=file_bytes,
        license=CORAL_LICENSE,
        # TF-slim's evaluation: the central 87.5% of the image, resized to the input.
        preprocessing=Preprocessing(input_size=size, crop_pct=0.875, mean=TF_MEAN, std=TF_STD),
        categories="ImageNet-1k + background (1001)",
        top1_published=top1,
        top1_measured=measured,
        note="uint8 per-tensor, BatchNorm folded, TF 'SAME' padding (Coral test data)",
    )


def torchvision_v2(tag: str, filename: str, resize: int, top1: float, note: str) -> PublishedWeights:
    """One of torchvision's MobileNetV2 ImageNet weights: resize the short side to ``resize``, crop 224."""
    return PublishedWeights(
        name=f"mobilenet_v2_100.{tag}",
        model="mobilenet_v2_100",
        task="classification",
        url=f"{TORCHVISION}{filename}",
        sha256=filename.rsplit("-", 1)[1].removesuffix(".pth"),
        size=None,
        license=TORCHVISION_LICENSE,
        preprocessing=Preprocessing(input_size=224, crop_pct=224 / resize, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        categories="ImageNet-1k (1000)",
        top1_published=top1,
        top1_measured=None,
        note=note,
    )


def coral_deeplab(model: str, filename: str, file_bytes: int, miou: float, sha: str) -> PublishedWeights:
    """One of Coral's uint8 Mobile DeepLabv3 files (PASCAL VOC, 513x513)."""
    return PublishedWeights(
        name=f"{model}.coral_uint8_voc",
        model=model,
        task="segmentation",
        url=f"{CORAL}{filename}",
        sha256=sha,
        size=file_bytes,
        license=CORAL_LICENSE,
        preprocessing=Preprocessing(input_size=513, crop_pct=1.0, mean=TF_MEAN, std=TF_STD),
        categories="PASCAL VOC (21)",
        top1_published=None,
        top1_measured=None,
        note=f"LiteRT scores {miou}% mIoU on 161 VOC 2012 val images (shared data)",
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
    # Top-1 published: TF-slim's float checkpoints of the same architecture (the int8 files lose about a
    # point); measured: python benchmarks/fidelity.py, on the 500 images of imagenet-sample.
    coral_classifier(
        "mobilenet_v2_100",
        "mobilenet_v2_1.0_224_quant.tflite",
        224,
        71.8,
        "89.8% on imagenet-sample (500)",
        3610798,
        "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
    ),
    coral_classifier(
        "mobilenet_v1_075",
        "mobilenet_v1_0.75_192_quant.tflite",
        192,
        67.2,
        "80.6% on imagenet-sample (500)",
        2652542,
        "41daeb22fdcf947e0e5ec32373aa9df7c31f3ef45dbd0ef7b5940fbce3c20f6a",
    ),
    coral_classifier(
        "mobilenet_v1_050",
        "mobilenet_v1_0.5_160_quant.tflite",
        160,
        59.1,
        "69.8% on imagenet-sample (500)",
        1392846,
        "3cc6d2ca460abd2e0f699a6d0d2550c6b61c6e3b0e27a3616e384ea74cb86f43",
    ),
    coral_classifier(
        "mobilenet_v1_025",
        "mobilenet_v1_0.25_128_quant.tflite",
        128,
        41.5,
        "46.2% on imagenet-sample (500)",
        525598,
        "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785",
    ),
    # torchvision's MobileNet_V2_Weights: the hash in the file name is the start of its sha256.
    torchvision_v2("tv_in1k", "mobilenet_v2-b0353104.pth", 256, 71.878, "torchvision IMAGENET1K_V1"),
    torchvision_v2("tv2_in1k", "mobilenet_v2-7ebf99e0.pth", 232, 72.154, "torchvision IMAGENET1K_V2 (its DEFAULT)"),
    # Mobile DeepLabv3 on PASCAL VOC (the paper's Table 7), for the segmentation model; mIoU by LiteRT on the 161
    # VOC 2012 val images of the shared data.
    coral_deeplab(
        "deeplabv3_mobilenet_v2",
        "deeplabv3_mnv2_pascal_quant.tflite",
        2193224,
        72.56,
        "350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398",
    ),
    coral_deeplab(
        "deeplabv3_mobilenet_v2_050",
        "deeplabv3_mnv2_dm05_pascal_quant.tflite",
        760904,
        67.29,
        "0470d2a782aa54eeeb99d32e7b6b3fb7722905c7c4f5d26bd957ec861366d48b",
    ),
)
WEIGHTS = {entry.name: entry for entry in PUBLISHED}
# What weights="DEFAULT" means for each model that has weights: the best classifier we know of.
DEFAULTS = {
    "mobilenet_v2_100": "mobilenet_v2_100.tv2_in1k",
    "mobilenet_v1_075": "mobilenet_v1_075.coral_uint8_192",
    "mobilenet_v1_050": "mobilenet_v1_050.coral_uint8_160",
    "mobilenet_v1_025": "mobilenet_v1_025.coral_uint8_128",
    "deeplabv3_mobilenet_v2": "deeplabv3_mobilenet_v2.coral_uint8_voc",
    "deeplabv3_mobilenet_v2_050": "deeplabv3_mobilenet_v2_050.coral_uint8_voc",
}


def published_weights(model: str, weights: str) -> PublishedWeights:
    """The entry for ``weights`` ("DEFAULT" or a name) of ``model``, or one line saying what exists."""
    name = DEFAULTS.get(model) if weights == "DEFAULT" else weights
    for_model = sorted(entry.name for entry in PUBLISHED if entry.model == model)
    if name is None or name not in WEIGHTS:
        known = ", ".join(for_model) or "none yet"
        raise ValueError(
            f"no published weights {weights!r} for {model}: known for it: {known} (`mobilenet weights` lists all), "
            "or pass the path of a weights file"
        )
    entry = WEIGHTS[name]
    if entry.model != model:
        raise ValueError(f"{name} are weights of {entry.model}, not of {model}: create_model({entry.model!r}, ...)")
    if entry.task == "detection":
        raise ValueError(f"{name} are detection weights: mobilenet has no detection model to load them into yet")
    return entry
