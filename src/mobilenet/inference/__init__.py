"""Fast inference and export: BatchNorm folding and compile, ONNX/TorchScript/TFLite export, deploy."""
