"""Image classification's registration: what the registry knows of the MobileNet classifiers.

It claims TFLite classifiers (after the other kinds have claimed theirs), and reads every weights file no kind
claims (torchvision and timm state dicts, our files of the ``mobilenet`` kind): its loaders say what is wrong
with a file that holds no classifier.
"""

from __future__ import annotations

from pathlib import Path

from mobilenet.classification.config import DIGITS, RECIPES, TASK, ClassificationSettings
from mobilenet.classification.published import PUBLISHED
from mobilenet.kinds import ModelKind, Option
from mobilenet.nn.config import MOBILENET, ModelConfig
from mobilenet.nn.variants import MODELS
from mobilenet.utils.values import positive_int

KIND = ModelKind(
    name=TASK,
    description="the top classes of each image, with MobileNetV1 and V2",
    evaluates="top-1 and top-5 on root/<class>/<image> folders or their shards (ImageNet synset folders with "
    "--class-index)",
    file_kind=MOBILENET,
    command="predict",
    config=ModelConfig,
    models=MODELS,
    default_model="mobilenet_v2_100",
    settings=ClassificationSettings,
    recipes=RECIPES,
    default_recipe="modern",
    demo_recipe=DIGITS,
    task="mobilenet.classification.task:ClassificationTask",
    create="mobilenet.classification.load:create_classifier",
    load="mobilenet.classification.load:load_classifier",
    claims="mobilenet.classification.load:is_classifier_file",
    verify="mobilenet.weights.verify:verify",
    predict="mobilenet.classification.predict:classify",
    serve="mobilenet.classification.predict:classify_images",
    describe="mobilenet.classification.predict:describe",
    evaluate="mobilenet.classification.evaluate:evaluate_files",
    shard="mobilenet.classification.shards:write_shards",
    fallback=True,
    predict_options=(Option("top", "how many classes to show per image (default: 5)", positive_int, "K"),),
    eval_options=(
        Option(
            "class_index",
            "synset -> index JSON (imagenet_class_index.json), for folders named by ImageNet synsets",
            Path,
            "FILE",
        ),
    ),
    published=PUBLISHED,
)
