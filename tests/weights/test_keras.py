"""Keras's MobileNets read without Keras, checked against Keras 3 (on PyTorch) running the same files.

Keras writes each file here, as it writes the published ones: keras-applications' Keras 2 layout (``.h5``, by
the published names), Keras 3's ``.weights.h5`` and ``.keras``. Weights are random with BatchNorm statistics far
from the identity, so that every tensor read in the wrong place or layout shows in the logits.
"""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest
import torch
from benchmarks.references import import_keras

from mobilenet.weights import load_model
from mobilenet.weights.verify import verify
from tests.helpers.data import shared_path

pytestmark = [pytest.mark.reference, pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # Keras on NumPy 2

# keras-applications' published cells: 30 for V2 (alpha x rows), 16 for V1.
V2_ALPHAS, V2_ROWS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), (96, 128, 160, 192, 224)
V1_ALPHAS, V1_ROWS = (0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)
V1_ALPHA_TEXT = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}


def randomized(model, seed: int = 0):
    """A Keras model with random weights of trained scale: BatchNorm far from the identity."""
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if getattr(layer, "layers", None):  # a model inside the model
            randomized(layer, seed + 1)
            continue
        if not weights:
            continue
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = (w.shape for w in weights)
            layer.set_weights([
                generator.normal(1, 0.2, gamma), generator.normal(0, 0.2, beta),
                generator.normal(0, 0.2, mean), generator.uniform(0.5, 2.0, variance),
            ])  # fmt: skip
        else:
            fan_in = max(int(np.prod(weights[0].shape[:-1])), 1)
            layer.set_weights([generator.normal(0, (2 / fan_in) ** 0.5, w.shape) for w in weights])
    return model


def legacy_h5(model, path) -> None:
    """Keras 2's weights layout, that of keras-applications' published files."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def v2(keras, alpha: float, rows: int, **settings):
    """Keras's MobileNetV2 as keras-applications builds it, with logits out (``settings``: include_top, ...)."""
    return keras.applications.MobileNetV2(**builder_settings(alpha, rows, settings))


def v1(keras, alpha: float, rows: int, **settings):
    return keras.applications.MobileNet(**builder_settings(alpha, rows, settings))


def builder_settings(alpha: float, rows: int, settings: dict) -> dict:
    return {"alpha": alpha, "input_shape": (rows, rows, 3), "weights": None, "classifier_activation": None, **settings}


def logits_of_both(keras, reference, path, rows: int, **overrides) -> tuple[np.ndarray, np.ndarray]:
    """Keras's outputs and ours (loaded from ``path``) on the same random images of ``rows`` pixels."""
    images = np.random.default_rng(rows).uniform(-1, 1, (2, rows, rows, 3)).astype(np.float32)
    theirs = keras.ops.convert_to_numpy(reference(images, training=False))
    model = load_model(path, **overrides).eval()
    with torch.no_grad():
        mine = model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    return mine, theirs


