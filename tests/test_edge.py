"""Full-integer TFLite export: real where Google's converters are installed, one clear line where they are not."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import mobilenet
from mobilenet.inference.edge import LITERT_SETUP, export_tflite_int8
from mobilenet.weights import save_weights
from tests.conftest import cli, shared_path

HAS_LITERT = all(importlib.util.find_spec(name) for name in ("litert_torch", "ai_edge_quantizer"))


def test_int8_export_needs_its_flags(tmp_path) -> None:
    done = cli("export", "missing.tflite", str(tmp_path / "x.tflite"), "--precision", "int8")
    assert done.returncode == 2 and "missing.tflite" in done.stderr  # the weights are read first
    model = tmp_path / "small.safetensors"
    save_weights(mobilenet.create_model("mobilenet_v1_025", num_classes=3, input_size=64), model)
    done = cli("export", str(model), str(tmp_path / "x.tflite"), "--precision", "int8")
    assert done.returncode == 2 and "add --format tflite --calibration DIR" in done.stderr


@pytest.mark.skipif(HAS_LITERT, reason="checks the message shown where litert-torch is missing")
def test_without_the_converters_the_error_says_what_to_run(tmp_path) -> None:
    model = mobilenet.create_model("mobilenet_v1_025", num_classes=3, input_size=64).eval()
    with pytest.raises(ImportError) as error:
        export_tflite_int8(model, tmp_path / "x.tflite", [])
    assert LITERT_SETUP in str(error.value)
    assert not (tmp_path / "x.tflite").exists()


@pytest.mark.skipif(not HAS_LITERT, reason=f"needs litert-torch and ai-edge-quantizer: {LITERT_SETUP}")
def test_a_real_export_is_full_integer_and_agrees_with_float(tmp_path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from mobilenet.weights.tflite import import_tflite, read_tflite

    weights = shared_path("weights/mobilenet_v2_1.0_224_quant.tflite")
    model = mobilenet.create_model("mobilenet_v2", weights=weights).eval()
    report = export_tflite_int8(model, tmp_path / "int8.tflite", shared_path("imagenette/val"), limit=32)
    interpreter = Interpreter(model_path=str(report.path))
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert source["dtype"] == target["dtype"] == np.int8 and list(source["shape"]) == [1, 224, 224, 3]
    assert report.top1_agreement >= 0.75 and report.file_size < 5e6  # int8: about a quarter of 14 MB
    # Our importer reads it back: a FULLY_CONNECTED classifier after the pooling, where Google's files have a conv.
    assert read_tflite(report.path).classifier_kind == "linear"
    assert import_tflite(report.path)[0].num_classes == 1000
