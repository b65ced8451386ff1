"""Full-integer TFLite export, by our own TFLite writer, checked in Google's runtime: each kind, a real classifier on
real images against its float model, the file read back by our importer, and the normalization folded exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import fx

import mobilenet
from mobilenet.classification.predict import predict_logits
from mobilenet.inference.edge import EdgeReport, export_tflite_int8, top1_agreement
from mobilenet.inference.optimize import fold_batchnorm
from mobilenet.inference.tflite_aten import calls, export_graph, graph_input
from mobilenet.inference.tflite_calibrate import fold_input_normalization, input_grid, observe_ranges
from mobilenet.inference.tflite_correct import correct_biases
from mobilenet.inference.tflite_lower import Lowering
from mobilenet.nn.preprocessing import Preprocessing
from mobilenet.registry import load
from mobilenet.weights import save_weights
from mobilenet.weights.tflite import embedded_labels, import_tflite, litert_logits, read_model, read_tflite
from tests.helpers.data import shared_path, write_images
from tests.helpers.models import exported_tiny, trained_like
from tests.helpers.runs import cli

pytest.importorskip(
    "ai_edge_litert", reason="the export is checked in Google's runtime: pip install 'mobilenet[tflite]'"
)


def test_int8_export_needs_its_flags(tmp_path) -> None:
    done = cli("export", "missing.tflite", str(tmp_path / "x.tflite"), "--precision", "int8")
    assert done.returncode == 2 and "missing.tflite" in done.stderr  # the weights are read first
    model = tmp_path / "small.safetensors"
    save_weights(mobilenet.create_model("mobilenet_v1_025", num_classes=3, input_size=64), model)
    done = cli("export", str(model), str(tmp_path / "x.tflite"), "--precision", "int8")
    assert done.returncode == 2 and "add --format tflite (or executorch) --calibration DIR" in done.stderr


@pytest.mark.parametrize(("kind", "measured"), [("classifier", "top-1 agrees"), ("segmenter", "pixels' classes agree"),
                                                ("detector", "anchors' top classes agree")])  # fmt: skip
def test_each_kind_exports_full_integer_from_the_command_line(tmp_path, kind, measured) -> None:
    from ai_edge_litert.interpreter import Interpreter

    write_images(tmp_path / "calibration", 8, (120, 100))
    flags = ("--precision", "int8", "--calibration", str(tmp_path / "calibration"))
    _, graph, printed = exported_tiny(tmp_path, kind, ".tflite", *flags)
    assert "full-integer TFLite" in printed and f"{measured} with float on" in printed
    runtime = Interpreter(model_path=str(graph))
    (source,), targets = runtime.get_input_details(), runtime.get_output_details()
    assert source["dtype"] == np.uint8 and source["shape"][-1] == 3  # pixels in, as cameras and MediaPipe give them
    assert all(target["dtype"] == np.float32 for target in targets)
    tensors = runtime.get_tensor_details()
    weights = [t for t in tensors if t["name"].endswith("/weights")]
    assert weights and all(t["dtype"] == np.int8 for t in weights)  # every weight int8, per channel
    assert all(len(t["quantization_parameters"]["scales"]) == t["shape"][t["quantization_parameters"]
               ["quantized_dimension"]] for t in weights)  # fmt: skip
    # The standard TFLite Model Metadata (MediaPipe's tasks read it) and its label file, stored after the flatbuffer.
    model, raw = read_model(graph)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    standard = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert standard[4:8] == b"M001" and raw[:4] != b"PK\x03\x04"
    names = ["b", "c"] if kind == "detector" else ["a", "b", "c"]  # a detector's op leaves the background out
    assert embedded_labels(graph) == names
    if kind != "segmenter":  # read back by our importer, class names from the file itself
        assert load(graph).class_names[-len(names) :] == names


def test_a_small_object_detector_is_read_back_with_its_lowest_layer_and_anchors(tmp_path) -> None:
    """A lowest layer at stride 8 with every box, and anchor scales of its own: our importer finds the layout from
    the file alone (the count of heads, their width, the anchors), where a fixed layout would not match it."""
    torch.manual_seed(0)
    model = mobilenet.create_model("ssdlite_mobilenet_v2", width_mult=0.35, num_classes=3, input_size=96,
                                   lowest_layer_stride=8, reduce_boxes_in_lowest_layer=False, min_scale=0.07,
                                   max_scale=0.9)  # fmt: skip
    model.class_names = ["background", "a", "b"]
    write_images(tmp_path / "calibration", 4, (120, 100))
    report = export_tflite_int8(trained_like(model), tmp_path / "small.tflite", tmp_path / "calibration")
    back = load(report.path)
    layout = ("lowest_layer_stride", "reduce_boxes_in_lowest_layer", "min_scale", "max_scale", "width_mult")
    assert [getattr(back.config, name) for name in layout] == [8, False, 0.07, 0.9, 0.35]
    torch.testing.assert_close(back.anchors(96, 96), model.anchors(96, 96), atol=1e-6, rtol=0)


def test_the_normalization_is_folded_into_the_first_convolution_exactly() -> None:
    """The file's uint8 input stands for one mean and std; the per-channel rest is folded into the first conv, whose
    output is the model's away from the padded border (which pads the file's zero, not the normalized image's)."""
    pre = Preprocessing(input_size=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    model = trained_like(mobilenet.create_model("mobilenet_v1_025", num_classes=3, input_size=32))
    original, folded = (export_graph(fold_batchnorm(model), 32) for _ in range(2))
    grid = input_grid(pre)
    fold_input_normalization(folded, pre, grid)
    pixels = torch.randint(0, 256, (1, 3, 32, 32)).float()
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (pre.mean, pre.std))
    first = [first_conv(original, (pixels / 255 - mean) / std), first_conv(folded, (pixels - grid.zero_point[0])
                                                                              * grid.scale[0])]  # fmt: skip
    torch.testing.assert_close(first[1][..., 1:-1, 1:-1], first[0][..., 1:-1, 1:-1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(first[1], first[0], atol=1e-3)  # the border: the one place they differ


def first_conv(graph: fx.GraphModule, x: torch.Tensor) -> torch.Tensor:
    found = {}

    class Tap(fx.Interpreter):
        def run_node(self, node: fx.Node):
            result = super().run_node(node)
            if str(node.target) == "aten.conv2d.default" and not found:
                found["conv"] = result
            return result

    Tap(graph).run(x)
    return found["conv"]


def test_an_activation_fused_into_its_convolution_has_its_own_grid() -> None:
    """The file stores a conv + ReLU6's values after the ReLU6: their grid spans its range, not the conv's (Coral's
    DeepLab, VOC val, LiteRT: 70.88% mIoU on grids that spanned the conv's too, 71.97% on their own; float 72.58%)."""
    graph = export_graph(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU6()), 8)
    conv, relu6 = calls(graph)[-2:]
    ranges = {graph_input(graph).name: (-1.0, 1.0), conv.name: (-50.0, 30.0), relu6.name: (0.0, 6.0)}
    lowering = Lowering(graph, ranges, input_grid(Preprocessing(input_size=8)))
    assert lowering.fused == {conv.name: relu6} and lowering.grid(relu6.name).scale[0] == pytest.approx(6 / 255)


def test_bias_correction_takes_the_int8_drift_out_of_the_file() -> None:
    """A depthwise 3x3 whose eight outer weights each lose 0.45 of a step to int8 rounding: on pixels of mean 0.5
    its int8 output is lower than float's by more than an output step in every channel. In LiteRT the corrected
    file's channel means are float's."""
    from ai_edge_litert.interpreter import Interpreter

    conv = torch.nn.Conv2d(3, 3, 3, padding=1, groups=3)
    with torch.no_grad():
        conv.weight.fill_(38.45 / 127)  # the largest weight is 1: the step is 1/127, and 38.45 steps round to 38
        conv.weight[:, :, 1, 1] = 1.0
        conv.bias.zero_()
    pre = Preprocessing(input_size=32, mean=(0.0,) * 3, std=(1.0,) * 3)  # the real input is pixel / 255
    pixels = torch.randint(0, 256, (16, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = conv(pixels / 255).mean((0, 2, 3)).numpy()
    drift = {}
    for corrected in (False, True):
        graph = export_graph(conv, 32)
        lowering = Lowering(graph, observe_ranges(graph, pixels / 255), input_grid(pre))
        if corrected:
            correct_biases(graph, pixels / 255, lowering.grid)
        step = lowering.grid(calls(graph)[-1].name).scale[0]
        lowered = lowering.lower()
        runtime = Interpreter(model_content=lowered.file.serialize([lowered.input], lowered.outputs, "test"))
        runtime.allocate_tensors()
        (source,), (target,) = runtime.get_input_details(), runtime.get_output_details()
        means = []
        for image in pixels.permute(0, 2, 3, 1).numpy().astype(np.uint8):
            runtime.set_tensor(source["index"], image[None])
            runtime.invoke()
            means.append(runtime.get_tensor(target["index"]).mean((0, 1, 2)))
        drift[corrected] = (expected - np.mean(means, 0)) / step
    assert np.all(drift[False] > 0.8) and np.all(np.abs(drift[True]) < 0.2), drift


def test_an_op_without_a_rule_is_refused_in_one_line() -> None:
    class Tanh(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x)

    with pytest.raises(ValueError, match=r"TFLite export has no rule for aten\.tanh\.default"):
        Lowering(export_graph(Tanh(), 8), None, None).lower()


@pytest.fixture(scope="module")
def coral_v2() -> mobilenet.MobileNet:
    return mobilenet.create_model("mobilenet_v2", weights=shared_path("weights/mobilenet_v2_1.0_224_quant.tflite"))


@pytest.fixture(scope="module")
def exported(coral_v2, tmp_path_factory) -> EdgeReport:
    """Coral's MobileNetV2 1.0 exported once: calibrated on 32 Imagenette train images, checked on 32 val ones."""
    path = tmp_path_factory.mktemp("edge") / "int8.tflite"
    return export_tflite_int8(coral_v2, path, shared_path("imagenette/train"), shared_path("imagenette/val"), limit=32)


def test_a_real_export_is_full_integer_and_agrees_with_float(exported) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported.path))
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert source["dtype"] == np.uint8 and list(source["shape"]) == [1, 224, 224, 3]
    assert target["dtype"] == np.float32 and list(target["shape"]) == [1, 1000]  # probabilities, as Google's files
    # Coral's normalization is (pixel - 128) / 128: the input is the pixel itself, on that grid.
    assert source["quantization"] == (1 / 128, 128)
    assert exported.measured == "top-1" and exported.agreement >= 0.9 and exported.file_size < 5e6  # 14 MB in float
    # Our importer reads it back: a FULLY_CONNECTED classifier after the pooling, where Google's files have a conv.
    assert read_tflite(exported.path).classifier_kind == "linear"


def test_the_export_imported_back_agrees_with_litert(exported, coral_v2) -> None:
    """Our importer reads the file's normalization, so our model sees what LiteRT sees; rounding each activation as
    the file does (``emulate_int8``) it gives LiteRT's class. Measured on these 64 real validation images: 64/64
    emulated, 64/64 in float."""
    model = mobilenet.create_model("mobilenet_v2", weights=exported.path)
    assert model.num_classes == 1000 and model.preprocessing == read_tflite(exported.path).preprocessing
    files = sorted(shared_path("imagenette/val").rglob("*.JPEG"))
    files = [files[i * len(files) // 64] for i in range(64)]
    reference = litert_logits(exported.path, files)
    np.testing.assert_allclose(reference.sum(1), 1, atol=1e-5)
    emulated, _ = import_tflite(exported.path, emulate_int8=True)
    assert top1_agreement(predict_logits(model, files).numpy(), reference) >= 0.95
    assert top1_agreement(predict_logits(emulated, files).numpy(), reference) >= 0.98
