"""TF-slim MobileNet checkpoints and frozen graphs written by TensorFlow, with TensorFlow's logits: the test fixture.

    tf/bin/python benchmarks/tf_slim_reference.py

Runs in a TensorFlow environment of its own (``python -m venv tf && tf/bin/pip install tensorflow-cpu numpy
pillow``; tensorflow-cpu 2.21 was used); it imports nothing of mobilenet. For two published classifier shapes (V1
0.25 at 128 and V2 0.35 at 96, 1001 classes) it builds TF-slim's network in a TF1 graph, under TF-slim's variable
names (``MobilenetV1/Conv2d_1_depthwise/depthwise_weights``, ``MobilenetV2/expanded_conv_3/expand/BatchNorm/gamma``,
...) with its ops (SAME padding, ``FusedBatchNormV3`` at eps 1e-3, ReLU6, a biased 1x1 conv for the logits), saves
a checkpoint with ``tf.compat.v1.train.Saver`` (an ``.index`` and one ``.data`` shard, as TF-slim's published
``.ckpt`` files) and a frozen GraphDef (``convert_variables_to_constants``: each variable a Const read through
``<name>/read``, as TF-slim's ``_frozen.pb``), and records TensorFlow's logits on a deterministic input and on two
ImageNet images of ``../shared`` decoded with PIL and preprocessed by TF-slim's evaluation (``central_crop`` 0.875,
TF1 bilinear resize, [-1, 1]). The same for tensorflow/models' DeepLab on V2 0.5 (Coral's ``dm05``: widths rounded
to whole channels, output stride 8 by dilated depthwise convs, the head's BatchNorm at eps 1e-5, 21 VOC classes) at
129x129: its logits on the deterministic input, every 8th pixel's, and every pixel's class.

The tests that run TensorFlow itself (``mobilenet verify`` beside a frozen graph) skip where it is not installed;
to run them, add this package and its test tools to that environment (``tf/bin/pip install torch==2.13.0
safetensors tqdm tensorboard pytest && tf/bin/pip install --no-deps -e .``), then ``tf/bin/python -m pytest
tests/weights/test_tf_slim.py tests/segmentation/test_tf_deeplab.py``.

The variables are patterned, not trained: each is a 61-value random vector repeated (so the files compress to a few
percent), scaled so that activations neither vanish nor explode, with BatchNorm statistics away from 0 and 1.
"""

from __future__ import annotations

import lzma
import os
import shutil
import tempfile
from pathlib import Path

# TF's plain kernels, not oneDNN's: the same numbers on any x86 CPU, run after run.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_SHARED", ROOT.parent / "shared"))
IMAGES = SHARED / "data" / "imagenet-sample"
OUT = ROOT / "tests" / "data" / "tf_slim"
IMAGE_NAMES = ("n01530575_brambling.JPEG", "n02110185_Siberian_husky.JPEG")
PERIOD = 61  # each variable repeats a vector of this many values (a prime: no channel count divides it)
CLASSES = 1001  # TF-slim's: index 0 is the background

