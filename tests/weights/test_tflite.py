"""Google's published TFLite MobileNets (../shared/data/weights), imported and scored on real images."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import mobilenet
from mobilenet.classification.metrics import topk_accuracy
from mobilenet.classification.predict import predict_logits
from mobilenet.inference.edge import top1_agreement
from mobilenet.weights import load_model
from mobilenet.weights.tflite import TFLiteError, import_tflite, litert_logits, read_tflite
from tests.helpers.data import shared_path
from tests.helpers.models import tiny_weights
from tests.helpers.tflite_surgery import fully_connected, headless

pytestmark = pytest.mark.shared

# file, arch, width, input size, minimum top-1 on imagenet-sample (500 train-like images). The V1
# floors sit a few points below what was measured (80.6%, 69.8%, 46.2%; BENCHMARKS.md).
CLASSIFIERS = [
    ("mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v2", 1.0, 224, 0.85),
    ("mobilenet_v1_0.75_192_quant.tflite", "mobilenet_v1", 0.75, 192, 0.75),
    ("mobilenet_v1_0.5_160_quant.tflite", "mobilenet_v1", 0.5, 160, 0.65),
    ("mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1", 0.25, 128, 0.42),
]
# Top-1 agreement with LiteRT, which computes in int8: the smaller the model, the more predictions
# have margins that integer rounding flips (measured 98.2%, 98.2%, 97.2%, 94.0%).
MIN_AGREEMENT = {CLASSIFIERS[0][0]: 0.97, CLASSIFIERS[1][0]: 0.97, CLASSIFIERS[2][0]: 0.95, CLASSIFIERS[3][0]: 0.90}


@pytest.fixture(scope="session")
def sample(synset_to_index) -> tuple[list[Path], torch.Tensor]:
    files = sorted(shared_path("imagenet-sample").glob("*.JPEG"))
    labels = torch.tensor([synset_to_index[f.name.split("_")[0]] for f in files])
    assert len(files) == 500
    return files, labels


@pytest.fixture(scope="session")
def scored(sample) -> dict[str, tuple[torch.Tensor, float]]:
    """Each classifier's logits on the sample and its top-1, computed once."""
    files, labels = sample
    results = {}
    for name, *_ in CLASSIFIERS:
        model = load_model(weights(name))  # the file decides the architecture
        logits = predict_logits(model, files)
        results[name] = (logits, topk_accuracy(logits, labels))
    return results


def weights(name: str) -> Path:
    return shared_path(f"weights/{name}")


@pytest.mark.parametrize(("name", "arch", "width", "size", "_floor"), CLASSIFIERS)
def test_import_recognises_the_architecture(name: str, arch: str, width: float, size: int, _floor: float) -> None:
    model, pre = import_tflite(weights(name))
    config = model.config
    assert (config.arch, config.width_mult, config.input_size) == (arch, width, size)
    assert config.padding == "tf_same" and config.num_classes == 1000
    assert pre.input_size == size and pre.mean[0] == pytest.approx(128 / 255) and pre.std[0] == pytest.approx(128 / 255)


def test_import_keeps_the_class_order_and_names() -> None:
    model = mobilenet.create_model("mobilenet_v2", weights=weights(CLASSIFIERS[0][0]))
    assert model.class_names[0].startswith("tench") and model.class_names[-1].startswith("toilet tissue")
    assert len(model.class_names) == 1000


@pytest.mark.parametrize(("name", "_arch", "_width", "_size", "floor"), CLASSIFIERS)
def test_accuracy_on_real_images(scored, name: str, _arch: str, _width: float, _size: int, floor: float) -> None:
    _, top1 = scored[name]
    assert top1 >= floor, f"{name}: top-1 {top1:.1%} < {floor:.0%}"


def test_accuracy_follows_model_size(scored) -> None:
    top1 = [scored[name][1] for name, *_ in CLASSIFIERS]
    assert top1 == sorted(top1, reverse=True), top1


