"""Object detection's registration: what the registry knows of SSD and SSDLite (the paper's Section 6.2)."""

from __future__ import annotations

from mobilenet.detection.config import DETECTION_MODELS, OUTPUTS, RECIPES, TASK, DetectionSettings, SSDConfig
from mobilenet.detection.config import KIND as FILE_KIND
from mobilenet.kinds import ModelKind, Option
from mobilenet.utils.values import positive_int, probability

KIND = ModelKind(
    name=TASK,
    description="boxes, classes and scores of the objects in each image, with SSDLite and SSD",
    evaluates="COCO's mAP, AP50 and AP75 (pycocotools) on a COCO .json, a COCO, VOC or YOLO folder, or their shards",
    file_kind=FILE_KIND,
    command="detect",
    config=SSDConfig,
    models=DETECTION_MODELS,
    default_model="ssdlite_mobilenet_v2",
    settings=DetectionSettings,
    recipes=RECIPES,
    default_recipe="ssdlite",
    task="mobilenet.detection.task:DetectionTask",
    create="mobilenet.detection.load:create_detector",
    load="mobilenet.detection.load:load_detector",
    claims="mobilenet.detection.load:is_detector_file",
    verify="mobilenet.detection.verify:verify_detector",
    predict="mobilenet.detection.predict:detect_files",
    serve="mobilenet.detection.predict:detect_images",
    describe="mobilenet.detection.predict:describe",
    evaluate="mobilenet.detection.evaluate:evaluate_files",
    shard="mobilenet.detection.shards:write_shards",
    predict_options=(Option("score", "show detections scoring at least S (default: 0.3)", probability, "S"),),
    writes=OUTPUTS,
    eval_options=(
        Option("split", "the split to score (VOC's ImageSets/Main/<split>.txt: test; COCO: val)"),
        Option("max_detections", "the detections scored per image (default: the model's own)", positive_int, "N"),
    ),
    tables={"tables5-6": "mobilenet.detection.tables:paper_table"},
)
