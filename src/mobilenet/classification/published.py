"""The published classifiers known by name: Coral's uint8 TFLite MobileNets, torchvision's and timm's MobileNetV2s."""

from __future__ import annotations

from mobilenet.nn.preprocessing import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, Preprocessing
from mobilenet.weights.published import CORAL, CORAL_LICENSE, PublishedWeights

TORCHVISION = "https://download.pytorch.org/models/"
TORCHVISION_LICENSE = "BSD-3-Clause (torchvision)"
TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"


def coral_classifier(
    model: str, filename: str, size: int, top1: float, measured: str, file_bytes: int, sha: str, default: bool = True
) -> PublishedWeights:
    """One of Coral's uint8 ImageNet classifiers (TF-slim's quantized MobileNets): the DEFAULT of its model, unless
    another file is better."""
    return PublishedWeights(
        name=f"{model}.coral_uint8_{size}",
        model=model,
        url=f"{CORAL}{filename}",
        sha256=sha,
        size=file_bytes,
        license=CORAL_LICENSE,
        # The short side to size / 0.875, then a center crop. TF-slim evaluated the central 87.5% squashed to the
        # input instead (resize="central_fraction"): BENCHMARKS.md scores both.
        preprocessing=Preprocessing(input_size=size, crop_pct=0.875, mean=TF_MEAN, std=TF_STD),
        categories="ImageNet-1k + background (1001)",
        top1_published=top1,
        top1_measured=measured,
        note="uint8 per-tensor, BatchNorm folded, TF 'SAME' padding (Coral test data)",
        default=default,
    )


def torchvision_v2(
    tag: str, filename: str, resize: int, top1: float, note: str, default: bool = False
) -> PublishedWeights:
    """One of torchvision's MobileNetV2 ImageNet weights: resize the short side to ``resize``, crop 224."""
    return PublishedWeights(
        name=f"mobilenet_v2_100.{tag}",
        model="mobilenet_v2_100",
        url=f"{TORCHVISION}{filename}",
        sha256=filename.rsplit("-", 1)[1].removesuffix(".pth"),
        size=None,
        license=TORCHVISION_LICENSE,
        preprocessing=Preprocessing(input_size=224, crop_pct=224 / resize, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        categories="ImageNet-1k (1000)",
        top1_published=top1,
        top1_measured=None,
        note=note,
        default=default,
    )


def timm_v2(model: str, tag: str, filename: str, top1: float, default: bool = True) -> PublishedWeights:
    """One of timm's MobileNetV2 ImageNet weights released on GitHub (its deeper ``_110d``/``_120d`` among them):
    bicubic, short side to 256, crop 224; top-1 from timm's ``results/results-imagenet.csv``. The DEFAULT of its
    model where no other file is."""
    return PublishedWeights(
        name=f"{model}.{tag}",
        model=model,
        url=f"{TIMM}{filename}",
        sha256=filename.rsplit("-", 1)[1].removesuffix(".pth"),
        size=None,
        license="Apache-2.0 (timm)",
        preprocessing=Preprocessing(input_size=224, crop_pct=0.875, interpolation="bicubic"),
        categories="ImageNet-1k (1000)",
        top1_published=top1,
        top1_measured=None,
        note=f"timm {model.replace('mobilenet_v', 'mobilenetv')}.{tag}",
        default=default,
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
    # Top-1 published: TF-slim's float checkpoints of the same architecture (the int8 files lose about a
    # point: benchmarks/published_accuracy.py lists the _quant and TFLite figures too); measured: python
    # benchmarks/published_accuracy.py, our float import with the record's preprocessing.
    coral_classifier(
        "mobilenet_v2_100",
        "mobilenet_v2_1.0_224_quant.tflite",
        224,
        71.8,
        "89.8% on imagenet-sample (500), 72.6% on imagenette/val (1,966)",
        3610798,
        "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
        default=False,  # torchvision's IMAGENET1K_V2, below, is better
    ),
    coral_classifier(
        "mobilenet_v1_075",
        "mobilenet_v1_0.75_192_quant.tflite",
        192,
        67.2,
        "80.6% on imagenet-sample (500), 65.9% on imagenette/val (1,966)",
        2652542,
        "41daeb22fdcf947e0e5ec32373aa9df7c31f3ef45dbd0ef7b5940fbce3c20f6a",
    ),
    coral_classifier(
        "mobilenet_v1_050",
        "mobilenet_v1_0.5_160_quant.tflite",
        160,
        59.1,
        "69.8% on imagenet-sample (500), 56.1% on imagenette/val (1,966)",
        1392846,
        "3cc6d2ca460abd2e0f699a6d0d2550c6b61c6e3b0e27a3616e384ea74cb86f43",
    ),
    coral_classifier(
        "mobilenet_v1_025",
        "mobilenet_v1_0.25_128_quant.tflite",
        128,
        41.5,
        "46.2% on imagenet-sample (500), 40.0% on imagenette/val (1,966)",
        525598,
        "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785",
    ),
    # torchvision's MobileNet_V2_Weights: the hash in the file name is the start of its sha256.
    torchvision_v2("tv_in1k", "mobilenet_v2-b0353104.pth", 256, 71.878, "torchvision IMAGENET1K_V1"),
    torchvision_v2(
        "tv2_in1k", "mobilenet_v2-7ebf99e0.pth", 232, 72.154, "torchvision IMAGENET1K_V2 (its DEFAULT)", default=True
    ),
    # timm's, the most accurate MobileNetV2s published (the file name's hash is the start of its sha256 too).
    timm_v2("mobilenet_v2_050", "lamb_in1k", "mobilenetv2_050-3d30d450.pth", 65.928),
    timm_v2("mobilenet_v2_100", "ra_in1k", "mobilenetv2_100_ra-b33bc2c4.pth", 72.910, default=False),
    timm_v2("mobilenet_v2_110d", "ra_in1k", "mobilenetv2_110d_ra-77090ade.pth", 75.056),
    timm_v2("mobilenet_v2_120d", "ra_in1k", "mobilenetv2_120d_ra-5987e2ed.pth", 77.300),
    timm_v2("mobilenet_v2_140", "ra_in1k", "mobilenetv2_140_ra-21a4e913.pth", 76.528),
)
