"""Semantic segmentation: Mobile DeepLabv3 (the MobileNetV2 paper, Section 6.3), its data, metrics and training."""