@pytest.mark.slow
@pytest.mark.parametrize("name", [c[0] for c in CLASSIFIERS])
def test_top1_agrees_with_google_runtime(scored, sample, name: str) -> None:
    pytest.importorskip(
        "ai_edge_litert", reason="Google's runtime is a test-only reference: pip install ai-edge-litert"
    )
    files, _ = sample
    reference = torch.from_numpy(litert_logits(weights(name), files))
    ours, _ = scored[name]
    agreement = (ours.argmax(1) == reference.argmax(1)).float().mean().item()
    assert agreement >= MIN_AGREEMENT[name], f"{name}: top-1 agrees with LiteRT on {agreement:.1%}"


@pytest.mark.slow
def test_tf_same_padding_is_what_the_weights_need(scored, sample) -> None:
    files, labels = sample
    name = CLASSIFIERS[1][0]
    model = mobilenet.create_model("mobilenet_v1_075", weights=weights(name), padding="symmetric")
    symmetric = topk_accuracy(predict_logits(model, files), labels)
    assert symmetric < scored[name][1] - 0.05  # measured: 80.6% -> 68.8%


def test_segmentation_file_is_a_clear_error() -> None:
    deeplab = shared_path("weights/deeplabv3_mnv2_dm05_pascal_quant.tflite")
    with pytest.raises(ValueError, match=r"is no classifier .*mobilenet\.registry\.load, which tells the kind"):
        import_tflite(deeplab)
    with pytest.raises(ValueError, match=r"holds a segmentation model, not a classification one"):
        mobilenet.create_model("mobilenet_v2", weights=deeplab)


def test_reader_dequantizes_per_tensor() -> None:
    net = read_tflite(weights(CLASSIFIERS[3][0]))
    assert len(net.convs) == 27  # stem + 13 x (depthwise, pointwise); then the pooling and the logits
    assert net.classifier_kind == "conv" and net.classifier.weight.shape == (1001, 256, 1, 1)
    assert [c.depthwise for c in net.convs[1:3]] == [True, False]
    stem = net.convs[0].weight
    assert stem.shape == (8, 3, 3, 3) and stem.dtype.name == "float32"
    assert len(set(stem.flatten().tolist())) <= 256  # one uint8 grid


def test_a_cut_file_is_refused_as_damaged_with_the_reader_s_own_error_chained(tmp_path) -> None:
    """One line for the user; the reader's error kept as the cause, so that a bug in a reader is not lost as damage."""
    raw = weights(CLASSIFIERS[3][0]).read_bytes()
    (tmp_path / "cut.tflite").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(TFLiteError, match=r"cut\.tflite is a damaged TFLite file \(an offset in it points") as info:
        read_tflite(tmp_path / "cut.tflite")
    assert isinstance(info.value.__cause__, struct.error | IndexError | ValueError), repr(info.value.__cause__)


def test_wrong_name_for_the_file_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"holds mobilenet_v1 width 0.25 .* \(mobilenet_v1_025\)"):
        mobilenet.create_model("mobilenet_v2_100", weights=weights(CLASSIFIERS[3][0]))


def test_output_stride_override_keeps_the_weights() -> None:
    model = mobilenet.create_model(
        "mobilenet_v2", weights=weights(CLASSIFIERS[0][0]), output_stride=16, features_only=True
    )
    assert replace(model.config, output_stride=32).padding == "tf_same"
    assert model(torch.randn(1, 3, 224, 224))[-1].shape == (1, 1280, 14, 14)


# The kinds of file Google does not publish, cut from its own at test time (tests/tflite_surgery.py).
# Headless backbones: source file, model name. Measured on the 16 images: cosine with LiteRT's features
# >= 0.995 for both; the FULLY_CONNECTED classifier agrees on 16/16 top-1, as Google's conv file does.
HEADLESS = [(CLASSIFIERS[0][0], "mobilenet_v2"), (CLASSIFIERS[3][0], "mobilenet_v1_025")]