# MobileNetV1 (Howard et al., 2017, Table 1): the stem, then separable layers as (stride, output channels).
V1_STEM = 32
V1_LAYERS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), *((1, 512),) * 5, (2, 1024), (1, 1024))
DEEPLAB_DEPTH, DEEPLAB_HEAD_EPS, VOC_CLASSES = 256, 1e-5, 21
# MobileNetV2 (Sandler et al., 2018, Table 2): (expansion t, output channels c, repeats n, first stride s).
V2_STEM, V2_LAST = 32, 1280
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8, least: int = 8) -> int:
    """TF-slim V2's channel rounding: to the nearest multiple of ``divisor``, at least ``least``, never more than 10%
    down. DeepLab rounds widths below 1.0 to whole channels (``divisor`` 1)."""
    rounded = max(least, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class Builder:
    """Creates TF-slim-named variables with patterned values and the ops that read them."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.norms: list[tuple[tf.Tensor, tf.Variable, tf.Variable]] = []  # (input, moving mean, moving variance)

    def patterned(self, shape: tuple[int, ...], scale: float, center: float = 0.0) -> np.ndarray:
        base = self.rng.standard_normal(PERIOD).astype(np.float32)
        size = int(np.prod(shape))
        return (center + scale * np.resize(base, size)).reshape(shape).astype(np.float32)

    def variable(self, name: str, value: np.ndarray) -> tf.Variable:
        return tf.compat.v1.get_variable(name, initializer=tf.constant(value))

    def conv(
        self, x: tf.Tensor, scope: str, out: int, kernel: int, stride: int, act: bool = True, eps: float = 1e-3
    ) -> tf.Tensor:
        fan_in = kernel * kernel * int(x.shape[-1])
        with tf.compat.v1.variable_scope(scope):
            weights = self.variable("weights", self.patterned((kernel, kernel, int(x.shape[-1]), out), fan_in**-0.5))
            y = tf.nn.conv2d(x, weights, [1, stride, stride, 1], "SAME")
            return self.norm(y, act, eps)

    def depthwise(self, x: tf.Tensor, scope: str, stride: int, rate: int = 1) -> tf.Tensor:
        with tf.compat.v1.variable_scope(scope):
            weights = self.variable("depthwise_weights", self.patterned((3, 3, int(x.shape[-1]), 1), 1 / 3))
            y = tf.nn.depthwise_conv2d(x, weights, [1, stride, stride, 1], "SAME", dilations=[rate, rate])
            return self.norm(y, True)

    def norm(self, x: tf.Tensor, act: bool, eps: float = 1e-3) -> tf.Tensor:
        channels = int(x.shape[-1])
        with tf.compat.v1.variable_scope("BatchNorm"):
            gamma = self.variable("gamma", self.patterned((channels,), 0.1, 1.0))
            beta = self.variable("beta", self.patterned((channels,), 0.1))
            mean = self.variable("moving_mean", self.patterned((channels,), 0.2))
            variance = self.variable("moving_variance", np.abs(self.patterned((channels,), 0.3, 1.5)))
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean, variance, epsilon=eps, is_training=False)
            self.norms.append((x, mean, variance))
        if not act:
            return y
        return tf.nn.relu(y) if eps == DEEPLAB_HEAD_EPS else tf.nn.relu6(y)  # DeepLab's head: ReLU

    def calibrate(self, session: tf.compat.v1.Session, feed: dict) -> None:
        """Set each BatchNorm's statistics, layer after layer, near those of its input on ``feed``, as training
        would: the signal then reaches the logits (with patterned statistics it fades into the biases)."""
        for inputs, mean, variance in self.norms:
            values = session.run(inputs, feed)
            jitter = np.resize(self.rng.uniform(0.8, 1.2, PERIOD).astype(np.float32), values.shape[-1])
            mean.load(values.mean(axis=(0, 1, 2)) * jitter, session)
            variance.load(values.var(axis=(0, 1, 2)) * jitter, session)

    def logits(self, x: tf.Tensor, scope: str) -> tf.Tensor:
        pooled = tf.reduce_mean(x, [1, 2], keepdims=True, name=f"{scope}/AvgPool")
        with tf.compat.v1.variable_scope(f"{scope}/Conv2d_1c_1x1"):
            channels = int(x.shape[-1])
            weights = self.variable("weights", self.patterned((1, 1, channels, CLASSES), 3 * channels**-0.5))
            biases = self.variable("biases", self.patterned((CLASSES,), 0.1))
            y = tf.nn.bias_add(tf.nn.conv2d(pooled, weights, [1, 1, 1, 1], "SAME"), biases)
        return tf.squeeze(y, [1, 2], name=f"{scope}/SpatialSqueeze")


def mobilenet_v1(x: tf.Tensor, width: float, builder: Builder) -> tf.Tensor:
    with tf.compat.v1.variable_scope("MobilenetV1"):
        x = builder.conv(x, "Conv2d_0", max(int(V1_STEM * width), 8), 3, 2)
        for index, (stride, out) in enumerate(V1_LAYERS, start=1):
            x = builder.depthwise(x, f"Conv2d_{index}_depthwise", stride)
            x = builder.conv(x, f"Conv2d_{index}_pointwise", max(int(out * width), 8), 1, 1)
        return builder.logits(x, "Logits")


def v2_base(x: tf.Tensor, width: float, builder: Builder, divisor: int = 8, output_stride: int = 32) -> tf.Tensor:
    """V2's layers up to its last bottleneck. Past ``output_stride`` a layer keeps stride 1 and dilates its depthwise
    conv by the rate so far, which then grows by the stride it dropped (TF-slim's ``mobilenet_base``)."""
    x = builder.conv(x, "Conv", make_divisible(V2_STEM * width, divisor), 3, 2)
    block, current, rate = 0, 2, 1
    for expansion, channels, repeats, first_stride in V2_STAGES:
        for repeat in range(repeats):
            scope = "expanded_conv" + (f"_{block}" if block else "")
            stride, layer_rate, inputs = first_stride if repeat == 0 else 1, 1, x
            if current == output_stride:
                stride, layer_rate, rate = 1, rate, rate * stride
            else:
                current *= stride
            out = make_divisible(channels * width, divisor)
            with tf.compat.v1.variable_scope(scope):
                if expansion != 1:
                    x = builder.conv(x, "expand", make_divisible(int(x.shape[-1]) * expansion), 1, 1)
                x = builder.depthwise(x, "depthwise", stride, layer_rate)
                x = builder.conv(x, "project", out, 1, 1, act=False)
            if stride == 1 and int(inputs.shape[-1]) == out:
                x = tf.add(x, inputs, name=f"{scope}/add")
            block += 1
    return x


def mobilenet_v2(x: tf.Tensor, width: float, builder: Builder) -> tf.Tensor:
    with tf.compat.v1.variable_scope("MobilenetV2"):
        x = v2_base(x, width, builder)
        x = builder.conv(x, "Conv_1", make_divisible(V2_LAST * max(width, 1.0)), 1, 1)
        return builder.logits(x, "Logits")


def deeplab(x: tf.Tensor, width: float, builder: Builder) -> tf.Tensor:
    """Mobile DeepLabv3 as tensorflow/models' DeepLab builds it (no ASPP atrous branches, no decoder): V2 at output
    stride 8 to its last bottleneck, the pooled branch and the 1x1 branch (BatchNorm eps 1e-5, ReLU), their
    projection, the logits, resized to the input with corners aligned."""
    size = [int(x.shape[1]), int(x.shape[2])]
    with tf.compat.v1.variable_scope("MobilenetV2"):
        features = v2_base(x, width, builder, divisor=1 if width < 1 else 8, output_stride=8)
    pooled = tf.reduce_mean(features, [1, 2], keepdims=True)
    pooled = builder.conv(pooled, "image_pooling", DEEPLAB_DEPTH, 1, 1, eps=DEEPLAB_HEAD_EPS)
    pooled = tf.compat.v1.image.resize_bilinear(pooled, tf.shape(features)[1:3], align_corners=True)
    branch = builder.conv(features, "aspp0", DEEPLAB_DEPTH, 1, 1, eps=DEEPLAB_HEAD_EPS)
    merged = tf.concat([pooled, branch], 3)
    projected = builder.conv(merged, "concat_projection", DEEPLAB_DEPTH, 1, 1, eps=DEEPLAB_HEAD_EPS)
    with tf.compat.v1.variable_scope("logits/semantic"):
        weights = builder.variable(
            "weights", builder.patterned((1, 1, DEEPLAB_DEPTH, VOC_CLASSES), 3 * DEEPLAB_DEPTH**-0.5)
        )
        biases = builder.variable("biases", builder.patterned((VOC_CLASSES,), 0.1))
        logits = tf.nn.bias_add(tf.nn.conv2d(projected, weights, [1, 1, 1, 1], "SAME"), biases)
    return tf.compat.v1.image.resize_bilinear(logits, size, align_corners=True, name="ResizeBilinear_logits")


MODELS = {
    "mobilenet_v1_0.25_128": (mobilenet_v1, 0.25, 128, 1),
    "mobilenet_v2_0.35_96": (mobilenet_v2, 0.35, 96, 2),
    "deeplabv3_mnv2_dm05_129": (deeplab, 0.5, 129, 3),  # Coral's dm05 width, at a quarter of 513 (plus one)
}


def synthetic_input(size: int) -> np.ndarray:
    """A deterministic input in [-1, 1] that the test rebuilds with numpy alone."""
    return np.sin(0.01 * np.arange(size * size * 3, dtype=np.float32)).reshape(1, size, size, 3)


def tf_slim_eval_input(pixels: tf.Tensor, size: int) -> tf.Tensor:
    """TF-slim's evaluation preprocessing (inception_preprocessing): [0, 1], central 87.5%, TF1 bilinear, [-1, 1]."""
    image = tf.image.convert_image_dtype(pixels, tf.float32)
    image = tf.image.central_crop(image, central_fraction=0.875)
    image = tf.compat.v1.image.resize_bilinear(image[None], [size, size], align_corners=False)
    return (image - 0.5) * 2.0


def write(name: str, folder: Path) -> dict[str, np.ndarray]:
    build, width, size, seed = MODELS[name]
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, size, size, 3], name="input")
        builder = Builder(seed)
        logits = build(inputs, width, builder)
        output = logits.name.split(":")[0]
        pixels = tf.compat.v1.placeholder(tf.uint8, [None, None, 3], name="pixels")
        preprocessed = tf_slim_eval_input(pixels, size)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            images = [np.asarray(Image.open(IMAGES / image).convert("RGB"), dtype=np.uint8) for image in IMAGE_NAMES]
            batch = [session.run(preprocessed, {pixels: image}) for image in images]
            segmenter = build is deeplab
            if segmenter:  # the images stay unused: a segmenter's test is on the synthetic input
                batch = [np.cos(synthetic_input(size) * 3)]
            builder.calibrate(session, {inputs: np.concatenate([synthetic_input(size), *batch])})
            saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
            saver.save(session, str(folder / f"{name}.ckpt"), write_meta_graph=False, write_state=False)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), [output])
            (folder / f"{name}_frozen.pb").write_bytes(frozen.SerializeToString())
            synthetic = session.run(logits, {inputs: synthetic_input(size)})[0]
            if segmenter:  # [129, 129, 21]: every 8th pixel's logits, and every pixel's class
                return {
                    "synthetic_logits": synthetic[::8, ::8],
                    "synthetic_mask": synthetic.argmax(-1).astype(np.uint8),
                }
            results = {"synthetic_logits": synthetic}
            results["image_logits"] = session.run(logits, {inputs: np.concatenate(batch)})
    return results


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"tf_version": np.array(tf.__version__), "image_names": np.array(IMAGE_NAMES)}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        tf.compat.v1.disable_eager_execution()
        tf.compat.v1.disable_resource_variables()  # TF1's variables: a frozen graph reads each through <name>/read
        for name in MODELS:
            for key, value in write(name, folder).items():
                arrays[f"{name}/{key}"] = value
        for file in sorted(folder.iterdir()):  # the index is small; the tensors and graphs xz to a few percent
            if file.suffix == ".index":
                shutil.copy(file, OUT / file.name)
                continue
            (OUT / f"{file.name}.xz").write_bytes(lzma.compress(file.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
    np.savez_compressed(OUT / "reference.npz", **arrays)
    for file in sorted(OUT.iterdir()):
        print(f"{file.name}: {file.stat().st_size / 1e3:.1f} KB")


if __name__ == "__main__":
    main()
