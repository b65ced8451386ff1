"""Hugging Face transformers' Mobile DeepLabv3 (``MobileNetV2ForSemanticSegmentation``, the layout of
``google/deeplabv3_mobilenet_v2_1.0_513``) read into our :class:`DeepLabV3`.

The backbone's tensors are named as in transformers' classifier; the head's four layers map to ours. TensorFlow's
DeepLab normalises its head with BatchNorm eps 1e-5 on a backbone at 1e-3: both are kept (``head_bn_eps``). Its
VOC classes keep "background": here it is a class of its own, not TensorFlow's 1001st.
"""

from __future__ import annotations

from pathlib import Path

from mobilenet.nn.preprocessing import TF_MEAN, TF_STD, Preprocessing
from mobilenet.segmentation.config import TF_HEAD_BN_EPS, DeepLabConfig
from mobilenet.segmentation.model import DeepLabV3
from mobilenet.weights.foreign import state_dict_file
from mobilenet.weights.huggingface import (
    CONFIG_FILE,
    architecture,
    backbone_settings,
    class_names,
    key_names,
    preprocessing,
    read_folder,
    renamed,
    weights_file,
)
from mobilenet.weights.load import load_state_dict

SEGMENTER = "MobileNetV2ForSemanticSegmentation"
# transformers' head layers -> ours: the pooled branch, the 1x1 branch, the projection, the logits.
HEAD = {
    "segmentation_head.conv_pool.convolution": "image_pooling.0",
    "segmentation_head.conv_pool.normalization": "image_pooling.1",
    "segmentation_head.conv_aspp.convolution": "branches.0.0",
    "segmentation_head.conv_aspp.normalization": "branches.0.1",
    "segmentation_head.conv_projection.convolution": "projection.0",
    "segmentation_head.conv_projection.normalization": "projection.1",
    "segmentation_head.classifier.convolution": "logits",
}


def is_transformers_deeplab(path: str | Path) -> bool:
    """Whether ``path`` is a transformers folder of a Mobile DeepLabv3, or its weights file."""
    return architecture(path) == SEGMENTER


def import_transformers_deeplab(path: str | Path) -> DeepLabV3:
    """The :class:`DeepLabV3` of a transformers folder (or its weights file): logits equal to transformers' model,
    upsampled to the input as TF's DeepLab does."""
    path = Path(path)
    found = read_folder(path)
    if found is None or found.architecture != SEGMENTER:
        raise ValueError(f"{path} is no transformers {SEGMENTER}: its folder's config.json does not name one")
    folder, settings, layout = found.path, found.settings, found.layout
    weights = weights_file(path)
    tensors = state_dict_file(weights)
    # transformers builds V2's final 1x1 conv, which its head does not read (nor does ours): left behind.
    unused = f"{layout.model_type}.conv_1x1."
    names = {**{k: f"backbone.{v}" for k, v in key_names(layout).items()}, **HEAD}
    state_dict = renamed({k: v for k, v in tensors.items() if not k.startswith(unused)}, names, str(weights))
    if "logits.bias" not in state_dict:
        raise ValueError(f"{weights} holds no segmentation head: its config.json says {SEGMENTER}, its tensors do not")
    common = backbone_settings(settings, str(folder / CONFIG_FILE))
    config = DeepLabConfig(
        arch=layout.arch,
        num_classes=len(state_dict["logits.bias"]),
        head_bn_eps=TF_HEAD_BN_EPS,  # transformers' head, whatever the backbone's layer_norm_eps
        **{**common, "output_stride": settings.get("output_stride", 8)},
    )
    model = DeepLabV3(config)
    load_state_dict(model, state_dict, source=str(weights))
    model.class_names = class_names(settings)
    default = Preprocessing(input_size=config.input_size, crop_pct=1.0, mean=TF_MEAN, std=TF_STD)
    model.preprocessing = preprocessing(folder, default)
    return model