@pytest.fixture(scope="module")
def val16() -> list[Path]:
    """16 real ILSVRC2012 validation images, spread over Imagenette's 10 classes."""
    files = sorted(shared_path("imagenette/val").rglob("*.JPEG"))
    return [files[i * len(files) // 16] for i in range(16)]


@pytest.fixture(scope="module")
def google_labels() -> list[str]:
    return shared_path("weights/imagenet_labels.txt").read_text().splitlines()


@pytest.mark.parametrize(("source", "arch"), HEADLESS)
def test_headless_file_gives_litert_features(tmp_path, val16, source: str, arch: str) -> None:
    pytest.importorskip("ai_edge_litert", reason="cutting and running .tflite files needs ai-edge-litert")
    path = headless(weights(source), tmp_path / "headless.tflite")
    model = mobilenet.create_model(arch, weights=path)
    assert read_tflite(path).classifier is None and model.num_classes == 0
    ours, reference = predict_logits(model, val16), torch.from_numpy(litert_logits(path, val16))
    assert ours.shape == reference.shape == (16, model.num_features)
    cosine = torch.nn.functional.cosine_similarity(ours, reference)
    assert cosine.min() >= 0.99, f"{source}: pooled features' cosine with LiteRT's down to {cosine.min():.4f}"


def test_fully_connected_file_over_1000_classes_agrees_with_litert(tmp_path, val16, google_labels) -> None:
    pytest.importorskip("ai_edge_litert", reason="cutting and running .tflite files needs ai-edge-litert")
    path = fully_connected(weights(CLASSIFIERS[0][0]), tmp_path / "keras_like.tflite", rows=range(1, 1001))
    (tmp_path / "labels.txt").write_text("\n".join(google_labels[1:]))  # no background line: 1000 names
    model = mobilenet.create_model("mobilenet_v2", weights=path)
    assert read_tflite(path).classifier_kind == "linear" and model.num_classes == 1000
    assert model.class_names == google_labels[1:]
    ours, reference = predict_logits(model, val16).numpy(), litert_logits(path, val16)
    assert top1_agreement(ours, reference) >= 15 / 16


def test_int8_emulation_rounds_activations_to_the_files_grids() -> None:
    from mobilenet.weights.int8 import Quantized

    grid = Quantized(scale=0.5, zero_point=3)  # uint8: reals (0 - 3) * 0.5 = -1.5 .. (255 - 3) * 0.5 = 126
    assert grid(torch.tensor([-9.0, 0.2, 0.3, 1.0, 500.0])).tolist() == [-1.5, 0.0, 0.5, 1.0, 126.0]
    net = read_tflite(weights(CLASSIFIERS[0][0]))
    assert all(conv.output is not None for conv in net.convs) and len(net.residual_sums) == 10  # V2's 10 shortcuts
    model = import_tflite(weights(CLASSIFIERS[0][0]), emulate_int8=True)[0]
    activations = []
    model.features[3].conv[3].register_forward_hook(lambda _m, _a, out: activations.append(out))  # projection BN
    model.eval()(torch.randn(1, 3, 224, 224))
    scale, zero = net.convs[8].output.scale, net.convs[8].output.zero_point  # block 3's projection (stem, 2 + 3, 3)
    assert torch.allclose(activations[0] / scale + zero, (activations[0] / scale + zero).round(), atol=1e-3)


def test_an_int8_file_is_deployed_as_its_runtime_computes_it_unless_float_is_asked_for(tmp_path) -> None:
    from mobilenet.registry import load_deployed
    from mobilenet.weights.tflite import is_quantized_tflite

    path, ours = weights(CLASSIFIERS[0][0]), tmp_path / "ours.safetensors"
    ours.write_bytes(tiny_weights("classifier"))
    assert is_quantized_tflite(path) and not is_quantized_tflite(ours)
    grid = read_tflite(path).classifier.output  # the file's logits are on this grid; a float model's are not

    def on_grid(logits: torch.Tensor) -> bool:
        return torch.allclose(logits / grid.scale, (logits / grid.scale).round(), atol=1e-3)

    x = torch.randn(2, 3, 224, 224)
    deployed = load_deployed(path)  # BatchNorm folded, the file's roundings kept
    assert deployed.backend == "torch" and on_grid(deployed(x))
    assert not on_grid(load_deployed(path, emulate_int8=False, images=1)(x))
    with pytest.raises(ValueError, match=r"int8 TFLite file, run as Google's runtime computes it .*--float"):
        load_deployed(path, backend="onnxruntime")
    with pytest.raises(ValueError, match=r"is float weights: emulate_int8 applies to quantized \.tflite files"):
        load_deployed(ours, emulate_int8=True)