@pytest.mark.parametrize("alpha", V2_ALPHAS)
def test_published_v2_cells_of_keras_applications_give_keras_logits(tmp_path, alpha) -> None:
    """Every alpha against Keras, at a resolution that turns with alpha (each of the five in turn); every one of the
    30 published names read as its cell. The weights of a row are the same at every resolution."""
    keras = import_keras()
    rows = V2_ROWS[V2_ALPHAS.index(alpha) % len(V2_ROWS)]
    path = tmp_path / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}.h5"  # the published name
    reference = randomized(v2(keras, alpha, rows))
    legacy_h5(reference, path)
    mine, theirs = logits_of_both(keras, reference, path, rows)
    assert np.abs(mine - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())
    assert (mine.argmax(1) == theirs.argmax(1)).all()
    for size in V2_ROWS:
        named = path.rename(path.with_name(f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}.h5"))
        config, path = load_model(named).config, named
        read = (config.arch, config.width_mult, config.input_size, config.num_classes)
        assert read == ("mobilenet_v2", alpha, size, 1000)
        assert (config.padding, config.bn_eps, config.bn_momentum) == ("tf_same", 1e-3, 0.001)


@pytest.mark.parametrize("alpha", V1_ALPHAS)
def test_published_v1_cells_of_keras_applications_give_keras_logits(tmp_path, alpha) -> None:
    keras = import_keras()
    rows = V1_ROWS[V1_ALPHAS.index(alpha)]
    path = tmp_path / f"mobilenet_{V1_ALPHA_TEXT[alpha]}_{rows}_tf.h5"
    reference = randomized(v1(keras, alpha, rows))
    legacy_h5(reference, path)
    mine, theirs = logits_of_both(keras, reference, path, rows)
    assert np.abs(mine - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())
    for size in V1_ROWS:
        named = path.rename(path.with_name(f"mobilenet_{V1_ALPHA_TEXT[alpha]}_{size}_tf.h5"))
        config, path = load_model(named).config, named
        assert (config.arch, config.width_mult, config.input_size, config.bn_momentum) == (
            "mobilenet_v1",
            alpha,
            size,
            0.01,
        )


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v1"])
def test_keras3_files_and_a_backbone_without_top(tmp_path, arch) -> None:
    keras = import_keras()
    build = v2 if arch == "mobilenet_v2" else v1
    reference = randomized(build(keras, 0.5, 128, classes=7))
    reference.save_weights(tmp_path / "m.weights.h5")
    reference.save(tmp_path / "m.keras")
    for name in ("m.weights.h5", "m.keras"):
        mine, theirs = logits_of_both(keras, reference, tmp_path / name, 128, input_size=128)
        assert np.abs(mine - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max()), name
    assert load_model(tmp_path / "m.keras").config.input_size == 128  # the saved model's input layer says
    assert load_model(tmp_path / "m.keras").config.num_classes == 7

    backbone = randomized(build(keras, 0.5, 128, include_top=False, pooling="avg"))
    legacy_h5(backbone, tmp_path / "m_no_top.h5")
    mine, theirs = logits_of_both(keras, backbone, tmp_path / "m_no_top.h5", 128)
    assert mine.shape == theirs.shape and np.abs(mine - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())


def test_bad_keras_files_get_one_line(tmp_path) -> None:
    (tmp_path / "text.h5").write_text("not HDF5")
    with h5py.File(tmp_path / "other.h5", "w") as file:  # another network's weights in Keras 2's layout
        file.attrs["layer_names"] = [b"dense"]
        file.create_group("dense").attrs["weight_names"] = [b"dense/kernel:0"]
        file["dense"].create_dataset("dense/kernel:0", data=np.zeros((4, 2), np.float32))
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    expected = {
        "text.h5": "is a damaged or foreign file, not Keras weights",
        "other.h5": "holds Keras weights of no MobileNetV1/V2",
        "empty.keras": "is a damaged or foreign file, not Keras weights",
    }
    for name, message in expected.items():
        with pytest.raises(ValueError, match=message) as caught:
            load_model(tmp_path / name)
        assert "\n" not in str(caught.value)


def test_truncated_keras_file_gets_one_line(tmp_path) -> None:
    keras = import_keras()
    legacy_h5(v2(keras, 0.35, 96), tmp_path / "m.h5")
    data = (tmp_path / "m.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged or foreign file, not Keras weights"):
        load_model(tmp_path / "cut.h5")


def keras_v1_of(model):
    """Keras's MobileNetV1 holding our model's weights: Keras's layout of each tensor (what the reader undoes)."""
    keras = import_keras()
    config = model.config
    reference = v1(keras, config.width_mult, config.input_size, classes=config.num_classes)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    convs = [k.removesuffix(".weight") for k, v in state.items() if v.ndim == 4 and k.startswith("features.")]
    names = ["conv1"] + [f"conv_{part}_{block}" for block in range(1, 14) for part in ("dw", "pw")]
    for name, conv in zip(names, convs, strict=True):
        weight = state[f"{conv}.weight"]
        depthwise = weight.shape[1] == 1 and name.startswith("conv_dw")
        reference.get_layer(name).set_weights(
            [weight.transpose(2, 3, 0, 1) if depthwise else weight.transpose(2, 3, 1, 0)]
        )
        norm = f"{conv[:-1]}{int(conv[-1]) + 1}"  # the BatchNorm is the module after the conv
        reference.get_layer(f"{name}_bn").set_weights(
            [state[f"{norm}.{t}"] for t in ("weight", "bias", "running_mean", "running_var")]
        )
    classifier = state["classifier.1.weight"]
    reference.get_layer("conv_preds").set_weights([classifier.T[None, None], state["classifier.1.bias"]])
    return reference


@pytest.mark.shared
def test_verify_runs_keras_beside_on_real_weights_and_names_a_wrong_padding(tmp_path) -> None:
    """Google's MobileNetV1 0.25 (Coral's file, dequantized) written by Keras in the published layout: on real
    images, our reading agrees with Keras on every one, and a symmetric padding is named as wrong."""
    keras = import_keras()
    coral = load_model(shared_path("weights/mobilenet_v1_0.25_128_quant.tflite"))
    path = tmp_path / "mobilenet_2_5_128_tf.h5"
    legacy_h5(keras_v1_of(coral), path)
    images = sorted(shared_path("imagenet-sample").glob("*.JPEG"))[::25]
    found = verify(path, images)
    read = (found.format, found.reference, found.arch, found.width_mult, found.input_size, found.padding)
    assert read == ("keras", f"keras {keras.__version__}", "mobilenet_v1", 0.25, 128, "tf_same")
    assert found.agreement == 1.0 and found.max_abs_diff < 1e-3 and found.wrong_conventions == []
    wrong = verify(path, images, padding="symmetric")
    assert [c.name for c in wrong.wrong_conventions] == ["padding"], wrong.lines()
    assert wrong.verdict.endswith("this file needs tf_same")


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v1"])
def test_a_keras_mobilenet_under_a_users_head(tmp_path, arch) -> None:
    """Keras's way to fine-tune: ``Sequential([base(include_top=False), pooling, dropout, Dense(n)])``, in each of
    Keras's formats; a head of more than one dense layer is refused in one line."""
    keras = import_keras()
    build = v2 if arch == "mobilenet_v2" else v1
    base = build(keras, 0.5, 128, include_top=False)
    pooled = [keras.Input((128, 128, 3)), base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(0.2)]
    reference = randomized(keras.Sequential([*pooled, keras.layers.Dense(5)]))
    legacy_h5(reference, tmp_path / "m.h5")
    reference.save_weights(tmp_path / "m.weights.h5")
    reference.save(tmp_path / "m.keras")
    for name in ("m.h5", "m.weights.h5", "m.keras"):
        mine, theirs = logits_of_both(keras, reference, tmp_path / name, 128)
        assert mine.shape == (2, 5) and np.abs(mine - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max()), name

    deeper = keras.Sequential([*pooled, keras.layers.Dense(8), keras.layers.Dense(5)])
    deeper.save_weights(tmp_path / "deeper.weights.h5")
    with pytest.raises(ValueError, match="has a head of its own after the MobileNet") as caught:
        load_model(tmp_path / "deeper.weights.h5")
    assert "\n" not in str(caught.value)
