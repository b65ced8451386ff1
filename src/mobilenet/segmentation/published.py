"""The published Mobile DeepLabv3 files known by name: Coral's uint8 TFLite files (PASCAL VOC, 513x513)."""

from __future__ import annotations

from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.weights.published import CORAL, CORAL_LICENSE, PublishedWeights


def coral_deeplab(model: str, filename: str, file_bytes: int, miou: float, sha: str) -> PublishedWeights:
    """One of Coral's uint8 Mobile DeepLabv3 files (PASCAL VOC, 513x513)."""
    return PublishedWeights(
        name=f"{model}.coral_uint8_voc",
        model=model,
        url=f"{CORAL}{filename}",
        sha256=sha,
        size=file_bytes,
        license=CORAL_LICENSE,
        preprocessing=Preprocessing(input_size=513, crop_pct=1.0, mean=TF_MEAN, std=TF_STD),
        categories="PASCAL VOC (21)",
        top1_published=None,
        top1_measured=None,
        note=f"LiteRT scores {miou}% mIoU on 161 VOC 2012 val images (shared data)",
        default=True,
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
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
