"""Object detection: SSDLite and SSD on MobileNets (the MobileNetV2 paper, Section 6.2), its data and metrics."""
