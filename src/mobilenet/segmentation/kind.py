"""Semantic segmentation's registration: what the registry knows of Mobile DeepLabv3 (the paper's Section 6.3)."""

from __future__ import annotations

from pathlib import Path

from mobilenet.kinds import ModelKind, Option
from mobilenet.segmentation.config import (
    DEEPLAB_SCALES,
    OUTPUTS,
    RECIPES,
    SEGMENTATION_MODELS,
    TASK,
    DeepLabConfig,
    SegmentationSettings,
)
from mobilenet.segmentation.config import KIND as FILE_KIND
from mobilenet.segmentation.published import PUBLISHED
from mobilenet.utils.values import positive_floats

# Multi-scale and flipped inference (Table 7's "MF" rows), in segment, predict and eval.
INFERENCE_OPTIONS = (
    Option("scales", "run at each scale and average the class probabilities (DeepLab's MF: "
           f"{','.join(f'{s:g}' for s in DEEPLAB_SCALES)}; needs --backend torch)", positive_floats, "S,S,..."),
    Option("flip", "also run each scale mirrored left to right, and average", None, flag=True),
)  # fmt: skip

KIND = ModelKind(
    name=TASK,
    description="the class of every pixel, with Mobile DeepLabv3",
    evaluates="mIoU with DeepLab's protocol on a VOC folder (JPEGImages/, SegmentationClass/), its shards, or "
    "COCO128's masks",
    file_kind=FILE_KIND,
    command="segment",
    config=DeepLabConfig,
    models=SEGMENTATION_MODELS,
    default_model="deeplabv3_mobilenet_v2",
    settings=SegmentationSettings,
    recipes=RECIPES,
    default_recipe="deeplab",
    task="mobilenet.segmentation.task:SegmentationTask",
    create="mobilenet.segmentation.load:create_deeplab",
    load="mobilenet.segmentation.load:load_deeplab",
    claims="mobilenet.segmentation.load:is_deeplab_file",
    verify="mobilenet.segmentation.verify:verify_deeplab",
    predict="mobilenet.segmentation.predict:segment_files",
    serve="mobilenet.segmentation.predict:segment_images",
    describe="mobilenet.segmentation.predict:describe",
    evaluate="mobilenet.segmentation.evaluate:evaluate_files",
    shard="mobilenet.segmentation.shards:write_shards",
    writes=OUTPUTS,
    predict_options=INFERENCE_OPTIONS,
    eval_options=(
        Option("ids", "the ids of the images to score, one a line (VOC's ImageSets/Segmentation)", Path),
        *INFERENCE_OPTIONS,
    ),
    published=PUBLISHED,
    tables={"table7": "mobilenet.segmentation.table7:paper_table"},
)
