"""Thin adapters over the inference runtimes (ONNX Runtime, OpenVINO and NNCF), used by inference and training."""
