"""TF-slim's evaluation preprocessing (``Preprocessing(resize="central_fraction")``): tf.image.central_crop's box,
TF1's bilinear resize without half-pixel centers, the record's JSON, and the default mode left as it was."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import mobilenet
from mobilenet.classification.data import LabelledImages
from mobilenet.cli import main
from mobilenet.data.images import central_crop_box, preprocess, resize_and_crop, resize_bilinear_tf1
from mobilenet.nn.preprocessing import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, Preprocessing
from mobilenet.weights import save_weights
from mobilenet.weights.load import load_model

TF_SLIM = Preprocessing(input_size=224, crop_pct=0.875, mean=TF_MEAN, std=TF_STD, resize="central_fraction")


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random pixels: detail at every scale, so that any other resampling gives other values."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def tf1_bilinear_by_hand(pixels: np.ndarray, size: int) -> np.ndarray:
    """The legacy bilinear formula pixel by pixel, in float64: output (y, x) samples input (y * H / size,
    x * W / size), between the floor and the next pixel (the last one repeated at the edge)."""
    height, width = pixels.shape[:2]
    out = np.empty((size, size, pixels.shape[2]))
    for y in range(size):
        source_y = y * height / size
        y0 = math.floor(source_y)
        y1, fy = min(y0 + 1, height - 1), source_y - y0
        for x in range(size):
            source_x = x * width / size
            x0 = math.floor(source_x)
            x1, fx = min(x0 + 1, width - 1), source_x - x0
            top = (1 - fx) * pixels[y0, x0].astype(float) + fx * pixels[y0, x1]
            bottom = (1 - fx) * pixels[y1, x0].astype(float) + fx * pixels[y1, x1]
            out[y, x] = (1 - fy) * top + fy * bottom
    return out


# --- the crop box -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [500, 375, 333, 334, 224, 9, 2, 1])
@pytest.mark.parametrize("fraction", [0.875, 0.5, 1.0])
def test_crop_box_is_tf_central_crops(size: int, fraction: float) -> None:
    # tf.image.central_crop: start = int((size - size * fraction) / 2), crop size = size - 2 * start.
    start = int((size - size * fraction) / 2)
    assert central_crop_box(size, 7, fraction)[0::2] == (start, size - start)
    assert central_crop_box(7, size, fraction)[1::2] == (start, size - start)


def test_crop_box_on_imagenet_shapes() -> None:
    # (500 - 437.5) / 2 = 31.25 -> 31 (438 kept); (375 - 328.125) / 2 = 23.44 -> 23 (329); 333: 20.81 -> 20 (293).
    assert central_crop_box(500, 375, 0.875) == (31, 23, 469, 352)
    assert central_crop_box(333, 500, 0.875) == (20, 31, 313, 469)
    assert central_crop_box(224, 224, 0.875) == (14, 14, 210, 210)


# --- the resize ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "size"), [(37, 53, 20), (29, 23, 71), (48, 48, 48), (5, 3, 4)])
def test_resize_is_the_legacy_bilinear_formula(height: int, width: int, size: int) -> None:
    pixels = noise(height, width)
    ours = resize_bilinear_tf1(pixels, size)
    assert ours.shape == (size, size, 3) and ours.dtype == np.float32
    # within uint8 rounding (in fact float32's: the sample points are computed in float32, as TF does)
    np.testing.assert_allclose(ours, tf1_bilinear_by_hand(pixels, size), rtol=0, atol=0.5)
    assert np.abs(ours - tf1_bilinear_by_hand(pixels, size)).max() < 0.01


def tflite_resize_file(height: int, width: int, size: int) -> bytes:
    """A TFLite file of one RESIZE_BILINEAR op, float (1, H, W, 3) to (1, size, size, 3), with align_corners and
    half_pixel_centers False: TF1's legacy mode, as TensorFlow converts TF-slim's ``resize_bilinear``."""
    fb = pytest.importorskip("tflite")  # the flatbuffer schema's generated builders
    import flatbuffers

    builder = flatbuffers.Builder(1024)

    def vector(start: Callable, items: list[int], prepend: Callable) -> int:
        start(builder, len(items))
        for item in reversed(items):
            prepend(item)
        return builder.EndVector()

    def ints(start: Callable, items: list[int]) -> int:
        return vector(start, items, builder.PrependInt32)

    def tables(start: Callable, items: list[int]) -> int:
        return vector(start, items, builder.PrependUOffsetTRelative)

    def table(name: str, *fields: tuple[str, Any]) -> int:
        getattr(fb, f"{name}Start")(builder)
        for field, value in fields:
            getattr(fb, f"{name}Add{field}")(builder, value)
        return getattr(fb, f"{name}End")(builder)

    size_data = builder.CreateByteVector(np.array([size, size], np.int32).tobytes())
    buffers = [table("Buffer"), table("Buffer", ("Data", size_data))]  # 0: none (TFLite's convention), 1: the size
    shapes = [([1, height, width, 3], fb.TensorType.FLOAT32, 0), ([2], fb.TensorType.INT32, 1)]
    shapes.append(([1, size, size, 3], fb.TensorType.FLOAT32, 0))
    tensors = [
        table("Tensor", ("Shape", ints(fb.TensorStartShapeVector, shape)), ("Type", kind), ("Buffer", buffer))
        for shape, kind, buffer in shapes
    ]
    options = table("ResizeBilinearOptions", ("AlignCorners", False), ("HalfPixelCenters", False))
    operator = table(
        "Operator", ("OpcodeIndex", 0), ("Inputs", ints(fb.OperatorStartInputsVector, [0, 1])),
        ("Outputs", ints(fb.OperatorStartOutputsVector, [2])),
        ("BuiltinOptionsType", fb.BuiltinOptions.ResizeBilinearOptions), ("BuiltinOptions", options),
    )  # fmt: skip
    graph = table(
        "SubGraph", ("Tensors", tables(fb.SubGraphStartTensorsVector, tensors)),
        ("Inputs", ints(fb.SubGraphStartInputsVector, [0])), ("Outputs", ints(fb.SubGraphStartOutputsVector, [2])),
        ("Operators", tables(fb.SubGraphStartOperatorsVector, [operator])),
    )  # fmt: skip
    resize = fb.BuiltinOperator.RESIZE_BILINEAR
    code = table("OperatorCode", ("DeprecatedBuiltinCode", resize), ("BuiltinCode", resize), ("Version", 1))
    model = table(
        "Model", ("Version", 3), ("OperatorCodes", tables(fb.ModelStartOperatorCodesVector, [code])),
        ("Subgraphs", tables(fb.ModelStartSubgraphsVector, [graph])),
        ("Buffers", tables(fb.ModelStartBuffersVector, buffers)),
    )  # fmt: skip
    builder.Finish(model, file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(("height", "width", "size"), [(37, 53, 20), (29, 23, 71), (438, 329, 224), (196, 196, 128)])
def test_resize_is_google_runtimes_legacy_bilinear(height: int, width: int, size: int) -> None:
    """LiteRT's own RESIZE_BILINEAR kernel in TF1's mode, an implementation that is not ours: the same floats."""
    pytest.importorskip("ai_edge_litert", reason="Google's runtime: pip install ai-edge-litert")
    from mobilenet.runtimes.litert import interpreter

    pixels = noise(height, width)
    runtime = interpreter(content=tflite_resize_file(height, width, size))
    (source,), (target,) = runtime.get_input_details(), runtime.get_output_details()
    runtime.set_tensor(source["index"], pixels[None].astype(np.float32))
    runtime.invoke()
    np.testing.assert_allclose(resize_bilinear_tf1(pixels, size), runtime.get_tensor(target["index"])[0], atol=1e-3)


def test_resize_keeps_tf1s_corner_aligned_sample_points() -> None:
    # Without half-pixel centers a 2x upscale copies each input pixel to the even outputs, averages to the odd
    # ones and repeats the last pixel; a half-pixel resize (PyTorch's, TF2's) would give none of that.
    pixels = noise(6, 6)
    ours = resize_bilinear_tf1(pixels, 12)
    np.testing.assert_array_equal(ours[::2, ::2], pixels)
    np.testing.assert_allclose(ours[0, 1], (pixels[0, 0].astype(float) + pixels[0, 1]) / 2, atol=1e-4)
    np.testing.assert_array_equal(ours[-1, -1], pixels[-1, -1])


def test_whole_preprocessing_is_crop_then_resize_then_scale_to_minus_one_one() -> None:
    pixels = noise(375, 500)
    left, top, right, bottom = 31, 23, 469, 352
    expected = tf1_bilinear_by_hand(pixels[top:bottom, left:right], 224) / 127.5 - 1
    ours = preprocess(pixels, TF_SLIM)
    assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), expected, rtol=0, atol=0.5 / 127.5)
    # not PIL's antialiased resize of the same crop: the test above tells the two apart
    pil = np.asarray(Image.fromarray(pixels).crop((left, top, right, bottom)).resize((224, 224), Image.BILINEAR))
    assert np.abs(pil / 127.5 - 1 - expected).max() > 0.2
    # a dataset of labelled images preprocesses as the model does
    np.testing.assert_array_equal(LabelledImages([(Image.fromarray(pixels), 0)], ["a"], TF_SLIM)[0][0], ours)


# --- the record ---------------------------------------------------------------------------------------------


def test_record_round_trips_and_older_records_read_as_short_side() -> None:
    assert Preprocessing.from_json(TF_SLIM.to_json()) == TF_SLIM
    assert json.loads(TF_SLIM.to_json())["resize"] == "central_fraction"
    # the default is written as before the field existed, and a record without it reads as the default
    before = '{"crop_pct": 0.875, "input_size": 224, "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}'  # noqa: E501
    assert Preprocessing(mean=TF_MEAN, std=TF_STD).to_json() == before
    assert Preprocessing.from_json(before) == Preprocessing(mean=TF_MEAN, std=TF_STD)
    assert Preprocessing.from_json(before).resize == "short_side"


def test_record_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="'squash' is not one of short_side, central_fraction"):
        Preprocessing(resize="squash")
    with pytest.raises(ValueError, match="interpolation must be 'bilinear', not 'bicubic'"):
        Preprocessing(resize="central_fraction", interpolation="bicubic")
    with pytest.raises(ValueError, match="use preprocess_rgb"):
        resize_and_crop(Image.new("RGB", (8, 8)), TF_SLIM)


def test_description_names_the_mode() -> None:
    assert Preprocessing().describe_resize() == "short side to 256 (bilinear), crop 224"
    assert TF_SLIM.describe_resize().startswith("central 87.5% of height and width, resized to 224x224 (TF-slim")


# --- the default mode, as it was ----------------------------------------------------------------------------


def test_default_mode_is_unchanged() -> None:
    """Short side to round(224 / 0.875) = 256 by PIL's bilinear, center crop 224, ImageNet's mean and std."""
    image = Image.fromarray(noise(375, 500))
    resized = image.resize((round(500 * 256 / 375), 256), Image.Resampling.BILINEAR)  # 341 x 256
    left = (341 - 224) // 2
    crop = np.asarray(resized.crop((left, 16, left + 224, 240)), dtype=np.float32)
    mean, std = np.array(IMAGENET_MEAN, dtype=np.float32), np.array(IMAGENET_STD, dtype=np.float32)
    expected = torch.from_numpy(crop).permute(2, 0, 1)
    expected = (expected / 255 - torch.from_numpy(mean)[:, None, None]) / torch.from_numpy(std)[:, None, None]
    assert torch.equal(preprocess(image, Preprocessing()), expected)


def test_convert_sets_the_resize(tmp_path) -> None:
    source, out = tmp_path / "small.safetensors", tmp_path / "tf_slim.safetensors"
    save_weights(mobilenet.mobilenet_v2(width_mult=0.35, num_classes=3, input_size=64), source)
    assert main(["convert", str(source), str(out), "--resize", "central_fraction"]) == 0
    pre = load_model(out).preprocessing
    assert (pre.resize, pre.input_size, pre.crop_pct) == ("central_fraction", 64, 0.875)
    assert load_model(source).preprocessing.resize == "short_side"
