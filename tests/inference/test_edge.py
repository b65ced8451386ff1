"""Full-integer TFLite export: real where Google's converters are installed, one clear line where they are not."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import mobilenet
from mobilenet.classification.predict import predict_logits
from mobilenet.inference.edge import LITERT_SETUP, EdgeReport, export_tflite_int8, top1_agreement
from mobilenet.weights import save_weights
from mobilenet.weights.tflite import litert_logits, read_tflite
from tests.helpers.data import shared_path
from tests.helpers.runs import cli

HAS_LITERT = all(importlib.util.find_spec(name) for name in ("litert_torch", "ai_edge_quantizer"))
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason=f"needs litert-torch and ai-edge-quantizer: {LITERT_SETUP}")


def test_int8_export_needs_its_flags(tmp_path) -> None:
    done = cli("export", "missing.tflite", str(tmp_path / "x.tflite"), "--precision", "int8")
    assert done.returncode == 2 and "missing.tflite" in done.stderr  # the weights are read first
    model = tmp_path / "small.safetensors"
    save_weights(mobilenet.create_model("mobilenet_v1_025", num_classes=3, input_size=64), model)
    done = cli("export", str(model), str(tmp_path / "x.tflite"), "--precision", "int8")
    assert done.returncode == 2 and "add --format tflite (or executorch) --calibration DIR" in done.stderr


@pytest.mark.skipif(HAS_LITERT, reason="checks the message shown where litert-torch is missing")
def test_without_the_converters_the_error_says_what_to_run(tmp_path) -> None:
    model = mobilenet.create_model("mobilenet_v1_025", num_classes=3, input_size=64).eval()
    with pytest.raises(ImportError) as error:
        export_tflite_int8(model, tmp_path / "x.tflite", [])
    assert LITERT_SETUP in str(error.value)
    assert not (tmp_path / "x.tflite").exists()


@pytest.fixture(scope="module")
def coral_v2() -> mobilenet.MobileNet:
    return mobilenet.create_model("mobilenet_v2", weights=shared_path("weights/mobilenet_v2_1.0_224_quant.tflite"))


@pytest.fixture(scope="module")
def exported(coral_v2, tmp_path_factory) -> EdgeReport:
    """Coral's MobileNetV2 1.0 exported once: calibrated on 32 Imagenette train images, checked on 32 val ones."""
    path = tmp_path_factory.mktemp("edge") / "int8.tflite"
    return export_tflite_int8(coral_v2, path, shared_path("imagenette/train"), shared_path("imagenette/val"), limit=32)


@needs_litert
def test_a_real_export_is_full_integer_and_agrees_with_float(exported) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported.path))
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert source["dtype"] == target["dtype"] == np.int8 and list(source["shape"]) == [1, 224, 224, 3]
    # Coral's normalization is (pixel - 128) / 128, and the input's range is every pixel: it is pixel - 128, exactly.
    assert source["quantization"] == (1 / 128, 0)
    assert exported.top1_agreement >= 0.75 and exported.file_size < 5e6  # int8: about a quarter of 14 MB
    # Our importer reads it back: a FULLY_CONNECTED classifier after the pooling, where Google's files have a conv.
    assert read_tflite(exported.path).classifier_kind == "linear"


@needs_litert
def test_the_export_imported_back_agrees_with_litert(exported, coral_v2) -> None:
    """Our importer reads the file's normalization from its metadata, so our float model sees what LiteRT sees.

    Top-1 counts as agreeing when ours is one of LiteRT's tied maxima (int8 logits can tie). Measured on
    these 128 real validation images: 125/128, where Google's own uint8 file imported the same way gets 126/128.
    """
    from ai_edge_litert.interpreter import Interpreter

    model = mobilenet.create_model("mobilenet_v2", weights=exported.path)
    assert model.num_classes == 1000 and model.preprocessing == coral_v2.preprocessing
    files = sorted(shared_path("imagenette/val").rglob("*.JPEG"))
    files = [files[i * len(files) // 128] for i in range(128)]
    ours, reference = predict_logits(model, files).numpy(), litert_logits(exported.path, files)
    assert top1_agreement(ours, reference) >= 0.95
    scale, zero = Interpreter(model_path=str(exported.path)).get_output_details()[0]["quantization"]
    assert reference.max() < (127 - zero) * scale  # no top logit saturates the int8 output (ties at its maximum)
